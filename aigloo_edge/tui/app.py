"""`aigloo top`: the rig live in a terminal, with keys for the common actions.

One operator Session feeds a RigState (ops.watch.Watcher); each message marks the parts of the
screen it changes, and those are redrawn together at most every REDRAW_S (a burst of retained
messages, or the twin at speed 60, costs a few redraws a second, not one per message). A 1 s
tick redraws what ages by itself: the clock, the link, the station's and probes' ages.

Actions go through ops.control.perform on the same connection; power actions (sleep, wake, a
station output) ask yes/no first. Every outcome is shown on the status line and as a toast.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Coroutine
from typing import Any, ClassVar, Final, Literal, get_args

from rich.console import RenderableType
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.timer import Timer
from textual.widgets import Footer, Sparkline, Static
from textual.worker import Worker

from aigloo_edge.display import TemperatureUnit
from aigloo_edge.errors import NotConnectedError
from aigloo_edge.mqtt import MqttSettings
from aigloo_edge.ops.control import (
    FANS_TIMEOUT_S,
    OUTPUT_TIMEOUT_S,
    RULE_TIMEOUT_S,
    SLEEP_TIMEOUT_S,
    WAKE_TIMEOUT_S,
    Action,
    Fans,
    NodePower,
    Outcome,
    Output,
    RuleSwitch,
    perform,
)
from aigloo_edge.ops.state import HISTORY_POINTS, RigState
from aigloo_edge.ops.watch import Watcher, operator_session
from aigloo_edge.payloads import FanProfile
from aigloo_edge.runtime import cancel_and_wait
from aigloo_edge.tui import panels
from aigloo_edge.tui.connection import LinkWatch
from aigloo_edge.tui.dialogs import ChoiceDialog, ConfirmDialog

log = logging.getLogger(__name__)

REDRAW_S: Final = 0.25  # at most four redraws a second, however fast messages come
TICK_S: Final = 1.0
DEFAULT_EVENTS: Final = 5
FAN_PROFILES: Final[dict[str, FanProfile]] = {p: p for p in get_args(FanProfile)}
OUTPUTS: Final[dict[str, Literal["ac", "dc"]]] = {"ac": "ac", "dc": "dc"}
# The parts of the screen each contract row changes.
ROW_PARTS: Final[dict[str, frozenset[str]]] = {
    "node_availability": frozenset({"nodes"}),
    "node_info": frozenset({"nodes"}),
    "node_telemetry": frozenset({"nodes"}),
    "node_power": frozenset({"nodes"}),
    "infer_policy": frozenset({"nodes"}),
    "battery": frozenset({"station", "soc"}),
    "solar": frozenset({"station", "solar"}),
    "fans_profile": frozenset({"station"}),
    "env_climate": frozenset({"probes", "inside"}),
    "rule_state": frozenset({"rules", "events"}),
    "rules_events": frozenset({"events"}),
    "bridge_availability": frozenset({"header"}),
}
ALL_PARTS: Final = frozenset({"power"}).union(*ROW_PARTS.values())
OUTCOME_STYLE: Final = {True: "green", False: "bold red"}
MAIN_SCREEN_ACTIONS: Final = frozenset({"fans", "node_power", "rules", "outputs", "select_node"})


class TopApp(App[None]):
    """The dashboard; `settings` say which broker and user, `unit` the temperatures' unit."""

    TITLE = "aigloo top"
    ENABLE_COMMAND_PALETTE = False
    CSS = """
    Screen { overflow: hidden; }
    Static { text-wrap: nowrap; text-overflow: ellipsis; }
    #header, #outcome { height: 1; }
    #station { height: 2; }
    #nodes, #probes, #rules { height: auto; }
    #rules { max-height: 5; }
    #events { height: 1fr; }
    .sparks { height: 1; }
    .spark-label { width: 16; }
    Sparkline { width: 1fr; margin-right: 2; }
    #solar > .sparkline--max-color { color: $warning; }
    #solar > .sparkline--min-color { color: $warning 30%; }
    #inside > .sparkline--max-color { color: $error; }
    #inside > .sparkline--min-color { color: $error 30%; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "fans", "Fans"),
        Binding("s", "node_power('sleep')", "Sleep"),
        Binding("w", "node_power('wake')", "Wake"),
        Binding("r", "rules", "Rules"),
        Binding("o", "outputs", "Outputs"),
        Binding("down", "select_node(1)", "Node", key_display="↑↓"),
        Binding("up", "select_node(-1)", "Node", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, settings: MqttSettings, unit: TemperatureUnit) -> None:
        super().__init__()
        self.settings = settings
        self.unit = unit
        self.session = operator_session(settings, "top")
        self.state = RigState(self.session.topics)
        self.changed = asyncio.Event()  # perform() waits on it for the rig's answer
        self.watcher = Watcher(self.session, self.state, self._on_rig_message)
        self.link = LinkWatch(self.session)
        self.selected: str | None = None
        self.power_history: deque[float] = deque(maxlen=HISTORY_POINTS)
        self.outcome: Outcome | None = None
        self._stale_parts: set[str] = set()
        self._redraw: Timer | None = None
        self._session_task: asyncio.Task[None] | None = None
        self._action: Worker[None] | None = None
        self._link_phase = ""

    # --- layout and lifecycle ----------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(id="header")
        yield Static(id="nodes")
        yield Static(id="station")
        with Horizontal(classes="sparks"):
            yield Static(id="soc-label", classes="spark-label")
            yield Sparkline(id="soc")
            yield Static(id="solar-label", classes="spark-label")
            yield Sparkline(id="solar")
        with Horizontal(classes="sparks"):
            yield Static(id="inside-label", classes="spark-label")
            yield Sparkline(id="inside")
            yield Static(id="power-label", classes="spark-label")
            yield Sparkline(id="power")
        yield Static(id="probes")
        yield Static(id="rules")
        yield Static(id="events")
        yield Static(id="outcome")
        yield Footer()

    def on_mount(self) -> None:
        self.link.attach()
        self._session_task = asyncio.create_task(self.session.run())
        self.set_interval(TICK_S, self._tick)
        self._draw(set(ALL_PARTS))
        self._show_status(_ready(self.selected))

    async def on_unmount(self) -> None:
        if self._session_task is not None:
            await cancel_and_wait(self._session_task)
        self.link.detach()

    # --- messages in, coalesced redraws ------------------------------------------------------

    def _on_rig_message(self, row: str, topic: str) -> None:
        self.changed.set()
        self._stale_parts |= ROW_PARTS.get(row, frozenset())
        if self._redraw is None and self._stale_parts:
            self._redraw = self.set_timer(REDRAW_S, self._redraw_stale)

    def _redraw_stale(self) -> None:
        if self._redraw is not None:
            self._redraw.stop()
            self._redraw = None
        parts, self._stale_parts = self._stale_parts, set()
        self._draw(parts)

    def _tick(self) -> None:
        self.power_history.append(panels.total_power(self.state) or 0.0)
        self._draw({"header", "station", "probes", "power"}, resized=False)
        self._report_link_change()

    def _draw(self, parts: set[str], *, resized: bool = True) -> None:
        """Redraw `parts`; `resized=False` when no part can have changed its number of lines
        (the tick: only ages and the clock move), which spares Textual a layout pass."""
        now = time.time()
        state, unit = self.state, self.unit
        if "nodes" in parts:
            self._ensure_selection()
            self._update("#nodes", panels.nodes(state, unit, self.selected), resized)
        if "header" in parts:
            self._update("#header", panels.header(self.link.link(), self.settings, state, now))
        if "station" in parts:
            self._update("#station", panels.station(state, now))
        if "probes" in parts:
            self._update("#probes", panels.probes(state, unit, now), resized)
        if "rules" in parts:
            self._update("#rules", panels.rules(state), resized)
        if "events" in parts:
            self._update("#events", panels.events(state, self._events_shown()), resized)
        self._draw_sparklines(parts)

    def _draw_sparklines(self, parts: set[str]) -> None:
        state = self.state
        if "soc" in parts:
            self._spark("soc", panels.history(state, "soc"), panels.soc_label(state))
        if "solar" in parts:
            self._spark("solar", panels.history(state, "solar"), panels.solar_label(state))
        if "inside" in parts:
            probe = panels.inside_probe(state)
            data = panels.temperature_history(state, probe, self.unit)
            self._spark("inside", data, panels.inside_label(state, probe, self.unit))
        if "power" in parts:
            watts = panels.total_power(state)
            data = list(self.power_history) if len(self.power_history) > 1 else []
            self._spark("power", data, panels.power_label(watts))

    def _update(self, selector: str, renderable: RenderableType, resized: bool = False) -> None:
        """Only the parts whose height follows their content (nodes, probes, rules, events)
        may need a layout pass; the others have a fixed height."""
        self.query_one(selector, Static).update(renderable, layout=resized)

    def _spark(self, name: str, data: list[float], label: Text) -> None:
        self.query_one(f"#{name}", Sparkline).data = data
        self._update(f"#{name}-label", label)

    def _events_shown(self) -> int:
        height = self.query_one("#events", Static).size.height
        return max(1, height - 1) if height else DEFAULT_EVENTS

    def _report_link_change(self) -> None:
        link = self.link.link()
        if link.phase == self._link_phase:
            return
        self._link_phase = link.phase
        if link.phase == "refused":
            self.notify(f"broker refused the connection {link.detail}", severity="error")
        elif link.phase == "lost":
            self.notify("connection to the broker lost; reconnecting", severity="warning")

    # --- node selection ----------------------------------------------------------------------

    def _ensure_selection(self) -> None:
        names = panels.node_order(self.state)
        if self.selected not in names:
            self.selected = panels.default_node(names)
            if self.outcome is None:
                self._show_status(_ready(self.selected))

    def action_select_node(self, step: int) -> None:
        names = panels.node_order(self.state)
        if not names:
            return
        index = names.index(self.selected) if self.selected in names else 0
        self.selected = names[(index + step) % len(names)]
        self._draw({"nodes"})
        self._show_status(_ready(self.selected))

    # --- actions -----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The app's keys reach it through a dialog too; there they would start another flow."""
        return not (action in MAIN_SCREEN_ACTIONS and len(self.screen_stack) > 1)

    def _start(self, flow: Coroutine[Any, Any, None]) -> None:
        """Run one action flow at a time (its dialogs, then the wait for the rig)."""
        if self._action is not None and self._action.is_running:
            flow.close()
            self.notify("still waiting for the previous action", severity="warning")
            return
        self._action = self.run_worker(flow, group="action")

    def action_fans(self) -> None:
        self._start(self._choose_fans())

    def action_node_power(self, verb: Literal["sleep", "wake"]) -> None:
        self._start(self._node_power(verb))

    def action_rules(self) -> None:
        self._start(self._choose_rule())

    def action_outputs(self) -> None:
        self._start(self._choose_output())

    async def _choose_fans(self) -> None:
        current = self.state.fans.value.profile if self.state.fans else None
        choices = [(p, p) for p in FAN_PROFILES]
        choice = await self.push_screen_wait(ChoiceDialog("Fan profile", choices, current))
        if choice is None:
            self._show_status(_line("fans: cancelled, nothing sent"))
            return
        await self._carry_out(Fans(FANS_TIMEOUT_S, FAN_PROFILES[choice]))

    async def _node_power(self, verb: Literal["sleep", "wake"]) -> None:
        node = self.selected
        if node is None:
            self._show_outcome(Outcome(False, f"{verb}: not sent: no node seen yet"))
            return
        timeout = SLEEP_TIMEOUT_S if verb == "sleep" else WAKE_TIMEOUT_S
        now = f"{node} is {self.state.node(node).power_state}"
        question = f"{now}. Put {node} to sleep?" if verb == "sleep" else f"{now}. Wake {node}?"
        await self._confirm_and_carry_out(NodePower(timeout, node, verb), question)

    async def _choose_rule(self) -> None:
        rules = sorted(self.state.rules.values(), key=lambda r: r.rule)
        if not rules:
            self._show_outcome(Outcome(False, "rules: none reported (is the engine running?)"))
            return
        choices = [
            (r.rule, f"{'disable' if r.enabled else 'enable ':<8} {r.rule}  ({r.phase})")
            for r in rules
        ]
        choice = await self.push_screen_wait(ChoiceDialog("Enable or disable a rule", choices))
        if choice is None:
            self._show_status(_line("rules: cancelled, nothing sent"))
            return
        rule = self.state.rules.get(choice)  # gone meanwhile: perform() says so
        enable = rule is not None and not rule.enabled
        await self._carry_out(RuleSwitch(RULE_TIMEOUT_S, choice, enable))

    async def _choose_output(self) -> None:
        outputs = self.state.battery.value.outputs if self.state.battery else None
        current = {name: getattr(outputs, name, None) for name in OUTPUTS}
        choices = [
            (name, f"{name.upper()}  is {_on_off(on)}: turn it {'off' if on else 'on'}")
            for name, on in current.items()
        ]
        choice = await self.push_screen_wait(ChoiceDialog("Station output", choices))
        if choice is None:
            self._show_status(_line("output: cancelled, nothing sent"))
            return
        turn_on = not current[choice]
        question = f"Turn the station's {choice.upper()} output {'on' if turn_on else 'off'}?"
        if not turn_on:
            question += " Whatever it powers goes dark."
        await self._confirm_and_carry_out(
            Output(OUTPUT_TIMEOUT_S, OUTPUTS[choice], turn_on), question
        )

    async def _confirm_and_carry_out(self, action: Action, question: str) -> None:
        """Ask first, unless there is nothing to send: perform() then says why (already so,
        or cannot be done) without asking."""
        nothing_to_send = action.cannot(self.state) is not None or action.reached(self.state)
        if not nothing_to_send and not await self.push_screen_wait(ConfirmDialog(question)):
            self._show_status(_line(f"{action.describe()}: cancelled, nothing sent"))
            return
        await self._carry_out(action)

    async def _carry_out(self, action: Action) -> None:
        if not self.session.is_connected:
            self._show_outcome(Outcome(False, f"{action.describe()}: not sent: not connected"))
            return
        self._show_status(_line(f"{action.describe()}: waiting for the rig…", "yellow"))
        try:
            outcome = await perform(self.watcher, action, self.changed)
        except NotConnectedError as exc:
            outcome = Outcome(False, f"{action.describe()}: not sent: {exc}")
        log.info("action %s: %s", action.describe(), outcome.message)
        self._show_outcome(outcome)

    # --- the status line ---------------------------------------------------------------------

    def _show_outcome(self, outcome: Outcome) -> None:
        self._redraw_stale()  # now, so the screen agrees with the message
        self.outcome = outcome
        line = _line(outcome.message, OUTCOME_STYLE[outcome.ok])
        if outcome.warnings:
            count = len(outcome.warnings)
            line.append(f"  ({count} warning{'s' if count > 1 else ''})", style="yellow")
        self._show_status(line)
        self.notify(outcome.message, severity="information" if outcome.ok else "error")
        for warning in outcome.warnings:
            self.notify(warning, severity="warning", timeout=10)

    def _show_status(self, line: Text) -> None:
        self._update("#outcome", line)


def _line(message: str, style: str = "") -> Text:
    return Text(message, style=style, no_wrap=True, overflow="ellipsis")


def _ready(selected: str | None) -> Text:
    if selected is None:
        return _line("waiting for the rig's messages…", "dim")
    return _line(f"node: {selected}  (↑↓ another; s/w sleep or wake it)", "dim")


def _on_off(on: bool | None) -> str:
    return "unknown" if on is None else ("on" if on else "off")
