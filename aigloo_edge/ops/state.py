"""What the operator tools know about the rig, built from the topic contract's messages.

Pure: `RigState.apply(topic, payload, now)` takes one message (retained or live) and updates
the picture `aigloo status` prints and `aigloo top` draws. A payload it cannot read is counted
and remembered with its reason, never raised: one bad publisher must not blank the dashboard.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from aigloo_edge.payloads import (
    Battery,
    Climate,
    FanProfileState,
    InferPolicy,
    NodeInfo,
    NodeTelemetry,
    PowerState,
    RuleEvent,
    RuleState,
    Solar,
    parse_availability,
)
from aigloo_edge.topics import Topics

HISTORY_POINTS: Final = 120  # samples per sparkline: two minutes of 1 s telemetry
EVENTS_KEPT: Final = 50
STALE_AFTER_S: Final = 180.0  # no reading for three sensor heartbeats
ModelT = TypeVar("ModelT", bound=BaseModel)
T = TypeVar("T")


@dataclass
class NodeView:
    node: str
    online: bool | None = None  # None: never heard of
    power: PowerState | None = None
    info: NodeInfo | None = None
    telemetry: NodeTelemetry | None = None
    policy: InferPolicy | None = None

    @property
    def wall_w(self) -> float | None:
        power = self.telemetry.power if self.telemetry else None
        if power is None:
            return None
        return power.system_w if power.system_w is not None else power.package_w

    @property
    def power_state(self) -> str:
        if self.power is not None:
            return self.power.state
        return "-" if self.online is None else ("awake" if self.online else "offline")


@dataclass
class Received(Generic[T]):
    value: T
    at: float  # when this process received it (Unix seconds)


@dataclass
class Unreadable:
    topic: str
    reason: str
    count: int = 1


@dataclass
class RigState:
    """The rig as the broker's messages describe it."""

    topics: Topics
    nodes: dict[str, NodeView] = field(default_factory=dict)
    battery: Received[Battery] | None = None
    solar: Received[Solar] | None = None
    probes: dict[str, Received[Climate]] = field(default_factory=dict)
    fans: Received[FanProfileState] | None = None
    rules: dict[str, RuleState] = field(default_factory=dict)
    events: deque[RuleEvent] = field(default_factory=lambda: deque(maxlen=EVENTS_KEPT))
    components: dict[str, bool] = field(default_factory=dict)  # bridge availability
    history: dict[str, deque[float]] = field(default_factory=dict)
    unreadable: dict[str, Unreadable] = field(default_factory=dict)
    messages: int = 0

    def apply(self, topic: str, payload: bytes, now: float) -> str | None:
        """Take one message; returns the contract row it was (None: not one we show)."""
        match = self.topics.match(topic)
        if match is None:
            return None
        handler = _HANDLERS.get(match.spec.name)
        if handler is None:
            return None
        self.messages += 1
        try:
            handler(self, match.params, payload, now)
        except (ValidationError, ValueError) as exc:
            self._unreadable(topic, exc)
        return match.spec.name

    def node(self, node: str) -> NodeView:
        if node not in self.nodes:
            self.nodes[node] = NodeView(node)
        return self.nodes[node]

    def probe_stale(self, probe: str, now: float) -> bool:
        reading = self.probes.get(probe)
        if reading is None:
            return True
        return reading.value.stale or now - reading.value.ts > STALE_AFTER_S

    def active_rules(self) -> list[RuleState]:
        """Rules doing something, or kept from it: active, pending, cooldown, tripped, off."""
        shown = [r for r in self.rules.values() if r.phase != "idle" or r.active]
        return sorted(shown, key=lambda r: (-r.priority, r.rule))

    def recent_changes(self, count: int = 5) -> list[RuleState]:
        """Rules whose phase changed last, newest first: the 'last events' a one-shot status
        can show (events themselves are not retained)."""
        changed = [r for r in self.rules.values() if r.since is not None]
        return sorted(changed, key=lambda r: r.since or 0.0, reverse=True)[:count]

    def sample(self, series: str, value: float | None) -> None:
        if value is None:
            return
        if series not in self.history:
            self.history[series] = deque(maxlen=HISTORY_POINTS)
        self.history[series].append(value)

    @property
    def unreadable_total(self) -> int:
        return sum(u.count for u in self.unreadable.values())

    def _unreadable(self, topic: str, exc: Exception) -> None:
        reason = _short_reason(exc)
        seen = self.unreadable.get(topic)
        if seen is None:
            self.unreadable[topic] = Unreadable(topic, reason)
        else:
            seen.count += 1
            seen.reason = reason


def _short_reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        return f"{where}: {first['msg']}"
    return str(exc)


def _model(model: type[ModelT], payload: bytes) -> ModelT:
    return model.model_validate_json(payload)


def _availability(payload: bytes) -> bool:
    online = parse_availability(payload)
    if online is None:
        raise ValueError("availability is 'online' or 'offline', not empty")
    return online


Params = dict[str, str]
Handler = Callable[[RigState, Params, bytes, float], None]


def _on_node_availability(state: RigState, ids: Params, payload: bytes, now: float) -> None:
    state.node(ids["node"]).online = _availability(payload) if payload else None


def _on_node_info(state: RigState, ids: Params, payload: bytes, now: float) -> None:
    state.node(ids["node"]).info = _model(NodeInfo, payload)


def _on_node_telemetry(state: RigState, ids: Params, payload: bytes, now: float) -> None:
    view = state.node(ids["node"])
    if not payload:  # cleared (the retained telemetry of a node gone to sleep)
        view.telemetry = None
        return
    view.telemetry = _model(NodeTelemetry, payload)
    state.sample(f"power:{view.node}", view.wall_w)


def _on_node_power(state: RigState, ids: Params, payload: bytes, now: float) -> None:
    state.node(ids["node"]).power = _model(PowerState, payload)


def _on_policy(state: RigState, ids: Params, payload: bytes, now: float) -> None:
    state.node(ids["node"]).policy = _model(InferPolicy, payload)


def _on_battery(state: RigState, ids: Params, payload: bytes, now: float) -> None:
    if not payload:  # the bridge cleared a lost station's reading
        state.battery = None
        return
    battery = _model(Battery, payload)
    state.battery = Received(battery, now)
    state.sample("soc", battery.soc_pct)


def _on_solar(state: RigState, ids: Params, payload: bytes, now: float) -> None:
    if not payload:
        state.solar = None
        return
    solar = _model(Solar, payload)
    state.solar = Received(solar, now)
    state.sample("solar", solar.watts)


def _on_climate(state: RigState, ids: Params, payload: bytes, now: float) -> None:
    climate = _model(Climate, payload)
    state.probes[ids["probe"]] = Received(climate, now)
    if not climate.stale:
        state.sample(f"temp:{ids['probe']}", climate.temperature_c)


def _on_fans(state: RigState, ids: Params, payload: bytes, now: float) -> None:
    state.fans = Received(_model(FanProfileState, payload), now)


def _on_rule_state(state: RigState, ids: Params, payload: bytes, now: float) -> None:
    if not payload:  # a rule removed from the files
        state.rules.pop(ids["rule"], None)
        return
    state.rules[ids["rule"]] = _model(RuleState, payload)


def _on_rule_event(state: RigState, ids: Params, payload: bytes, now: float) -> None:
    state.events.append(_model(RuleEvent, payload))


def _on_bridge_availability(state: RigState, ids: Params, payload: bytes, now: float) -> None:
    if not payload:
        state.components.pop(ids["component"], None)
        return
    state.components[ids["component"]] = _availability(payload)


_HANDLERS: Final[dict[str, Handler]] = {
    "node_availability": _on_node_availability,
    "node_info": _on_node_info,
    "node_telemetry": _on_node_telemetry,
    "node_power": _on_node_power,
    "infer_policy": _on_policy,
    "battery": _on_battery,
    "solar": _on_solar,
    "env_climate": _on_climate,
    "fans_profile": _on_fans,
    "rule_state": _on_rule_state,
    "rules_events": _on_rule_event,
    "bridge_availability": _on_bridge_availability,
}
