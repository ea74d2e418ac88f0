"""The power station: stored energy, its converters, its outlets and its solar input.

Power flows through one DC bus:

    bus = AC load / inverter_efficiency + inverter_idle (while AC is on)
          + (12 V load + USB-C load) / dc_efficiency
    solar in (capped at solar_input_max_w; only what the bus and the battery can take)
    surplus  → battery: stored = (solar - bus) · charge_efficiency
    shortfall → battery: drawn = (bus - solar) / discharge_efficiency

At 0 % the station shuts its outlets; AC and 12 V stay off until switched on again (as the
EcoFlow does), the USB-C ports come back while it holds charge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

from aigloo_edge.twin.scenario import StationParams

HOUR_S: Final = 3600.0
EMPTY_WH: Final = 1e-9


@dataclass(frozen=True, slots=True)
class Flows:
    """One step's powers (W) and the share of the step the outlets were powered."""

    solar_w: float  # taken from the panel
    ac_w: float  # at the AC outlets
    dc_w: float  # at the 12 V outlet
    usb_w: float  # at the USB-C outlets
    idle_w: float  # the inverter's own draw
    battery_w: float  # into the cells (+) or out of them (-)
    powered: float = 1.0  # 0..1: the outlets went dark this far into the step

    @property
    def out_w(self) -> float:
        return self.ac_w + self.dc_w + self.usb_w


class Station:
    def __init__(self, params: StationParams) -> None:
        self.params = params
        self.energy_wh = params.capacity_wh * params.initial_soc_pct / 100.0
        self.ac_on = True
        self.dc_on = True
        self.emptied_at: float | None = None  # the first time it ran flat
        self.drawn_wh = 0.0  # out of the cells
        self.stored_wh = 0.0  # into the cells
        self.solar_wh = 0.0  # taken from the panel
        self.flows = Flows(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)

    @property
    def soc_pct(self) -> float:
        return 100.0 * self.energy_wh / self.params.capacity_wh

    @property
    def usb_on(self) -> bool:
        return self.energy_wh > EMPTY_WH

    def live(self, outlet: Literal["ac", "dc", "usb", "none"]) -> bool:
        """Whether that outlet gives power now."""
        if outlet == "ac":
            return self.ac_on
        if outlet == "dc":
            return self.dc_on
        return outlet == "usb" and self.usb_on

    def set_output(self, output: Literal["ac", "dc"], on: bool) -> None:
        on = on and self.energy_wh > EMPTY_WH  # a flat station switches nothing on
        if output == "ac":
            self.ac_on = on
        else:
            self.dc_on = on

    def bus_w(self, ac_w: float, dc_w: float, usb_w: float) -> float:
        p = self.params
        idle = p.inverter_idle_w if self.ac_on else 0.0
        return ac_w / p.inverter_efficiency + idle + (dc_w + usb_w) / p.dc_efficiency

    def step(
        self, dt: float, now: float, *, ac_w: float, dc_w: float, usb_w: float, solar_w: float
    ) -> Flows:
        """Carry these outlet loads for `dt` seconds with this much sun on the panel."""
        p = self.params
        ac_w, dc_w = (ac_w if self.ac_on else 0.0), (dc_w if self.dc_on else 0.0)
        usb_w = usb_w if self.usb_on else 0.0
        idle = p.inverter_idle_w if self.ac_on else 0.0
        bus = self.bus_w(ac_w, dc_w, usb_w)
        room_wh = p.capacity_wh - self.energy_wh
        solar = min(solar_w, p.solar_input_max_w)
        if solar >= bus:
            # The surplus charges the cells, no more than they can still take.
            if dt > 0:
                takes = room_wh * HOUR_S / dt / p.charge_efficiency
            else:
                takes = math.inf if room_wh > EMPTY_WH else 0.0
            solar = min(solar, bus + takes)
            battery_w = (solar - bus) * p.charge_efficiency
            self._account(dt, solar, battery_w)
            self.flows = Flows(solar, ac_w, dc_w, usb_w, idle, battery_w)
            return self.flows
        battery_w = -(bus - solar) / p.discharge_efficiency
        needed_wh = -battery_w * dt / HOUR_S
        if needed_wh < self.energy_wh or dt <= 0:
            self._account(dt, solar, battery_w)
            self.flows = Flows(solar, ac_w, dc_w, usb_w, idle, battery_w)
            return self.flows
        powered = self.energy_wh / needed_wh  # runs flat this far into the step
        self._account(dt * powered, solar, battery_w)
        self.energy_wh = 0.0
        if self.emptied_at is None:
            self.emptied_at = now + dt * powered
        self.ac_on = self.dc_on = False
        self.flows = Flows(solar, ac_w, dc_w, usb_w, idle, battery_w, powered)
        return self.flows

    def _account(self, dt: float, solar_w: float, battery_w: float) -> None:
        wh = battery_w * dt / HOUR_S
        self.energy_wh = min(self.params.capacity_wh, max(0.0, self.energy_wh + wh))
        if wh >= 0:
            self.stored_wh += wh
        else:
            self.drawn_wh -= wh
        self.solar_wh += solar_w * dt / HOUR_S

    def remaining_min(self) -> float | None:
        """Minutes to empty while discharging, to full while charging (as the station shows)."""
        battery_w = self.flows.battery_w
        if battery_w < -1e-6:
            return 60.0 * self.energy_wh / -battery_w
        if battery_w > 1e-6:
            return 60.0 * (self.params.capacity_wh - self.energy_wh) / battery_w
        return None
