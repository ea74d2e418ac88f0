"""Control commands that wait for the rig to answer: sleep/wake a node, set the fans, switch a
station output, enable or disable a rule.

Each action reads the retained state first (so it can say "already so", or why it cannot be
done: an unknown id, the component that would carry it out offline), publishes the command with
an id, then watches the state topic until it shows the wanted value, a failure the rig reports
(a node `unreachable`, with its reason), or the timeout. It also says when an active rule wants
the opposite, because the rules engine will put its own value back.
"""

from __future__ import annotations

import asyncio
import difflib
import time
from dataclasses import dataclass
from typing import Final, Literal

from aigloo_edge.inference.client import new_request_id
from aigloo_edge.mqtt import MqttSettings
from aigloo_edge.ops.state import RigState
from aigloo_edge.ops.watch import Watcher, operator_session
from aigloo_edge.payloads import (
    Command,
    FanProfile,
    FanProfileCommand,
    OutputCommand,
    PowerCommand,
    RuleCommand,
)
from aigloo_edge.runtime import cancel_and_wait

SENSORS: Final = "sensors"  # the component that carries out fan and output commands
# How long each action waits for the rig to show it done (the CLI's and the dashboard's).
FANS_TIMEOUT_S: Final = 20.0
SLEEP_TIMEOUT_S: Final = 30.0
WAKE_TIMEOUT_S: Final = 120.0  # Wake-on-LAN, macOS waking, the agent reconnecting
OUTPUT_TIMEOUT_S: Final = 30.0
RULE_TIMEOUT_S: Final = 15.0
RULES: Final = "rules"


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Action:
    """One command and how to tell it worked; subclasses read the RigState."""

    timeout_s: float

    def describe(self) -> str:
        raise NotImplementedError

    def command(self, state: RigState) -> tuple[str, Command]:
        raise NotImplementedError

    def cannot(self, state: RigState) -> str | None:
        """Why the command cannot be carried out now (None: send it)."""
        return None

    def reached(self, state: RigState) -> bool:
        raise NotImplementedError

    def failed(self, state: RigState, sent_at: float) -> str | None:
        """A failure the rig reported after the command was sent."""
        return None

    def now_shows(self, state: RigState) -> str:
        """The current value, for the message when it did not change."""
        raise NotImplementedError

    def sets(self) -> tuple[str, object] | None:
        """(the rules' actuator, the value this command gives it), to warn about rules."""
        return None


def _did_you_mean(name: str, known: list[str], what: str) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    listed = ", ".join(sorted(known)) or "none seen"
    return f"no {what} {name!r}{hint}; known: {listed}"


@dataclass(frozen=True)
class NodePower(Action):
    node: str
    state: Literal["sleep", "wake"]

    def describe(self) -> str:
        return f"{self.state} {self.node}"

    def command(self, state: RigState) -> tuple[str, Command]:
        topic = state.topics.node_power_set(self.node)
        return topic, PowerCommand(state=self.state, id=new_request_id())

    def cannot(self, state: RigState) -> str | None:
        if self.node not in state.nodes:
            return _did_you_mean(self.node, list(state.nodes), "node")
        view = state.nodes[self.node]
        if self.state == "sleep" and not view.online:
            return f"{self.node} is not online ({view.power_state}): nothing to put to sleep"
        return None

    def reached(self, state: RigState) -> bool:
        view = state.nodes.get(self.node)
        if view is None:
            return False
        if self.state == "wake":
            return bool(view.online) and view.power_state == "awake"
        return view.power_state == "sleeping"

    def failed(self, state: RigState, sent_at: float) -> str | None:
        power = state.nodes[self.node].power
        if power is not None and power.state == "unreachable" and power.ts >= sent_at - 1:
            return f"{self.node} is unreachable: {power.reason or 'no reason given'}"
        return None

    def now_shows(self, state: RigState) -> str:
        view = state.nodes[self.node]
        online = "online" if view.online else "offline"
        return f"{self.node} is {view.power_state} ({online})"

    def sets(self) -> tuple[str, object]:
        return f"{self.node}.power", "awake" if self.state == "wake" else "asleep"


@dataclass(frozen=True)
class Fans(Action):
    profile: FanProfile

    def describe(self) -> str:
        return f"fans {self.profile}"

    def command(self, state: RigState) -> tuple[str, Command]:
        return state.topics.fans_profile_set(), FanProfileCommand(
            profile=self.profile, id=new_request_id()
        )

    def cannot(self, state: RigState) -> str | None:
        if state.components.get(SENSORS) is False:
            return "the sensor bridge, which drives the fans, is offline"
        if state.fans is None and SENSORS not in state.components:
            return "no fan controller has reported (no sensor bridge seen on the broker)"
        return None

    def reached(self, state: RigState) -> bool:
        return state.fans is not None and state.fans.value.profile == self.profile

    def now_shows(self, state: RigState) -> str:
        return f"fans are {state.fans.value.profile}" if state.fans else "no fan state"

    def sets(self) -> tuple[str, object]:
        return "fans.profile", self.profile


@dataclass(frozen=True)
class Output(Action):
    output: Literal["ac", "dc"]
    on: bool

    def describe(self) -> str:
        return f"{self.output} {'on' if self.on else 'off'}"

    def command(self, state: RigState) -> tuple[str, Command]:
        topic = state.topics.power_output_set(self.output)
        return topic, OutputCommand(state="on" if self.on else "off", id=new_request_id())

    def cannot(self, state: RigState) -> str | None:
        if state.components.get(SENSORS) is False:
            return "the sensor bridge, which talks to the station, is offline"
        if state.battery is None:
            return "no station has reported (no power/battery reading on the broker)"
        return None

    def _current(self, state: RigState) -> bool | None:
        if state.battery is None:
            return None
        value: bool | None = getattr(state.battery.value.outputs, self.output)
        return value

    def reached(self, state: RigState) -> bool:
        return self._current(state) is self.on

    def now_shows(self, state: RigState) -> str:
        current = self._current(state)
        shown = "unknown" if current is None else ("on" if current else "off")
        return f"the station's {self.output.upper()} output is {shown}"

    def sets(self) -> tuple[str, object]:
        return f"power.{self.output}", self.on


@dataclass(frozen=True)
class RuleSwitch(Action):
    rule: str
    enable: bool

    def describe(self) -> str:
        return f"{'enable' if self.enable else 'disable'} rule {self.rule}"

    def command(self, state: RigState) -> tuple[str, Command]:
        action: Literal["enable", "disable"] = "enable" if self.enable else "disable"
        return state.topics.rule_set(self.rule), RuleCommand(action=action, id=new_request_id())

    def cannot(self, state: RigState) -> str | None:
        if state.components.get(RULES) is False:
            return "the rules engine is offline"
        if self.rule not in state.rules:
            return _did_you_mean(self.rule, list(state.rules), "rule")
        return None

    def reached(self, state: RigState) -> bool:
        rule = state.rules.get(self.rule)
        return rule is not None and rule.enabled is self.enable

    def now_shows(self, state: RigState) -> str:
        rule = state.rules[self.rule]
        return f"rule {self.rule} is {'enabled' if rule.enabled else 'disabled'} ({rule.phase})"


def conflicting_rules(state: RigState, action: Action) -> list[str]:
    """Active rules that set the action's actuator to something else."""
    sets = action.sets()
    if sets is None:
        return []
    actuator, value = sets
    warnings = []
    for rule in state.active_rules():
        if not rule.active or rule.set.get(actuator, value) == value:
            continue
        warnings.append(
            f"rule {rule.rule} is active and sets {actuator} = {rule.set[actuator]}: the rules "
            f"engine will put it back (aigloo rules disable {rule.rule} first)"
        )
    return warnings


async def carry_out(settings: MqttSettings, action: Action) -> Outcome:
    """Send the action's command and wait until the rig shows it done, failed, or time is up."""
    session = operator_session(settings, "control")
    changed = asyncio.Event()
    watcher = Watcher(session, RigState(session.topics), lambda row, topic: changed.set())
    running = asyncio.create_task(session.run())
    try:
        await watcher.connected()
        await watcher.settled()
        return await perform(watcher, action, changed)
    finally:
        await cancel_and_wait(running)


async def perform(watcher: Watcher, action: Action, changed: asyncio.Event) -> Outcome:
    """Carry out `action` on a connected watcher whose state is current; `changed` must be set
    by the watcher's on_change (the dashboard passes its own). Raises NotConnectedError if
    the connection drops while the command is sent."""
    state = watcher.state
    why_not = action.cannot(state)
    if why_not is not None:
        return Outcome(False, f"{action.describe()}: not sent: {why_not}")
    warnings = tuple(conflicting_rules(state, action))
    if action.reached(state):
        return Outcome(
            True, f"{action.describe()}: already so ({action.now_shows(state)})", warnings
        )
    topic, command = action.command(state)
    sent_at = time.time()
    await watcher.session.publish(topic, command.model_dump_json(exclude_none=True))
    deadline = time.monotonic() + action.timeout_s
    while time.monotonic() < deadline:
        if action.reached(state):
            took = time.time() - sent_at
            return Outcome(True, f"{action.describe()}: done in {took:.2f} s", warnings)
        failure = action.failed(state, sent_at)
        if failure is not None:
            return Outcome(False, f"{action.describe()}: failed: {failure}", warnings)
        changed.clear()
        try:
            await asyncio.wait_for(changed.wait(), deadline - time.monotonic())
        except TimeoutError:
            break
    return Outcome(
        False,
        f"{action.describe()}: no change within {action.timeout_s:g} s; {action.now_shows(state)}",
        warnings,
    )
