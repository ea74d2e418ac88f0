"""Digital twin benchmark: what the shipped rules buy on the battery, and how fast a day runs.

(1) Rules on the battery: `scenarios/battery-only-full-load.yaml` (the whole rig at its working
load on the station alone, calibrated to the seed's ~3 h) simulated at 1 s steps twice in one
run: with no rules (the baseline) and with the shipped rules (`rules/`), the real `RulesEngine`
pure core reading the twin every 5 simulated seconds. A node *serves* while it is awake, the
rules allow it inference, and the dispatcher's machine (the Mini) is awake to route work to it;
the Mini serves while it is awake. Goal: the Mini and the MacBook Pro serve >= 2x as long with
the rules as without; the Studio available whenever the battery and sun allow it (the power
rules leave it on unless the battery is below 60 % with no sun, under 20 W,
`studio-sleeps-without-sun`, or below 30 % with under 150 W, `studio-sleeps-on-low-battery`);
never above the temperature limit (35 °C inside).

(2) What that policy costs on the other shipped days (sunny, cloudy, a hot afternoon with the
lid closed): each simulated at 1 s steps with no rules and with the shipped rules; the hours each
inference node serves, the lowest SoC and the minutes above the limit.

(3) Speed: `scenarios/sunny-day.yaml`, 24 simulated hours at 1 s steps (86,400 steps), with the
shipped rules, against two baselines in the same run: the same `simulate` with no rules, and the
twin alone (`Twin.step` in a loop, no engine, no bookkeeping). Median of REPEATS runs of each,
alternating. Goal: <= 10 s for the day with the rules.

    .venv/bin/python benchmarks/simulate.py [--quick] [--write-docs]

`--quick` runs the day as 6 h and once. `--write-docs` replaces the "## Digital twin
(benchmarks/simulate.py)" section of docs/benchmarks.md.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from common import DocsSection, mark, parse_args, start_run, verdict

from aigloo_edge.rules.loader import RuleSet, load_rules
from aigloo_edge.twin.model import Twin
from aigloo_edge.twin.scenario import Scenario, load_scenario
from aigloo_edge.twin.simulate import SimulationResult, simulate

log = logging.getLogger("benchmarks.simulate")

ROOT: Final = Path(__file__).resolve().parents[1]
BATTERY: Final = ROOT / "scenarios" / "battery-only-full-load.yaml"
DAY: Final = ROOT / "scenarios" / "sunny-day.yaml"
RULES: Final = ROOT / "rules"
STEP_S: Final = 1.0
REPEATS: Final = 3
GOAL_RATIO: Final = 2.0
GOAL_DAY_S: Final = 10.0
LIMIT_C: Final = 35.0
# (SoC below, sun below) at which the power rules sleep the Studio:
# studio-sleeps-without-sun, studio-sleeps-on-low-battery.
STUDIO_SLEEPS: Final = ((60.0, 20.0), (30.0, 150.0))
OTHER_DAYS: Final = ("sunny-day", "cloudy-day", "hot-afternoon-lid-closed")
SERVING: Final = ("mini", "mbp")


@dataclass(frozen=True)
class Speed:
    name: str
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def twin_alone(scenario: Scenario, hours: float) -> float:
    """Seconds to step the bare twin through `hours` at STEP_S."""
    twin = Twin(scenario)
    began = time.perf_counter()
    for _ in range(round(hours * 3600 / STEP_S)):
        twin.step(STEP_S)
    return time.perf_counter() - began


def measure_speed(scenario: Scenario, rules: RuleSet, hours: float, repeats: int) -> list[Speed]:
    ruled, bare = Speed("simulate, shipped rules", []), Speed("simulate, no rules", [])
    alone = Speed("twin alone (Twin.step loop)", [])
    for repeat in range(repeats):
        log.info("speed, run %d of %d", repeat + 1, repeats)
        ruled.seconds.append(simulate(scenario, rules, hours, STEP_S).wall_time_s)
        bare.seconds.append(simulate(scenario, None, hours, STEP_S).wall_time_s)
        alone.seconds.append(twin_alone(scenario, hours))
    return [ruled, bare, alone]


def studio_allowed_h(result: SimulationResult) -> float:
    """Hours the power rules' thresholds leave the Studio on (ignoring their hysteresis)."""
    s = result.series
    hours = 0.0
    for index in range(1, len(s.t_h)):
        soc, solar = s.soc_pct[index - 1], s.solar_w[index - 1]
        if not any(soc < pct and solar < watts for pct, watts in STUDIO_SLEEPS):
            hours += s.t_h[index] - s.t_h[index - 1]
    return hours


@dataclass(frozen=True)
class OtherDay:
    name: str
    baseline: SimulationResult
    ruled: SimulationResult


def other_days(rules: RuleSet) -> list[OtherDay]:
    days = []
    for name in OTHER_DAYS:
        log.info("%s, no rules and shipped rules", name)
        scenario = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
        baseline = simulate(scenario, None, step_s=STEP_S, limit_c=LIMIT_C)
        ruled = simulate(scenario, rules, step_s=STEP_S, limit_c=LIMIT_C)
        days.append(OtherDay(name, baseline, ruled))
    return days


def other_days_report(days: list[OtherDay]) -> list[str]:
    lines = [
        f"(2) The same rules on the other shipped days, {STEP_S:g} s steps; each cell is "
        "no rules -> shipped rules:",
        "",
        "| day | hours | studio serving (h) | mbp serving (h) | mini serving (h) "
        "| lowest SoC (%) | minutes above 35 °C |",
        "|-----|------:|------|------|------|------|------|",
    ]
    for day in days:
        b, r = day.baseline.summary, day.ruled.summary
        cells = [f"{b.available_h[n]:.2f} -> {r.available_h[n]:.2f}" for n in ("studio", "mbp")]
        cells.append(f"{b.available_h['mini']:.2f} -> {r.available_h['mini']:.2f}")
        cells.append(f"{b.min_soc_pct:.1f} -> {r.min_soc_pct:.1f}")
        cells.append(f"{b.minutes_above_limit:.0f} -> {r.minutes_above_limit:.0f}")
        lines.append(f"| {day.name} | {r.hours:g} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def report(
    baseline: SimulationResult,
    ruled: SimulationResult,
    days: list[OtherDay],
    speeds: list[Speed],
    day_h: float,
) -> str:
    b, r = baseline.summary, ruled.summary
    lines = [
        f"(1) `{BATTERY.relative_to(ROOT)}`, {r.hours:g} h at {STEP_S:g} s steps, "
        f"readings every 5 s; serving = awake, allowed, and the Mini up to route work:",
        "",
        "| figure | no rules | shipped rules | ratio | goal | met |",
        "|--------|---------:|--------------:|------:|-----:|:---:|",
    ]
    for node in SERVING:
        ratio = r.available_h[node] / b.available_h[node]
        lines.append(
            f"| {node} serving (h) | {b.available_h[node]:.2f} | {r.available_h[node]:.2f} "
            f"| {ratio:.2f} | >= {GOAL_RATIO:g} | {mark(ratio >= GOAL_RATIO)} |"
        )
    allowed = studio_allowed_h(ruled)
    studio_ok = r.available_h["studio"] >= 0.95 * allowed
    empty_b = "never" if b.time_to_empty_h is None else f"{b.time_to_empty_h:.2f}"
    empty_r = "never" if r.time_to_empty_h is None else f"{r.time_to_empty_h:.2f}"
    lines += [
        f"| studio available (h) | {b.available_h['studio']:.2f} | {r.available_h['studio']:.2f} "
        f"| - | the {allowed:.2f} h the battery allowed (SoC >= 60 %, or >= 30 % with 20 W "
        "of sun, or 150 W of sun) "
        f"| {mark(studio_ok)} |",
        f"| peak inside (°C) | {b.peak_inside_c:.1f} | {r.peak_inside_c:.1f} | - "
        f"| < {LIMIT_C:g} | {mark(r.peak_inside_c < LIMIT_C)} |",
        f"| minutes above {LIMIT_C:g} °C | {b.minutes_above_limit:.0f} "
        f"| {r.minutes_above_limit:.0f} | - | 0 | {mark(r.minutes_above_limit == 0)} |",
        f"| station flat after (h) | {empty_b} | {empty_r} | - | - | - |",
        f"| Studio power toggles | {b.studio_toggles} | {r.studio_toggles} | - | - | - |",
        "",
        "Rules that fired (hours from the start): "
        + "; ".join(f"{a.rule} {a.start_h:.2f}" for a in ruled.activations),
        "",
        *other_days_report(days),
        f"(3) `{DAY.relative_to(ROOT)}`, {day_h:g} simulated hours at {STEP_S:g} s steps "
        f"({round(day_h * 3600 / STEP_S):,} steps), median of {len(speeds[0].seconds)}:",
        "",
        "| run | median (s) | runs (s) | simulated / wall time | against the twin alone |",
        "|-----|-----------:|----------|----------------------:|-----------------------:|",
    ]
    alone = speeds[-1].median
    for speed in speeds:
        runs = ", ".join(f"{s:.2f}" for s in speed.seconds)
        factor = day_h * 3600 / speed.median
        lines.append(
            f"| {speed.name} | {speed.median:.2f} | {runs} | {factor:,.0f}x "
            f"| {speed.median / alone:.2f}x |"
        )
    scale = 24.0 / day_h
    day_s = speeds[0].median * scale
    day_verdict = verdict(day_s <= GOAL_DAY_S)
    scaled = f" (scaled from {day_h:g} h)" if scale != 1 else ""
    lines += [
        "",
        f"- a day with the shipped rules: {day_s:.2f} s{scaled} "
        f"against the goal of <= {GOAL_DAY_S:g} s: {day_verdict}",
    ]
    return "\n".join(lines)


SECTION_INTRO: Final = (
    "The twin (station, sun, Macs, fans, box) with the real rules engine's pure core, faster "
    "than real time. (1) `scenarios/battery-only-full-load.yaml` with no rules and with the "
    "shipped rules: how long the Mini and the MacBook Pro keep serving (awake, allowed, the Mini "
    "up to route work), the Studio's availability against what the battery allows, the "
    "temperature limit. (2) 24 simulated hours of `scenarios/sunny-day.yaml` at 1 s steps with "
    "the shipped rules, against the same run with no rules and the bare `Twin.step` loop. "
    "The script's docstring says exactly what each side does. Goals: >= 2x serving time for "
    "the Mini and the MacBook Pro, never above 35 °C inside; <= 10 s for the day."
)
DOCS: Final = DocsSection(
    script="benchmarks/simulate.py",
    title="Digital twin",
    intro=SECTION_INTRO,
    packages=("pydantic", "astral"),
)


def main() -> None:
    args = parse_args(
        "Digital twin benchmark: the shipped rules on the battery, and simulation speed.",
        "a 6 h day, one repeat",
    )
    start_run(log)
    rules = load_rules(RULES)
    battery = load_scenario(BATTERY)
    log.info("battery only, no rules and shipped rules")
    baseline = simulate(battery, None, step_s=STEP_S, limit_c=LIMIT_C)
    ruled = simulate(battery, rules, step_s=STEP_S, limit_c=LIMIT_C)
    day_h = 6.0 if args.quick else 24.0
    speeds = measure_speed(load_scenario(DAY), rules, day_h, 1 if args.quick else REPEATS)
    days = other_days(rules)
    text = report(baseline, ruled, days, speeds, day_h)
    DOCS.show(text, write_docs=args.write_docs)


if __name__ == "__main__":
    main()
