"""The dispatcher's choice, pure: given what every node last said, where does a request go?

Forward to the best ready node that has the model; else wake a sleeping one if the rules and the
battery allow; else try the configured smaller model; else refuse, saying why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from aigloo_edge.config import WakePolicyConfig
from aigloo_edge.payloads import InferErrorCode, InferPolicy, PowerStateValue, ThermalPressure

HOT: frozenset[ThermalPressure] = frozenset({"heavy", "trapping"})


@dataclass
class NodeView:
    """What the dispatcher knows of one node, from its retained and live topics."""

    node: str
    online: bool = False
    power: PowerStateValue | None = None
    models: tuple[str, ...] = ()
    queue: int = 0
    thermal: ThermalPressure | None = None
    policy: InferPolicy = field(default_factory=InferPolicy)
    in_flight: int = 0  # requests this dispatcher has running there

    @property
    def ready(self) -> bool:
        return self.online and self.power in (None, "awake") and self.policy.allowed

    @property
    def asleep(self) -> bool:
        return not self.online or self.power in ("sleeping", "waking", "unreachable")


@dataclass(frozen=True, slots=True)
class StationReading:
    """The latest battery and solar figures (None when nothing was heard)."""

    soc_pct: float | None = None
    solar_w: float | None = None


@dataclass(frozen=True, slots=True)
class Forward:
    node: str
    model: str


@dataclass(frozen=True, slots=True)
class Wake:
    node: str
    model: str


@dataclass(frozen=True, slots=True)
class Refuse:
    code: InferErrorCode
    message: str


Decision = Forward | Wake | Refuse


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    wake: WakePolicyConfig
    fallbacks: Mapping[str, str]


def choose(
    model: str,
    nodes: Mapping[str, NodeView],
    policy: RoutingPolicy,
    station: StationReading,
    *,
    pinned: str | None = None,
    exclude: frozenset[str] = frozenset(),
) -> Decision:
    """Where `model` should run; see the module docstring for the order of preference."""
    first = _choose_for(model, nodes, policy, station, pinned=pinned, exclude=exclude)
    fallback = policy.fallbacks.get(model)
    if isinstance(first, Refuse) and fallback and fallback != model:
        second = _choose_for(fallback, nodes, policy, station, pinned=pinned, exclude=exclude)
        if isinstance(second, Forward):
            return second
    return first


def _choose_for(
    model: str,
    nodes: Mapping[str, NodeView],
    policy: RoutingPolicy,
    station: StationReading,
    *,
    pinned: str | None,
    exclude: frozenset[str],
) -> Decision:
    capable = [
        view
        for view in nodes.values()
        if model in view.models and view.node not in exclude and pinned in (None, view.node)
    ]
    if not capable:
        known = any(model in view.models for view in nodes.values())
        code: InferErrorCode = "no_worker" if known else "unknown_model"
        return Refuse(code, _nobody_serves(model, nodes, pinned, exclude))
    ready = [view for view in capable if view.ready]
    if ready:
        best = min(ready, key=lambda v: (v.thermal in HOT, v.in_flight + v.queue, v.node))
        return Forward(best.node, model)
    sleeping = sorted((v for v in capable if v.asleep), key=lambda v: v.node)
    if not sleeping:
        reasons = "; ".join(f"{v.node}: {v.policy.reason or 'not allowed'}" for v in capable)
        return Refuse("no_worker", f"no node may serve {model!r} now ({reasons})")
    for view in sleeping:
        if view.policy.allowed and view.policy.wake and _may_wake(policy.wake, station):
            return Wake(view.node, model)
    return Refuse("node_asleep_power_saving", _why_not_woken(model, sleeping, policy, station))


def _may_wake(wake: WakePolicyConfig, station: StationReading) -> bool:
    """Waking costs power: only above the battery floor, or with enough sun."""
    if not wake.allowed:
        return False
    if station.soc_pct is None or station.soc_pct >= wake.min_soc_pct:
        return True
    return station.solar_w is not None and station.solar_w >= wake.min_solar_w


def _why_not_woken(
    model: str, sleeping: list[NodeView], policy: RoutingPolicy, station: StationReading
) -> str:
    names = ", ".join(v.node for v in sleeping)
    head = f"{model!r} is served by {names}, asleep"
    if not policy.wake.allowed:
        return f"{head}; waking is switched off in the dispatcher's config"
    ruled = [v for v in sleeping if not (v.policy.allowed and v.policy.wake)]
    if len(ruled) == len(sleeping):
        why = "; ".join(f"{v.node}: {v.policy.reason or 'no wake allowed'}" for v in ruled)
        return f"{head}; the rules do not allow waking it ({why})"
    solar = "unknown" if station.solar_w is None else f"{station.solar_w:.0f} W"
    return (
        f"{head}; battery {station.soc_pct:.0f}% is under the {policy.wake.min_soc_pct:.0f}% "
        f"wake floor and solar ({solar}) under {policy.wake.min_solar_w:.0f} W"
    )


def _nobody_serves(
    model: str, nodes: Mapping[str, NodeView], pinned: str | None, exclude: frozenset[str]
) -> str:
    known = sorted({m for view in nodes.values() for m in view.models})
    where = f"node {pinned!r}" if pinned else "no node"
    tried = f" (already tried {', '.join(sorted(exclude))})" if exclude else ""
    if pinned in exclude:
        return f"{where} was already tried for {model!r}"
    if pinned:
        return f"{where} does not serve {model!r}{tried}; the cluster serves {known}"
    return f"{where} serves {model!r}{tried}; the cluster serves {known}"
