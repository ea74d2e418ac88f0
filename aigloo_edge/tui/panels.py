"""What each part of `aigloo top` shows, as rich renderables built from the RigState.

Pure: the app puts these in its widgets. The tables and the station come from `ops.views` (the
same picture `aigloo status` prints), trimmed to fit 80x24: no table titles (the column headers
name them), one line per rule instead of two.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from rich.table import Table
from rich.text import Text

from aigloo_edge import display
from aigloo_edge.display import TemperatureUnit
from aigloo_edge.mqtt import MqttSettings
from aigloo_edge.ops.state import STALE_AFTER_S, RigState
from aigloo_edge.ops.views import (
    clock,
    events_lines,
    nodes_table,
    probes_table,
    rules_lines,
    sorted_nodes,
    station_lines,
)

SERVICES: Final = ("sensors", "rules", "dispatcher", "gateway", "homeassistant")
INSIDE_PROBE: Final = "internal"  # the ThermoPro in the box (the twin's name too)
SELECTED_STYLE: Final = "reverse"
LinkPhase = Literal["connecting", "connected", "lost", "refused"]
LINK_STYLE: Final[dict[LinkPhase, str]] = {
    "connecting": "yellow",
    "connected": "green",
    "lost": "bold red",
    "refused": "bold red",
}


@dataclass(frozen=True)
class Link:
    """The dashboard's own connection, as the header shows it."""

    phase: LinkPhase
    detail: str = ""


def header(link: Link, settings: MqttSettings, state: RigState, now: float) -> Text:
    text = Text("Aigloo ", style="bold").append(clock(now)).append("  ")
    text.append(f"● {link.phase}", style=LINK_STYLE[link.phase])
    if link.detail:
        text.append(f" {link.detail}", style=LINK_STYLE[link.phase])
    else:
        text.append(f" {settings.username}@{settings.host}:{settings.port}", style="dim")
    offline = offline_services(state)
    if offline:
        text.append(f"  {', '.join(offline)} offline", style="bold red")
    if state.unreadable:
        text.append(f"  {state.unreadable_total} unreadable", style="yellow")
    text.no_wrap = True
    text.overflow = "ellipsis"
    return text


def offline_services(state: RigState) -> list[str]:
    """The rig's services that said `offline`. Other components' availability is left out: a
    node's own is in the nodes table, and a short-lived client's is no news."""
    return sorted(
        name
        for name, online in state.components.items()
        if not online and (name in SERVICES or name.startswith("dispatcher-"))
    )


def nodes(state: RigState, unit: TemperatureUnit, selected: str | None) -> Table:
    table = nodes_table(state, unit)
    table.title = None
    for index, view in enumerate(sorted_nodes(state)):
        if view.node == selected:
            table.rows[index].style = SELECTED_STYLE
    if not table.rows:
        table.add_row(Text("no node seen yet", style="dim"))
    return table


def station(state: RigState, now: float) -> Text:
    """The station, the sun and the fans; an old reading says so in red at the end."""
    text = station_lines(state, now)
    if state.battery is not None and now - state.battery.value.ts > STALE_AFTER_S:
        age = display.age(now - state.battery.value.ts)
        text.append(f"  station reading {age} old", style="bold red")
    text.no_wrap = True
    text.overflow = "ellipsis"
    return text


def probes(state: RigState, unit: TemperatureUnit, now: float) -> Table | Text:
    if not state.probes:
        return Text("no probe seen yet", style="dim")
    table = probes_table(state, unit, now)
    table.title = None
    return table


def rules(state: RigState) -> Text:
    return rules_lines(state, one_line=True)


def events(state: RigState, count: int) -> Text:
    return events_lines(state, count)


# --- sparklines --------------------------------------------------------------------------


def inside_probe(state: RigState) -> str | None:
    """The probe whose temperature gets a sparkline: the one in the box, else the first."""
    if INSIDE_PROBE in state.probes:
        return INSIDE_PROBE
    return min(state.probes, default=None)


def history(state: RigState, series: str) -> list[float]:
    """A series for a sparkline; one point alone would draw as a full bar, so none until two."""
    points = list(state.history.get(series, ()))
    return points if len(points) > 1 else []


def temperature_history(state: RigState, probe: str | None, unit: TemperatureUnit) -> list[float]:
    if probe is None:
        return []
    return [display.temperature_value(c, unit) for c in history(state, f"temp:{probe}")]


def total_power(state: RigState) -> float | None:
    """The machines' wall power summed (None: no machine reports its power)."""
    readings = [v.wall_w for v in state.nodes.values() if v.wall_w is not None]
    return sum(readings) if readings else None


def label(name: str, value: str) -> Text:
    return Text(f"{name:<7}", style="bold").append(f"{value:>8} ")


def soc_label(state: RigState) -> Text:
    soc = state.battery.value.soc_pct if state.battery else None
    return label("SoC", display.percent(soc))


def solar_label(state: RigState) -> Text:
    return label("Solar", display.watts(state.solar.value.watts if state.solar else None))


def inside_label(state: RigState, probe: str | None, unit: TemperatureUnit) -> Text:
    reading = state.probes.get(probe) if probe else None
    celsius = reading.value.temperature_c if reading else None
    name = "Inside" if probe in (INSIDE_PROBE, None) else str(probe)[:6]
    return label(name, display.temperature(celsius, unit))


def power_label(watts: float | None) -> Text:
    return label("Macs", display.watts(watts))


def node_order(state: RigState) -> list[str]:
    return [view.node for view in sorted_nodes(state)]


def default_node(names: Iterable[str]) -> str | None:
    """The node `s`/`w` act on until the owner picks another: the Studio, the one woken and
    put to sleep off-grid."""
    names = list(names)
    return "studio" if "studio" in names else (names[0] if names else None)
