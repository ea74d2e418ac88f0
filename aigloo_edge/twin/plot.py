"""A simulated day as a PNG: stacked panels sharing the time axis.

State of charge; solar (what the panel could give, what the station took); each machine's wall
power; inside and outside temperature with the limit; the fan profile; rule activations as bars.
`compare` puts two runs of the same scenario side by side (two columns, shared axes).
Needs the `twin` extra (matplotlib); drawn with the Agg backend, no display.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from matplotlib.figure import Figure

from aigloo_edge.display import TemperatureUnit, temperature_value
from aigloo_edge.twin.scenario import FAN_PROFILES
from aigloo_edge.twin.simulate import SimulationResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes

PANELS: Final = ("soc", "solar", "machines", "temperature", "fans", "rules")
HEIGHTS: Final = (1.0, 1.0, 1.4, 1.2, 0.6, 1.2)
DPI: Final = 110
COLUMN_WIDTH_IN: Final = 9.0


def plot(result: SimulationResult, out: Path, unit: TemperatureUnit = "C") -> Path:
    """Draw one run into `out` (PNG), temperatures in `unit`."""
    return _draw([result], out, unit)


def compare(
    first: SimulationResult, second: SimulationResult, out: Path, unit: TemperatureUnit = "C"
) -> Path:
    """Two runs of one scenario side by side (e.g. two rule sets)."""
    return _draw([first, second], out, unit)


def _draw(results: Sequence[SimulationResult], out: Path, unit: TemperatureUnit) -> Path:
    rules = sorted({a.rule for r in results for a in r.activations})
    heights = list(HEIGHTS)
    heights[-1] = max(0.6, 0.25 * len(rules))
    figure = Figure(figsize=(COLUMN_WIDTH_IN * len(results), 2.0 * sum(heights)))
    axes = figure.subplots(
        len(PANELS),
        len(results),
        sharex=True,
        sharey="row",
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )
    for column, result in enumerate(results):
        panels = [axes[row][column] for row in range(len(PANELS))]
        _column(result, panels, rules, unit)
    figure.suptitle(results[0].scenario)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format="png", dpi=DPI)  # Agg: a Figure without pyplot, no display
    return out


def _column(
    result: SimulationResult, panels: list[Axes], rules: list[str], unit: TemperatureUnit
) -> None:
    s, summary = result.series, result.summary
    soc, solar, machines, temperature, fans, bars = panels
    soc.set_title(f"rules: {result.rules}")
    soc.plot(s.t_h, s.soc_pct, color="tab:green")
    soc.set_ylabel("SoC %")
    soc.set_ylim(0, 100)
    solar.plot(s.t_h, s.solar_available_w, color="gold", linestyle="--", label="panel")
    solar.plot(s.t_h, s.solar_w, color="orange", label="taken")
    solar.set_ylabel("solar W")
    solar.legend(loc="upper right", fontsize="small")
    for node, watts in s.machine_w.items():
        machines.plot(s.t_h, watts, label=node)
    machines.set_ylabel("wall W")
    machines.legend(loc="upper right", fontsize="small", ncol=len(s.machine_w))
    inside = [temperature_value(c, unit) for c in s.inside_c]
    outside = [temperature_value(c, unit) for c in s.outside_c]
    temperature.plot(s.t_h, inside, color="tab:red", label="inside")
    temperature.plot(s.t_h, outside, color="tab:blue", label="outside")
    limit = temperature_value(summary.limit_c, unit)
    temperature.axhline(limit, color="grey", linestyle=":", label="limit")
    temperature.set_ylabel(f"°{unit}")
    temperature.legend(loc="upper right", fontsize="small")
    levels = [FAN_PROFILES.index(p) for p in s.fan_profile]
    fans.step(s.t_h, levels, where="post", color="tab:purple")
    fans.set_yticks(range(len(FAN_PROFILES)), list(FAN_PROFILES))
    fans.set_ylabel("fans")
    _rule_bars(result, bars, rules)
    bars.set_xlabel("hours from the start")


def _rule_bars(result: SimulationResult, axes: Axes, rules: list[str]) -> None:
    end = result.summary.hours
    for row, rule in enumerate(rules):
        spans = [
            (a.start_h, (a.end_h if a.end_h is not None else end) - a.start_h)
            for a in result.activations
            if a.rule == rule
        ]
        axes.broken_barh(spans, (row - 0.4, 0.8), color="tab:cyan")
    axes.set_yticks(range(len(rules)), rules, fontsize="small")
    axes.set_ylim(-0.6, max(len(rules), 1) - 0.4)
    axes.set_xlim(0, end)
    if not rules:
        axes.text(0.5, 0.5, "no rule fired", transform=axes.transAxes, ha="center")
