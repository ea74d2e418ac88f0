"""`aigloo simulate`: load, run (with progress), summarise as a table, plot.

Kept out of `cli.py` so the command stays one function and these imports stay lazy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from rich.progress import Progress as Bar
from rich.table import Table

from aigloo_edge import display
from aigloo_edge.display import TemperatureUnit
from aigloo_edge.rules.catalog import DEFAULT_NODES, DEFAULT_PROBES
from aigloo_edge.rules.loader import RuleSet, load_rules
from aigloo_edge.twin.scenario import Scenario
from aigloo_edge.twin.simulate import Progress, SimulationResult, simulate

if TYPE_CHECKING:
    from rich.console import Console

NO_RULES: Final = "none"  # `--compare none rules`: the baseline beside a rule set
PROGRESS_FROM_STEPS: Final = 20_000  # shorter runs finish before a bar is worth drawing


def rules_for(
    source: Path | None, scenario: Scenario, probes: Sequence[str] = DEFAULT_PROBES
) -> RuleSet | None:
    """The rule set in `source` (None or `none`: no rules), for the scenario's machines."""
    if source is None or str(source) == NO_RULES:
        return None
    nodes = tuple(dict.fromkeys([*DEFAULT_NODES, *scenario.machines]))
    return load_rules(source, nodes, probes)


def run_all(
    scenario: Scenario,
    rule_sources: Sequence[Path | None],
    *,
    hours: float | None,
    step_s: float,
    limit_c: float,
    console: Console | None,
) -> list[SimulationResult]:
    """One run per rule source, with a progress bar on `console` for long runs."""
    rulesets = [rules_for(source, scenario) for source in rule_sources]
    total_h = scenario.duration / 3600.0 if hours is None else hours
    results = []
    for source, ruleset in zip(rule_sources, rulesets, strict=True):
        label = NO_RULES if ruleset is None else str(source)
        with _progress(console, total_h * 3600.0 / step_s, label) as report:
            result = simulate(
                scenario,
                ruleset,
                hours,
                step_s,
                limit_c=limit_c,
                rules_label=label,
                progress=report,
            )
        results.append(result)
    return results


@contextlib.contextmanager
def _progress(console: Console | None, steps: float, label: str) -> Iterator[Progress | None]:
    """A transient progress bar for a long run (None: no bar)."""
    if console is None or steps < PROGRESS_FROM_STEPS:
        yield None
        return
    with Bar(console=console, transient=True) as bar:
        task = bar.add_task(f"simulating (rules: {label})", total=1.0)

        def update(done: float) -> None:
            bar.update(task, completed=done)

        yield update


def _hours(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} h"


def summary_rows(result: SimulationResult, unit: TemperatureUnit = "C") -> list[tuple[str, str]]:
    """The summary as (figure, value) rows, in the order the table shows them."""
    s = result.summary
    limit = display.temperature_value(s.limit_c, unit)
    rows = [
        ("time to empty", _hours(s.time_to_empty_h)),
        ("battery out / in (Wh)", f"{s.battery_out_wh:,.0f} / {s.battery_in_wh:,.0f}"),
        ("solar harvested (Wh)", f"{s.harvested_wh:,.0f}"),
        ("used at the outlets (Wh)", f"{s.used_wh:,.0f}"),
        ("SoC min / end (%)", f"{s.min_soc_pct:.1f} / {s.final_soc_pct:.1f}"),
    ]
    rows += [(f"{node} available (h)", f"{h:.2f}") for node, h in s.available_h.items()]
    rows += [
        (f"peak inside (°{unit})", f"{display.temperature_value(s.peak_inside_c, unit):.1f}"),
        (f"minutes above {limit:.0f} °{unit}", f"{s.minutes_above_limit:.0f}"),
    ]
    rows += [
        (f"{node} hottest core (°{unit})", f"{display.temperature_value(c, unit):.0f}")
        for node, c in s.peak_core_c.items()
    ]
    rows += [
        ("Studio power toggles", str(s.studio_toggles)),
        ("rule activations", str(len(result.activations))),
        ("commands", str(s.commands)),
        (
            "simulated in",
            f"{result.wall_time_s:.2f} s ({s.hours * 3600 / max(result.wall_time_s, 1e-9):,.0f}x)",
        ),
    ]
    return rows


def summary_table(results: Sequence[SimulationResult], unit: TemperatureUnit = "C") -> Table:
    """One column per run (rule set), one row per figure."""
    first = results[0]
    table = Table(
        title=f"{first.scenario}: {first.summary.hours:g} h in steps of {first.step_s:g} s"
    )
    table.add_column("")
    for result in results:
        table.add_column(f"rules: {result.rules}", justify="right")
    columns = [summary_rows(result, unit) for result in results]
    for index, (name, _) in enumerate(columns[0]):
        table.add_row(name, *(rows[index][1] for rows in columns))
    return table


def write_plot(results: Sequence[SimulationResult], out: Path, unit: TemperatureUnit = "C") -> Path:
    from aigloo_edge.twin.plot import compare, plot  # noqa: PLC0415 - matplotlib only when asked

    if len(results) == 2:
        return compare(results[0], results[1], out, unit)
    return plot(results[0], out, unit)
