"""Composing NodeTelemetry from the sources, and deciding when a change is worth publishing."""

from __future__ import annotations

from typing import Any

from aigloo_edge.config import Deadbands
from aigloo_edge.node.collectors.sample import AppleSample
from aigloo_edge.payloads import NodeBattery, NodePower, NodeTelemetry


def compose(node: str, base: dict[str, Any], apple: AppleSample | None) -> NodeTelemetry:
    """One telemetry payload: psutil's fields plus the Apple-silicon sample, if any."""
    fields = dict(base)
    if apple is not None:
        fields["power"] = NodePower(
            cpu_w=apple.cpu_w,
            gpu_w=apple.gpu_w,
            ane_w=apple.ane_w,
            package_w=apple.package_w,
            system_w=apple.system_w,
        )
        fields["gpu_pct"] = apple.gpu_pct
        fields["thermal_pressure"] = apple.thermal_pressure
        fields["temperatures_c"] = {**fields.get("temperatures_c", {}), **apple.temperatures_c}
    return NodeTelemetry.model_validate({"node": node, **fields}, strict=False)


def merge_samples(samples: list[AppleSample | None]) -> AppleSample | None:
    """Fields from earlier sources win; temperatures are pooled (powermetrics then macmon)."""
    present = [s for s in samples if s is not None]
    if not present:
        return None

    def first(name: str) -> Any:
        return next((getattr(s, name) for s in present if getattr(s, name) is not None), None)

    temperatures: dict[str, float] = {}
    for sample in reversed(present):
        temperatures.update(sample.temperatures_c)
    return AppleSample(
        cpu_w=first("cpu_w"),
        gpu_w=first("gpu_w"),
        ane_w=first("ane_w"),
        package_w=first("package_w"),
        system_w=first("system_w"),
        gpu_pct=first("gpu_pct"),
        thermal_pressure=first("thermal_pressure"),
        temperatures_c=temperatures,
    )


def moved_fields(old: NodeTelemetry, new: NodeTelemetry, deadbands: Deadbands) -> list[str]:
    """Names of the readings that moved at least their deadband (or appeared/vanished)."""
    moved = [
        name
        for name, width in _scalars(deadbands)
        if _moved(getattr(old, name), getattr(new, name), width)
    ]
    moved += _moved_maps(
        "temperatures_c", old.temperatures_c, new.temperatures_c, deadbands.temperature_c
    )
    moved += _moved_maps("disks", _disk_pcts(old), _disk_pcts(new), deadbands.disk_pct)
    moved += _moved_maps("power", _watts(old), _watts(new), deadbands.power_w)
    if _battery_moved(old.battery, new.battery, deadbands.battery_pct):
        moved.append("battery")
    for name in ("thermal_pressure", "infer_queue"):  # any change matters to the dispatcher
        if getattr(old, name) != getattr(new, name):
            moved.append(name)
    return moved


def _scalars(deadbands: Deadbands) -> list[tuple[str, float]]:
    return [
        ("cpu_pct", deadbands.cpu_pct),
        ("memory_pct", deadbands.memory_pct),
        ("gpu_pct", deadbands.cpu_pct),
    ]


def _moved(old: float | None, new: float | None, width: float) -> bool:
    if old is None or new is None:
        return (old is None) != (new is None)
    return abs(new - old) >= width


def _moved_maps(
    label: str, old: dict[str, float], new: dict[str, float], width: float
) -> list[str]:
    keys = old.keys() | new.keys()
    return [label] if any(_moved(old.get(k), new.get(k), width) for k in keys) else []


def _disk_pcts(telemetry: NodeTelemetry) -> dict[str, float]:
    return {disk.mount: disk.used_pct for disk in telemetry.disks}


def _watts(telemetry: NodeTelemetry) -> dict[str, float]:
    if telemetry.power is None:
        return {}
    return {k: v for k, v in telemetry.power.model_dump().items() if v is not None}


def _battery_moved(old: NodeBattery | None, new: NodeBattery | None, width: float) -> bool:
    if old is None or new is None:
        return (old is None) != (new is None)
    return old.plugged != new.plugged or _moved(old.soc_pct, new.soc_pct, width)
