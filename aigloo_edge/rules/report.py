"""Text a person reads: rule summaries, a rule's state explained, a replay's decisions."""

from __future__ import annotations

import time
from collections.abc import Iterable

from aigloo_edge.payloads import RuleEvent, RuleState, Scalar
from aigloo_edge.rules.arbiter import show
from aigloo_edge.rules.loader import RuleSet
from aigloo_edge.rules.replay import ReplaySummary, Step


def clock_time(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 10)}Z"


def duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _value(value: Scalar) -> str:
    if isinstance(value, bool):
        return show(value)
    if isinstance(value, float):
        return f"{value:g}"
    return "—" if value is None else str(value)


def _values(values: dict[str, Scalar]) -> str:
    return ", ".join(f"{name} = {_value(value)}" for name, value in values.items())


def ruleset_lines(ruleset: RuleSet) -> list[str]:
    """One line per rule (priority, id, what it sets, when), for `aigloo rules check`."""
    lines = []
    for rule in sorted(ruleset.rules, key=lambda r: (-r.priority, r.order)):
        wants = ", ".join(f"{name}: {show(value)}" for name, value in rule.set.items())
        flags = "" if rule.enabled else " (disabled)"
        lines.append(f"{rule.priority:>5}  {rule.id}{flags}  → {wants}")
        lines.append(f"       when {rule.when.text}")
    defaults = ", ".join(f"{name}: {show(value)}" for name, value in ruleset.defaults.items())
    lines.append(f"defaults: {defaults or 'none'}")
    return lines


def explain_lines(state: RuleState, now: float) -> list[str]:
    """`aigloo rules explain ID`: what the rule is doing, since when, and why."""
    lines = [f"rule {state.rule}: {state.phase}" + ("" if state.enabled else " (not enabled)")]
    if state.since is not None:
        lines.append(f"  since     {clock_time(state.since)} ({duration(now - state.since)} ago)")
    if state.until is not None:
        what = "fires at" if state.phase == "pending" else "cooldown ends"
        lines.append(f"  {what:<9} {clock_time(state.until)} (in {duration(state.until - now)})")
    if state.last_fired is not None:
        ago = duration(now - state.last_fired)
        lines.append(f"  fired     {clock_time(state.last_fired)} ({ago} ago)")
    if state.why:
        lines.append(f"  why       {state.why}")
    if state.values:
        lines.append(f"  values    {_values(state.values)}")
    wants = ", ".join(f"{name}: {_value(value)}" for name, value in state.set.items())
    lines.append(f"  sets      {wants} at priority {state.priority}")
    if state.source:
        lines.append(f"  defined   {state.source}")
    return lines


def event_line(event: RuleEvent) -> str:
    subject = event.rule or event.actuator or ""
    text = f"{event.kind:<10} {subject:<28} {event.why}"
    if event.values and event.kind in ("fired", "released"):
        text += f"  [{_values(event.values)}]"
    return text


def replay_lines(steps: Iterable[Step], summary: ReplaySummary) -> Iterable[str]:
    """Each decision with its time and its offset from the recording's first message."""
    for step in steps:
        stamp = f"{clock_time(step.t)} +{duration(step.t - (summary.first or step.t)):>5}"
        for event in step.decisions.events:
            yield f"{stamp}  {event_line(event)}"


def summary_lines(summary: ReplaySummary) -> list[str]:
    span = (summary.last or 0.0) - (summary.first or 0.0)
    lines = [f"replayed {summary.messages} messages over {duration(span)}"]
    for rule, count in sorted(summary.fired.items()):
        lines.append(f"  {rule} fired {count} time{'s' * (count != 1)}")
    for actuator, count in sorted(summary.commands.items()):
        lines.append(f"  {actuator}: {count} command(s)")
    if summary.rejected:
        lines.append(f"{len(summary.rejected)} input(s) rejected:")
        lines += [f"  {reason}" for reason in summary.rejected[:20]]
        if len(summary.rejected) > 20:
            lines.append(f"  … and {len(summary.rejected) - 20} more")
    return lines
