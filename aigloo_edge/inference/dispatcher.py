"""The dispatcher: takes `infer/request`, picks a worker (see `routing`), relays its replies.

Replies come back through the dispatcher (on `infer/reply/<instance>/<attempt id>`), so it can
renumber chunks across a retry, answer a request whose worker vanished, and guarantee exactly
one final per request. Each forward is an *attempt* with its own id, so a worker thought lost
but still talking can never mix its stream into the retry's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from aigloo_edge.config import DispatcherConfig
from aigloo_edge.errors import NotConnectedError, PayloadError
from aigloo_edge.inference.replies import Replier, take_request
from aigloo_edge.inference.routing import (
    Decision,
    Forward,
    NodeView,
    RoutingPolicy,
    StationReading,
    Wake,
    choose,
)
from aigloo_edge.mqtt import Inbound, Session
from aigloo_edge.mqtt.router import shared
from aigloo_edge.payloads import (
    Battery,
    InferAccepted,
    InferCancel,
    InferChunk,
    InferErrorCode,
    InferFinal,
    InferPolicy,
    InferRequest,
    NodeInfo,
    NodeTelemetry,
    PowerCommand,
    PowerState,
    Solar,
    parse_availability,
    parse_infer_reply,
)

log = logging.getLogger(__name__)
TICK_S: Final = 0.1
MAX_ATTEMPTS: Final = 2
RETRIABLE: Final = frozenset({"busy", "worker_lost"})
GOODBYE_S: Final = 1.0


@dataclass(eq=False)
class Pending:
    """A request this dispatcher owes a final to."""

    request: InferRequest
    replier: Replier
    deadline: float
    model: str
    node: str | None = None  # where the current attempt runs
    attempt_id: str | None = None
    forwarded_at: float = 0.0
    accepted: bool = False
    waiting_for: str | None = None  # a node being woken for it
    wake_until: float = 0.0
    tried: set[str] = field(default_factory=set)
    text: list[str] = field(default_factory=list)


class Dispatcher:
    """Routes the cluster's requests; see the module docstring."""

    def __init__(
        self,
        session: Session,
        config: DispatcherConfig,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.session = session
        self.config = config
        self.instance = session.component
        self.topics = t = session.topics
        self.views: dict[str, NodeView] = {}
        self.station = StationReading()
        self.policy = RoutingPolicy(config.wake, config.fallbacks)
        self.pending: dict[str, Pending] = {}
        self._attempts: dict[str, Pending] = {}
        self._wake_sent: dict[str, float] = {}
        self._clock = clock
        requests = t.infer_request()
        group = config.shared_group
        session.route(shared(group, requests) if group else requests, self._on_request)
        session.route(t.filter("infer_reply", client=self.instance), self._on_reply)
        session.route_model(t.infer_cancel(), InferCancel.from_json, self._on_cancel)
        session.route(t.filter("node_availability"), self._on_availability)
        session.route_model(t.filter("node_info"), NodeInfo.from_json, self._on_info)
        session.route_model(t.filter("node_telemetry"), NodeTelemetry.from_json, self._on_load)
        session.route_model(t.filter("node_power"), PowerState.from_json, self._on_power)
        session.route(t.filter("infer_policy"), self._on_policy)
        session.route_model(t.battery(), Battery.from_json, self._on_battery)
        session.route_model(t.solar(), Solar.from_json, self._on_solar)

    async def run(self) -> None:
        """Watch deadlines and timeouts until cancelled; then answer what is still owed."""
        try:
            while True:
                await self._check_timers()
                await asyncio.sleep(TICK_S)
        finally:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(GOODBYE_S):
                    for pending in list(self.pending.values()):
                        await self._fail(pending, "internal", "the dispatcher is stopping")

    # --- requests ------------------------------------------------------------------------------

    async def _on_request(self, message: Inbound) -> None:
        taken = await take_request(self.session, message)
        if taken is None:
            return
        request, replier = taken
        now = self._clock()
        if request.id in self.pending:
            await replier.error("duplicate_id", f"request id {request.id!r} is already running")
            return
        deadline = request.deadline or now + self.config.request_timeout_s
        if deadline <= now:
            await replier.error("deadline", "the deadline passed before the request arrived")
            return
        if deadline - now > self.config.max_deadline_s:
            # Held that long, a request whose worker hung would never be answered nor freed.
            limit = self.config.max_deadline_s
            why = f"the deadline is {deadline - now:.0f} s away; at most {limit:g} s is allowed"
            await replier.error("bad_request", why)
            return
        pending = Pending(request, replier, deadline, request.model)
        self.pending[request.id] = pending
        await self._route(pending)

    def _decide(self, pending: Pending) -> Decision:
        return choose(
            pending.request.model,
            self.views,
            self.policy,
            self.station,
            pinned=pending.request.node,
            exclude=frozenset(pending.tried),
        )

    async def _route(self, pending: Pending, lost: str | None = None) -> None:
        decision = self._decide(pending)
        if isinstance(decision, Forward):
            await self._forward(pending, decision.node, decision.model)
        elif isinstance(decision, Wake):
            await self._hold_for_wake(pending, decision.node)
        elif lost is not None:
            await self._fail(pending, "worker_lost", f"{lost}; no other node: {decision.message}")
        else:
            await self._fail(pending, decision.code, decision.message)

    async def _forward(self, pending: Pending, node: str, model: str) -> None:
        attempt = f"{pending.request.id[:100]}.{uuid.uuid4().hex[:8]}"
        pending.node, pending.model, pending.attempt_id = node, model, attempt
        pending.waiting_for, pending.accepted = None, False
        pending.forwarded_at = self._clock()
        pending.tried.add(node)
        self._attempts[attempt] = pending
        self.views[node].in_flight += 1
        forwarded = pending.request.model_copy(
            update={
                "id": attempt,
                "model": model,
                "client": self.instance,
                "reply_to": self.topics.infer_reply(self.instance, attempt),
                "deadline": pending.deadline,
                "node": None,
            }
        )
        log.info("request %s → %s (%s)", pending.request.id, node, model)
        await self.session.publish(self.topics.node_infer(node), forwarded)

    async def _hold_for_wake(self, pending: Pending, node: str) -> None:
        now = self._clock()
        pending.waiting_for = node
        pending.wake_until = min(pending.deadline, now + self.config.wake.timeout_s)
        if now - self._wake_sent.get(node, float("-inf")) < self.config.wake.timeout_s:
            return  # already waking it for an earlier request
        self._wake_sent[node] = now
        log.info("waking %s for request %s", node, pending.request.id)
        command = PowerCommand(state="wake", id=f"wake-{uuid.uuid4().hex[:12]}")
        await self.session.publish(self.topics.node_power_set(node), command)

    async def _release_held(self) -> None:
        """A node changed: requests held for a wake may now go somewhere."""
        for pending in list(self.pending.values()):
            if pending.waiting_for is None:
                continue
            decision = self._decide(pending)
            if isinstance(decision, Forward):
                await self._forward(pending, decision.node, decision.model)

    # --- replies from workers ----------------------------------------------------------------

    async def _on_reply(self, message: Inbound) -> None:
        pending = self._attempts.get(message.topic.rsplit("/", 1)[-1])
        if pending is None:
            return  # an attempt already given up (retried, timed out or cancelled)
        try:
            reply = parse_infer_reply(message.payload)
        except PayloadError as exc:
            await self.session.reject(message.topic, str(exc))
            return
        if isinstance(reply, InferAccepted):
            pending.accepted = True
            await pending.replier.accepted(reply.node, reply.model, reply.queued)
        elif isinstance(reply, InferChunk):
            pending.text.append(reply.text)
            await pending.replier.chunk(reply.text)
        else:
            await self._on_final(pending, reply)

    async def _on_final(self, pending: Pending, final: InferFinal) -> None:
        error = final.error
        if error and error.code in RETRIABLE and pending.replier.seq == 0:
            await self._lost(pending, f"{pending.node}: {error.message}")
            return
        fields = final.model_dump(exclude={"v", "ts", "type", "id", "seq"}, exclude_none=True)
        fields["error"] = final.error
        self._forget(pending)
        await pending.replier.final(**fields)

    # --- nodes going away ------------------------------------------------------------------------

    async def _worker_gone(self, node: str, why: str) -> None:
        for pending in [p for p in self.pending.values() if p.node == node]:
            await self._lost(pending, f"{node} {why}")

    async def _lost(self, pending: Pending, why: str) -> None:
        """Retry once elsewhere if nothing was streamed yet; else answer `worker_lost`."""
        self._end_attempt(pending)
        if pending.replier.seq == 0 and len(pending.tried) < MAX_ATTEMPTS:
            log.info("request %s: %s; trying elsewhere", pending.request.id, why)
            await self._route(pending, lost=why)
            return
        await self._fail(pending, "worker_lost", why, text="".join(pending.text))

    def _end_attempt(self, pending: Pending) -> None:
        if pending.attempt_id is not None:
            self._attempts.pop(pending.attempt_id, None)
            # Best effort: if the worker is in fact alive, stop it spending power on a lost cause.
            task = asyncio.create_task(self._cancel_attempt(pending.attempt_id))
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)
        if pending.node is not None and pending.node in self.views:
            self.views[pending.node].in_flight -= 1
        pending.node, pending.attempt_id = None, None

    async def _cancel_attempt(self, attempt_id: str) -> None:
        with contextlib.suppress(NotConnectedError):
            await self.session.publish(self.topics.infer_cancel(), InferCancel(id=attempt_id))

    async def _fail(
        self, pending: Pending, code: InferErrorCode, message: str, **fields: Any
    ) -> None:
        if pending.node is not None:
            self._end_attempt(pending)
        self._forget(pending)
        await pending.replier.error(code, message, **fields)

    def _forget(self, pending: Pending) -> None:
        self.pending.pop(pending.request.id, None)
        if pending.attempt_id is not None:
            self._attempts.pop(pending.attempt_id, None)
            if pending.node in self.views:
                self.views[pending.node].in_flight -= 1
            pending.attempt_id = None

    # --- timers ------------------------------------------------------------------------------

    async def _check_timers(self) -> None:
        now = self._clock()
        for pending in list(self.pending.values()):
            if now >= pending.deadline:
                await self._fail(
                    pending, "deadline", "the deadline passed", text="".join(pending.text)
                )
            elif pending.waiting_for is not None and now >= pending.wake_until:
                await self._fail(
                    pending,
                    "no_worker",
                    f"{pending.waiting_for} did not wake within {self.config.wake.timeout_s:.0f} s",
                )
            elif (
                pending.node is not None
                and not pending.accepted
                and now - pending.forwarded_at >= self.config.accept_timeout_s
            ):
                await self._lost(
                    pending,
                    f"{pending.node} did not take the request within "
                    f"{self.config.accept_timeout_s:g} s",
                )

    # --- cancels -------------------------------------------------------------------------------

    async def _on_cancel(self, _: Inbound, cancel: InferCancel) -> None:
        pending = self.pending.get(cancel.id)
        if pending is None:
            return
        if pending.attempt_id is None:
            await self._fail(pending, "cancelled", "cancelled before it started")
        else:  # the worker answers `cancelled`, relayed as usual
            await self._cancel_attempt(pending.attempt_id)

    # --- what the nodes and the station say ----------------------------------------------------

    def _view(self, topic: str) -> NodeView:
        matched = self.topics.match(topic)
        assert matched is not None  # routed by a contract filter
        node = matched.params["node"]
        return self.views.setdefault(node, NodeView(node))

    async def _on_availability(self, message: Inbound) -> None:
        online = parse_availability(message.payload)  # junk is rejected, not read as offline
        view = self._view(message.topic)
        view.online = bool(online)
        if view.online:
            await self._release_held()
        else:
            await self._worker_gone(view.node, "went offline")

    async def _on_info(self, message: Inbound, info: NodeInfo) -> None:
        self._view(message.topic).models = tuple(info.models)
        await self._release_held()

    async def _on_load(self, message: Inbound, telemetry: NodeTelemetry) -> None:
        view = self._view(message.topic)
        view.queue, view.thermal = telemetry.infer_queue or 0, telemetry.thermal_pressure

    async def _on_power(self, message: Inbound, state: PowerState) -> None:
        view = self._view(message.topic)
        view.power = state.state
        if view.ready:
            await self._release_held()
        elif state.state in ("sleeping", "unreachable"):
            await self._worker_gone(view.node, f"is {state.state}")

    async def _on_policy(self, message: Inbound) -> None:
        view = self._view(message.topic)
        view.policy = InferPolicy.from_json(message.payload) if message.payload else InferPolicy()
        await self._release_held()

    async def _on_battery(self, _: Inbound, battery: Battery) -> None:
        self.station = StationReading(battery.soc_pct, self.station.solar_w)

    async def _on_solar(self, _: Inbound, solar: Solar) -> None:
        self.station = StationReading(self.station.soc_pct, solar.watts)
