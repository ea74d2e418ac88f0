"""The rig's state as a person reads it: rich tables (for `aigloo status` and `aigloo top`),
fitting an 80-column terminal, with temperatures in the owner's unit."""

from __future__ import annotations

import datetime as dt
from typing import Final

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from aigloo_edge import display
from aigloo_edge.display import TemperatureUnit
from aigloo_edge.ops.state import NodeView, RigState
from aigloo_edge.payloads import RuleEvent, RuleState

NODE_ORDER: Final = ("studio", "mbp", "mini", "air")
STATE_STYLE: Final = {
    "awake": "green",
    "sleeping": "blue",
    "waking": "yellow",
    "unreachable": "red",
    "offline": "red",
}
PHASE_STYLE: Final = {
    "active": "bold green",
    "pending": "yellow",
    "cooldown": "cyan",
    "tripped": "bold red",
    "disabled": "dim",
}


def clock(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def _table(title: str, *columns: str) -> Table:
    table = Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=None,
        header_style="dim",
        padding=(0, 1),
        pad_edge=True,
        expand=False,
    )
    for column in columns:
        table.add_column(column, no_wrap=True, overflow="ellipsis")
    return table


def sorted_nodes(state: RigState) -> list[NodeView]:
    rank = {node: index for index, node in enumerate(NODE_ORDER)}
    return sorted(state.nodes.values(), key=lambda v: (rank.get(v.node, 99), v.node))


def nodes_table(state: RigState, unit: TemperatureUnit) -> Table:
    table = _table("Nodes", "node", "state", "CPU", "power", "hottest", "queue", "models")
    for view in sorted_nodes(state):
        t = view.telemetry
        hottest = max(t.temperatures_c.values()) if t and t.temperatures_c else None
        state_text = Text(view.power_state, style=STATE_STYLE.get(view.power_state, ""))
        if view.policy is not None and not view.policy.allowed:
            state_text.append(" no-infer", style="dim")
        models = view.info.models if view.info else []
        table.add_row(
            view.node,
            state_text,
            display.percent(t.cpu_pct if t else None),
            display.watts(view.wall_w),
            display.temperature(hottest, unit, digits=0),
            "-" if t is None or t.infer_queue is None else str(t.infer_queue),
            ", ".join(models) or "-",
        )
    return table


def station_lines(state: RigState, now: float) -> Text:
    text = Text()
    if state.battery is None:
        text.append("Station  ", style="bold").append("no reading", style="red")
    else:
        b = state.battery.value
        outputs = b.outputs
        text.append("Station  ", style="bold")
        text.append(f"{b.soc_pct:.0f} %", style=_soc_style(b.soc_pct))
        text.append(f"  in {display.watts(b.watts_in)}  out {display.watts(b.watts_out)}")
        text.append(f"  left {display.minutes(b.remaining_min)}")
        for name in ("ac", "dc"):
            value = getattr(outputs, name)
            if value is not None:
                text.append(f"  {name.upper()} ")
                text.append("on" if value else "off", style="green" if value else "red")
        text.append(f"  ({display.age(now - b.ts)} ago)", style="dim")
    solar = state.solar.value.watts if state.solar else None
    text.append("\nSolar    ", style="bold").append(display.watts(solar))
    fans = state.fans.value if state.fans else None
    text.append("   Fans ", style="bold")
    text.append("-" if fans is None else f"{fans.profile} ({fans.duty_pct:.0f} %)")
    return text


def _soc_style(soc: float) -> str:
    return "red" if soc < 15 else "yellow" if soc < 40 else "green"


def probes_table(state: RigState, unit: TemperatureUnit, now: float) -> Table:
    table = _table("Climate", "probe", "temperature", "humidity", "battery", "age")
    for probe in sorted(state.probes):
        climate = state.probes[probe].value
        stale = state.probe_stale(probe, now)
        temp = Text(display.temperature(climate.temperature_c, unit))
        if stale:
            temp.stylize("dim strike")
        table.add_row(
            probe,
            temp,
            display.percent(climate.humidity_pct),
            display.percent(climate.battery_pct),
            Text(display.age(now - climate.ts) + (" stale" if stale else ""), style=""),
        )
    return table


def rules_lines(state: RigState, *, one_line: bool = False) -> Text:
    """Active (or held back) rules: phase, id, since, why. Two lines each for `status` (they
    would not fit 80 columns as a table), one each for the dashboard, cut at its edge."""
    text = Text("Rules", style="bold")
    rules = state.active_rules()
    if not rules:
        return text.append("    all idle", style="dim")
    since, why_at = ("  ", "  ") if one_line else ("  since ", "\n          ")
    for rule in rules:
        text.append(f"\n {rule.phase:<9}", style=PHASE_STYLE.get(rule.phase, ""))
        text.append(rule.rule).append(f"{since}{clock(rule.since)}", style="dim")
        if rule.why:  # a rule's `when:` may span lines in its file
            text.append(f"{why_at}{' '.join(rule.why.split())}", style="dim")
    text.no_wrap = True
    text.overflow = "ellipsis"
    return text


def events_lines(state: RigState, count: int = 5) -> Text:
    text = Text("Last events", style="bold")
    if state.events:
        for event in list(state.events)[-count:][::-1]:
            text.append(f"\n {clock(event.ts)}  ").append(_event_what(event))
            text.append(f"  {event.why}", style="dim")
    else:  # a one-shot status sees no live events: the rules' latest phase changes instead
        for rule in state.recent_changes(count):
            text.append(f"\n {clock(rule.since)}  {rule.rule} {rule.phase}")
    text.no_wrap = True
    text.overflow = "ellipsis"
    return text


def _event_what(event: RuleEvent) -> str:
    if event.kind == "command":
        return f"{event.actuator} = {event.value}"
    return f"{event.rule or '-'} {event.kind}"


def status_view(state: RigState, unit: TemperatureUnit, now: float) -> RenderableType:
    parts: list[RenderableType] = [
        Text(f"Aigloo  {clock(now)}", style="bold"),
        nodes_table(state, unit),
        station_lines(state, now),
        probes_table(state, unit, now),
        rules_lines(state),
        Text(),
        events_lines(state),
    ]
    if state.unreadable:
        parts.append(
            Text(f"{state.unreadable_total} unreadable messages (see --json)", style="yellow")
        )
    return Group(*parts)


def _rule_json(rule: RuleState) -> dict[str, object]:
    return rule.model_dump(include={"rule", "enabled", "active", "phase", "since", "why", "set"})


def status_json(state: RigState, now: float) -> dict[str, object]:
    """The same picture for scripts: SI units as in the payloads."""
    return {
        "ts": now,
        "nodes": {
            v.node: {
                "online": v.online,
                "power": v.power_state,
                "power_w": v.wall_w,
                "cpu_pct": v.telemetry.cpu_pct if v.telemetry else None,
                "queue": v.telemetry.infer_queue if v.telemetry else None,
                "models": v.info.models if v.info else [],
                "inference_allowed": v.policy.allowed if v.policy else None,
            }
            for v in sorted_nodes(state)
        },
        "battery": state.battery.value.model_dump() if state.battery else None,
        "solar_w": state.solar.value.watts if state.solar else None,
        "probes": {
            probe: {
                **r.value.model_dump(exclude={"v", "probe"}),
                "stale": state.probe_stale(probe, now),
            }
            for probe, r in sorted(state.probes.items())
        },
        "fans": state.fans.value.model_dump(exclude={"v"}) if state.fans else None,
        "rules": {r.rule: _rule_json(r) for r in state.active_rules()},
        "events": [e.model_dump(exclude={"v"}) for e in state.events],
        "components": dict(sorted(state.components.items())),
        "unreadable": {
            u.topic: {"reason": u.reason, "count": u.count} for u in state.unreadable.values()
        },
    }
