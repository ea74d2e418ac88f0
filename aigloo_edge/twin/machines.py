"""The Macs: wall power by state, their hottest core, and the laptops' own batteries.

A Mac draws `sleep_w` asleep, `idle_w` awake and idle, `inference_w` while it serves inference
(wall figures, Apple's "idle" and "max" and the scenario's inference draw). A machine with no
power (its outlet dark, and no battery of its own or a flat one) is off; it comes back awake
when power returns (Mac desktops with "Start up automatically after a power failure", laptops
that boot when power is connected).

A laptop on a live outlet runs from it and charges its battery at `charge_w` up to 80 %, then
tapering linearly to nothing at 100 % (the shape of Apple's fast charging); unplugged it runs
from its battery. Its `wall_w` is what it takes from the station (0 unplugged).

The hottest core follows `air + core_k_per_w · running power` with time constant `core_tau_s`
(first order, integrated exactly, so any step size is stable).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from aigloo_edge.twin.interface import MachineLoad, MachinePower, MachineView
from aigloo_edge.twin.scenario import MachineParams

HOUR_S: Final = 3600.0
TAPER_FROM_PCT: Final = 80.0
IDLE_CPU_PCT: Final = 4.0


@dataclass(frozen=True, slots=True)
class Draw:
    """What a machine takes for one step: from the station, and the heat it gives off."""

    wall_w: float
    heat_w: float


class Machine:
    def __init__(self, node: str, params: MachineParams, air_c: float) -> None:
        self.node = node
        self.params = params
        self.commanded: MachinePower = "awake"
        self.load: MachineLoad = "idle"
        self.battery_wh = (params.battery_wh or 0.0) * (params.battery_pct or 0.0) / 100.0
        self.on = True
        self.core_c = air_c
        self.wall_w = 0.0
        self.wall_wh = 0.0  # taken from the station since the start

    # --- state ----------------------------------------------------------------------------

    @property
    def power(self) -> MachinePower:
        return self.commanded if self.on else "sleeping"

    @property
    def awake(self) -> bool:
        return self.on and self.commanded == "awake"

    @property
    def battery_pct(self) -> float | None:
        capacity = self.params.battery_wh
        return None if capacity is None else 100.0 * self.battery_wh / capacity

    def running_w(self) -> float:
        """What the machine itself uses now (not counting charging)."""
        p = self.params
        if not self.on:
            return 0.0
        if self.commanded == "sleeping":
            return p.sleep_w
        return p.inference_w if self.load == "inference" else p.idle_w

    def charge_w(self, plugged: bool) -> float:
        p = self.params
        if not plugged or p.battery_wh is None or p.charge_w is None:
            return 0.0
        pct = self.battery_pct or 0.0
        if pct >= 100.0:
            return 0.0
        if pct <= TAPER_FROM_PCT:
            return p.charge_w
        return p.charge_w * (100.0 - pct) / (100.0 - TAPER_FROM_PCT)

    def reconnect(self, plugged: bool) -> None:
        """Power came back (the outlet is live again): a machine that was off starts awake."""
        if plugged and not self.on:
            self.on, self.commanded = True, "awake"

    def draw(self, plugged: bool) -> Draw:
        """What it would take from the station this step (no change of state)."""
        running = self.running_w()
        if not plugged:
            return Draw(0.0, running)
        charge = self.charge_w(plugged)
        efficiency = self.params.charge_efficiency or 1.0
        return Draw(running + charge, running + charge * (1.0 - efficiency))

    # --- time -----------------------------------------------------------------------------

    def advance(self, dt: float, plugged: bool, air_c: float) -> None:
        """`dt` seconds on the station (plugged) or on its own battery."""
        if dt <= 0:
            return
        p = self.params
        if plugged:
            self.reconnect(True)
            charge = self.charge_w(True)
            running = self.running_w()
            self.wall_w = running + charge
            self.wall_wh += self.wall_w * dt / HOUR_S
            if p.battery_wh is not None:
                stored = charge * (p.charge_efficiency or 1.0) * dt / HOUR_S
                self.battery_wh = min(p.battery_wh, self.battery_wh + stored)
        else:
            self.wall_w = 0.0
            running = self.running_w()
            if p.battery_wh is None:
                self.on = False
            elif self.on:
                self.battery_wh -= running * dt / HOUR_S
                if self.battery_wh <= 0.0:
                    self.battery_wh, self.on = 0.0, False
        self._cores(dt, air_c, running if self.on else 0.0)

    def _cores(self, dt: float, air_c: float, running_w: float) -> None:
        target = air_c + self.params.core_k_per_w * running_w
        self.core_c = target + (self.core_c - target) * math.exp(-dt / self.params.core_tau_s)

    # --- what its agent reports -----------------------------------------------------------

    def cpu_pct(self) -> float:
        if not self.awake:
            return 0.0
        if self.load == "idle":
            return IDLE_CPU_PCT
        p = self.params
        span = p.max_w - p.idle_w
        busy = 100.0 * (p.inference_w - p.idle_w) / span if span > 0 else 100.0
        return min(100.0, max(IDLE_CPU_PCT, busy))

    def view(self, plugged: bool) -> MachineView:
        has_battery = self.params.battery_wh is not None
        return MachineView(
            node=self.node,
            power=self.power,
            load=self.load if self.awake else "idle",
            wall_w=self.wall_w,
            cpu_pct=self.cpu_pct(),
            core_c=self.core_c,
            battery_pct=self.battery_pct,
            plugged=plugged if has_battery else None,
        )
