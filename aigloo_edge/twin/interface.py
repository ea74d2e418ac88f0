"""What the twin shows the rest of the system, and the commands it obeys.

The live publisher and the simulator see only this, so the physics can change freely behind it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from aigloo_edge.payloads import FanProfile

MachinePower = Literal["awake", "sleeping"]
MachineLoad = Literal["idle", "inference"]


@dataclass(frozen=True, slots=True)
class MachineView:
    """One Mac as its agent would report it."""

    node: str
    power: MachinePower
    load: MachineLoad
    wall_w: float  # drawn from the station (0 when it runs on its own battery, unplugged)
    cpu_pct: float
    core_c: float  # hottest CPU/GPU core
    battery_pct: float | None = None  # the laptops' own batteries
    plugged: bool | None = None


@dataclass(frozen=True, slots=True)
class TwinView:
    """Everything the twin's sensors and agents would publish at one moment."""

    t: float  # Unix seconds
    soc_pct: float
    watts_in: float
    watts_out: float
    solar_w: float
    remaining_min: float | None
    capacity_wh: float
    ac_on: bool
    dc_on: bool
    inside_c: float
    outside_c: float
    fan_profile: FanProfile
    fan_duty_pct: float
    machines: dict[str, MachineView] = field(default_factory=dict)


class TwinModel(Protocol):
    """The physics, stepped by whoever drives it (real time, or faster)."""

    def view(self) -> TwinView: ...

    def step(self, dt: float) -> None:
        """Advance the physics by `dt` seconds."""
        ...

    def set_power(self, node: str, state: MachinePower) -> None: ...

    def set_load(self, node: str, load: MachineLoad) -> None: ...

    def set_fans(self, profile: FanProfile) -> None: ...

    def set_output(self, output: Literal["ac", "dc"], on: bool) -> None: ...
