"""`aigloo infer`: send one prompt to the cluster and stream the answer to the terminal."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from aigloo_edge.errors import AiglooError
from aigloo_edge.inference.client import InferClient, new_request_id
from aigloo_edge.inference.directory import ModelDirectory
from aigloo_edge.mqtt import MqttSettings, Session
from aigloo_edge.payloads import ChatMessage, InferAccepted, InferChunk, InferFinal, InferRequest
from aigloo_edge.runtime import cancel_and_wait

# What the answer is waiting for ("queued on studio ..."); None once text flows.
Waiting = Callable[[str | None], None]

CONNECT_S = 10.0
RETAINED_S = 0.5  # retained `info` arrives right after subscribing; this bounds the wait
CANCEL_GRACE_S = 5.0


class AskError(AiglooError):
    """The cluster answered with an error (its code and reason)."""


@dataclass(frozen=True, slots=True)
class Question:
    prompt: str
    model: str | None = None
    node: str | None = None
    system: str | None = None
    max_tokens: int = 512
    temperature: float = 0.0
    timeout_s: float = 300.0


async def ask(
    settings: MqttSettings,
    question: Question,
    out: TextIO = sys.stdout,
    waiting: Waiting | None = None,
) -> InferFinal:
    """Stream the answer to `out`; return the final (raise AskError if it is an error).
    `waiting` hears what the answer waits for until its first text (a progress display)."""
    session = Session(settings, component=f"cli-{new_request_id()[:8]}", announce=False)
    directory = ModelDirectory(session)
    client = InferClient(session, "cli")
    running = asyncio.create_task(session.run())
    try:
        await session.wait_connected(CONNECT_S)
        await session.sync_subscriptions()
        model = question.model or await _default_model(directory)
        return await _stream_answer(client, _request(question, model), out, waiting)
    finally:
        await cancel_and_wait(running)


async def _default_model(directory: ModelDirectory) -> str:
    await asyncio.sleep(RETAINED_S)
    models = directory.models()
    if not models:
        raise AskError("no online node serves a model; start a worker or name one with --model")
    return models[0]


def _request(question: Question, model: str) -> InferRequest:
    messages = [ChatMessage(role="user", content=question.prompt)]
    if question.system:
        messages.insert(0, ChatMessage(role="system", content=question.system))
    return InferRequest(
        id=new_request_id(),
        model=model,
        messages=messages,
        node=question.node,
        max_tokens=question.max_tokens,
        temperature=question.temperature,
        deadline=time.time() + question.timeout_s,
    )


async def _stream_answer(
    client: InferClient, request: InferRequest, out: TextIO, waiting: Waiting | None
) -> InferFinal:
    final: InferFinal | None = None
    tell = waiting or (lambda _: None)
    tell(f"asking for {request.model}")
    try:
        async for reply in client.stream(request):
            if isinstance(reply, InferAccepted):
                tell(_accepted(reply))
            elif isinstance(reply, InferChunk):
                tell(None)
                out.write(reply.text)
                out.flush()
            elif isinstance(reply, InferFinal):
                tell(None)
                final = reply
    except asyncio.CancelledError:  # Ctrl-C: stop the worker too, then give up
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CANCEL_GRACE_S):
                await client.cancel(request.id)
        raise
    assert final is not None  # the stream ends with its final
    if final.seq == 0:  # nothing was streamed (e.g. an error with the text so far)
        out.write(final.text)
    out.write("\n")
    if final.error is not None:
        raise AskError(f"{final.error.code}: {final.error.message}")
    return final


def _accepted(accepted: InferAccepted) -> str:
    ahead = f", {accepted.queued} ahead" if accepted.queued else ""
    return f"{accepted.model} on {accepted.node}{ahead}: loading if needed, reading the prompt"


def summary(final: InferFinal) -> str:
    """One line of figures under the answer."""
    parts = [f"{final.model} on {final.node}", f"{final.completion_tokens} tokens"]
    if final.ttft_s is not None:
        parts.append(f"first token {final.ttft_s * 1000:.0f} ms")
    if final.tokens_per_s is not None:
        parts.append(f"{final.tokens_per_s:.1f} tok/s")
    parts.append(f"finish {final.finish_reason}")
    return " · ".join(parts)
