"""The box: one lumped thermal mass heated by the machines and the fans, cooled through its
walls and by the air the fans move through it.

    C · dT/dt = Q - (G_wall + ṁ·c_p) · (T - T_out),   ṁ·c_p = rho · V̇ · c_p

with C the box's heat capacity (J/K: the air, the machines' metal, the liner), G_wall the
walls' conductance (lid closed or open), V̇ the fans' airflow (m³/s), rho·c_p of air at about
25 °C = 1.184 kg/m³ · 1007 J/(kg·K). Each step is integrated exactly for constant Q and G,
so any step size is stable.
"""

from __future__ import annotations

import math
from typing import Final

from aigloo_edge.payloads import FanProfile
from aigloo_edge.twin.scenario import DAY_S, BoxParams, FansParams, OutsideParams

AIR_DENSITY: Final = 1.184  # kg/m³ at 25 °C, 1 atm
AIR_HEAT_CAPACITY: Final = 1007.0  # J/(kg·K)
AIR_W_PER_K_PER_M3H: Final = AIR_DENSITY * AIR_HEAT_CAPACITY / 3600.0  # ≈ 0.331


def outside_c(params: OutsideParams, t: float, utc_offset_s: float) -> float:
    """The outside temperature: constant, or a cosine through the day peaking at `warmest`."""
    if params.constant_c is not None:
        return params.constant_c
    assert params.min_c is not None
    assert params.max_c is not None
    assert params.warmest is not None
    clock = (t + utc_offset_s) % DAY_S
    mean, swing = (params.max_c + params.min_c) / 2, (params.max_c - params.min_c) / 2
    return mean + swing * math.cos(2 * math.pi * (clock - params.warmest) / DAY_S)


class Fans:
    def __init__(self, params: FansParams) -> None:
        self.params = params
        self.profile: FanProfile = params.initial

    def watts(self, powered: bool) -> float:
        return self.params.profiles[self.profile].watts if powered else 0.0

    def airflow_m3h(self, powered: bool) -> float:
        return self.params.profiles[self.profile].airflow_m3h if powered else 0.0

    def duty_pct(self, powered: bool) -> float:
        """The share of full airflow, as a fan controller reports its duty."""
        full = self.params.profiles["max"].airflow_m3h
        return 100.0 * self.airflow_m3h(powered) / full if full > 0 else 0.0


class Box:
    def __init__(self, params: BoxParams, start_outside_c: float) -> None:
        self.params = params
        self.lid = params.lid
        self.inside_c = params.initial_c if params.initial_c is not None else start_outside_c

    def conductance_w_per_k(self, airflow_m3h: float) -> float:
        p = self.params
        wall = p.wall_w_per_k_closed if self.lid == "closed" else p.wall_w_per_k_open
        return wall + AIR_W_PER_K_PER_M3H * airflow_m3h

    def steady_c(self, heat_w: float, airflow_m3h: float, outside: float) -> float:
        """Where the inside settles for constant heat, airflow and outside temperature."""
        g = self.conductance_w_per_k(airflow_m3h)
        return outside + heat_w / g if g > 0 else math.inf

    def advance(self, dt: float, heat_w: float, airflow_m3h: float, outside: float) -> None:
        g = self.conductance_w_per_k(airflow_m3h)
        c = self.params.thermal_mass_j_per_k
        if g <= 0:
            self.inside_c += heat_w * dt / c
            return
        target = outside + heat_w / g
        self.inside_c = target + (self.inside_c - target) * math.exp(-g * dt / c)
