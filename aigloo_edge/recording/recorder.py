"""`aigloo record`: every message on some topic filters, appended to a (rotating) recording."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING, Final

from aigloo_edge.errors import ConfigError
from aigloo_edge.mqtt import Inbound, MqttSettings, Session
from aigloo_edge.recording.jsonl import Recorded, encode_line
from aigloo_edge.recording.rotate import DEFAULT_KEEP, RotatingWriter
from aigloo_edge.runtime import cancel_and_wait

if TYPE_CHECKING:
    from pathlib import Path

CONNECT_S: Final = 10.0
# QoS 1, not 2: paho hands a QoS 2 message over only after a second round trip, so it could be
# recorded after a message that was published later. A QoS 2 message is recorded as QoS 1.
SUBSCRIBE_QOS: Final = 1


async def record(
    settings: MqttSettings,
    path: Path,
    topic_filters: list[str] | None = None,
    *,
    count: int | None = None,
    ready: asyncio.Event | None = None,
    max_bytes: int | None = None,
    keep: int = DEFAULT_KEEP,
) -> int:
    """Append every message on `topic_filters` (default: the whole base) to `path` until
    cancelled or `count` messages; returns how many were written.

    With `max_bytes` the file rotates (FILE.1 … FILE.`keep`, see `rotate`). The recorder's own
    availability and health are not recorded.
    """
    # Nothing of its own retained, and the retain flag kept as published: a replay restores
    # retained state and tells it from events.
    session = Session(
        settings,
        component=f"record-{uuid.uuid4().hex[:8]}",
        announce=False,
        retain_as_published=True,
    )
    try:
        with RotatingWriter(path, max_bytes=max_bytes, keep=keep) as out:
            sink = _Sink(out, count, skip=_own_topics(session))
            await _run(session, sink, topic_filters or [session.topics.all()], ready)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write: {exc.strerror}") from exc
    return sink.written


async def _run(
    session: Session, sink: _Sink, topic_filters: list[str], ready: asyncio.Event | None
) -> None:
    for topic_filter in topic_filters:
        session.route(topic_filter, sink.write, qos=SUBSCRIBE_QOS)
    running = asyncio.create_task(session.run())
    try:
        # The routes exist before run(): the session subscribes them before it counts as
        # connected. No sync_subscriptions(): over MQTT 3.1.1 the broker would send every
        # retained message again, and they would be recorded twice.
        await session.wait_connected(CONNECT_S)
        if ready is not None:
            ready.set()
        await sink.done.wait()
    finally:
        await cancel_and_wait(running)
    if sink.failed is not None:
        raise sink.failed


class _Sink:
    """Writes each message as a line until `count` (if any) have been written."""

    def __init__(self, out: RotatingWriter, count: int | None, *, skip: set[str]) -> None:
        self.out = out
        self.count = count
        self.skip = skip
        self.written = 0
        self.failed: OSError | None = None
        self.done = asyncio.Event()

    async def write(self, message: Inbound) -> None:
        if self.done.is_set() or message.topic in self.skip:
            return
        line = Recorded(time.time(), message.topic, message.payload, message.retain, message.qos)
        try:
            self.out.write_line(encode_line(line))
        except OSError as exc:  # e.g. a full disk: stop, rather than lose lines quietly
            self.failed = exc
            self.done.set()
            return
        self.written += 1
        if self.count is not None and self.written >= self.count:
            self.done.set()


def _own_topics(session: Session) -> set[str]:
    topics, component = session.topics, session.component
    return {
        session.availability_topic,
        topics.bridge_health(component),
        topics.bridge_rejected(component),
    }
