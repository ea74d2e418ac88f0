"""What the Apple-silicon sources (powermetrics, macmon) report, in SI units."""

from __future__ import annotations

from dataclasses import dataclass, field

from aigloo_edge.payloads import ThermalPressure


@dataclass(frozen=True, slots=True)
class AppleSample:
    """One reading of power rails (W), GPU busy %, thermal pressure and temperatures (°C).

    Every field is optional: each source reports a different subset.
    """

    cpu_w: float | None = None
    gpu_w: float | None = None
    ane_w: float | None = None
    package_w: float | None = None
    system_w: float | None = None
    gpu_pct: float | None = None
    thermal_pressure: ThermalPressure | None = None
    temperatures_c: dict[str, float] = field(default_factory=dict)
