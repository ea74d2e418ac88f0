"""What differs between the supported stations: payload XOR, which heartbeat carries which
value, and where the AC command goes. Chosen by the serial number's first four characters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aigloo_edge.errors import SensorError
from aigloo_edge.sensors.ecoflow.frames import Packet
from aigloo_edge.sensors.readings import OutputName

APP = 0x21  # our address
IOT = 0x35  # the station's comm module (authentication)
PD, BMS, INV, MPPT = 0x02, 0x03, 0x04, 0x05

HeartbeatSource = Literal["pd", "ems", "bms", "inv", "mppt"]


@dataclass(frozen=True, slots=True)
class Model:
    name: str
    prefixes: tuple[str, ...]
    xor: bool  # payloads XORed with seq[0]
    ac_dst: int  # module that takes the AC command
    soc_from: HeartbeatSource
    ac_from: HeartbeatSource
    dc_from: HeartbeatSource
    usb_from: HeartbeatSource | None  # None: the model reports no USB switch state
    packet_version: int = 2


RIVER_2 = Model(
    name="RIVER 2",
    prefixes=("R601", "R603", "R611", "R613", "R621", "R623"),  # 2, 2 Max, 2 Pro
    xor=False,
    ac_dst=MPPT,
    soc_from="bms",
    ac_from="mppt",
    dc_from="mppt",
    usb_from=None,
)
DELTA_2 = Model(
    name="DELTA 2",
    prefixes=("R331", "R335"),
    xor=True,
    ac_dst=MPPT,
    soc_from="ems",
    ac_from="inv",
    dc_from="pd",
    usb_from="pd",
)
DELTA_2_MAX = Model(
    name="DELTA 2 Max",
    prefixes=("R351", "R354"),
    xor=False,
    ac_dst=INV,
    soc_from="ems",
    ac_from="inv",
    dc_from="pd",
    usb_from="pd",
)
MODELS = (RIVER_2, DELTA_2, DELTA_2_MAX)


def model_for(serial: str) -> Model:
    """The model a serial number names; SensorError for a station we do not speak to."""
    for model in MODELS:
        if serial.upper().startswith(model.prefixes):
            return model
    known = ", ".join(p for m in MODELS for p in m.prefixes)
    raise SensorError(f"EcoFlow serial {serial[:4]}… is not a supported model (prefixes {known})")


def output_command(model: Model, output: OutputName, on: bool) -> Packet:
    """The V2 command that switches AC (FF: leave X-Boost, voltage, frequency) or 12 V DC."""
    enable = 1 if on else 0
    if output == "ac":
        payload = bytes([enable]) + b"\xff" * 6
        return Packet(APP, model.ac_dst, 0x20, 0x42, payload, version=model.packet_version)
    return Packet(APP, MPPT, 0x20, 0x51, bytes([enable]), version=model.packet_version)
