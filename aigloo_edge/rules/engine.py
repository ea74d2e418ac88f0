"""The rules engine's pure core: signals and time in, commands, events and rule states out.

No I/O and no clock of its own: every call says what time it is, so tests and replays run
faster than real time. The runner feeds it MQTT readings and carries out what it decides.

Per rule: `idle` → (when holds) `pending` → (for `for`) `active` → (until holds, or when no
longer holds) → `cooldown` → `idle`. A condition that cannot be evaluated because a signal is
stale follows the rule's `on_stale`: `active` (fail-safe on), `inactive` (release), `hold`.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from aigloo_edge.payloads import RuleEvent, RuleEventKind, RuleState, Scalar
from aigloo_edge.rules.arbiter import Arbiter, Command, SafetyLimits, show
from aigloo_edge.rules.catalog import rule_signal
from aigloo_edge.rules.expr import Expression, MissingSignal
from aigloo_edge.rules.loader import CompiledRule, RuleSet
from aigloo_edge.rules.model import ActuatorValue
from aigloo_edge.rules.signals import SignalStore
from aigloo_edge.rules.state import RuleRuntime, Snapshot
from aigloo_edge.rules.units import Value

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Truth:
    """A condition's outcome: True/False, or None with the stale signal that prevented it."""

    value: bool | None
    stale: str | None = None
    unknown: bool = False  # a signal has not arrived yet (start-up grace): decide nothing


@dataclass
class Decisions:
    """What one call of the engine decided, for the runner to carry out."""

    commands: list[Command] = field(default_factory=list)
    events: list[RuleEvent] = field(default_factory=list)
    changed_rules: set[str] = field(default_factory=set)
    changed_actuators: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.commands or self.events or self.changed_rules or self.changed_actuators)


class RulesEngine:
    def __init__(
        self,
        ruleset: RuleSet,
        *,
        now: float,
        limits: SafetyLimits | None = None,
        snapshot: Snapshot | None = None,
    ) -> None:
        self.limits = limits or SafetyLimits()
        self.started = now
        self.snapshot = snapshot or Snapshot()
        self.ruleset = ruleset
        self.store = self._new_store(ruleset, now)
        self.arbiter = Arbiter(
            ruleset.actuators, ruleset.defaults, self.limits, self.snapshot.actuators
        )
        self._readers: dict[str, list[CompiledRule]] = _readers(ruleset)
        self._place = _places(ruleset)
        self._arbitrated = False  # the defaults go out on the first decision after settle
        self._adopt_rules(ruleset)

    def _new_store(self, ruleset: RuleSet, now: float) -> SignalStore:
        windows: dict[str, float] = {}
        for rule in ruleset.rules:
            for expression in _expressions(rule):
                for name, seconds in expression.windows.items():
                    windows[name] = max(windows.get(name, 0.0), seconds)
        return SignalStore(
            ruleset.signals, windows, started=now, grace_s=self.limits.startup_grace_s
        )

    def _adopt_rules(self, ruleset: RuleSet) -> None:
        """Keep the state of rules whose id survives; a changed definition resets overrides."""
        for rule in ruleset.rules:
            runtime = self.snapshot.rules.setdefault(rule.id, RuleRuntime())
            if runtime.fingerprint and runtime.fingerprint != rule.fingerprint:
                runtime.enabled_override, runtime.tripped, runtime.fires = None, False, []
            runtime.fingerprint = rule.fingerprint
            self.store.update(rule_signal(rule.id), runtime.phase == "active", self.started)

    # --- inputs ----------------------------------------------------------------------------

    def observe(
        self,
        readings: Iterable[tuple[str, Value | None]],
        now: float,
        produced: float | None = None,
    ) -> Decisions:
        """New readings (None: the source says it is stale); evaluates the rules that read them.

        `produced` is when the source made them (its `ts`): an old retained reading is stale.
        """
        self.store.now = now
        at = now if produced is None else min(produced, now)
        touched: set[str] = set()
        for name, value in readings:
            if value is None:
                self.store.mark_stale(name)
            else:
                self.store.update(name, value, at)
            self._observe_actuator(name, value)
            touched.add(name)
        return self._run(now, touched)

    def tick(self, now: float) -> Decisions:
        """Let time pass: `for` timers, cooldowns, staleness, held commands, re-assertions."""
        self.store.now = now
        decisions = self._run(now, None)
        decisions.commands += self.arbiter.reassert(now)
        return decisions

    def reconnected(self, now: float, connected_at: float) -> Decisions:
        """After a reconnect: send again what was sent before it and no device has confirmed."""
        self.store.now = now
        decisions = Decisions(commands=self.arbiter.reassert(now, unconfirmed_before=connected_at))
        decisions.changed_actuators = {c.actuator.name for c in decisions.commands}
        return decisions

    def set_enabled(self, rule_id: str, enabled: bool, now: float, why: str) -> Decisions:
        rule = self.ruleset.rule(rule_id)
        if rule is None:
            raise KeyError(rule_id)
        runtime = self.snapshot.rules[rule_id]
        runtime.enabled_override, runtime.tripped = enabled, False
        if enabled:
            runtime.fires = []
        decisions = Decisions(changed_rules={rule_id})
        kind: RuleEventKind = "enabled" if enabled else "disabled"
        decisions.events.append(RuleEvent(kind=kind, rule=rule_id, why=why, ts=now))
        self.store.now = now
        self._merge(decisions, self._run(now, None))
        return decisions

    def replace_rules(self, ruleset: RuleSet, now: float) -> Decisions:
        """Swap in a new rule set atomically; rules that keep their id keep their state.

        Also the first call after start: rules saved by an earlier run and since removed from
        the files are dropped (and reported as changed, so their retained state is cleared).
        """
        known = {rule.id for rule in self.ruleset.rules} | set(self.snapshot.rules)
        removed = known - {rule.id for rule in ruleset.rules}
        old_store = self.store
        self.ruleset = ruleset
        self.store = self._new_store(ruleset, self.started)
        self.store.now = now
        old_store.copy_into(self.store)
        self.arbiter = Arbiter(
            ruleset.actuators, ruleset.defaults, self.limits, self.arbiter.runtime
        )
        self._readers = _readers(ruleset)
        self._place = _places(ruleset)
        for rule_id in removed:
            self.snapshot.rules.pop(rule_id, None)
        self._adopt_rules(ruleset)
        names = ", ".join(str(path) for path in ruleset.files) or "no files"
        event = RuleEvent(kind="reloaded", why=f"{len(ruleset.rules)} rules from {names}", ts=now)
        decisions = Decisions(events=[event], changed_rules={r.id for r in ruleset.rules} | removed)
        self._merge(decisions, self._run(now, None))
        return decisions

    # --- evaluation ------------------------------------------------------------------------

    def _run(self, now: float, touched: set[str] | None) -> Decisions:
        """Evaluate every rule (`touched` None), or only those reading a touched signal."""
        decisions = Decisions()
        transitioned = False
        if touched is None:
            for rule in self.ruleset.rules:
                transitioned |= self._step(rule, self.snapshot.rules[rule.id], now, decisions)
        else:
            transitioned = self._run_readers(now, touched, decisions)
        if transitioned or touched is None or not self._arbitrated:
            self._arbitrate(now, decisions)
        return decisions

    def _run_readers(self, now: float, touched: set[str], out: Decisions) -> bool:
        """The readers of `touched`, in dependency order, then the readers of rules that changed."""
        place = self._place
        queue = sorted({place[r.id] for name in touched for r in self._readers.get(name, ())})
        if not queue:
            return False  # most readings (telemetry fields no rule reads) stop here
        queued = set(queue)
        transitioned = False
        while queue:
            rule = self.ruleset.rules[heapq.heappop(queue)]
            if not self._step(rule, self.snapshot.rules[rule.id], now, out):
                continue
            transitioned = True
            for reader in self._readers.get(rule_signal(rule.id), ()):
                if place[reader.id] not in queued:  # dependents come later in the order
                    queued.add(place[reader.id])
                    heapq.heappush(queue, place[reader.id])
        return transitioned

    def _step(self, rule: CompiledRule, runtime: RuleRuntime, now: float, out: Decisions) -> bool:
        """Advance one rule; True if it became active or released."""
        if not self._enabled(rule, runtime):
            if runtime.phase == "active":
                self._release(rule, runtime, now, "disabled", out)
                return True
            if runtime.phase != "idle":
                self._set_phase(runtime, "idle", now, out, rule)
            return False
        if runtime.phase == "active":
            return self._maybe_release(rule, runtime, now, out)
        if runtime.phase == "cooldown":
            if now < (runtime.released_at or now) + rule.cooldown_s:
                return False
            self._set_phase(runtime, "idle", now, out, rule)
        return self._maybe_fire(rule, runtime, now, out)

    def _maybe_fire(
        self, rule: CompiledRule, runtime: RuleRuntime, now: float, out: Decisions
    ) -> bool:
        truth = self._truth(rule.when)
        if truth.unknown:
            return False
        forced = truth.value is None and rule.on_stale == "active"
        wanted = truth.value if truth.value is not None else (forced or None)
        if wanted is None:
            if rule.on_stale == "inactive" and runtime.phase == "pending":
                self._set_phase(runtime, "idle", now, out, rule)
            return False
        if not wanted:
            if runtime.phase == "pending":
                self._set_phase(runtime, "idle", now, out, rule)
            return False
        if runtime.phase == "idle" and rule.for_s > 0 and not forced:
            self._set_phase(runtime, "pending", now, out, rule)
            runtime.why = f"when holds; fires after {rule.for_s:g}s if it still holds"
            return False
        if runtime.phase == "pending" and not forced and now - (runtime.since or now) < rule.for_s:
            return False
        why = _stale_why(truth, rule) if forced else f"when: {rule.when.text}"
        return self._fire(rule, runtime, now, why, out)

    def _maybe_release(
        self, rule: CompiledRule, runtime: RuleRuntime, now: float, out: Decisions
    ) -> bool:
        if rule.until is not None:
            truth = self._truth(rule.until)
            done, what = truth.value, f"until: {rule.until.text}"
        else:
            truth = self._truth(rule.when)
            done, what = (None if truth.value is None else not truth.value), "when no longer holds"
        if truth.unknown:
            return False
        if done is None:
            if rule.on_stale != "inactive":
                return False  # `active` keeps the fail-safe on; `hold` keeps the state
            what = _stale_why(truth, rule)
        elif not done:
            return False
        self._release(rule, runtime, now, what, out)
        return True

    def _fire(
        self, rule: CompiledRule, runtime: RuleRuntime, now: float, why: str, out: Decisions
    ) -> bool:
        window_start = now - self.limits.breaker_window_s
        runtime.fires = [t for t in runtime.fires if t > window_start]
        if len(runtime.fires) >= self.limits.breaker_max_fires:
            return self._trip(rule, runtime, now, out)
        runtime.fires.append(now)
        runtime.last_fired = now
        self._set_phase(runtime, "active", now, out, rule)
        self._record(rule, runtime, why)
        self.store.update(rule_signal(rule.id), True, now)
        out.events.append(self._event("fired", rule, runtime, now))
        return True

    def _trip(self, rule: CompiledRule, runtime: RuleRuntime, now: float, out: Decisions) -> bool:
        runtime.tripped = True
        limit = f"{self.limits.breaker_max_fires} times in {self.limits.breaker_window_s:g}s"
        self._set_phase(runtime, "idle", now, out, rule)
        self._record(rule, runtime, f"circuit breaker: fired {limit}; disabled until enabled")
        log.warning("rule %s tripped: %s", rule.id, runtime.why, extra={"rule": rule.id})
        out.events.append(self._event("tripped", rule, runtime, now))
        return False

    def _release(
        self, rule: CompiledRule, runtime: RuleRuntime, now: float, why: str, out: Decisions
    ) -> None:
        runtime.released_at = now
        phase = "cooldown" if rule.cooldown_s > 0 and why != "disabled" else "idle"
        self._set_phase(runtime, phase, now, out, rule)
        self._record(rule, runtime, why)
        self.store.update(rule_signal(rule.id), False, now)
        out.events.append(self._event("released", rule, runtime, now))

    def _set_phase(
        self, runtime: RuleRuntime, phase: str, now: float, out: Decisions, rule: CompiledRule
    ) -> None:
        assert phase in ("idle", "pending", "active", "cooldown")
        runtime.phase = phase  # type: ignore[assignment]  # checked just above
        runtime.since = now
        if phase == "idle":
            runtime.why = ""
        out.changed_rules.add(rule.id)

    def _record(self, rule: CompiledRule, runtime: RuleRuntime, why: str) -> None:
        runtime.why = why
        read = sorted(set().union(*(e.signals for e in _expressions(rule))))
        runtime.values = {name: self.store.peek(name) for name in read}

    def _truth(self, expression: Expression) -> Truth:
        try:
            return Truth(bool(expression.evaluate(self.store)))
        except MissingSignal as missing:
            freshness = self.store.freshness(missing.signal)
            return Truth(None, missing.signal, unknown=freshness == "unknown")

    def _enabled(self, rule: CompiledRule, runtime: RuleRuntime) -> bool:
        if runtime.tripped:
            return False
        return rule.enabled if runtime.enabled_override is None else runtime.enabled_override

    # --- arbitration -----------------------------------------------------------------------

    def _arbitrate(self, now: float, out: Decisions) -> None:
        if now < self.started + self.limits.settle_s:
            return  # retained state is still arriving: deciding now could flap at start-up
        self._arbitrated = True
        active = [r for r in self.ruleset.rules if self.snapshot.rules[r.id].phase == "active"]
        commands, holds = self.arbiter.decide(self.arbiter.choose(active), now)
        for command in commands:
            out.commands.append(command)
            out.changed_actuators.add(command.actuator.name)
            out.events.append(
                RuleEvent(
                    kind="command",
                    rule=command.rule,
                    actuator=command.actuator.name,
                    value=_scalar(command.value),
                    why=command.why,
                    ts=now,
                )
            )
        for hold in holds:
            out.changed_actuators.add(hold.actuator)
            why = f"{hold.actuator} {show(hold.value)} waits until {hold.until:.0f}: {hold.why}"
            out.events.append(
                RuleEvent(
                    kind="held", actuator=hold.actuator, value=_scalar(hold.value), why=why, ts=now
                )
            )

    def _observe_actuator(self, signal: str, value: Value | None) -> None:
        target = _ACTUATOR_OF_SIGNAL.get(signal)
        if target is not None:
            self.arbiter.observe(target, value if isinstance(value, bool) else None)
        elif signal == "fans.profile":
            self.arbiter.observe("fans.profile", value if isinstance(value, str) else None)
        elif signal.startswith("nodes.") and signal.endswith(".power"):
            node = signal.removeprefix("nodes.").removesuffix(".power")
            self.arbiter.observe(f"{node}.power", _POWER_OBSERVED.get(str(value)))

    # --- reports ---------------------------------------------------------------------------

    def rule_state(self, rule_id: str) -> RuleState:
        rule = self.ruleset.rule(rule_id)
        if rule is None:
            raise KeyError(rule_id)
        runtime = self.snapshot.rules[rule_id]
        enabled = self._enabled(rule, runtime)
        phase = "tripped" if runtime.tripped else ("disabled" if not enabled else runtime.phase)
        return RuleState(
            rule=rule.id,
            enabled=enabled,
            active=runtime.phase == "active" and enabled,
            phase=phase,
            since=runtime.since,
            last_fired=runtime.last_fired,
            until=self._phase_ends(rule, runtime),
            why=runtime.why or None,
            values=dict(runtime.values),
            set={name: _scalar(value) for name, value in rule.set.items()},
            priority=rule.priority,
            source=rule.source,
            ts=self.store.now,
        )

    def _phase_ends(self, rule: CompiledRule, runtime: RuleRuntime) -> float | None:
        if runtime.phase == "pending" and runtime.since is not None:
            return runtime.since + rule.for_s
        if runtime.phase == "cooldown" and runtime.released_at is not None:
            return runtime.released_at + rule.cooldown_s
        return None

    def next_deadline(self) -> float | None:
        """The earliest time a tick could change something (timers, staleness, holds)."""
        times = [
            t
            for rule in self.ruleset.rules
            if (t := self._phase_ends(rule, self.snapshot.rules[rule.id])) is not None
        ]
        # `_readers` is keyed by every signal some rule reads.
        for extra in (self.store.next_change(self._readers), self.arbiter.next_change()):
            if extra is not None:
                times.append(extra)
        times.append(self.started + self.limits.settle_s)
        # Only the future: a timer whose moment passed undecided (its input unknown) waits
        # for the next reading instead of being asked again and again.
        return min((t for t in times if t > self.store.now), default=None)

    def _event(
        self, kind: RuleEventKind, rule: CompiledRule, runtime: RuleRuntime, now: float
    ) -> RuleEvent:
        return RuleEvent(
            kind=kind,
            rule=rule.id,
            why=runtime.why,
            values=dict(runtime.values),
            set={name: _scalar(value) for name, value in rule.set.items()},
            ts=now,
        )

    @staticmethod
    def _merge(into: Decisions, more: Decisions) -> None:
        into.commands += more.commands
        into.events += more.events
        into.changed_rules |= more.changed_rules
        into.changed_actuators |= more.changed_actuators


_ACTUATOR_OF_SIGNAL = {
    "power.battery.outputs.ac": "power.ac",
    "power.battery.outputs.dc": "power.dc",
}
# A node reports `sleeping` for the `asleep` the rules asked; `waking` is on its way to `awake`.
_POWER_OBSERVED: Mapping[str, ActuatorValue] = {
    "awake": "awake",
    "waking": "awake",
    "sleeping": "asleep",
    "unreachable": "unreachable",  # matches neither: the wake is sent again after reassert_s
}


def _expressions(rule: CompiledRule) -> list[Expression]:
    return [rule.when] if rule.until is None else [rule.when, rule.until]


def _readers(ruleset: RuleSet) -> dict[str, list[CompiledRule]]:
    readers: dict[str, list[CompiledRule]] = {}
    for rule in ruleset.rules:
        for expression in _expressions(rule):
            for name in expression.signals:
                readers.setdefault(name, []).append(rule)
    return readers


def _places(ruleset: RuleSet) -> dict[str, int]:
    """Each rule's place in evaluation order (a rule comes after the rules it reads)."""
    return {rule.id: place for place, rule in enumerate(ruleset.rules)}


def _stale_why(truth: Truth, rule: CompiledRule) -> str:
    return f"{truth.stale} is stale (on_stale: {rule.on_stale})"


def _scalar(value: ActuatorValue) -> Scalar:
    return value
