"""The openai engine: forwards generations to an OpenAI-compatible HTTP upstream (Ollama,
llama.cpp's server, `mlx_lm.server`) and streams its server-sent events back as Pieces.

The upstream's API key is read from the environment at each request and only ever goes into the
Authorization header: no message or log line built here contains it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, Final

import httpx
from httpx_sse import ServerSentEvent, SSEError, aconnect_sse

from aigloo_edge.config import UpstreamConfig
from aigloo_edge.inference.engine import (
    ContextLengthError,
    EngineError,
    Event,
    Finished,
    FinishReason,
    Generation,
    Piece,
    UnknownModelError,
    check_served,
)

log = logging.getLogger(__name__)

MESSAGE_CHARS: Final = 300
# A host that has not accepted a connection in this long is down; don't wait out timeout_s.
CONNECT_TIMEOUT_S: Final = 10.0
# How the common upstreams word "the prompt does not fit": OpenAI and vLLM ("maximum context
# length", code context_length_exceeded), llama.cpp ("exceeds the available context size").
_CONTEXT_WORDS: Final = re.compile(
    r"context[ _](length|size|window)|maximum context|exceed_context", re.IGNORECASE
)
_MODEL_NOT_FOUND: Final = re.compile(r"model_not_found|model\b.*\bnot found", re.IGNORECASE)


class OpenAIEngine:
    """Serves the upstream's models (`upstream.models`, or what its /models lists)."""

    name = "openai"

    def __init__(
        self, upstream: UpstreamConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.upstream = upstream
        self.base_url = upstream.base_url.rstrip("/")
        self._transport = transport
        self._models = list(upstream.models)
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        """Open the connection pool; ask the upstream for its models if none were configured."""
        headers = self._headers()  # a missing key variable fails here, not on the first request
        timeout = httpx.Timeout(
            self.upstream.timeout_s, connect=min(CONNECT_TIMEOUT_S, self.upstream.timeout_s)
        )
        await self.aclose()  # a second start must not leak the first pool
        self._client = httpx.AsyncClient(timeout=timeout, transport=self._transport)
        if not self._models:
            try:
                self._models = await self._discover(self._client, headers)
            except EngineError:
                await self.aclose()  # callers that never got an engine won't close it
                raise
            log.info("upstream %s serves %s", self.base_url, self._models)

    def model_names(self) -> list[str]:
        return sorted(self._models)

    async def stream(
        self, generation: Generation, cancel: threading.Event
    ) -> AsyncGenerator[Event, None]:
        """Pieces of text as the upstream sends them, then one Finished; `cancel` stops early."""
        check_served(generation.model, self._models)
        if self._client is None:
            raise EngineError("the openai engine was not started")
        chat = generation.messages is not None
        url = f"{self.base_url}/{'chat/completions' if chat else 'completions'}"
        tally = _Tally(started=time.perf_counter())
        try:
            async with aconnect_sse(
                self._client, "POST", url, json=_body(generation), headers=self._headers()
            ) as source:
                await _raise_for_status(source.response, generation.model)
                async for sse in source.aiter_sse():
                    if cancel.is_set() or tally.absorb(sse, chat, source.response.request):
                        break
                    if tally.text:
                        yield Piece(tally.text)
                        if cancel.is_set():  # the consumer often cancels on a piece: stop now
                            break
            # Leaving the block closed the response: a cancelled upstream stops generating.
        except httpx.HTTPError as exc:
            raise EngineError(f"upstream {url}: {_describe(exc)}") from exc
        except SSEError as exc:
            raise EngineError(f"upstream {url} did not stream events: {exc}") from exc
        yield tally.finished(cancel, url)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _headers(self) -> dict[str, str]:
        variable = self.upstream.api_key_env
        if variable is None:
            return {}
        key = os.environ.get(variable)
        if not key:
            raise EngineError(f"the upstream's API key variable {variable} is not set")
        return {"Authorization": f"Bearer {key}"}

    async def _discover(self, client: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
        """The model ids the upstream lists at GET {base_url}/models."""
        url = f"{self.base_url}/models"
        try:
            response = await client.get(url, headers=headers)
            await _raise_for_status(response, model=None)
            ids = [str(entry["id"]) for entry in response.json()["data"]]
        except httpx.HTTPError as exc:
            raise EngineError(f"cannot reach the upstream at {url}: {_describe(exc)}") from exc
        except (ValueError, KeyError, TypeError) as exc:  # not the OpenAI list shape
            raise EngineError(f"the upstream at {url} did not answer a model list") from exc
        if not ids:
            raise EngineError(f"the upstream at {url} serves no models; name them in 'models'")
        return ids


@dataclass(slots=True)
class _Tally:
    """What one stream has said so far: its latest text, finish reason and token counts."""

    started: float
    text: str = ""
    first_at: float | None = None
    pieces: int = 0
    reason: FinishReason | None = None
    done: bool = False
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    def absorb(self, sse: ServerSentEvent, chat: bool, request: httpx.Request) -> bool:
        """Take in one server-sent event; True once the upstream says the stream is over."""
        self.text, data = "", sse.data
        if data == "[DONE]":
            self.done = True
            return True
        if not data:  # an id- or retry-only event carries nothing for us
            return False
        chunk = _json_object(data)
        if sse.event == "error" or chunk.get("error"):
            raise _upstream_error(None, chunk, None, request)
        self._usage(chunk.get("usage"))
        choices = chunk.get("choices") or []
        if choices and isinstance(choices[0], dict):
            self._choice(choices[0], chat)
        return False

    def _choice(self, choice: dict[str, Any], chat: bool) -> None:
        if choice.get("finish_reason"):
            self.reason = "length" if choice["finish_reason"] == "length" else "stop"
        source = (choice.get("delta") or {}) if chat else choice
        self.text = str(source.get("content" if chat else "text") or "")
        if self.text:
            self.pieces += 1
            self.first_at = self.first_at or time.perf_counter()

    def _usage(self, usage: Any) -> None:
        # Upstreams send usage once, in the last chunk (OpenAI sends `null` before it).
        if isinstance(usage, dict):
            self.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            self.completion_tokens = int(usage.get("completion_tokens") or 0)

    def finished(self, cancel: threading.Event, url: str) -> Finished:
        ended = time.perf_counter()
        reason = self.reason
        if reason is None and cancel.is_set():
            reason = "cancelled"
        elif reason is None and not self.done:
            # A server that dies mid-answer may just close the connection: not a normal stop.
            raise EngineError(f"upstream {url} ended the stream before finishing the answer")
        completion = self.pieces if self.completion_tokens is None else self.completion_tokens
        seconds = None if self.first_at is None else ended - self.first_at
        return Finished(
            finish_reason=reason or "stop",
            prompt_tokens=self.prompt_tokens or 0,
            completion_tokens=completion,
            ttft_s=None if self.first_at is None else self.first_at - self.started,
            tokens_per_s=completion / seconds if seconds and completion else None,
        )


def _body(generation: Generation) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": generation.model,
        "max_tokens": generation.max_tokens,
        "temperature": generation.temperature,
        "top_p": generation.top_p,
        "stream": True,
        "stream_options": {"include_usage": True},  # token counts in the last chunk
    }
    if generation.messages is not None:
        body["messages"] = generation.messages
    else:
        body["prompt"] = generation.prompt or ""
    return body


async def _raise_for_status(response: httpx.Response, model: str | None) -> None:
    """Turn an upstream's 4xx/5xx into our error kinds, with its own words (truncated)."""
    if response.is_success:
        return
    await response.aread()
    try:
        payload: Any = response.json()
    except ValueError:
        payload = None
    raise _upstream_error(response.status_code, payload, model, response.request, response.text)


def _upstream_error(
    status: int | None, payload: Any, model: str | None, request: httpx.Request, text: str = ""
) -> EngineError:
    message, code = _error_fields(payload, text, _bearer(request))
    url = request.url
    said = (
        f"upstream {url} answered {status}: {message}" if status else f"upstream {url}: {message}"
    )
    words = f"{message} {code}"
    if (status is None or 400 <= status < 500) and _CONTEXT_WORDS.search(words):
        return ContextLengthError(said)
    if model is not None and (status == 404 or _MODEL_NOT_FOUND.search(words)):
        return UnknownModelError(f"{model}: {said}")
    return EngineError(said)


def _error_fields(payload: Any, text: str, secret: str | None) -> tuple[str, str]:
    """(message, code) from `{"error": {"message", "code"|"type"}}`, `{"error": "..."}` or text."""
    error = payload.get("error", payload) if isinstance(payload, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message") or error.get("detail") or json.dumps(error))
        code = f"{error.get('code') or ''} {error.get('type') or ''}"
    else:
        message, code = str(error) if error is not None else text.strip(), ""
    if secret:  # some upstreams quote the key they refused
        message = message.replace(secret, "***")
    message = message or "(no message)"
    if len(message) > MESSAGE_CHARS:
        message = message[:MESSAGE_CHARS] + "…"
    return message, code


def _bearer(request: httpx.Request) -> str | None:
    """The key this request carried, so that error messages can leave it out."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    return (key.strip() or None) if scheme.lower() == "bearer" else None


def _json_object(data: str) -> dict[str, Any]:
    try:
        chunk = json.loads(data)
    except ValueError as exc:
        raise EngineError(f"upstream sent an event that is not JSON: {data[:80]!r}") from exc
    if not isinstance(chunk, dict):
        raise EngineError(f"upstream sent an event that is not an object: {data[:80]!r}")
    return chunk


def _describe(exc: httpx.HTTPError) -> str:
    # Timeouts often stringify empty; the class name then says what happened.
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
