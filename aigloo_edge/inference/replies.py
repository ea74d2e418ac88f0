"""Request intake and the reply stream, shared by the worker and the dispatcher.

Every request that can be addressed gets exactly one final message: `Replier` numbers the
chunks and refuses a second final. A request too broken to address (no id and no response
topic) is counted and reported on the component's `bridge/<component>/rejected` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Final

from aigloo_edge.errors import NotConnectedError, PayloadError, TopicError
from aigloo_edge.mqtt import Inbound, Session
from aigloo_edge.payloads import (
    InferAccepted,
    InferChunk,
    InferError,
    InferErrorCode,
    InferFinal,
    InferRequest,
    Payload,
)
from aigloo_edge.topics import Topics, validate_id

log = logging.getLogger(__name__)
_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
UNKNOWN_ID: Final = "unknown"


@dataclass(frozen=True, slots=True)
class ReplyTo:
    """Where a request's replies go: a topic, and the MQTT v5 correlation data to echo."""

    topic: str
    correlation: bytes | None = None


def reply_to(topics: Topics, request: InferRequest, message: Inbound) -> ReplyTo:
    """The v5 response topic if given, else the payload's `reply_to`, else the default topic."""
    correlation = message.correlation_data
    if message.response_topic:
        return ReplyTo(_checked_reply_topic(topics, message.response_topic), correlation)
    if request.reply_to:
        return ReplyTo(_checked_reply_topic(topics, request.reply_to), correlation)
    return ReplyTo(topics.infer_reply(request.client, request.id), correlation)


def _checked_reply_topic(topics: Topics, topic: str) -> str:
    """Replies may only go under `<base>/infer/reply/`: the broker drops anything else silently."""
    prefix = f"{topics.base}/infer/reply/"
    if not topic.startswith(prefix) or any(ch in topic for ch in "+#\x00"):
        raise PayloadError(f"reply topic must be a topic under {prefix} without wildcards")
    return topic


async def take_request(session: Session, message: Inbound) -> tuple[InferRequest, Replier] | None:
    """Parse a request; if it is invalid, answer it with `bad_request` when it can be addressed.

    Returns None when the request was refused (and answered or reported).
    """
    try:
        request = InferRequest.from_json(message.payload)
        return request, Replier(session, request.id, reply_to(session.topics, request, message))
    except PayloadError as exc:
        await session.reject(message.topic, str(exc))
        replier = _replier_for_broken(session, message)
        if replier is not None:
            await replier.error("bad_request", f"invalid request: {exc}")
        return None


def _replier_for_broken(session: Session, message: Inbound) -> Replier | None:
    """Best effort: whatever id and reply topic a broken request still carries."""
    fields = _json_object(message.payload)
    raw_id = fields.get("id")
    request_id = raw_id if isinstance(raw_id, str) and _REQUEST_ID.fullmatch(raw_id) else None
    topics = session.topics
    for candidate in (message.response_topic, fields.get("reply_to")):
        if isinstance(candidate, str) and candidate:
            with contextlib.suppress(PayloadError):
                topic = _checked_reply_topic(topics, candidate)
                return Replier(
                    session, request_id or UNKNOWN_ID, ReplyTo(topic, message.correlation_data)
                )
    if request_id is None:
        return None
    try:
        client = validate_id("client", fields.get("client", "anon"))
    except TopicError:
        client = "anon"
    topic = topics.infer_reply(client, request_id)
    return Replier(session, request_id, ReplyTo(topic, message.correlation_data))


def _json_object(payload: bytes) -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError):  # ValueError: bad JSON, bad UTF-8, a 5000-digit int
        return {}
    return value if isinstance(value, dict) else {}


class Replier:
    """One request's reply stream: `accepted`, numbered chunks, then exactly one final."""

    def __init__(self, session: Session, request_id: str, destination: ReplyTo) -> None:
        self.session = session
        self.request_id = request_id
        self.destination = destination
        self.seq = 0
        self.done = False
        self._announcing: asyncio.Task[None] | None = None

    async def accepted(self, node: str, model: str, queued: int) -> None:
        await self._send(InferAccepted(id=self.request_id, node=node, model=model, queued=queued))

    def announce(self, node: str, model: str, queued: int) -> None:
        """Send `accepted` without waiting for the broker: work starts meanwhile, and the next
        message waits for it, so the order holds."""
        self._announcing = asyncio.create_task(self.accepted(node, model, queued))

    async def chunk(self, text: str) -> None:
        if self.done:
            return
        await self._send(InferChunk(id=self.request_id, seq=self.seq, text=text))
        self.seq += 1

    async def final(self, **fields: Any) -> None:
        """The one final message; later calls are logged and ignored."""
        if self.done:
            log.warning("second final for %s ignored", self.request_id)
            return
        self.done = True
        await self._send(InferFinal(id=self.request_id, seq=self.seq, **fields))

    async def error(self, code: InferErrorCode, message: str, **fields: Any) -> None:
        log.info("request %s: %s: %s", self.request_id, code, message)
        fields.setdefault("finish_reason", "cancelled" if code == "cancelled" else "error")
        await self.final(ok=False, error=InferError(code=code, message=message), **fields)

    async def _send(self, payload: Payload) -> None:
        if self._announcing is not None and not isinstance(payload, InferAccepted):
            announcing, self._announcing = self._announcing, None
            await announcing
        try:
            await self.session.publish(
                self.destination.topic, payload, correlation_data=self.destination.correlation
            )
        except NotConnectedError as exc:
            # The broker is gone; the client's own deadline ends its wait.
            log.warning("reply for %s not sent: %s", self.request_id, exc)
