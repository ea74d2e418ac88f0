"""The rules engine on the bus: readings in, commands, events and rule states out.

A thin shell around the pure `RulesEngine`: it feeds it every reading and the passing time,
persists its state after every change, and carries out its decisions in order from one
outbox task, so the message reader never waits on a publish. Rule files are watched and
swapped in when valid; an invalid change is reported and the running rules stay.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable, Iterator
from typing import Any, Literal

from aigloo_edge.config import RulesConfig
from aigloo_edge.errors import ConfigError, NotConnectedError, PayloadError
from aigloo_edge.mqtt import Inbound, Session
from aigloo_edge.payloads import (
    FanProfileCommand,
    InferPolicy,
    OutputCommand,
    Payload,
    PowerCommand,
    RuleCommand,
    RuleEvent,
)
from aigloo_edge.rules.arbiter import Command, SafetyLimits
from aigloo_edge.rules.engine import Decisions, RulesEngine
from aigloo_edge.rules.loader import RuleSet, load_rules
from aigloo_edge.rules.readings import Readings
from aigloo_edge.rules.store import StateStore
from aigloo_edge.runtime import cancel_and_wait

log = logging.getLogger(__name__)

TICK_S = 1.0
MAX_IN_FLIGHT = 1000
WATCH_DEBOUNCE_MS = 300
# Rule and actuator state reaches SQLite this long after a decision, in one commit for all the
# decisions meanwhile: a commit on the command's path cost up to milliseconds (p99) per reading.
SAVE_DELAY_S = 0.02


def safety_limits(config: RulesConfig) -> SafetyLimits:
    safety = config.safety
    return SafetyLimits(
        min_power_toggle_s=safety.min_power_toggle,
        breaker_max_fires=safety.breaker_max_fires,
        breaker_window_s=safety.breaker_window,
        reassert_s=safety.reassert,
        startup_grace_s=safety.startup_grace,
        settle_s=safety.settle,
    )


class RulesRunner:
    def __init__(
        self,
        session: Session,
        config: RulesConfig,
        *,
        dry_run: bool | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.session = session
        self.topics = session.topics
        self.config = config
        self.dry_run = config.dry_run if dry_run is None else dry_run
        self._clock = clock
        ruleset = self._load()  # invalid rules at start: refuse to start, saying why
        self._store = StateStore(config.state_file)
        self.engine = RulesEngine(
            ruleset, now=clock(), limits=safety_limits(config), snapshot=self._store.load()
        )
        self.readings = Readings(self.topics, ruleset.signals, ruleset.custom)
        self._outbox: asyncio.Queue[Decisions] = asyncio.Queue()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._routed: set[str] = set()
        self._reassert_task: asyncio.Task[None] | None = None
        self._unsaved: tuple[set[str], set[str]] = (set(), set())  # rules, actuators
        self._save_timer: asyncio.TimerHandle | None = None
        self._route_readings()
        session.route_model(self.topics.filter("rule_set"), RuleCommand.parse, self._on_rule_set)
        session.on_connect(self._on_connect)
        self._submit(self.engine.replace_rules(ruleset, clock()))  # publish every rule's state

    def _load(self) -> RuleSet:
        return load_rules(self.config.dir, self.config.nodes, self.config.probes)

    def _route_readings(self) -> None:
        for topic_filter in self.readings.filters():
            if topic_filter not in self._routed:
                self._routed.add(topic_filter)
                self.session.route(topic_filter, self._on_reading)

    # --- inputs ----------------------------------------------------------------------------

    async def _on_reading(self, message: Inbound) -> None:
        readings, produced = self.readings.extract(message.topic, message.payload)
        if readings:
            self._submit(self.engine.observe(readings, self._clock(), produced))

    async def _on_rule_set(self, message: Inbound, command: RuleCommand) -> None:
        match = self.topics.match(message.topic)
        rule_id = match.params["rule"] if match else ""
        if self.engine.ruleset.rule(rule_id) is None:
            raise PayloadError(f"there is no rule {rule_id!r}")
        why = f"{command.action}d over MQTT"
        enabled = command.action == "enable"
        self._submit(self.engine.set_enabled(rule_id, enabled, self._clock(), why))

    async def _on_connect(self) -> None:
        # Retained states arrive just after the subscription: compare them with what we sent
        # once they are in, and send again only what the devices do not confirm.
        if self._reassert_task is None or self._reassert_task.done():
            connected_at = self._clock()
            self._reassert_task = asyncio.create_task(self._reassert_after_settle(connected_at))

    async def _reassert_after_settle(self, connected_at: float) -> None:
        await asyncio.sleep(self.config.safety.settle)
        self._submit(self.engine.reconnected(self._clock(), connected_at))

    # --- running ---------------------------------------------------------------------------

    async def run(self) -> None:
        tasks = [asyncio.create_task(self._carry_out_forever()), asyncio.create_task(self._tick())]
        if self.config.watch:
            tasks.append(asyncio.create_task(self._watch()))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in [*tasks, *self._in_flight]:
                await cancel_and_wait(task)
            if self._save_timer is not None:
                self._save_timer.cancel()
            self._save(list(self.engine.snapshot.rules), list(self.engine.arbiter.runtime))
            self._store.close()

    async def _tick(self) -> None:
        while True:
            now = self._clock()
            deadline = self.engine.next_deadline()
            delay = TICK_S if deadline is None else min(TICK_S, max(0.0, deadline - now) + 0.001)
            await asyncio.sleep(delay)
            self._submit(self.engine.tick(self._clock()))

    async def _watch(self) -> None:
        import watchfiles  # noqa: PLC0415 - only the rules engine needs it

        directory = self.config.dir
        async for _ in watchfiles.awatch(directory, debounce=WATCH_DEBOUNCE_MS):
            await self.reload()

    async def reload(self) -> bool:
        """Load the rule files again; swap them in if valid, else report and keep the old."""
        try:
            ruleset = self._load()
        except ConfigError as exc:
            await self._reject_rules(str(exc))
            return False
        self.readings = Readings(self.topics, ruleset.signals, ruleset.custom)
        self._route_readings()
        self._submit(self.engine.replace_rules(ruleset, self._clock()))
        log.info("rules reloaded: %d rules", len(ruleset.rules))
        return True

    async def _reject_rules(self, reason: str) -> None:
        log.error("rule files rejected, the running rules stay:\n%s", reason)
        await self.session.reject(f"file:{self.config.dir}", reason)
        event = RuleEvent(kind="rejected", why=reason[:4000], ts=self._clock())
        self._outbox.put_nowait(Decisions(events=[event]))

    # --- outputs ---------------------------------------------------------------------------

    def _submit(self, decisions: Decisions) -> None:
        """Carry decisions out without waiting on I/O: at once if nothing is queued ahead of
        them (a command goes out in this loop iteration), else through the outbox, in order."""
        if not decisions:
            return
        if self._outbox.empty() and len(self._in_flight) < MAX_IN_FLIGHT:
            self._start(decisions)
        else:
            self._outbox.put_nowait(decisions)

    def _save(self, rules: Iterable[str], actuators: Iterable[str]) -> None:
        snapshot = self.engine.snapshot
        keys = list(rules)
        known = [(key, snapshot.rules[key]) for key in keys if key in snapshot.rules]
        removed = [key for key in keys if key not in snapshot.rules]
        runtime = self.engine.arbiter.runtime
        self._store.save(
            known, [(key, runtime[key]) for key in actuators if key in runtime], removed
        )

    async def _carry_out_forever(self) -> None:
        """Start each decision's publishes in order (commands first), then persist it.

        Publishes are not awaited one by one: each starts in order (so the broker sees them in
        order) and its acknowledgement is awaited in its own task; at most MAX_IN_FLIGHT wait.
        """
        while True:
            decisions = await self._outbox.get()
            while len(self._in_flight) >= MAX_IN_FLIGHT:
                await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
            self._start(decisions)

    def _start(self, decisions: Decisions) -> None:
        for publish in self._publishes(decisions):
            task = asyncio.create_task(publish)
            self._in_flight.add(task)
            task.add_done_callback(self._published)
        if decisions.changed_rules or decisions.changed_actuators:
            self._save_soon(decisions.changed_rules, decisions.changed_actuators)

    def _save_soon(self, rules: Iterable[str], actuators: Iterable[str]) -> None:
        """Persist these keys' current state SAVE_DELAY_S from now, after the command has left:
        a crash in between re-sends at most the same state (actuators are idempotent)."""
        self._unsaved[0].update(rules)
        self._unsaved[1].update(actuators)
        if self._save_timer is None:
            loop = asyncio.get_running_loop()
            self._save_timer = loop.call_later(SAVE_DELAY_S, self._save_unsaved)

    def _save_unsaved(self) -> None:
        rules, actuators = self._unsaved
        self._unsaved, self._save_timer = (set(), set()), None
        self._save(rules, actuators)

    def _published(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if isinstance(error, NotConnectedError):
            # Commands heal on reconnect (reassert); states are re-sent by the session.
            log.warning("not carried out while disconnected: %s", error)
        elif error is not None:
            log.error("publishing a decision failed", exc_info=error)

    def _publishes(self, decisions: Decisions) -> Iterator[Coroutine[Any, Any, None]]:
        for command in decisions.commands:
            yield self._send(command)
        for event in decisions.events:
            marked = event.model_copy(update={"dry_run": True}) if self.dry_run else event
            yield self.session.publish(self.topics.rules_events(), marked)
        for rule_id in sorted(decisions.changed_rules):
            topic = self.topics.rule_state(rule_id)
            if self.engine.ruleset.rule(rule_id) is None:
                yield self.session.clear_state(topic)
            else:
                yield self.session.set_state(topic, self.engine.rule_state(rule_id))

    async def _send(self, command: Command) -> None:
        actuator = command.actuator
        log.info(
            "%s%s",
            "dry run, not sent: " if self.dry_run else "",
            command.why,
            extra={"rule": command.rule or "", "actuator": actuator.name},
        )
        if self.dry_run:
            return
        if actuator.kind in ("infer_allowed", "infer_wake"):
            await self._publish_policy(actuator.target, command.why)
            return
        topic, payload = self._command_message(command)
        await self.session.publish(topic, payload)

    def _command_message(self, command: Command) -> tuple[str, Payload]:
        actuator, value, ident = command.actuator, command.value, f"rules-{uuid.uuid4().hex[:12]}"
        if actuator.kind == "fans":
            assert isinstance(value, str)
            return self.topics.fans_profile_set(), FanProfileCommand(profile=value, id=ident)  # type: ignore[arg-type]
        if actuator.kind == "node_power":
            state: Literal["wake", "sleep"] = "wake" if value == "awake" else "sleep"
            return self.topics.node_power_set(actuator.target), PowerCommand(state=state, id=ident)
        state_on: Literal["on", "off"] = "on" if value else "off"
        return self.topics.power_output_set(actuator.target), OutputCommand(
            state=state_on, id=ident
        )

    async def _publish_policy(self, node: str, why: str) -> None:
        runtime = self.engine.arbiter.runtime
        allowed = runtime.get(f"inference.{node}_allowed")
        wake = runtime.get(f"inference.{node}_wake")
        policy = InferPolicy(
            allowed=True
            if allowed is None or allowed.commanded is None
            else bool(allowed.commanded),
            wake=True if wake is None or wake.commanded is None else bool(wake.commanded),
            reason=why,
        )
        await self.session.set_state(self.topics.infer_policy(node), policy)
