"""Run the twin with the real rules engine's pure core, faster than real time.

Every `sensor_every_s` simulated seconds the twin's view becomes the engine's readings (the
signal names the live bridge and agents produce: `view_to_readings`); the engine also ticks at
the deadlines it asks for. Its commands go back into the twin: `node_power` sleeps or wakes a
Mac, `fans` sets the profile, `output` switches the station's AC or 12 V outlet,
`infer_allowed` / `infer_wake` are the dispatcher's policy for that node.

The dispatcher is modelled as the scenario's load plan: a node runs inference while the plan
asks for it and the node is *available*: awake, allowed by the rules, and (for every node but
the dispatcher itself) with the dispatcher's machine (`dispatcher`, the Mini) awake to route
work to it. A node the plan wants, allowed and allowed to be woken, that sleeps is woken by the
dispatcher (Wake-on-LAN). The engine runs on `rules_node` (the Mini): while that machine is
asleep or off, nothing is observed or decided.

`ruleset=None` runs the twin with no rules at all (the baseline).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from aigloo_edge.rules.engine import Decisions, RulesEngine
from aigloo_edge.rules.loader import RuleSet
from aigloo_edge.twin.interface import MachinePower
from aigloo_edge.twin.model import Twin
from aigloo_edge.twin.readings import view_to_readings
from aigloo_edge.twin.scenario import Scenario

HOUR_S: Final = 3600.0
DEFAULT_LIMIT_C: Final = 35.0
RELEASES: Final = frozenset({"released", "tripped", "disabled"})

Progress = Callable[[float], None]


@dataclass
class Series:
    """Samples every `sample_every_s` (hours since the start on `t_h`)."""

    t_h: list[float] = field(default_factory=list)
    soc_pct: list[float] = field(default_factory=list)
    solar_w: list[float] = field(default_factory=list)  # taken by the station
    solar_available_w: list[float] = field(default_factory=list)  # the panel could give
    watts_out: list[float] = field(default_factory=list)
    inside_c: list[float] = field(default_factory=list)
    outside_c: list[float] = field(default_factory=list)
    fan_profile: list[str] = field(default_factory=list)
    machine_w: dict[str, list[float]] = field(default_factory=dict)
    core_c: dict[str, list[float]] = field(default_factory=dict)
    available: dict[str, list[bool]] = field(default_factory=dict)
    active_rules: list[tuple[str, ...]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Activation:
    """A rule active from `start_h` to `end_h` (hours since the start; None: still at the end)."""

    rule: str
    start_h: float
    end_h: float | None


@dataclass(frozen=True)
class Summary:
    hours: float
    time_to_empty_h: float | None  # None: never ran flat
    battery_out_wh: float  # out of the cells
    battery_in_wh: float  # into the cells
    harvested_wh: float  # taken from the panel
    used_wh: float  # at the station's outlets
    wall_wh: dict[str, float]  # per machine, from the station
    available_h: dict[str, float]  # awake, allowed, reachable through the dispatcher
    serving_until_h: dict[str, float | None]  # the end of the last available stretch
    peak_inside_c: float
    limit_c: float
    minutes_above_limit: float
    peak_core_c: dict[str, float]
    power_toggles: dict[str, int]  # awake <-> sleeping per machine (not losing power)
    min_soc_pct: float
    final_soc_pct: float
    commands: int

    @property
    def studio_toggles(self) -> int:
        return self.power_toggles.get("studio", 0)


@dataclass
class SimulationResult:
    scenario: str
    rules: str  # "none", or what the rule set was loaded from
    start: float  # Unix seconds
    step_s: float
    series: Series
    activations: list[Activation]
    summary: Summary
    wall_time_s: float


@dataclass
class _Tally:
    """What the run accumulates step by step."""

    nodes: tuple[str, ...]
    available_s: dict[str, float] = field(default_factory=dict)
    serving_until_s: dict[str, float | None] = field(default_factory=dict)
    peak_inside_c: float = -math.inf
    above_s: float = 0.0
    peak_core_c: dict[str, float] = field(default_factory=dict)
    toggles: dict[str, int] = field(default_factory=dict)
    last_power: dict[str, MachinePower] = field(default_factory=dict)
    last_on: dict[str, bool] = field(default_factory=dict)
    min_soc: float = math.inf
    commands: int = 0

    def __post_init__(self) -> None:
        for node in self.nodes:
            self.available_s[node] = 0.0
            self.serving_until_s[node] = None
            self.peak_core_c[node] = -math.inf
            self.toggles[node] = 0


class _Run:
    def __init__(
        self,
        scenario: Scenario,
        ruleset: RuleSet | None,
        *,
        dispatcher: str | None,
        rules_node: str | None,
        limit_c: float,
    ) -> None:
        self.twin = Twin(scenario, follow_schedule=False)
        self.t0 = self.twin.t
        self.nodes = tuple(self.twin.machines)
        self.dispatcher = dispatcher if dispatcher in self.twin.machines else None
        self.rules_node = rules_node if rules_node in self.twin.machines else None
        self.limit_c = limit_c
        self.engine = None if ruleset is None else RulesEngine(ruleset, now=self.t0)
        self.allowed = dict.fromkeys(self.nodes, True)
        self.wake = dict.fromkeys(self.nodes, True)
        self.open: dict[str, float] = {}
        self.activations: list[Activation] = []
        self.tally = _Tally(self.nodes)
        self.deadline: float | None = None
        for node, machine in self.twin.machines.items():
            self.tally.last_power[node] = machine.power
            self.tally.last_on[node] = machine.on

    # --- the engine -------------------------------------------------------------------------

    def engine_up(self) -> bool:
        if self.engine is None:
            return False
        return self.rules_node is None or self.twin.machines[self.rules_node].awake

    def observe(self, now: float) -> None:
        assert self.engine is not None
        self.apply(self.engine.observe(view_to_readings(self.twin.view()), now), now)
        self.deadline = self.engine.next_deadline()

    def tick_if_due(self, now: float) -> None:
        assert self.engine is not None
        if self.deadline is not None and now >= self.deadline:
            self.apply(self.engine.tick(now), now)
            self.deadline = self.engine.next_deadline()

    def apply(self, decisions: Decisions, now: float) -> None:
        twin = self.twin
        for command in decisions.commands:
            kind, target, value = command.actuator.kind, command.actuator.target, command.value
            self.tally.commands += 1
            if kind == "fans" and isinstance(value, str):
                twin.set_fans(value)  # type: ignore[arg-type]  # the loader checked the choices
            elif kind == "output" and target in ("ac", "dc"):
                twin.set_output(target, bool(value))  # type: ignore[arg-type]  # checked above
            elif target not in twin.machines:
                continue  # a node this scenario does not have
            elif kind == "node_power":
                twin.set_power(target, "awake" if value == "awake" else "sleeping")
            elif kind == "infer_allowed":
                self.allowed[target] = bool(value)
            elif kind == "infer_wake":
                self.wake[target] = bool(value)
        for event in decisions.events:
            if event.rule is None:
                continue
            if event.kind == "fired":
                self.open[event.rule] = now
            elif event.kind in RELEASES and event.rule in self.open:
                start = self.open.pop(event.rule)
                self.activations.append(
                    Activation(event.rule, (start - self.t0) / HOUR_S, (now - self.t0) / HOUR_S)
                )

    # --- the dispatcher ---------------------------------------------------------------------

    def available(self, node: str) -> bool:
        machines = self.twin.machines
        if not machines[node].awake or not self.allowed[node]:
            return False
        return self.dispatcher is None or node == self.dispatcher or machines[self.dispatcher].awake

    def dispatch(self, now: float) -> None:
        twin = self.twin
        router_up = self.dispatcher is None or twin.machines[self.dispatcher].awake
        for node, machine in twin.machines.items():
            wanted = twin.scheduled_load(node, now) == "inference"
            asleep = machine.on and machine.commanded == "sleeping"
            if wanted and asleep and router_up and self.allowed[node] and self.wake[node]:
                twin.set_power(node, "awake")  # Wake-on-LAN from the dispatcher
            twin.set_load(node, "inference" if wanted and self.available(node) else "idle")

    # --- bookkeeping ------------------------------------------------------------------------

    def account(self, now: float, dt: float) -> None:
        tally, twin = self.tally, self.twin
        for node in self.nodes:
            if self.available(node):
                tally.available_s[node] += dt
                tally.serving_until_s[node] = now + dt - self.t0
        twin.step(dt)
        inside = twin.box.inside_c
        tally.peak_inside_c = max(tally.peak_inside_c, inside)
        if inside > self.limit_c:
            tally.above_s += dt
        tally.min_soc = min(tally.min_soc, twin.station.soc_pct)
        for node, machine in twin.machines.items():
            tally.peak_core_c[node] = max(tally.peak_core_c[node], machine.core_c)
            if machine.power != tally.last_power[node]:
                if machine.on and tally.last_on[node]:  # asked for, not a loss of power
                    tally.toggles[node] += 1
                tally.last_power[node] = machine.power
            tally.last_on[node] = machine.on

    def sample(self, series: Series) -> None:
        twin = self.twin
        series.t_h.append((twin.t - self.t0) / HOUR_S)
        series.soc_pct.append(twin.station.soc_pct)
        series.solar_w.append(twin.station.flows.solar_w)
        series.solar_available_w.append(twin.solar_available_w)
        series.watts_out.append(twin.station.flows.out_w)
        series.inside_c.append(twin.box.inside_c)
        series.outside_c.append(twin.outside_c())
        series.fan_profile.append(twin.fans.profile if twin.station.dc_on else "off")
        for node, machine in twin.machines.items():
            series.machine_w.setdefault(node, []).append(machine.wall_w)
            series.core_c.setdefault(node, []).append(machine.core_c)
            series.available.setdefault(node, []).append(self.available(node))
        series.active_rules.append(tuple(sorted(self.open)))

    def summary(self, hours: float) -> Summary:
        tally, twin, station = self.tally, self.twin, self.twin.station
        emptied = station.emptied_at
        meter = twin.meter
        return Summary(
            hours=hours,
            time_to_empty_h=None if emptied is None else (emptied - self.t0) / HOUR_S,
            battery_out_wh=station.drawn_wh,
            battery_in_wh=station.stored_wh,
            harvested_wh=station.solar_wh,
            used_wh=meter.ac_wh + meter.dc_wh + meter.usb_wh,
            wall_wh=dict(meter.wall_wh),
            available_h={n: s / HOUR_S for n, s in tally.available_s.items()},
            serving_until_h={
                n: None if s is None else s / HOUR_S for n, s in tally.serving_until_s.items()
            },
            peak_inside_c=tally.peak_inside_c,
            limit_c=self.limit_c,
            minutes_above_limit=tally.above_s / 60.0,
            peak_core_c=dict(tally.peak_core_c),
            power_toggles=dict(tally.toggles),
            min_soc_pct=tally.min_soc,
            final_soc_pct=station.soc_pct,
            commands=tally.commands,
        )

    def close_activations(self) -> None:
        for rule, start in sorted(self.open.items(), key=lambda item: item[1]):
            self.activations.append(Activation(rule, (start - self.t0) / HOUR_S, None))
        self.activations.sort(key=lambda a: (a.start_h, a.rule))


def simulate(
    scenario: Scenario,
    ruleset: RuleSet | None,
    hours: float | None = None,
    step_s: float = 1.0,
    *,
    limit_c: float = DEFAULT_LIMIT_C,
    sensor_every_s: float = 5.0,
    sample_every_s: float = 60.0,
    dispatcher: str | None = "mini",
    rules_node: str | None = "mini",
    rules_label: str | None = None,
    progress: Progress | None = None,
) -> SimulationResult:
    """Run `scenario` for `hours` (None: its duration) in steps of `step_s` simulated seconds."""
    if step_s <= 0:
        raise ValueError("step_s must be more than 0")
    hours = scenario.duration / HOUR_S if hours is None else hours
    if hours <= 0:
        raise ValueError("hours must be more than 0")
    began = time.perf_counter()
    run = _Run(scenario, ruleset, dispatcher=dispatcher, rules_node=rules_node, limit_c=limit_c)
    series = Series()
    total_s = hours * HOUR_S
    steps = math.ceil(total_s / step_s - 1e-9)
    next_sensor = next_sample = 0.0
    report_every = max(1, steps // 100)
    for index in range(steps):
        elapsed = index * step_s
        now = run.t0 + elapsed
        if run.engine_up():
            if elapsed >= next_sensor:
                run.observe(now)
                next_sensor = elapsed + sensor_every_s
            run.tick_if_due(now)
        run.dispatch(now)
        if elapsed >= next_sample:
            run.sample(series)
            next_sample = elapsed + sample_every_s
        run.account(now, min(step_s, total_s - elapsed))
        if progress is not None and index % report_every == 0:
            progress(index / steps)
    run.sample(series)
    run.close_activations()
    if progress is not None:
        progress(1.0)
    label = rules_label or ("none" if ruleset is None else _files_label(ruleset))
    return SimulationResult(
        scenario=scenario.name,
        rules=label,
        start=run.t0,
        step_s=step_s,
        series=series,
        activations=run.activations,
        summary=run.summary(hours),
        wall_time_s=time.perf_counter() - began,
    )


def _files_label(ruleset: RuleSet) -> str:
    folders = sorted({str(path.parent) for path in ruleset.files})
    return ", ".join(folders) if folders else f"{len(ruleset.rules)} rules"
