"""Backtest: recorded MQTT traffic through the pure core, faster than real time.

The engine sees every recorded message at its recorded time, and between messages time jumps
to each moment something could change (a `for` timer ending, a reading going stale, a held
command's turn), exactly as the live runner's ticks would find it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from aigloo_edge.errors import PayloadError
from aigloo_edge.recording import BadLine, Recorded
from aigloo_edge.rules.arbiter import SafetyLimits
from aigloo_edge.rules.engine import Decisions, RulesEngine
from aigloo_edge.rules.loader import RuleSet
from aigloo_edge.rules.readings import Readings
from aigloo_edge.topics import Topics


@dataclass(frozen=True, slots=True)
class Step:
    """What the engine decided at one moment of the replay."""

    t: float
    decisions: Decisions


@dataclass
class ReplaySummary:
    messages: int = 0
    rejected: list[str] = field(default_factory=list)  # `line N: reason` / `topic: reason`
    events: Counter[str] = field(default_factory=Counter)
    fired: Counter[str] = field(default_factory=Counter)
    commands: Counter[str] = field(default_factory=Counter)
    first: float | None = None
    last: float | None = None


def replay(
    ruleset: RuleSet,
    recording: Iterable[Recorded | BadLine],
    *,
    topics: Topics | None = None,
    limits: SafetyLimits | None = None,
    summary: ReplaySummary | None = None,
) -> Iterator[Step]:
    """Yield every moment the engine decided something, in time order."""
    readings = Readings(topics or Topics(), ruleset.signals, ruleset.custom)
    report = summary if summary is not None else ReplaySummary()
    engine: RulesEngine | None = None
    for item in recording:
        if isinstance(item, BadLine):
            report.rejected.append(item.describe())
            continue
        if engine is None:
            engine = RulesEngine(ruleset, now=item.t, limits=limits)
            report.first = item.t
        yield from _ticks_until(engine, item.t, report)
        report.messages += 1
        report.last = item.t
        try:
            found, produced = readings.extract(item.topic, item.payload)
        except (PayloadError, UnicodeDecodeError) as exc:
            report.rejected.append(f"{item.topic}: {exc}")
            continue
        if found:
            yield from _step(item.t, engine.observe(found, item.t, produced), report)


def _ticks_until(engine: RulesEngine, t: float, report: ReplaySummary) -> Iterator[Step]:
    while (deadline := engine.next_deadline()) is not None and deadline <= t:
        yield from _step(deadline, engine.tick(deadline), report)


def _step(t: float, decisions: Decisions, report: ReplaySummary) -> Iterator[Step]:
    for event in decisions.events:
        report.events[event.kind] += 1
        if event.kind == "fired" and event.rule:
            report.fired[event.rule] += 1
    for command in decisions.commands:
        report.commands[command.actuator.name] += 1
    if decisions.events or decisions.commands:
        yield Step(t, decisions)
