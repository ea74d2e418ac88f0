"""Rules engine benchmark: the pure core, and the runner on one private Mosquitto.

One run generates 100 rules (seeded, the same every run; `rules.yaml` below the temporary
directory) over the rig's signals: comparisons, chains, `and`/`or`/`not`, text and bool
signals, `avg`/`rate` windows, rules reading other rules (`rules.<id>.active`), `until`,
`for`, cooldowns; they drive the fans, the station's outputs, every node's power and the
dispatcher's policy, each rule at its own priority. About one in five holds in the steady state
every measurement starts from, so some rules are active; no measured reading changes any of them
unless a measurement says so.

(a) Pure core, `RulesEngine` with no I/O, on a simulated clock, untimed refreshes of every
other signal between blocks of calls (so none turns stale), median of REPEATS timed runs:
  * observe: one reading of `env.internal.temperature_c` every 5 s (simulated), which READERS
    rules read, two of them through `avg`/`rate` windows whose history then holds one sample per
    5 s. Rule evaluations/s count the READERS rules each call evaluates.
  * tick: once a simulated second, as the runner ticks: all 100 rules evaluated, plus the
    arbitration and re-assertion every tick does (history rebuilt before each timed run).
  * flip: a reading that fires or releases a rule each call (arbitration, a command, events).
  * floor: the same 100 conditions as plain Python lambdas over a dict of values (and lists of
    samples for avg/rate, kept as the signal store keeps them), evaluated the same way: the
    readers of the one signal, or all 100. Before and after timing every lambda is checked
    against the engine's own evaluation, and every rule against its designed phase.

(b) Through Mosquitto: a fresh broker from the project's config (`init_broker` credentials and
ACL, the project's mosquitto.conf via `prepare()`, free loopback ports). The runner is
`RulesRunner` on a `Session` as role `rules`, as `aigloo rules run` builds it (`app._rules_runs`),
with `watch: false`, `settle: 0`, `reassert: 1h` (a rule keeps a node asleep that the world
reports awake: no re-sends mid-run) and a breaker that does not trip. The breaker is 1000 fires
per 10 ms rather than per 1 s: the engine keeps every fire of the window in the rule's state and
serialises it on each change, so at hundreds of flips a second a 1 s window makes every save
serialise hundreds of timestamps, a cost no real rule (6 fires an hour) has. The runner runs
in a child process of this script (`--child runner`), as the component runs on the Mini beside
no sensor; each baseline runs in a child process too (`--child echo`, `--child counter`: raw
paho-mqtt, MQTT v5, its own network thread, TCP_NODELAY), so each side has a process of its
own and this one only drives (paho clients, `sensors` and `admin`) and times. In one process,
as the tests run it, the publisher's own cost per message lands on the runner's event loop:
with a `Session` publisher beside it, 2,300-2,700 events/s against 3,100-3,350 this way, when
this script was written. Before each measurement, retained readings of every signal the rules
read are published again (role `admin`), so nothing turns stale and the rules keep their
steady state.
  * event -> command latency: a `sensors` client publishes a Climate reading of the probe
    `exhaust`, alternately 45 and 35 degC, which fires and releases the one rule that reads it
    (`fans.profile: max` at the highest priority), so every reading changes `fans.profile`;
    the runner publishes `fans/profile/set`; the `admin` client subscribed to it receives it.
    Time from publish to receipt, LATENCY_N sequential round trips after WARMUP. Baseline: a
    paho echo (role `rules`) that receives the same payload at QoS 1 on `env/bench/echo` (a
    topic of the same depth the runner does not subscribe to) and republishes it to
    `fans/profile/set`, received by the same client. Runner and echo alternate in blocks, so
    drift hits both alike. Goals: p50 <= 1.5x, p99 <= 3x the echo's. Back to back, each
    reading finds the runner still publishing the previous one's events and rule state (each
    publish awaits its PUBACK); a last row, for context, waits 5 ms after each command.
  * sustained events/s: a `sensors` client publishes STREAM_N Climate readings of the probe
    `ambient` (read by several rules, no window on its signals; values alternate by 0.1 degC
    far from every threshold, so no rule changes), QoS 1, at most WINDOW ahead of what the
    child has processed. Processed: the runner's engine observed it (`engine.observe` is
    wrapped to count; the session's received count is checked too). Rate from the first
    publish to the last observe (CLOCK_MONOTONIC in both processes), lost = sent - processed,
    and the receiving process's CPU time per event (/proc). Baseline: a paho subscriber (role
    `rules`) counting the same stream on `env/bench/stream`. Runner and baseline alternate,
    median of REPEATS. Goal: >= 10,000 events/s, nothing lost.

Logging is at WARNING in every process (the runner logs each command at INFO in production).

    .venv/bin/python benchmarks/rules.py [--quick] [--write-docs]

`--write-docs` replaces the "## Rules engine (benchmarks/rules.py)" section of
docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import operator
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import paho.mqtt.client as paho
import yaml
from common import (
    CONNECT_TIMEOUT_S,
    DocsSection,
    Samples,
    mark,
    paho_client,
    paho_subscribe,
    parse_args,
    running_broker,
    start_run,
    stop,
)

from aigloo_edge.broker.setup import credentials_path
from aigloo_edge.mqtt.settings import Credentials, load_credentials
from aigloo_edge.payloads import Battery, Climate, NodePower, NodeTelemetry, PowerState, Solar
from aigloo_edge.rules.arbiter import SafetyLimits
from aigloo_edge.rules.catalog import rule_signal
from aigloo_edge.rules.engine import RulesEngine
from aigloo_edge.rules.loader import RuleSet, load_rule_files
from aigloo_edge.rules.units import Value, celsius_to_fahrenheit
from aigloo_edge.topics import Topics

log = logging.getLogger("benchmarks.rules")

RULES: Final = 100
READERS: Final = 10  # rules that read TARGET
SEED: Final = 20261128
NODES: Final = ("studio", "mbp", "mini", "air")
PROBES: Final = ("internal", "ambient", "exhaust")
TARGET: Final = "env.internal.temperature_c"  # the reading (a) observes
FLIP: Final = "env.exhaust.temperature_c"  # read by the one rule (b)'s latency flips
FLIP_F: Final = "env.exhaust.temperature_f"
FLIP_RULE: Final = "bench-flip"
FLIP_HOT_C: Final = 45.0
FLIP_COLD_C: Final = 35.0
STREAM_PROBE: Final = "ambient"  # (b)'s sustained stream: read by rules, none with a window
BLOCK: Final = 10  # (a): calls between untimed refreshes of the other signals
STEP_S: Final = 5.0  # (a): simulated seconds per call: a reading every 5 s
HISTORY_S: Final = 900.0  # (a): simulated warm-up, longer than every window
WARMUP_EVERY_S: Final = 5.0
WINDOW: Final = 500  # most readings the stream publisher may have sent but not seen processed
PROGRESS_EVERY: Final = 50  # a child reports its count at least this often (and when idle)
PROGRESS_IDLE_S: Final = 0.01
REPLY_TIMEOUT_S: Final = 5.0
IDLE_TIMEOUT_S: Final = 5.0
READY_TIMEOUT_S: Final = 30.0
LATENCY_BLOCKS: Final = 10
GOAL_P50_RATIO: Final = 1.5
GOAL_P99_RATIO: Final = 3.0
GOAL_EVENTS_PER_S: Final = 10_000.0
SAFETY: Final = {
    "settle": 0,
    "breaker_max_fires": 1000,
    "breaker_window": "10ms",  # see the docstring
    "startup_grace": 30,
    "reassert": "1h",
}


@dataclass(frozen=True)
class Config:
    core_calls: int
    repeats: int
    warmup: int
    latency_n: int
    spaced_n: int  # runner round trips with its outbox idle (a gap after each), for context
    stream_n: int


FULL: Final = Config(
    core_calls=10_000, repeats=3, warmup=200, latency_n=2000, spaced_n=500, stream_n=20_000
)
QUICK: Final = Config(
    core_calls=2_000, repeats=1, warmup=20, latency_n=200, spaced_n=50, stream_n=2_000
)


# --- the steady state ------------------------------------------------------------------------

NUMBERS: Final[dict[str, float]] = {
    "env.internal.temperature_c": 24.0,
    "env.internal.humidity_pct": 40.0,
    "env.internal.battery_pct": 90.0,
    "env.internal.rssi_dbm": -60.0,
    "env.ambient.temperature_c": 10.0,
    "env.ambient.humidity_pct": 60.0,
    "env.ambient.battery_pct": 85.0,
    "env.ambient.rssi_dbm": -70.0,
    "env.exhaust.temperature_c": FLIP_COLD_C,
    "env.exhaust.humidity_pct": 30.0,
    "env.exhaust.battery_pct": 80.0,
    "env.exhaust.rssi_dbm": -65.0,
    "power.battery.soc_pct": 70.0,
    "power.battery.watts_in": 100.0,
    "power.battery.watts_out": 150.0,
    "power.battery.remaining_min": 300.0,
    "power.battery.capacity_wh": 768.0,
    "power.solar.watts": 120.0,
}
NODE_NUMBERS: Final[dict[str, tuple[float, float, float, float, float]]] = {
    # cpu_pct, gpu_pct, memory_pct, power_w, temperature_c
    "studio": (30.0, 20.0, 50.0, 60.0, 55.0),
    "mbp": (20.0, 10.0, 60.0, 25.0, 50.0),
    "mini": (15.0, 5.0, 40.0, 12.0, 45.0),
    "air": (10.0, 5.0, 45.0, 8.0, 40.0),
}
NODE_FIELDS: Final = ("cpu_pct", "gpu_pct", "memory_pct", "power_w", "temperature_c")


def steady_state() -> dict[str, Value]:
    """Every signal the rules read, at the value the world holds it (°F derived as the runner
    derives it)."""
    values: dict[str, Value] = dict(NUMBERS)
    for probe in PROBES:
        values[f"env.{probe}.temperature_f"] = celsius_to_fahrenheit(
            float(NUMBERS[f"env.{probe}.temperature_c"])
        )
    for node, numbers in NODE_NUMBERS.items():
        for name, number in zip(NODE_FIELDS, numbers, strict=True):
            values[f"nodes.{node}.{name}"] = number
        values[f"nodes.{node}.temperature_f"] = celsius_to_fahrenheit(numbers[4])
        values[f"nodes.{node}.thermal_pressure"] = "nominal"
        values[f"nodes.{node}.power"] = "awake"
        values[f"nodes.{node}.online"] = True
    return values


# --- 100 rules, and the same conditions as plain Python --------------------------------------


@dataclass
class Facts:
    """What the floor's lambdas read: values, samples for avg/rate, and the time."""

    values: dict[str, Value]
    history: dict[str, list[tuple[float, float]]]
    now: float = 0.0


Check = Callable[[Facts], bool]
ORDER: Final[dict[str, Callable[[float, float], bool]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass(frozen=True)
class Condition:
    """One condition as rule text, as a plain Python check, and the signals it reads."""

    text: str
    check: Check
    signals: frozenset[str]
    windows: Mapping[str, float] = field(default_factory=dict)


def _number(value: float) -> str:
    return f"{value:g}"


def compare(name: str, op: str, threshold: float) -> Condition:
    test = ORDER[op]
    return Condition(
        f"{name} {op} {_number(threshold)}",
        lambda f: test(f.values[name], threshold),  # type: ignore[arg-type]
        frozenset({name}),
    )


def between(name: str, low: float, high: float) -> Condition:
    return Condition(
        f"{_number(low)} < {name} <= {_number(high)}",
        lambda f: low < f.values[name] <= high,  # type: ignore[operator]
        frozenset({name}),
    )


def equals(name: str, text: str, *, negate: bool = False) -> Condition:
    if negate:
        return Condition(f'{name} != "{text}"', lambda f: f.values[name] != text, frozenset({name}))
    return Condition(f'{name} == "{text}"', lambda f: f.values[name] == text, frozenset({name}))


def flag(name: str, *, negate: bool = False) -> Condition:
    if negate:
        return Condition(f"not {name}", lambda f: not f.values[name], frozenset({name}))
    return Condition(name, lambda f: bool(f.values[name]), frozenset({name}))


def average(name: str, seconds: float, op: str, threshold: float) -> Condition:
    test = ORDER[op]
    return Condition(
        f"avg({name}, {_number(seconds)}s) {op} {_number(threshold)}",
        lambda f: test(time_weighted_mean(f.history[name], f.now - seconds, f.now), threshold),
        frozenset({name}),
        {name: seconds},
    )


def rate(name: str, seconds: float, op: str, threshold: float) -> Condition:
    test = ORDER[op]
    return Condition(
        f"rate({name}, {_number(seconds)}s) {op} {_number(threshold)}",
        lambda f: test(change_per_minute(f.history[name], f.now - seconds, f.now), threshold),
        frozenset({name}),
        {name: seconds},
    )


def both(a: Condition, b: Condition) -> Condition:
    ca, cb = a.check, b.check
    return Condition(
        f"{a.text} and {b.text}",
        lambda f: ca(f) and cb(f),
        a.signals | b.signals,
        {**a.windows, **b.windows},
    )


def either(a: Condition, b: Condition) -> Condition:
    ca, cb = a.check, b.check
    return Condition(
        f"({a.text}) or ({b.text})",
        lambda f: ca(f) or cb(f),
        a.signals | b.signals,
        {**a.windows, **b.windows},
    )


def time_weighted_mean(samples: Sequence[tuple[float, float]], start: float, end: float) -> float:
    """Mean over [start, end] of the step function the samples make: the floor's avg."""
    total = weight = 0.0
    count = len(samples)
    for index in range(count):
        t, value = samples[index]
        until = samples[index + 1][0] if index + 1 < count else end
        span = min(until, end) - max(t, start)
        if span > 0:
            total += value * span
            weight += span
    return total / weight if weight > 0 else samples[-1][1]


def change_per_minute(samples: Sequence[tuple[float, float]], start: float, end: float) -> float:
    """Change of the value since `start` per minute: the floor's rate."""
    before = samples[0]
    for sample in samples:
        if sample[0] > start:
            break
        before = sample
    since = max(start, before[0])
    return (samples[-1][1] - before[1]) / ((end - since) / 60)


@dataclass(frozen=True)
class RuleSpec:
    """A generated rule: its YAML entry, the checks the floor runs, and whether it holds."""

    id: str
    entry: dict[str, Any]
    when: Condition
    until: Condition | None
    holds: bool  # in the steady state: active (True) or idle

    @property
    def evaluated(self) -> Condition:
        """What the engine evaluates for it in the steady state: `until` while active (if
        there is one), else `when`."""
        return self.until if self.holds and self.until is not None else self.when

    @property
    def signals(self) -> frozenset[str]:
        return self.when.signals | (self.until.signals if self.until else frozenset())


PLAIN_POOL: Final = (
    "env.internal.humidity_pct",
    "env.internal.battery_pct",
    "env.ambient.temperature_c",
    "env.ambient.temperature_f",
    "env.ambient.humidity_pct",
    "env.ambient.rssi_dbm",
    "power.battery.soc_pct",
    "power.battery.watts_in",
    "power.battery.watts_out",
    "power.battery.remaining_min",
    "power.solar.watts",
    *(f"nodes.{n}.{f}" for n in NODES for f in ("cpu_pct", "gpu_pct", "memory_pct", "power_w")),
    *(f"nodes.{n}.temperature_f" for n in NODES),
)
# Windows only on signals the (b) stream does not carry, so its cost stays per message.
WINDOWED_POOL: Final = (
    "power.battery.soc_pct",
    "power.battery.watts_out",
    "power.solar.watts",
    *(f"nodes.{n}.temperature_c" for n in NODES),
    *(f"nodes.{n}.power_w" for n in NODES),
)
WINDOWS_S: Final = (60.0, 120.0, 300.0, 600.0)
TARGET_KINDS: Final = (
    "compare",
    "and",
    "or",
    "avg",
    "between",
    "rate",
    "compare",
    "and",
    "or",
    "not",
)
KINDS: Final = ("compare", "and", "or", "avg", "rate", "text", "bool", "between", "rules", "and")
SETS: Final[tuple[dict[str, Value], ...]] = (
    {"fans.profile": "quiet"},
    {"power.dc": False},
    {"studio.power": "asleep", "inference.studio_allowed": False},
    {"inference.mbp_wake": False},
    {"fans.profile": "off"},
    {"mbp.power": "asleep", "inference.mbp_allowed": False},
    {"inference.studio_wake": False},
    {"power.ac": False},
    {"air.power": "asleep", "inference.air_allowed": False},
    {"inference.mini_allowed": False},
    {"fans.profile": "normal"},
    {"inference.air_wake": False},
    {"mini.power": "asleep"},
)
DEFAULTS: Final[dict[str, Value]] = {
    "fans.profile": "normal",
    "power.ac": True,
    "power.dc": True,
    **{f"{n}.power": "awake" for n in NODES},
    **{f"inference.{n}_allowed": True for n in NODES},
    **{f"inference.{n}_wake": True for n in NODES},
}
STALE_ACTIONS: Final = ("inactive", "hold", "active")


class RuleMaker:
    """Conditions with a chosen outcome in the steady state, thresholds a margin away."""

    def __init__(self, steady: Mapping[str, Value], seed: int) -> None:
        self.steady = steady
        self.rng = random.Random(seed)

    def margin(self, name: str) -> float:
        return max(abs(float(self.steady[name])) * 0.2, 3.0) * self.rng.uniform(1.0, 2.0)

    def threshold(self, name: str, above: bool) -> float:
        value = float(self.steady[name])
        out = value + self.margin(name) if above else value - self.margin(name)
        if name.endswith("_pct"):
            out = min(max(out, 1.0), 99.0)
        return round(out, 1)

    def compare(self, name: str, holds: bool) -> Condition:
        op = self.rng.choice(tuple(ORDER))
        greater = op in (">", ">=")
        return compare(name, op, self.threshold(name, above=greater != holds))

    def between(self, name: str, holds: bool) -> Condition:
        if holds:
            return between(name, self.threshold(name, False), self.threshold(name, True))
        low = self.threshold(name, True)
        return between(name, low, round(low + self.margin(name), 1))

    def windowed(self, kind: str, name: str, holds: bool) -> Condition:
        seconds = self.rng.choice(WINDOWS_S)
        op = self.rng.choice(tuple(ORDER))
        greater = op in (">", ">=")
        if kind == "avg":
            return average(name, seconds, op, self.threshold(name, above=greater != holds))
        slope = round(self.margin(name) / 10, 2)  # the steady signal's rate is about 0/min
        return rate(name, seconds, op, slope if greater != holds else -slope)

    def plain(self, holds: bool, exclude: str = "") -> Condition:
        name = self.rng.choice([n for n in PLAIN_POOL if n != exclude])
        return self.compare(name, holds)

    def node(self) -> str:
        return self.rng.choice(NODES)

    def condition(
        self, kind: str, name: str, holds: bool, earlier: Mapping[str, bool]
    ) -> Condition:
        """A condition of `kind` that reads `name` (or a signal of its own) and `holds`."""
        if kind == "rules":  # an earlier rule that is active (or idle) in the steady state
            other = self.rng.choice([rule for rule, active in earlier.items() if active == holds])
            return both(flag(rule_signal(other)), self.compare(name, True))
        makers: dict[str, Callable[[str, bool], Condition]] = {
            "compare": self.compare,
            "between": self.between,
            "avg": lambda n, h: self.windowed("avg", n, h),
            "rate": lambda n, h: self.windowed("rate", n, h),
            "and": self.both,
            "or": self.either,
            "not": self.node_online,
            "text": self.text,
            "bool": self.online,
        }
        return makers[kind](name, holds)

    def both(self, name: str, holds: bool) -> Condition:
        """Both hold, or (at random) one does not."""
        first = self.rng.random() < 0.5
        a = self.compare(name, holds or first)
        return both(a, self.plain(holds or not first, exclude=name))

    def either(self, name: str, holds: bool) -> Condition:
        """One holds, or neither."""
        first = self.rng.random() < 0.5
        a = self.compare(name, holds and first)
        return either(a, self.plain(holds and not first, exclude=name))

    def node_online(self, name: str, holds: bool) -> Condition:
        """`x and nodes.<n>.online`, or `x and not nodes.<n>.online`, which does not hold."""
        online = flag(f"nodes.{self.node()}.online", negate=not holds)
        return both(self.compare(name, True), online)

    def text(self, _name: str, holds: bool) -> Condition:
        node = self.node()
        pressure = equals(f"nodes.{node}.thermal_pressure", "heavy", negate=holds)
        return either(pressure, equals(f"nodes.{node}.power", "unreachable"))

    def online(self, _name: str, holds: bool) -> Condition:
        return both(flag(f"nodes.{self.node()}.online", negate=not holds), self.plain(True))


def make_rules(steady: Mapping[str, Value]) -> list[RuleSpec]:
    """RULES rules: READERS read TARGET; one is the flip rule; about one in five holds."""
    maker = RuleMaker(steady, SEED)
    specs: list[RuleSpec] = [flip_rule()]
    earlier: dict[str, bool] = {}  # generated rule -> active in the steady state
    for index in range(RULES - 1):
        holds = index % 5 == 2
        if index < READERS:
            kind, name = TARGET_KINDS[index], TARGET
        else:
            kind = KINDS[index % len(KINDS)]
            pool = WINDOWED_POOL if kind in ("avg", "rate") else PLAIN_POOL
            name = maker.rng.choice(pool)
        when = maker.condition(kind, name, holds, earlier)
        rule_id = f"r{index:03d}-{kind}"
        entry: dict[str, Any] = {"id": rule_id, "when": when.text}
        until = None
        if index % 3 == 0:  # hysteresis: a release condition that does not hold yet
            until = maker.plain(False, exclude=TARGET)
            entry["until"] = until.text
        if not holds and index % 4 == 1:
            entry["for"] = maker.rng.choice(("10s", "1m", "2m"))
        entry["set"] = dict(SETS[index % len(SETS)])
        entry["priority"] = index + 1
        if index % 7 == 3:
            entry["cooldown"] = "5m"
        entry["on_stale"] = STALE_ACTIONS[index % len(STALE_ACTIONS)]
        specs.append(RuleSpec(rule_id, entry, when, until, holds))
        earlier[rule_id] = holds
    return specs


def flip_rule() -> RuleSpec:
    """The rule (b)'s latency readings fire and release: full fans above 40 °C at the exhaust."""
    when = compare(FLIP, ">", 40.0)
    entry: dict[str, Any] = {
        "id": FLIP_RULE,
        "description": "benchmark: every exhaust reading flips it",
        "when": when.text,
        "set": {"fans.profile": "max"},
        "priority": 1000,
    }
    return RuleSpec(FLIP_RULE, entry, when, None, holds=False)


def write_rules(directory: Path, specs: Sequence[RuleSpec]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "rules.yaml"
    document = {"defaults": DEFAULTS, "rules": [spec.entry for spec in specs]}
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
    return path


# --- (a) the pure core -----------------------------------------------------------------------

TICK_STEP_S: Final = 1.0  # the runner ticks every second
TICK_BLOCK: Final = 5  # ticks between refreshes: a reading of every signal every 5 s
CORE_EPOCH: Final = 1_000_000.0  # simulated seconds; any start will do


class Floor:
    """The 100 conditions as plain Python over `Facts`: the cost floor of evaluating them."""

    def __init__(self, specs: Sequence[RuleSpec], steady: Mapping[str, Value], now: float) -> None:
        self.keep: dict[str, float] = {}
        for spec in specs:
            for condition in (spec.when, spec.until):
                for name, seconds in (condition.windows if condition else {}).items():
                    self.keep[name] = max(self.keep.get(name, 0.0), seconds)
        values: dict[str, Value] = dict(steady)
        values.update({rule_signal(spec.id): spec.holds for spec in specs})
        self.facts = Facts(values, {name: [] for name in self.keep}, now)
        self.all_checks = [spec.evaluated.check for spec in specs]
        self.reader_checks = [spec.evaluated.check for spec in specs if TARGET in spec.signals]

    def update(self, name: str, value: Value, at: float) -> None:
        """As the signal store keeps a reading: the value, and for avg/rate the samples of the
        longest window plus one older."""
        self.facts.values[name] = value
        keep = self.keep.get(name)
        if keep is not None:
            samples = self.facts.history[name]
            samples.append((at, float(value)))
            horizon = at - keep
            while len(samples) > 1 and samples[1][0] <= horizon:
                del samples[0]

    def observe(self, readings: Sequence[tuple[str, Value]], now: float) -> None:
        self.facts.now = now
        for name, value in readings:
            self.update(name, value, now)


@dataclass
class Core:
    """The engine and the floor, both in the steady state, each on its own simulated clock."""

    engine: RulesEngine
    floor: Floor
    others: list[tuple[str, Value]]  # every steady reading but TARGET's
    everything: list[tuple[str, Value]]
    engine_now: float
    floor_now: float


def prepare_core(ruleset: RuleSet, specs: Sequence[RuleSpec]) -> Core:
    """Both sides fed the steady state every 5 s for HISTORY_S; then checked to agree."""
    steady = steady_state()
    limits = SafetyLimits(settle_s=0.0, breaker_max_fires=1000, breaker_window_s=1.0)
    engine = RulesEngine(ruleset, now=CORE_EPOCH, limits=limits)
    floor = Floor(specs, steady, CORE_EPOCH)
    everything = list(steady.items())
    now = CORE_EPOCH
    while now < CORE_EPOCH + HISTORY_S:
        engine.observe(everything, now)
        engine.tick(now)
        floor.observe(everything, now)
        now += WARMUP_EVERY_S
    check_agreement(engine, floor, specs)
    others = [(name, value) for name, value in everything if name != TARGET]
    return Core(engine, floor, others, everything, now, now)


def rewarm(core: Core) -> None:
    """Both sides fed the steady state every 5 s for HISTORY_S again, untimed, so each timed
    run starts with the same history (an observe run refreshes the other signals less often)."""
    for _ in range(int(HISTORY_S / WARMUP_EVERY_S)):
        core.engine_now += WARMUP_EVERY_S
        core.floor_now += WARMUP_EVERY_S
        core.engine.observe(core.everything, core.engine_now)
        core.engine.tick(core.engine_now)
        core.floor.observe(core.everything, core.floor_now)


def check_agreement(engine: RulesEngine, floor: Floor, specs: Sequence[RuleSpec]) -> None:
    """Every rule in its designed phase, and every floor check equal to the engine's own."""
    for spec in specs:
        phase = engine.snapshot.rules[spec.id].phase
        if phase != ("active" if spec.holds else "idle"):
            raise RuntimeError(f"rule {spec.id} is {phase} in the steady state: {spec.when.text}")
        rule = engine.ruleset.rule(spec.id)
        assert rule is not None
        pairs = [(rule.when, spec.when)]
        if rule.until is not None and spec.until is not None:
            pairs.append((rule.until, spec.until))
        for expression, condition in pairs:
            ours = bool(expression.evaluate(engine.store))
            if ours != condition.check(floor.facts):
                raise RuntimeError(f"floor and engine disagree on {condition.text}: {ours}")


def target_readings() -> tuple[list[tuple[str, Value]], list[tuple[str, Value]]]:
    """TARGET at its steady value and 0.1 above, alternately: no rule changes."""
    value = float(NUMBERS[TARGET])
    return [(TARGET, value)], [(TARGET, value + 0.1)]


def time_engine_observe(core: Core, calls: int) -> float:
    engine, pair, now, elapsed = core.engine, target_readings(), core.engine_now, 0
    for _ in range(calls // BLOCK):
        started = time.perf_counter_ns()
        for k in range(BLOCK):
            now += STEP_S
            engine.observe(pair[k & 1], now)
        elapsed += time.perf_counter_ns() - started
        engine.observe(core.others, now)
    core.engine_now = now
    return elapsed / 1e9


def time_floor_observe(core: Core, calls: int) -> float:
    floor, pair, now, elapsed = core.floor, target_readings(), core.floor_now, 0
    checks = floor.reader_checks
    facts = floor.facts
    for _ in range(calls // BLOCK):
        started = time.perf_counter_ns()
        for k in range(BLOCK):
            now += STEP_S
            facts.now = now
            for name, value in pair[k & 1]:
                floor.update(name, value, now)
            for check in checks:
                check(facts)
        elapsed += time.perf_counter_ns() - started
        floor.observe(core.others, now)
    core.floor_now = now
    return elapsed / 1e9


def time_engine_flip(core: Core, calls: int) -> float:
    """FLIP hot and cold alternately: every call fires or releases the flip rule."""
    engine, now, elapsed, commands = core.engine, core.engine_now, 0, 0
    hot: list[tuple[str, Value]] = [(FLIP, FLIP_HOT_C), (FLIP_F, celsius_to_fahrenheit(FLIP_HOT_C))]
    cold: list[tuple[str, Value]] = [
        (FLIP, FLIP_COLD_C),
        (FLIP_F, celsius_to_fahrenheit(FLIP_COLD_C)),
    ]
    for _ in range(calls // BLOCK):
        started = time.perf_counter_ns()
        for k in range(BLOCK):
            now += STEP_S
            commands += len(engine.observe(cold if k & 1 else hot, now).commands)
        elapsed += time.perf_counter_ns() - started
        engine.observe(core.everything, now)  # FLIP cold, as the block ends: no change
    core.engine_now = now
    if commands != calls // BLOCK * BLOCK:
        raise RuntimeError(f"{calls} flips made {commands} commands")
    return elapsed / 1e9


def time_engine_tick(core: Core, calls: int) -> float:
    engine, now, elapsed = core.engine, core.engine_now, 0
    for _ in range(calls // TICK_BLOCK):
        started = time.perf_counter_ns()
        for _ in range(TICK_BLOCK):
            now += TICK_STEP_S
            engine.tick(now)
        elapsed += time.perf_counter_ns() - started
        engine.observe(core.everything, now)
    core.engine_now = now
    return elapsed / 1e9


def time_floor_tick(core: Core, calls: int) -> float:
    floor, now, elapsed = core.floor, core.floor_now, 0
    checks, facts = floor.all_checks, floor.facts
    for _ in range(calls // TICK_BLOCK):
        started = time.perf_counter_ns()
        for _ in range(TICK_BLOCK):
            now += TICK_STEP_S
            facts.now = now
            for check in checks:
                check(facts)
        elapsed += time.perf_counter_ns() - started
        floor.observe(core.everything, now)
    core.floor_now = now
    return elapsed / 1e9


@dataclass
class CoreResult:
    name: str
    rules_per_call: int
    calls: int
    engine_s: list[float] = field(default_factory=list)
    floor_s: list[float] = field(default_factory=list)

    @property
    def engine_rate(self) -> float:
        return self.calls / statistics.median(self.engine_s)

    @property
    def floor_rate(self) -> float | None:
        return self.calls / statistics.median(self.floor_s) if self.floor_s else None


def measure_core(ruleset: RuleSet, specs: Sequence[RuleSpec], cfg: Config) -> list[CoreResult]:
    core = prepare_core(ruleset, specs)
    readers = len(core.floor.reader_checks)
    observe = CoreResult(f"observe: one reading that {readers} rules read", readers, cfg.core_calls)
    tick = CoreResult(f"tick: all {len(specs)} rules", len(specs), cfg.core_calls // 10)
    flips = sum(1 for spec in specs if FLIP in spec.signals)
    flip = CoreResult(
        f"observe: a reading that fires or releases a rule ({flips} reads it): arbitration, "
        "1 command, 2 events",
        flips,
        cfg.core_calls // 10,
    )
    time_engine_observe(core, cfg.core_calls // 10)  # warm-up
    time_floor_observe(core, cfg.core_calls // 10)
    for repeat in range(cfg.repeats):
        log.info("pure core, repeat %d of %d", repeat + 1, cfg.repeats)
        observe.engine_s.append(time_engine_observe(core, observe.calls))
        observe.floor_s.append(time_floor_observe(core, observe.calls))
        rewarm(core)
        tick.engine_s.append(time_engine_tick(core, tick.calls))
        tick.floor_s.append(time_floor_tick(core, tick.calls))
        flip.engine_s.append(time_engine_flip(core, flip.calls))
    check_agreement(core.engine, core.floor, specs)  # nothing changed on the way
    return [observe, tick, flip]


# --- (b) the world the runner sees -----------------------------------------------------------


def climate_payload(probe: str, celsius: float | None = None) -> bytes:
    base = f"env.{probe}"
    return Climate(
        probe=probe,
        temperature_c=NUMBERS[f"{base}.temperature_c"] if celsius is None else celsius,
        humidity_pct=NUMBERS[f"{base}.humidity_pct"],
        battery_pct=NUMBERS[f"{base}.battery_pct"],
        rssi_dbm=NUMBERS[f"{base}.rssi_dbm"],
    ).to_json()


def world_messages(topics: Topics) -> list[tuple[str, bytes]]:
    """Retained messages that carry every signal at its steady value, stamped now (a stamp
    older than a signal's `stale_after` would make it stale on arrival)."""
    battery = Battery(
        soc_pct=NUMBERS["power.battery.soc_pct"],
        watts_in=NUMBERS["power.battery.watts_in"],
        watts_out=NUMBERS["power.battery.watts_out"],
        remaining_min=NUMBERS["power.battery.remaining_min"],
        capacity_wh=NUMBERS["power.battery.capacity_wh"],
        source="twin",
    )
    messages = [
        (topics.battery(), battery.to_json()),
        (topics.solar(), Solar(watts=NUMBERS["power.solar.watts"]).to_json()),
        *((topics.env_climate(probe), climate_payload(probe)) for probe in PROBES),
    ]
    for node, (cpu, gpu, memory, watts, celsius) in NODE_NUMBERS.items():
        telemetry = NodeTelemetry(
            node=node,
            cpu_pct=cpu,
            gpu_pct=gpu,
            memory_pct=memory,
            memory_used_bytes=8 << 30,
            memory_available_bytes=8 << 30,
            power=NodePower(system_w=watts),
            temperatures_c={"cpu": celsius},
            thermal_pressure="nominal",
        )
        messages += [
            (topics.node_availability(node), b"online"),
            (topics.node_power(node), PowerState(state="awake").to_json()),
            (topics.node_telemetry(node), telemetry.to_json()),
        ]
    return messages


def check_world(ruleset: RuleSet, topics: Topics, specs: Sequence[RuleSpec]) -> None:
    """The world's messages, read as the runner reads them, give exactly the steady state, and
    it covers every signal a rule reads."""
    from aigloo_edge.rules.readings import Readings  # noqa: PLC0415 - only this check needs it

    readings = Readings(topics, ruleset.signals, ruleset.custom)
    seen: dict[str, Value | None] = {}
    for topic, payload in world_messages(topics):
        seen.update(readings.extract(topic, payload)[0])
    steady = steady_state()
    wrong = [n for n, v in steady.items() if n not in seen or not _same(seen[n], v)]
    read = set().union(*(spec.signals for spec in specs))
    missing = {n for n in read if not n.startswith("rules.")} - set(steady)
    if wrong or missing:
        raise RuntimeError(f"the world does not match the steady state: {wrong} {missing}")


def _same(a: Value | None, b: Value) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, abs_tol=1e-9)
    return a == b


# --- (b) child processes ---------------------------------------------------------------------


class Progress:
    """A child's count of processed messages, written to stdout as `count last_ns received`
    every PROGRESS_EVERY messages and whenever it changed in the last PROGRESS_IDLE_S."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.count = 0
        self.last_ns = 0
        self.received = 0
        self.reported = 0
        self.lock = threading.Lock()

    def hit(self) -> None:
        self.count += 1
        self.last_ns = time.monotonic_ns()
        if self.count % PROGRESS_EVERY == 0:
            self.report()

    def report(self) -> None:
        with self.lock:
            self.reported = self.count
            self.out.write(f"{self.count} {self.last_ns} {self.received}\n")
            self.out.flush()

    def report_if_changed(self) -> None:
        if self.count != self.reported:
            self.report()

    def say(self, word: str) -> None:
        with self.lock:
            self.out.write(word + "\n")
            self.out.flush()


def child_main(kind: str, spec: dict[str, str]) -> None:
    """Entry of `rules.py --child KIND SPEC`: one side of (b) in a process of its own."""
    logging.basicConfig(level=logging.WARNING, format=f"{kind}: %(message)s")
    logging.getLogger("mqtt").setLevel(logging.ERROR)
    creds = load_credentials(credentials_path(Path(spec["broker_dir"])))
    progress = Progress(sys.stdout)
    if kind == "runner":
        from aigloo_edge.runtime import run_until_stopped  # noqa: PLC0415

        run_until_stopped(_serve_runner(creds, spec, progress))
    elif kind in ("echo", "counter"):
        _serve_paho(kind, creds, spec, progress)
    else:
        raise SystemExit(f"unknown child {kind!r}")


async def _serve_runner(creds: Credentials, spec: dict[str, str], progress: Progress) -> None:
    from aigloo_edge.config import RulesConfig  # noqa: PLC0415 - the child's own imports
    from aigloo_edge.mqtt import Session  # noqa: PLC0415
    from aigloo_edge.rules.engine import Decisions  # noqa: PLC0415
    from aigloo_edge.rules.runner import RulesRunner  # noqa: PLC0415
    from aigloo_edge.runtime import cancel_and_wait  # noqa: PLC0415

    session = Session(creds.settings_for("rules"), component="rules")
    config = RulesConfig.model_validate(
        {
            "dir": spec["rules_dir"],
            "state_file": spec["state_file"],
            "nodes": list(NODES),
            "probes": list(PROBES),
            "watch": False,
            "safety": SAFETY,
        }
    )
    runner = RulesRunner(session, config)
    observe = runner.engine.observe

    def counted(readings: Any, now: float, produced: float | None = None) -> Decisions:
        decisions = observe(readings, now, produced)
        progress.received = session.stats.received
        progress.hit()
        return decisions

    runner.engine.observe = counted  # type: ignore[method-assign]  # counts what was processed

    async def report() -> None:
        while True:
            await asyncio.sleep(PROGRESS_IDLE_S)
            progress.received = session.stats.received
            progress.report_if_changed()

    tasks = [asyncio.create_task(c) for c in (session.run(), runner.run(), report())]
    try:
        await session.sync_subscriptions(READY_TIMEOUT_S)
        progress.say("ready")
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            await cancel_and_wait(task)


def _serve_paho(kind: str, creds: Credentials, spec: dict[str, str], progress: Progress) -> None:
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda _s, _f: stopping.set())
    reply = spec["reply"]

    def echo(client: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        client.publish(reply, message.payload, 1)

    def count(_c: paho.Client, _u: object, _m: paho.MQTTMessage) -> None:
        progress.hit()
        progress.received = progress.count

    with paho_client(creds, "rules", f"bench-{kind}") as client:
        client.on_message = echo if kind == "echo" else count
        paho_subscribe(client, spec["topic"], 1)
        progress.say("ready")
        while not stopping.wait(PROGRESS_IDLE_S):
            progress.report_if_changed()


class ChildLink:
    """The driver's view of a child: ready, and its latest count (read by a thread)."""

    def __init__(self, kind: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.kind = kind
        self.process = process
        self.log_path = log_path
        self.count = 0
        self.last_ns = 0
        self.received = 0
        self.ready = threading.Event()
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, name=f"{kind}-progress", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            parts = line.split()
            if parts == [b"ready"]:
                self.ready.set()
            elif len(parts) == 3:
                with self.changed:
                    self.count, self.last_ns, self.received = map(int, parts)
                    self.changed.notify_all()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.ready.wait(0.1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"child {self.kind} did not get ready:\n{self.tail()}")

    def wait_for(self, count: int, idle_s: float = IDLE_TIMEOUT_S) -> bool:
        """Until the count reaches `count`; False once it has not moved for `idle_s`."""
        with self.changed:
            while self.count < count:
                seen = self.count
                self.changed.wait(idle_s)
                if self.count == seen:
                    return False
        return True

    def settle(self, quiet_s: float = 0.3) -> int:
        """Until the count has not moved for `quiet_s`; the count then."""
        with self.changed:
            while self.changed.wait(quiet_s):
                pass
            return self.count

    def tail(self) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])
        return "(no log)"


@contextlib.contextmanager
def child(kind: str, spec: Mapping[str, str], directory: Path) -> Iterator[ChildLink]:
    """`rules.py --child KIND` running and ready; stopped (SIGTERM) on exit."""
    log_path = directory / f"{kind}.log"
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", kind, json.dumps(spec)]
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log_file,
            start_new_session=True,
        )
    try:
        link = ChildLink(kind, process, log_path)
        link.wait_ready()
        yield link
    finally:
        stop(process)


# --- (b) the driver --------------------------------------------------------------------------


@dataclass(frozen=True)
class Latency(Samples):
    name: str = ""


@dataclass(frozen=True)
class Run:
    sent: int
    processed: int
    seconds: float
    received: int  # as the receiving session counted them (the runner), else = processed
    cpu_s: float | None  # the receiving process's CPU time over the run

    @property
    def rate(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    @property
    def lost(self) -> int:
        return self.sent - self.processed


@dataclass
class Stream:
    name: str
    runs: list[Run] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return statistics.median(run.rate for run in self.runs)

    @property
    def rates(self) -> list[float]:
        return [run.rate for run in self.runs]

    @property
    def lost(self) -> int:
        return sum(run.lost for run in self.runs)

    @property
    def cpu_us_per_event(self) -> float | None:
        cpu = [run.cpu_s / run.processed for run in self.runs if run.cpu_s and run.processed]
        return statistics.median(cpu) * 1e6 if cpu else None


class Replies:
    """What the `admin` client receives on `fans/profile/set` (set on its network thread)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.payload = b""

    def on_message(self, _c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        self.payload = bytes(message.payload)
        self.event.set()


@dataclass(frozen=True)
class Flips:
    """Where a latency variant publishes, and how its replies are checked."""

    name: str
    topic: str
    is_right: Callable[[bytes, bytes, bool], bool]  # reply, request, hot


def runner_replied(reply: bytes, _request: bytes, hot: bool) -> bool:
    profile: object = json.loads(reply).get("profile")
    return (profile == "max") == hot


def echo_replied(reply: bytes, request: bytes, _hot: bool) -> bool:
    return reply == request


def round_trips(
    pub: paho.Client,
    replies: Replies,
    flips: Flips,
    seqs: range,
    payloads: tuple[bytes, bytes],
    *,
    gap_s: float = 0.0,
) -> list[float]:
    """Hot and cold readings alternately, each awaited to its command (and then `gap_s`);
    elapsed us each."""
    out: list[float] = []
    for seq in seqs:
        if gap_s:
            time.sleep(gap_s)
        hot = seq % 2 == 0
        data = payloads[0] if hot else payloads[1]
        replies.event.clear()
        started = time.perf_counter_ns()
        pub.publish(flips.topic, data, 1)
        if not replies.event.wait(REPLY_TIMEOUT_S):
            raise RuntimeError(f"{flips.name}: no command {seq} in {REPLY_TIMEOUT_S}s")
        out.append((time.perf_counter_ns() - started) / 1000)
        if not flips.is_right(replies.payload, data, hot):
            raise RuntimeError(f"{flips.name}: wrong command {seq}: {replies.payload[:80]!r}")
    return out


def latency_blocks(cfg: Config) -> list[range]:
    step = math.ceil(cfg.latency_n / LATENCY_BLOCKS)
    end = cfg.warmup + cfg.latency_n
    return [range(start, min(start + step, end)) for start in range(cfg.warmup, end, step)]


def stream(
    pub: paho.Client, link: ChildLink, topic: str, payloads: tuple[bytes, bytes], n: int
) -> Run:
    """N readings at QoS 1, never more than WINDOW ahead of what `link` has processed."""
    base = link.settle()
    received_before = link.received
    cpu_before = cpu_seconds(link.process.pid)
    started = time.monotonic_ns()
    for sent in range(n):
        if sent - (link.count - base) >= WINDOW:
            link.wait_for(base + sent - WINDOW // 2)
        pub.publish(topic, payloads[sent & 1], 1)
    link.wait_for(base + n)
    cpu_after = cpu_seconds(link.process.pid)
    processed = min(link.count - base, n)
    seconds = (link.last_ns - started) / 1e9
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return Run(n, processed, seconds, link.received - received_before, cpu)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def publish_world(pub: paho.Client, topics: Topics) -> int:
    """The steady state again, retained, each publish acknowledged; how many messages."""
    messages = world_messages(topics)
    for topic, payload in messages:
        pub.publish(topic, payload, 1, retain=True).wait_for_publish(CONNECT_TIMEOUT_S)
    return len(messages)


def refresh(admin: paho.Client, topics: Topics, runner: ChildLink) -> None:
    before = runner.settle()
    sent = publish_world(admin, topics)
    if not runner.wait_for(before + sent):
        raise RuntimeError(f"the runner processed {runner.count - before} of {sent} readings")


@dataclass
class BusResults:
    latencies: list[Latency] = field(default_factory=list)
    streams: dict[str, Stream] = field(default_factory=dict)
    subscribed: int = 0  # rules that read the stream's signals


RUNNER: Final = "runner (RulesRunner, own process)"
SPACED_GAP_S: Final = 0.005
SPACED: Final = f"runner, each reading {SPACED_GAP_S * 1000:g} ms after the last command"
ECHO: Final = "paho echo (own process)"
COUNTER: Final = "paho subscriber counting (own process)"


def measure_bus(
    directory: Path, creds: Credentials, specs: Sequence[RuleSpec], cfg: Config
) -> BusResults:
    topics = Topics(creds.base_topic)
    results = BusResults()
    stream_signals = {
        f"env.{STREAM_PROBE}.{s}"
        for s in ("temperature_c", "temperature_f", "humidity_pct", "battery_pct", "rssi_dbm")
    }
    results.subscribed = sum(1 for spec in specs if spec.signals & stream_signals)
    rules_dir = write_rules(directory / "rules", specs)
    spec = {
        "broker_dir": str(directory / "broker"),
        "rules_dir": str(rules_dir.parent),
        "state_file": str(directory / "state" / "rules.sqlite3"),
    }
    echo_topic = f"{creds.base_topic}/env/bench/echo"
    counter_topic = f"{creds.base_topic}/env/bench/stream"
    with (
        paho_client(creds, "admin", "bench-admin") as admin,
        paho_client(creds, "sensors", "bench-sensors") as sensors,
    ):
        publish_world(admin, topics)
        with (
            child("runner", spec, directory) as runner,
            child(
                "echo", {**spec, "topic": echo_topic, "reply": topics.fans_profile_set()}, directory
            ),
            child("counter", {**spec, "topic": counter_topic, "reply": ""}, directory) as counter,
        ):
            replies = Replies()
            admin.on_message = replies.on_message
            paho_subscribe(admin, topics.fans_profile_set(), 1)
            refresh(admin, topics, runner)
            results.latencies = measure_latency(sensors, replies, topics, echo_topic, cfg)
            for repeat in range(cfg.repeats):
                log.info("sustained stream, repeat %d of %d", repeat + 1, cfg.repeats)
                refresh(admin, topics, runner)
                payloads = (
                    climate_payload(STREAM_PROBE),
                    climate_payload(
                        STREAM_PROBE, NUMBERS[f"env.{STREAM_PROBE}.temperature_c"] + 0.1
                    ),
                )
                run = stream(
                    sensors, runner, topics.env_climate(STREAM_PROBE), payloads, cfg.stream_n
                )
                results.streams.setdefault(RUNNER, Stream(RUNNER)).runs.append(run)
                run = stream(sensors, counter, counter_topic, payloads, cfg.stream_n)
                results.streams.setdefault(COUNTER, Stream(COUNTER)).runs.append(run)
    return results


def measure_latency(
    sensors: paho.Client, replies: Replies, topics: Topics, echo_topic: str, cfg: Config
) -> list[Latency]:
    payloads = (climate_payload("exhaust", FLIP_HOT_C), climate_payload("exhaust", FLIP_COLD_C))
    variants = (
        Flips(RUNNER, topics.env_climate("exhaust"), runner_replied),
        Flips(ECHO, echo_topic, echo_replied),
    )
    samples: dict[str, list[float]] = {flips.name: [] for flips in variants}
    log.info("event -> command latency")
    for flips in variants:
        round_trips(sensors, replies, flips, range(cfg.warmup), payloads)
    for block in latency_blocks(cfg):
        for flips in variants:
            samples[flips.name] += round_trips(sensors, replies, flips, block, payloads)
    start = cfg.warmup + cfg.latency_n  # even: the flip rule is idle again
    spaced = range(start, start + cfg.spaced_n)
    samples[SPACED] = round_trips(
        sensors, replies, variants[0], spaced, payloads, gap_s=SPACED_GAP_S
    )
    return [Latency(values, name=name) for name, values in samples.items()]


# --- report ----------------------------------------------------------------------------------


def core_table(results: Sequence[CoreResult], cfg: Config) -> list[str]:
    lines = [
        f"(a) Pure core, {RULES} rules, simulated clock; median of {cfg.repeats} runs of "
        f"{results[0].calls} (observe) or {results[1].calls} (tick, flip) calls. Floor: the same "
        "conditions as plain Python lambdas over a dict, evaluated the same way:",
        "",
        "| call | engine calls/s | engine rule evaluations/s | us per call | floor calls/s "
        "| floor us per call | engine / floor time |",
        "|------|------:|------:|------:|------:|------:|------:|",
    ]
    for r in results:
        floor = r.floor_rate
        floor_cells = (
            "- | - | -"
            if floor is None
            else f"{floor:,.0f} | {1e6 / floor:,.1f} | {floor / r.engine_rate:.2f}"
        )
        lines.append(
            f"| {r.name} | {r.engine_rate:,.0f} | {r.engine_rate * r.rules_per_call:,.0f} | "
            f"{1e6 / r.engine_rate:,.1f} | {floor_cells} |"
        )
    return lines


def latency_table(results: BusResults, cfg: Config) -> list[str]:
    lines = [
        f"(b) Event -> command latency through Mosquitto, QoS 1: {cfg.latency_n} sequential "
        f"readings (after {cfg.warmup} warm-up each; runner and echo alternate in "
        f"{LATENCY_BLOCKS} blocks), each flipping `fans.profile`; then, for context, "
        f"{cfg.spaced_n} with the runner's outbox idle (its events and rule state for the last "
        "reading sent):",
        "",
        "| path | readings | p50 (us) | p99 (us) | mean (us) |",
        "|------|---------:|---------:|---------:|----------:|",
    ]
    lines += [
        f"| {r.name} | {len(r.samples_us)} | {r.p50:,.0f} | {r.p99:,.0f} | {r.mean:,.0f} |"
        for r in results.latencies
    ]
    return lines


def stream_table(results: BusResults, cfg: Config) -> list[str]:
    lines = [
        f"(b) Sustained readings through Mosquitto, QoS 1: {cfg.stream_n} Climate readings "
        f"(read by {results.subscribed} rules, none changing), publisher at most {WINDOW} ahead "
        f"of what was processed, first publish to last processed, median of {cfg.repeats}:",
        "",
        "| receiver | events/s | runs (events/s) | lost | its CPU per event (us) |",
        "|----------|---------:|-----------------|-----:|------:|",
    ]
    for s in results.streams.values():
        runs = ", ".join(f"{rate:,.0f}" for rate in s.rates)
        cpu = "-" if s.cpu_us_per_event is None else f"{s.cpu_us_per_event:,.0f}"
        lines.append(f"| {s.name} | {s.rate:,.0f} | {runs} | {s.lost} | {cpu} |")
    return lines


def goals_table(results: BusResults) -> list[str]:
    latency = {r.name: r for r in results.latencies}
    runner, echo = latency[RUNNER], latency[ECHO]
    p50, p99 = runner.p50 / echo.p50, runner.p99 / echo.p99
    ours, raw = results.streams[RUNNER], results.streams[COUNTER]
    rows = [
        ("latency p50, runner / echo", f"{p50:.2f}", f"<= {GOAL_P50_RATIO}", p50 <= GOAL_P50_RATIO),
        ("latency p99, runner / echo", f"{p99:.2f}", f"<= {GOAL_P99_RATIO}", p99 <= GOAL_P99_RATIO),
        (
            "sustained events/s, runner",
            f"{ours.rate:,.0f}",
            f">= {GOAL_EVENTS_PER_S:,.0f}, 0 lost",
            ours.rate >= GOAL_EVENTS_PER_S and ours.lost == 0,
        ),
    ]
    lines = ["Goals:", "", "| figure | value | goal | met |", "|--------|------:|-----:|:---:|"]
    lines += [f"| {name} | {value} | {goal} | {mark(met)} |" for name, value, goal, met in rows]
    lines.append(
        f"| sustained events/s, runner / paho subscriber | {ours.rate / raw.rate:.2f} | - | - |"
    )
    mismatch = [r for r in ours.runs if r.received != r.processed]
    if mismatch:
        lines += [
            "",
            f"**The session received more than the engine observed in {len(mismatch)} runs.**",
        ]
    return lines


def report(core: Sequence[CoreResult], bus: BusResults, cfg: Config) -> str:
    parts = [
        core_table(core, cfg),
        latency_table(bus, cfg),
        stream_table(bus, cfg),
        goals_table(bus),
    ]
    return "\n\n".join("\n".join(part) for part in parts)


SECTION_INTRO: Final = (
    f"{RULES} generated rules (comparisons, chains, and/or/not, text and bool signals, avg/rate "
    "windows, rules reading rules, until/for/cooldown; fans, outputs, node power, inference "
    "policy), in their steady state. (a) the pure `RulesEngine` on a simulated clock against "
    "the same conditions as plain Python lambdas. (b) `RulesRunner` as `aigloo rules run` builds "
    "it, in its own process, on one fresh Mosquitto from the project's config, against raw "
    "paho-mqtt in its own process: event -> command latency, and sustained readings per second. "
    "The script's docstring says exactly what each side does. Goals: latency p50 <= "
    f"{GOAL_P50_RATIO}x and p99 <= {GOAL_P99_RATIO}x the echo's, >= {GOAL_EVENTS_PER_S:,.0f} "
    "events/s with nothing lost."
)
DOCS: Final = DocsSection(
    script="benchmarks/rules.py",
    title="Rules engine",
    intro=SECTION_INTRO,
    packages=("aiomqtt", "paho-mqtt", "pydantic"),
)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child_main(sys.argv[2], json.loads(sys.argv[3]))
        return
    args = parse_args("Rules engine benchmark: pure core and runner.", "small N, one repeat")
    start_run(log)
    cfg = QUICK if args.quick else FULL
    specs = make_rules(steady_state())
    with tempfile.TemporaryDirectory(prefix="aigloo-bench-") as tmp:
        directory = Path(tmp)
        ruleset = load_rule_files([write_rules(directory / "rules", specs)], NODES, PROBES)
        log.info("pure core")
        core = measure_core(ruleset, specs, cfg)
        (directory / "broker").mkdir()
        with running_broker(directory / "broker") as creds:
            check_world(ruleset, Topics(creds.base_topic), specs)
            bus = measure_bus(directory, creds, specs, cfg)
    text = report(core, bus, cfg)
    DOCS.show(text, write_docs=args.write_docs)


if __name__ == "__main__":
    main()
