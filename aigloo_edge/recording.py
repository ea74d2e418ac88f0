"""Recordings of MQTT traffic: one JSON object per line (JSONL), in arrival order.

    {"t": 1764350000.25, "topic": "aigloo/power/battery", "payload": "{...}", "retain": true}

`payload` is the UTF-8 text; a payload that is not UTF-8 goes in `payload_b64` instead.
`aigloo record` writes them and `aigloo rules replay` reads them. A line that does not parse
is reported with its line number and skipped: one bad line never loses the rest.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from aigloo_edge.errors import ConfigError
from aigloo_edge.mqtt import Inbound, MqttSettings, Session
from aigloo_edge.runtime import cancel_and_wait

CONNECT_S = 10.0


@dataclass(frozen=True, slots=True)
class Recorded:
    t: float
    topic: str
    payload: bytes
    retain: bool = False


@dataclass(frozen=True, slots=True)
class BadLine:
    line: int
    reason: str


def encode_line(message: Recorded) -> str:
    record: dict[str, Any] = {"t": message.t, "topic": message.topic}
    try:
        record["payload"] = message.payload.decode("utf-8")
    except UnicodeDecodeError:
        record["payload_b64"] = base64.b64encode(message.payload).decode("ascii")
    if message.retain:
        record["retain"] = True
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def write_recording(path: Path, messages: Iterable[Recorded]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for message in messages:
            out.write(encode_line(message) + "\n")


def read_recording(path: Path) -> Iterator[Recorded | BadLine]:
    """Every message of a recording, with a BadLine for each line that does not parse."""
    try:
        handle: TextIO = path.open(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    with handle:
        for number, text in enumerate(handle, start=1):
            if text.strip():
                yield _decode_line(number, text)


def _decode_line(number: int, text: str) -> Recorded | BadLine:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        return BadLine(number, f"not JSON: {exc.msg}")
    if not isinstance(record, dict):
        return BadLine(number, "not a JSON object")
    t, topic = record.get("t"), record.get("topic")
    if isinstance(t, bool) or not isinstance(t, int | float) or not isinstance(topic, str):
        return BadLine(number, "needs a number 't' and a string 'topic'")
    try:
        payload = _payload(record)
    except ValueError as exc:
        return BadLine(number, str(exc))
    return Recorded(float(t), topic, payload, bool(record.get("retain", False)))


def _payload(record: dict[str, Any]) -> bytes:
    if isinstance(record.get("payload"), str):
        return str(record["payload"]).encode("utf-8")
    if isinstance(record.get("payload_b64"), str):
        try:
            return base64.b64decode(record["payload_b64"], validate=True)
        except binascii.Error as exc:
            raise ValueError("payload_b64 is not base64") from exc
    raise ValueError("needs a string 'payload' or 'payload_b64'")


async def record(
    settings: MqttSettings,
    path: Path,
    topic_filters: list[str] | None = None,
    *,
    count: int | None = None,
    ready: asyncio.Event | None = None,
) -> int:
    """Append every message on `topic_filters` (default: the whole base) to `path` until
    cancelled or `count` messages; returns how many were written."""
    session = Session(settings, component=f"record-{uuid.uuid4().hex[:8]}")
    written = 0
    done = asyncio.Event()

    async def write(message: Inbound) -> None:
        nonlocal written
        if count is not None and written >= count:
            return
        line = Recorded(time.time(), message.topic, message.payload, message.retain)
        out.write(encode_line(line) + "\n")
        out.flush()
        written += 1
        if count is not None and written >= count:
            done.set()

    for topic_filter in topic_filters or [session.topics.all()]:
        session.route(topic_filter, write)
    with path.open("a", encoding="utf-8") as out:
        running = asyncio.create_task(session.run())
        try:
            await session.wait_connected(CONNECT_S)
            await session.sync_subscriptions()
            if ready is not None:
                ready.set()
            await done.wait()
        finally:
            await cancel_and_wait(running)
    return written
