"""The client side of inference over MQTT: send a request, iterate its reply stream.

Used by the gateway, `aigloo infer` and the benchmarks. Replies come on the client's own
subtree `<base>/infer/reply/<client>/+`, one route for every request in flight.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Final

from aigloo_edge.errors import PayloadError
from aigloo_edge.mqtt import Inbound, Session
from aigloo_edge.payloads import (
    InferCancel,
    InferChunk,
    InferError,
    InferFinal,
    InferReplyMessage,
    InferRequest,
    parse_infer_reply,
)

log = logging.getLogger(__name__)

# The dispatcher answers a request by its deadline; past it by this much, nobody will (the
# dispatcher or the worker died): the client gives the request its final answer itself.
DEADLINE_GRACE_S: Final = 2.0


def new_request_id() -> str:
    return uuid.uuid4().hex


class InferClient:
    """Sends requests as `client` (an id) through `session` and streams back their replies."""

    def __init__(self, session: Session, client: str) -> None:
        self.session = session
        self.client = client
        self.topics = session.topics
        self._streams: dict[str, asyncio.Queue[InferReplyMessage]] = {}
        self._subscribed = False
        session.route(self.topics.filter("infer_reply", client=client), self._on_reply)

    def reply_topic(self, request_id: str) -> str:
        return self.topics.infer_reply(self.client, request_id)

    async def stream(
        self, request: InferRequest, *, to_node: str | None = None
    ) -> AsyncIterator[InferReplyMessage]:
        """Publish `request` (to the dispatcher, or straight to a node's worker) and yield its
        accepted/chunk messages and finally its one InferFinal.

        The request's `client` and `reply_to` are set here. The dispatcher and workers answer
        by the deadline at the latest; if nothing has come `DEADLINE_GRACE_S` after it (they
        died), the stream ends with a `deadline` error final of its own. Without a deadline the
        caller bounds the wait.
        """
        if request.id in self._streams:
            raise ValueError(f"request id {request.id!r} is already in flight on this client")
        request = request.model_copy(
            update={"client": self.client, "reply_to": self.reply_topic(request.id)}
        )
        queue: asyncio.Queue[InferReplyMessage] = asyncio.Queue()
        self._streams[request.id] = queue
        topic = self.topics.node_infer(to_node) if to_node else self.topics.infer_request()
        try:
            if not self._subscribed:  # replies must not arrive before the subscription does
                await self.session.sync_subscriptions()
                self._subscribed = True
            await self.session.publish(topic, request)
            pieces: list[str] = []
            while True:
                reply = await _next_reply(queue, request, pieces)
                yield reply
                if isinstance(reply, InferChunk):
                    pieces.append(reply.text)
                elif isinstance(reply, InferFinal):
                    return
        finally:
            del self._streams[request.id]

    async def cancel(self, request_id: str) -> None:
        await self.session.publish(self.topics.infer_cancel(), InferCancel(id=request_id))

    async def _on_reply(self, message: Inbound) -> None:
        request_id = message.topic.rsplit("/", 1)[-1]
        queue = self._streams.get(request_id)
        if queue is None:
            log.debug("reply for a request no longer awaited: %s", request_id)
            return
        try:
            queue.put_nowait(parse_infer_reply(message.payload))
        except PayloadError as exc:
            await self.session.reject(message.topic, str(exc))


async def _next_reply(
    queue: asyncio.Queue[InferReplyMessage], request: InferRequest, pieces: list[str]
) -> InferReplyMessage:
    if request.deadline is None:
        return await queue.get()
    left = request.deadline + DEADLINE_GRACE_S - time.time()
    try:
        return await asyncio.wait_for(queue.get(), max(left, 0.0))
    except TimeoutError:
        log.warning("no answer to request %s by its deadline: ending it here", request.id)
        return InferFinal(
            id=request.id,
            seq=len(pieces),
            ok=False,
            text="".join(pieces),
            finish_reason="error",
            error=InferError(
                code="deadline",
                message="no answer by the deadline: the dispatcher or the worker is gone",
            ),
        )
