"""What every source produces: readings per device, in SI units, with the time they were taken.

Sources never publish themselves: they hand these to the publisher, which merges them per
device, applies deadbands, stamps `source` and `ts`, and marks stale what stops arriving.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

StationSource = Literal["ecoflow_ble", "ecoflow_cloud", "mqtt_map", "twin"]
SourceName = StationSource | Literal["thermopro"]
OutputName = Literal["ac", "dc"]


@dataclass(frozen=True, slots=True)
class ClimateReading:
    """One probe: °C, relative humidity %, the sensor's own battery %, radio strength dBm."""

    probe: str
    temperature_c: float
    humidity_pct: float | None = None
    battery_pct: float | None = None
    rssi_dbm: float | None = None
    at: float = 0.0  # Unix seconds the reading was taken (received)
    source: SourceName = "thermopro"


@dataclass(frozen=True, slots=True)
class StationReading:
    """The power station; a field a message did not carry is None (merged with earlier ones)."""

    soc_pct: float | None = None
    watts_in: float | None = None
    watts_out: float | None = None
    solar_w: float | None = None
    remaining_min: float | None = None
    capacity_wh: float | None = None
    ac: bool | None = None
    dc: bool | None = None
    usb: bool | None = None
    at: float = 0.0
    source: StationSource = "ecoflow_ble"


@dataclass(frozen=True, slots=True)
class Lost:
    """A device stopped reporting (probe out of range, station link down): mark it stale."""

    device: str  # a probe id, or "station"
    reason: str
    at: float = 0.0


Reading = ClimateReading | StationReading | Lost
Sink = Callable[[Reading], Awaitable[None]]


class OutputSwitch(Protocol):
    """A source that can also switch the station's outputs (EcoFlow BLE, EcoFlow cloud)."""

    async def set_output(self, output: OutputName, on: bool) -> None:
        """Switch `output`; raises SensorError (with the reason) if the station refused."""
        ...
