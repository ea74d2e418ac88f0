"""The recording format: one JSON object per line (JSONL), in arrival order.

    {"t":1764350000.25,"topic":"aigloo/power/battery","payload":"{...}","qos":1,"retain":true}

- `t`: Unix seconds when the recorder received the message.
- `payload`: the payload as UTF-8 text; a payload that is not UTF-8 goes in `payload_b64`.
- `qos`: the QoS the message arrived with (0 or 1: the recorder subscribes at QoS 1; a replay
  also takes 2). Lines without it (older recordings) mean 1.
- `retain`: present and true for a retained message (lines without it: not retained).
- `expiry_s`: an MQTT v5 message expiry (s) to replay with; the recorder does not write it yet
  (the session does not pass it on).

A line that does not parse is reported (file, line number, why) and skipped: one bad line never
loses the rest.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO, TypeGuard

from aigloo_edge.errors import ConfigError

DEFAULT_QOS: Final = 1  # what every component publishes with, so what older lines mean
QOS_LEVELS: Final = (0, 1, 2)


@dataclass(frozen=True, slots=True)
class Recorded:
    t: float
    topic: str
    payload: bytes
    retain: bool = False
    qos: int = DEFAULT_QOS
    expiry_s: float | None = None


@dataclass(frozen=True, slots=True)
class BadLine:
    line: int
    reason: str
    path: Path | None = None

    def describe(self) -> str:
        """`FILE:LINE: reason` (or `line N: reason` when the file is unknown)."""
        where = f"{self.path}:{self.line}" if self.path is not None else f"line {self.line}"
        return f"{where}: {self.reason}"


def encode_line(message: Recorded) -> str:
    """One line of a recording (without its newline); JSON escapes keep it on one line."""
    record: dict[str, Any] = {"t": message.t, "topic": message.topic}
    try:
        record["payload"] = message.payload.decode("utf-8")
    except UnicodeDecodeError:
        record["payload_b64"] = base64.b64encode(message.payload).decode("ascii")
    record["qos"] = message.qos
    if message.retain:
        record["retain"] = True
    if message.expiry_s is not None:
        record["expiry_s"] = message.expiry_s
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
                yield _decode_line(path, number, text)


def read_recordings(paths: Iterable[Path]) -> Iterator[Recorded | BadLine]:
    """Several recordings as one, in the order given (oldest first, e.g. FILE.2 FILE.1 FILE)."""
    for path in paths:
        yield from read_recording(path)


def _decode_line(path: Path, number: int, text: str) -> Recorded | BadLine:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        return BadLine(number, f"not JSON: {exc.msg}", path)
    if not isinstance(record, dict):
        return BadLine(number, "not a JSON object", path)
    try:
        return _recorded(record)
    except ValueError as exc:
        return BadLine(number, str(exc), path)


def _recorded(record: dict[str, Any]) -> Recorded:
    t, topic = record.get("t"), record.get("topic")
    if not _is_number(t) or not isinstance(topic, str):
        raise ValueError("needs a number 't' and a string 'topic'")
    return Recorded(
        float(t),
        topic,
        _payload(record),
        retain=bool(record.get("retain", False)),
        qos=_qos(record),
        expiry_s=_expiry(record),
    )


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _payload(record: dict[str, Any]) -> bytes:
    if isinstance(record.get("payload"), str):
        return str(record["payload"]).encode("utf-8")
    if isinstance(record.get("payload_b64"), str):
        try:
            return base64.b64decode(record["payload_b64"], validate=True)
        except binascii.Error as exc:
            raise ValueError("payload_b64 is not base64") from exc
    raise ValueError("needs a string 'payload' or 'payload_b64'")


def _qos(record: dict[str, Any]) -> int:
    qos = record.get("qos", DEFAULT_QOS)
    if not _is_number(qos) or qos not in QOS_LEVELS:
        raise ValueError(f"'qos' must be 0, 1 or 2, not {qos!r}")
    return int(qos)


def _expiry(record: dict[str, Any]) -> float | None:
    expiry = record.get("expiry_s")
    if expiry is None:
        return None
    if not _is_number(expiry) or expiry < 0:
        raise ValueError(f"'expiry_s' must be a number of seconds >= 0, not {expiry!r}")
    return float(expiry)
