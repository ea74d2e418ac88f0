"""The twin's view as the rules engine's readings: the signal names the live bridge and the
agents produce (see `aigloo_edge.rules.catalog` and `aigloo_edge.rules.readings`).

A machine that is asleep or off has no agent online: its telemetry signals read as stale
(None), as `Readings` makes them when an agent's availability goes `offline`.
"""

from __future__ import annotations

import functools
from typing import Final

from aigloo_edge.payloads import ThermalPressure
from aigloo_edge.rules.catalog import node_signals
from aigloo_edge.rules.units import Value, celsius_to_fahrenheit
from aigloo_edge.twin.interface import MachineView, TwinView

Reading = tuple[str, Value | None]
INSIDE_PROBE: Final = "internal"  # the ThermoPro inside the box
OUTSIDE_PROBE: Final = "ambient"
# macOS thermal pressure from the hottest core: an assumption (Apple publishes no thresholds);
# Apple silicon throttles from about 95-105 °C.
PRESSURE_FROM_C: Final[tuple[tuple[float, ThermalPressure], ...]] = (
    (105.0, "trapping"),
    (95.0, "heavy"),
    (85.0, "moderate"),
)


def thermal_pressure(core_c: float) -> ThermalPressure:
    for threshold, pressure in PRESSURE_FROM_C:
        if core_c >= threshold:
            return pressure
    return "nominal"


def view_to_readings(view: TwinView) -> list[Reading]:
    """Every signal the twin's station, probes, fans and agents would give the engine now."""
    readings: list[Reading] = [
        ("power.battery.soc_pct", view.soc_pct),
        ("power.battery.watts_in", view.watts_in),
        ("power.battery.watts_out", view.watts_out),
        ("power.battery.capacity_wh", view.capacity_wh),
        ("power.battery.outputs.ac", view.ac_on),
        ("power.battery.outputs.dc", view.dc_on),
        ("power.solar.watts", view.solar_w),
        (f"env.{INSIDE_PROBE}.temperature_c", view.inside_c),
        (f"env.{INSIDE_PROBE}.temperature_f", celsius_to_fahrenheit(view.inside_c)),
        (f"env.{OUTSIDE_PROBE}.temperature_c", view.outside_c),
        (f"env.{OUTSIDE_PROBE}.temperature_f", celsius_to_fahrenheit(view.outside_c)),
        ("fans.profile", view.fan_profile),
        ("fans.duty_pct", view.fan_duty_pct),
    ]
    if view.remaining_min is not None:
        readings.append(("power.battery.remaining_min", view.remaining_min))
    for machine in view.machines.values():
        readings += machine_readings(machine)
    return readings


@functools.cache
def _telemetry_names(node: str) -> tuple[str, ...]:
    """The node's signals that go stale when its agent is offline."""
    return tuple(spec.name for spec in node_signals(node) if spec.stale_after is not None)


def machine_readings(machine: MachineView) -> list[Reading]:
    base = f"nodes.{machine.node}"
    online = machine.power == "awake"
    readings: list[Reading] = [(f"{base}.online", online), (f"{base}.power", machine.power)]
    if not online:
        return readings + [(name, None) for name in _telemetry_names(machine.node)]
    readings += [
        (f"{base}.cpu_pct", machine.cpu_pct),
        (f"{base}.power_w", machine.wall_w),
        (f"{base}.temperature_c", machine.core_c),
        (f"{base}.temperature_f", celsius_to_fahrenheit(machine.core_c)),
        (f"{base}.thermal_pressure", thermal_pressure(machine.core_c)),
    ]
    if machine.battery_pct is not None:
        readings.append((f"{base}.battery_pct", machine.battery_pct))
    if machine.plugged is not None:
        readings.append((f"{base}.plugged", machine.plugged))
    return readings


__all__ = ["Reading", "machine_readings", "thermal_pressure", "view_to_readings"]
