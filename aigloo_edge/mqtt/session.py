"""The one MQTT session wrapper every component uses.

A Session keeps one aiomqtt client connected for the life of a component: MQTT v5 (or 3.1.1),
retained last will `offline` and birth `online` on the component's availability topic, reconnect
with capped jittered backoff, and after every (re)connect: re-subscribe, birth, re-publish the
retained state it owns. Inbound messages go through a Router; a bad payload or a raising handler
is logged, counted and reported on `<base>/bridge/<component>/rejected`, and the loop goes on.
Cancelling `run()` publishes `offline` and disconnects cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import aiomqtt
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from aigloo_edge import __version__
from aigloo_edge.errors import NotConnectedError, PayloadError
from aigloo_edge.mqtt.backoff import Backoff
from aigloo_edge.mqtt.client import ReusableClient
from aigloo_edge.mqtt.message import Inbound
from aigloo_edge.mqtt.rejections import RejectionLog, RejectKind
from aigloo_edge.mqtt.router import Handler, PayloadT, Route, Router
from aigloo_edge.mqtt.settings import MqttSettings
from aigloo_edge.payloads import (
    AVAILABILITY_OFFLINE,
    AVAILABILITY_ONLINE,
    BridgeHealth,
    BridgeRejected,
    Payload,
)
from aigloo_edge.runtime import cancel_and_wait
from aigloo_edge.topics import Topics, validate_id

log = logging.getLogger(__name__)

GOODBYE_TIMEOUT_S: Final = 2.0
STABLE_CONNECTION_S: Final = 10.0
PENDING_CALLS_WARNING: Final = 5000
READER_CANCEL_RETRY_S: Final = 0.1
ACK_TIMEOUT_S: Final = 10.0
# aiomqtt's own timeout bounds only the CONNACK (and DISCONNECT) wait here, every other wait
# is ours (`_acked`). A broker answers CONNECT in milliseconds; a link that took the TCP
# connection and then died must not hold the next attempt for long: with the 2 s backoff cap,
# an attempt lost that way still leaves the 5 s reconnect goal (at 3 s, one restart in CI
# took 5.8 s).
CONNACK_TIMEOUT_S: Final = 2.0
WAIT_FOREVER: Final = math.inf  # aiomqtt: no wait_for at all (see _acked)
T = TypeVar("T")
PayloadLike = bytes | str | Payload


@dataclass
class _RetainedState:
    payload: bytes
    expiry_s: float | None
    published_at: float


@dataclass
class SessionStats:
    received: int = 0
    reconnects: int = 0
    connects: int = 0


class Session:
    """A component's connection to the broker; see the module docstring."""

    def __init__(
        self,
        settings: MqttSettings,
        *,
        component: str,
        availability_topic: str | None = None,
        announce: bool = True,
        retain_as_published: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # announce=False: a short-lived client (a CLI command), not a component: no will, no
        # birth, no health, and no session kept, so it leaves nothing retained behind.
        self.announce = announce
        # retain_as_published (MQTT v5): messages keep the retain flag they were published with
        # (a broker clears it on live delivery), and retained ones are sent again only for a
        # new subscription: what a recorder needs to tell state from events, once each.
        self.retain_as_published = retain_as_published
        self.settings = settings
        self.component = validate_id("component", component)
        self.topics = Topics(settings.base_topic)
        self.availability_topic = availability_topic or self.topics.bridge_availability(component)
        self.client_id = f"{component}-{uuid.uuid4().hex[:10]}"
        self.router = Router()
        self.stats = SessionStats()
        self.rejections = RejectionLog(interval=settings.reject_report_interval_s)
        self._clock = clock
        self._started = time.time()
        self._client: ReusableClient | None = None
        self._connected = asyncio.Event()
        self._retained: dict[str, _RetainedState] = {}
        self._connect_hooks: list[Callable[[], Awaitable[None]]] = []
        self._inbox: list[asyncio.Queue[aiomqtt.Message]] = []
        self._subscribing: set[asyncio.Task[object]] = set()
        self._subscribed: dict[str, int] = {}  # filter → QoS asked on this connection
        self._log_extra = {"component": component}

    # --- public API ------------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, timeout: float | None = None) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self._connected.wait()
        except TimeoutError:
            raise NotConnectedError(f"{self.component}: not connected after {timeout}s") from None

    def on_connect(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run `hook` on every (re)connect, after the birth and before retained state goes out.

        A hook may call `set_state`: the session is not yet marked connected, so the state is
        only stored, and goes out once with the rest.
        """
        self._connect_hooks.append(hook)

    def route(self, topic_filter: str, handler: Handler, *, qos: int = 1) -> Route:
        """Add a handler; subscribes now if connected, and again after every reconnect."""
        route = self.router.add(topic_filter, handler, qos=qos)
        self._subscribe_live(topic_filter, qos)
        return route

    def route_model(
        self,
        topic_filter: str,
        parse: Callable[[bytes], PayloadT],
        handler: Callable[[Inbound, PayloadT], Awaitable[None]],
        *,
        qos: int = 1,
    ) -> Route:
        """Like `route`, with the payload parsed (and rejected if invalid) before `handler`."""
        route = self.router.add_model(topic_filter, parse, handler, qos=qos)
        self._subscribe_live(topic_filter, qos)
        return route

    async def sync_subscriptions(self, timeout: float | None = 10.0) -> None:
        """Subscribe every routed filter now and wait for the broker's acknowledgement."""
        await self.wait_connected(timeout)
        client = self._client
        if client is None:
            raise NotConnectedError(f"{self.component}: connection dropped")
        try:
            await self._subscribe_all(client)
        except aiomqtt.MqttError as exc:
            raise NotConnectedError(f"{self.component}: subscribe failed: {exc}") from exc

    async def publish(
        self,
        topic: str,
        payload: PayloadLike,
        *,
        qos: int = 1,
        retain: bool = False,
        expiry_s: float | None = None,
        response_topic: str | None = None,
        correlation_data: bytes | None = None,
        timeout: float | None = 10.0,
    ) -> None:
        """Publish once the session is connected (waiting up to `timeout`).

        Raises NotConnectedError if there is no connection in time or it drops mid-publish.
        """
        if not self._connected.is_set():  # wait_connected costs a timeout context (a timer)
            await self.wait_connected(timeout)
        client = self._client
        if client is None:
            raise NotConnectedError(f"{self.component}: connection dropped")
        properties = self._publish_properties(expiry_s, response_topic, correlation_data)
        try:
            await _acked(
                client.publish(
                    topic,
                    _encode(payload),
                    qos=qos,
                    retain=retain,
                    properties=properties,
                    timeout=WAIT_FOREVER,
                )
            )
        except aiomqtt.MqttError as exc:
            raise NotConnectedError(f"{self.component}: publish to {topic} failed: {exc}") from exc

    async def set_state(
        self, topic: str, payload: PayloadLike, *, expiry_s: float | None = None
    ) -> None:
        """Publish retained state this component owns; it is re-published after reconnects.

        While disconnected the state is only remembered, and goes out on the next connect.
        """
        data = _encode(payload)
        self._retained[topic] = _RetainedState(data, expiry_s, self._clock())
        if self.is_connected:
            with contextlib.suppress(NotConnectedError):
                await self.publish(topic, data, retain=True, expiry_s=expiry_s, timeout=0)

    async def clear_state(self, topic: str) -> None:
        """Forget retained state and remove it from the broker (empty retained payload)."""
        self._retained.pop(topic, None)
        await self.publish(topic, b"", retain=True)

    async def reject(self, topic: str, reason: str, kind: RejectKind = "invalid") -> None:
        """Count a rejected input; log and report it unless rate-limited."""
        report = self.rejections.record(topic, reason, kind, self._clock())
        if report is None:
            log.debug("rejected (rate-limited) %s: %s", topic, reason, extra=self._log_extra)
            return
        log.warning("rejected %s: %s", topic, reason, extra=self._log_extra)
        await self._report_rejection(report.topic, report.reason, report.kind, report.suppressed)

    async def run(self) -> None:
        """Stay connected until cancelled; on cancel, say `offline` and disconnect cleanly."""
        client = self._make_client()
        backoff = Backoff(self.settings.reconnect_initial_s, self.settings.reconnect_max_s)
        while True:
            began = self._clock()
            try:
                await self._connect_and_serve(client)
            except aiomqtt.MqttError as exc:
                self._on_connection_lost(exc)
            if self._clock() - began > STABLE_CONNECTION_S:
                backoff.reset()
            await asyncio.sleep(backoff.next_delay())

    # --- connection lifecycle --------------------------------------------------------------

    def _make_client(self) -> ReusableClient:
        client = self._new_client()
        # aiomqtt warns on every call past 10 in flight; a dispatcher streaming replies has
        # hundreds, and the warnings alone cost more than the publishes.
        client.pending_calls_threshold = PENDING_CALLS_WARNING
        return client

    def _new_client(self) -> ReusableClient:
        s = self.settings
        v5 = s.protocol == "5"
        tcp = s.transport == "tcp"
        will = aiomqtt.Will(self.availability_topic, AVAILABILITY_OFFLINE, qos=1, retain=True)
        connect_props = None
        if v5:
            connect_props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            connect_props.SessionExpiryInterval = s.session_expiry_s if self.announce else 0
        return ReusableClient(
            s.host,
            s.port,
            username=s.username,
            password=s.resolved_password(),
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            will=will if self.announce else None,
            # Never clean start: paho's FIRST_ONLY is reset by every connect() aiomqtt makes,
            # so each reconnect threw the session (and the QoS 1 messages queued in it) away.
            # The client id is new per Session, so a first connect has no old session to resume.
            # 3.1.1 has no session expiry: the broker's `persistent_client_expiration` ends the
            # sessions of components that never come back; short-lived clients keep none.
            clean_session=None if v5 else not self.announce,
            clean_start=False if v5 else MQTT_CLEAN_START_FIRST_ONLY,  # paho: v5 only
            transport=s.transport,
            websocket_path=s.websocket_path if s.transport == "websockets" else None,
            keepalive=s.keepalive,
            properties=connect_props,
            tls_context=s.tls.context() if s.tls else None,
            queue_type=_inbox_type(self._inbox),
            # Without it Nagle holds a QoS 1 publish back until the previous PUBACK's delayed
            # ACK: a 40-90 ms stall per request on an idle link.
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)] if tcp else None,
            timeout=CONNACK_TIMEOUT_S,
        )

    async def _connect_and_serve(self, client: ReusableClient) -> None:
        async with client:
            self._client = client
            housekeeping: asyncio.Task[None] | None = None
            try:
                await _unless_lost(client, self._on_connected(client))
                housekeeping = asyncio.create_task(self._housekeeping())
                await self._serve(client)
            except asyncio.CancelledError:
                await self._say_goodbye(client)
                raise
            finally:
                self._connected.clear()
                self._client = None
                if housekeeping is not None:
                    housekeeping.cancel()

    async def _on_connected(self, client: ReusableClient) -> None:
        self._subscribed = {}
        self.stats.connects += 1
        if self.stats.connects > 1:
            self.stats.reconnects += 1
        log.info(
            "connected to %s:%s as %s (%s)",
            self.settings.host,
            self.settings.port,
            self.settings.username,
            self.client_id,
            extra=self._log_extra,
        )
        # Subscribe before the birth message so no command sent on seeing us online is lost.
        await self._subscribe_all(client)
        if self.announce:
            await _acked(
                client.publish(
                    self.availability_topic,
                    AVAILABILITY_ONLINE,
                    qos=1,
                    retain=True,
                    timeout=WAIT_FOREVER,
                )
            )
        for hook in self._connect_hooks:
            await hook()
        # Routes added while connecting (after the subscribe above, before `connected`) were
        # not subscribed live: subscribe them now, or they would wait for the next reconnect.
        await self._subscribe_all(client, only_new=True)
        self._connected.set()
        await self._republish_state(client)
        await self._publish_health()

    def _on_connection_lost(self, exc: aiomqtt.MqttError) -> None:
        log.warning(
            "mqtt connection to %s:%s lost or refused: %s",
            self.settings.host,
            self.settings.port,
            exc,
            extra=self._log_extra,
        )

    async def _say_goodbye(self, client: ReusableClient) -> None:
        """Publish `offline` ourselves: a clean DISCONNECT means the broker drops the will."""
        if not self.announce:
            return
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            async with asyncio.timeout(GOODBYE_TIMEOUT_S):
                await client.publish(
                    self.availability_topic,
                    AVAILABILITY_OFFLINE,
                    qos=1,
                    retain=True,
                    timeout=WAIT_FOREVER,
                )

    async def _subscribe_all(self, client: ReusableClient, *, only_new: bool = False) -> None:
        wanted = self.router.subscriptions()
        if only_new:
            wanted = {f: q for f, q in wanted.items() if self._subscribed.get(f) != q}
        self._subscribed.update(wanted)
        if not wanted:
            return
        granted = await _acked(client.subscribe(self._asked(wanted), timeout=WAIT_FOREVER))
        for topic_filter, code in zip(wanted, granted, strict=False):
            if _refused(code):
                log.error(
                    "subscription to %s refused by the broker (%s)",
                    topic_filter,
                    code,
                    extra=self._log_extra,
                )

    def _asked(
        self, wanted: dict[str, int]
    ) -> list[tuple[str, int]] | list[tuple[str, SubscribeOptions]]:
        """The SUBSCRIBE entries: plain QoS, or v5 options when retain_as_published."""
        if not (self.retain_as_published and self.settings.protocol == "5"):
            return list(wanted.items())
        return [
            (
                topic_filter,
                SubscribeOptions(
                    qos=qos,
                    retainAsPublished=True,
                    retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB,
                ),
            )
            for topic_filter, qos in wanted.items()
        ]

    def _subscribe_live(self, topic_filter: str, qos: int) -> None:
        client = self._client
        if client is not None and self.is_connected:
            self._subscribed[topic_filter] = qos
            asked = self._asked({topic_filter: qos})
            subscribing = _acked(client.subscribe(asked, timeout=WAIT_FOREVER))
            task = asyncio.get_running_loop().create_task(subscribing)
            self._subscribing.add(task)  # the loop keeps only a weak reference to tasks
            task.add_done_callback(self._subscribing.discard)
            task.add_done_callback(_log_failed_subscribe)

    async def _republish_state(self, client: ReusableClient) -> None:
        now = self._clock()
        for topic, state in list(self._retained.items()):
            expiry = state.expiry_s
            if expiry is not None:
                expiry -= now - state.published_at
                if expiry <= 0:
                    continue  # stale: better no value than an old one shown as current
            props = self._publish_properties(expiry, None, None)
            await _acked(
                client.publish(
                    topic, state.payload, qos=1, retain=True, properties=props, timeout=WAIT_FOREVER
                )
            )

    # --- inbound ---------------------------------------------------------------------------

    async def _serve(self, client: ReusableClient) -> None:
        """Dispatch messages in arrival order until the connection drops (MqttError).

        aiomqtt's iterator makes a Task and an asyncio.wait per message, only to notice a
        disconnect. Here one reader task per connection takes every message from the queue and
        the disconnect is awaited once, beside it.
        """
        disconnected = client.lost
        if not self._inbox:
            async for message in client.messages:
                await self.dispatch(_to_inbound(message))
            return
        reader = asyncio.create_task(self._read(self._inbox[0]))
        try:
            await asyncio.wait((reader, disconnected), return_when=asyncio.FIRST_COMPLETED)
        finally:
            # A handler mid-publish can swallow one cancel (Python 3.11's wait_for).
            await cancel_and_wait(reader, retry_s=READER_CANCEL_RETRY_S)
        if not reader.cancelled() and (error := reader.exception()) is not None:
            raise error
        cause = disconnected.exception() if disconnected.done() else None
        raise aiomqtt.MqttError("Disconnected during message iteration") from cause

    async def _read(self, inbox: asyncio.Queue[aiomqtt.Message]) -> None:
        while True:
            await self.dispatch(_to_inbound(await inbox.get()))

    async def dispatch(self, message: Inbound) -> None:
        """Hand one message to every matching route; never lets a handler's error escape."""
        self.stats.received += 1
        for route in self.router.matching(message.topic):
            try:
                await route.handler(message)
            except PayloadError as exc:
                await self.reject(message.topic, str(exc), "invalid")
            except UnicodeDecodeError:
                await self.reject(message.topic, "payload is not UTF-8 text", "invalid")
            except Exception as exc:
                log.exception("handler for %s failed", message.topic, extra=self._log_extra)
                await self.reject(message.topic, f"{type(exc).__name__}: {exc}", "handler_error")

    # --- reports ---------------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        """Flush rate-limited rejection summaries; publish health now and then."""
        interval = min(self.settings.reject_report_interval_s, self.settings.health_interval_s)
        last_health = self._clock()
        while True:
            await asyncio.sleep(interval)
            report = self.rejections.flush(self._clock())
            if report is not None:
                log.warning(
                    "rejected %d more inputs, latest %s: %s",
                    report.suppressed,
                    report.topic,
                    report.reason,
                    extra=self._log_extra,
                )
                await self._report_rejection(
                    report.topic, report.reason, report.kind, report.suppressed
                )
            if self._clock() - last_health >= self.settings.health_interval_s:
                last_health = self._clock()
                await self._publish_health()

    async def _report_rejection(
        self, topic: str, reason: str, kind: RejectKind, suppressed: int
    ) -> None:
        report = BridgeRejected(
            component=self.component,
            topic=topic,
            reason=reason[:500],
            kind=kind,
            total=self.rejections.total,
            suppressed=suppressed,
        )
        with contextlib.suppress(NotConnectedError):
            await self.publish(self.topics.bridge_rejected(self.component), report, timeout=0)

    async def _publish_health(self) -> None:
        if not self.announce:
            return
        health = BridgeHealth(
            component=self.component,
            version=__version__,
            started=self._started,
            received=self.stats.received,
            rejected=self.rejections.total,
            reconnects=self.stats.reconnects,
        )
        with contextlib.suppress(NotConnectedError):
            await self.publish(
                self.topics.bridge_health(self.component), health, retain=True, timeout=0
            )

    def _publish_properties(
        self, expiry_s: float | None, response_topic: str | None, correlation: bytes | None
    ) -> Properties | None:
        if self.settings.protocol != "5" or (expiry_s, response_topic, correlation) == (
            None,
            None,
            None,
        ):
            return None
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        if expiry_s is not None:
            props.MessageExpiryInterval = max(1, round(expiry_s))
        if response_topic is not None:
            props.ResponseTopic = response_topic
        if correlation is not None:
            props.CorrelationData = correlation
        return props


async def _unless_lost(client: ReusableClient, setup: Coroutine[Any, Any, None]) -> None:
    """Run the setup after a connect (subscribe, birth, republish), given up if the connection
    drops meanwhile: its acknowledgements would never come, and the reconnect would wait for
    ACK_TIMEOUT_S."""
    task = asyncio.create_task(setup)
    try:
        await asyncio.wait((task, client.lost), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            await cancel_and_wait(task, retry_s=READER_CANCEL_RETRY_S)
    if task.cancelled():
        cause = client.lost.exception() if client.lost.done() else None
        raise aiomqtt.MqttError("connection lost while setting up") from cause
    task.result()


async def _acked(operation: Awaitable[T]) -> T:
    """Await a broker acknowledgement, bounded by ACK_TIMEOUT_S.

    aiomqtt bounds its waits with asyncio.wait_for, which on Python 3.11 swallows a cancellation
    that lands as the acknowledgement arrives: a component that was publishing would then never
    stop. So aiomqtt is told to wait without a bound (a plain await) and asyncio.timeout, which
    does not swallow, bounds it here.
    """
    try:
        async with asyncio.timeout(ACK_TIMEOUT_S):
            return await operation
    except TimeoutError:
        raise aiomqtt.MqttError("no acknowledgement from the broker in time") from None


def _inbox_type(
    holder: list[asyncio.Queue[aiomqtt.Message]],
) -> type[asyncio.Queue[aiomqtt.Message]]:
    """aiomqtt's `queue_type`, remembering the queue it makes so `_serve` can drain bursts."""

    class Inbox(asyncio.Queue[aiomqtt.Message]):
        def __init__(self, maxsize: int = 0) -> None:
            super().__init__(maxsize)
            holder[:] = [self]

    return Inbox


def _encode(payload: PayloadLike) -> bytes:
    if isinstance(payload, Payload):
        return payload.to_json()
    return payload.encode() if isinstance(payload, str) else payload


def _to_inbound(message: aiomqtt.Message) -> Inbound:
    props = message.properties
    payload = message.payload
    data = payload if isinstance(payload, bytes) else str(payload or "").encode()
    return Inbound(
        topic=message.topic.value,
        payload=data,
        qos=message.qos,
        retain=message.retain,
        response_topic=getattr(props, "ResponseTopic", None),
        correlation_data=getattr(props, "CorrelationData", None),
        user_properties=tuple(getattr(props, "UserProperty", ()) or ()),
    )


def _refused(code: object) -> bool:
    value = getattr(code, "value", code)
    return isinstance(value, int) and value >= 0x80


def _log_failed_subscribe(task: asyncio.Task[object]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("live subscribe failed: %s", task.exception())
