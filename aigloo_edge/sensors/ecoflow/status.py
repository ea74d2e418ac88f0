"""Heartbeat packets (fixed little-endian structs) decoded into partial station readings.

A heartbeat may be shorter than the struct (trailing fields are optional) or longer (newer
firmware); a field is read only when the packet carries it. Each reading holds only the values
its packet carries; the publisher merges them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from aigloo_edge.sensors.ecoflow.frames import Packet
from aigloo_edge.sensors.ecoflow.models import BMS, INV, MPPT, PD, HeartbeatSource, Model
from aigloo_edge.sensors.readings import StationReading

HEARTBEAT = (0x20, 0x02)
BMS_HEARTBEAT = (0x20, 0x32)
CAR_INPUT = 2  # MPPT cfgChgType: the DC input is a car socket, not solar


def _field(fmt: str, payload: bytes, offset: int) -> Any:
    if offset + struct.calcsize(fmt) > len(payload):
        return None
    return struct.unpack_from("<" + fmt, payload, offset)[0]


def _flag(payload: bytes, offset: int) -> bool | None:
    value = _field("B", payload, offset)
    return None if value is None else value == 1


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def heartbeat_source(packet: Packet) -> HeartbeatSource | None:
    """Which struct a packet carries, by (src, cmd_set, cmd_id)."""
    key = (packet.cmd_set, packet.cmd_id)
    if packet.src == PD and key == HEARTBEAT:
        return "pd"
    if packet.src == BMS and key == HEARTBEAT:
        return "ems"
    if packet.src == BMS and key == BMS_HEARTBEAT:
        return "bms"
    if packet.src == INV and packet.cmd_id == 0x02:
        return "inv"  # its cmd_set varies between models
    if packet.src == MPPT and key == HEARTBEAT:
        return "mppt"
    return None


@dataclass
class StatusDecoder:
    """Pure: one packet in, the reading it carries (or None) out."""

    model: Model
    capacity_wh: float | None = None
    _charging: bool | None = field(default=None, init=False)

    def decode(self, packet: Packet, at: float) -> StationReading | None:
        source = heartbeat_source(packet)
        if source is None:
            return None
        values = self._values(source, packet.payload)
        values = {name: value for name, value in values.items() if value is not None}
        if not values:
            return None
        return StationReading(**values, capacity_wh=self.capacity_wh, at=at)

    def _values(self, source: HeartbeatSource, payload: bytes) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if source == "pd":
            values |= self._pd(payload)
        elif source == "ems":
            values["remaining_min"] = self._remaining(payload)
        elif source == "mppt":
            values["solar_w"] = _solar(payload)
        model = self.model
        if model.soc_from == source:
            values["soc_pct"] = _soc(source, payload)
        if model.ac_from == source:
            values["ac"] = _flag(payload, 66 if source == "mppt" else 45)
        if model.dc_from == source:
            values["dc"] = _flag(payload, 56 if source == "mppt" else 33)
        if model.usb_from == source:
            values["usb"] = _flag(payload, 24)  # PD dcOutState
        return values

    def _pd(self, payload: bytes) -> dict[str, Any]:
        watts_out = _float(_field("H", payload, 15))
        watts_in = _float(_field("H", payload, 17))
        if watts_in is not None and watts_out is not None:
            self._charging = watts_in > watts_out
        return {"watts_in": watts_in, "watts_out": watts_out}

    def _remaining(self, payload: bytes) -> float | None:
        """EMS chgRemainTime while charging, else dsgRemainTime (minutes; 5999 = idle)."""
        offset = 17 if self._charging else 21
        return _float(_field("I", payload, offset))


def _soc(source: HeartbeatSource, payload: bytes) -> float | None:
    """EMS f32LcdShowSoc or BMS f32ShowSoc, rounded as the app shows it."""
    value = _field("f", payload, 26 if source == "ems" else 53)
    if value is None or not 0.0 <= value <= 100.0:
        return None
    return round(float(value), 2)


def _solar(payload: bytes) -> float | None:
    """MPPT inWatts, unless the DC input is configured as a car socket (then no solar)."""
    watts = _float(_field("H", payload, 16))
    if watts is not None and _field("B", payload, 31) == CAR_INPUT:
        return 0.0
    return watts
