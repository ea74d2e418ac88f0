"""The OpenAI-compatible HTTP gateway: `/v1/chat/completions`, `/v1/completions`,
`/v1/models` and `/health`, in front of the dispatcher over MQTT.

Each HTTP request becomes one InferRequest published by an InferClient; its reply stream is
answered as Server-Sent Events or one JSON body. Every request gets exactly one answer: a
request whose replies do not end in time is cancelled upstream and answered 504, and so is
(best effort) one whose HTTP client goes away. A streamed response starts only with the first
chunk, so a request that fails before it (unknown model, no worker) still gets a real HTTP
error status. API keys and Authorization headers are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Final

from aiohttp import web

from aigloo_edge.config import GatewayConfig
from aigloo_edge.errors import ConfigError, NotConnectedError
from aigloo_edge.inference.client import InferClient
from aigloo_edge.inference.openai_api import (
    ApiError,
    JsonObject,
    Kind,
    ResponseMeta,
    StreamEncoder,
    auth_error,
    final_error,
    parse_body,
    response_body,
    timeout_error,
    to_infer_request,
    unavailable_error,
)
from aigloo_edge.payloads import InferChunk, InferFinal, InferReplyMessage, InferRequest

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# How much longer than the request's own deadline we wait: the dispatcher answers `deadline`
# itself at the deadline, and that answer is better than ours.
REPLY_GRACE_S: Final = 5.0
# A stop's budget: ending the requests in flight, then aiohttp's shutdown (its two phases),
# then sending their cancels; together under runtime.CANCEL_RETRY_S (3 s), so a stop is not
# cut short by a second cancel.
END_REQUESTS_S: Final = 1.0
SHUTDOWN_TIMEOUT_S: Final = 0.5
STOP_CANCELS_S: Final = 0.5
RECANCEL_S: Final = 0.1
CANCEL_PUBLISH_S: Final = 10.0
MAX_BODY_BYTES: Final = 8 * 1024 * 1024
DONE_EVENT: Final = b"data: [DONE]\n\n"
# What the request log line reports beyond method, path and status.
MODEL: Final = web.RequestKey("model", str)
ERROR: Final = web.RequestKey("error", str)


def load_api_keys(path: Path) -> frozenset[str]:
    """The keys in `path`: one per line, blank lines and `#` comments ignored."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the API keys file: {exc}") from exc
    keys = frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not _is_comment(line)
    )
    if not keys:
        raise ConfigError(f"{path}: no API keys in the file (one key per line)")
    if path.stat().st_mode & 0o077:
        log.warning("API keys file %s is readable by others; chmod 600 it", path)
    return keys


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def bearer_token(header: str | None) -> str | None:
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def key_matches(token: str | None, keys: frozenset[str]) -> bool:
    """Constant-time comparison against every key, so timing reveals nothing."""
    if token is None:
        return False
    given = token.encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, key.encode())
    return matched


class EventStream:
    """An SSE response opened on its first event, so that an early failure can still be
    answered with an HTTP error status instead."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response: web.StreamResponse | None = None

    @property
    def started(self) -> bool:
        return self.response is not None

    async def send(self, event: JsonObject) -> None:
        response = await self._open()
        await response.write(b"data: " + json.dumps(event).encode() + b"\n\n")

    async def finish(self) -> web.StreamResponse:
        response = await self._open()
        await response.write(DONE_EVENT)
        return response

    async def _open(self) -> web.StreamResponse:
        if self.response is None:
            response = web.StreamResponse(
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
            )
            response.content_type = "text/event-stream"
            await response.prepare(self.request)
            self.response = response
        return self.response


class Gateway:
    """Serves the OpenAI API over `client`; `models()` and `ready()` describe the cluster."""

    def __init__(
        self,
        config: GatewayConfig,
        client: InferClient,
        models: Callable[[], list[str]],
        ready: Callable[[], bool],
    ) -> None:
        self.config = config
        self.client = client
        self.models = models
        self.ready = ready
        self.reply_grace_s = REPLY_GRACE_S
        self.listening = asyncio.Event()
        self._keys: frozenset[str] | None = None
        self._created = int(time.time())
        self._cancels: set[asyncio.Task[None]] = set()
        self._requests: set[asyncio.Task[object]] = set()

    @property
    def wait_s(self) -> float:
        return self.config.request_timeout_s + self.reply_grace_s

    # --- serving ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve on config.host:port until cancelled; then stop listening, end the requests
        in flight (each cancelled upstream) and close the connections."""
        runner = web.AppRunner(
            self.build_app(),
            handler_cancellation=True,  # a client gone mid-request cancels its handler
            access_log=None,  # we log one line per request ourselves, without headers
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        )
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port)
        try:
            await site.start()
            log.info("OpenAI gateway on http://%s:%d", self.config.host, self.config.port)
            self.listening.set()
            await asyncio.Event().wait()
        finally:
            self.listening.clear()
            await site.stop()
            # aiohttp's own shutdown would wait for handlers that wait for a model.
            await self._end_requests()
            await runner.cleanup()
            await self._flush_cancels()

    def build_app(self) -> web.Application:
        """The aiohttp application; reads the API keys file (ConfigError if unusable)."""
        if self.config.api_keys_file is not None:
            self._keys = load_api_keys(self.config.api_keys_file)
        app = web.Application(
            middlewares=[self._track_request, self._openai_errors, self._check_key],
            client_max_size=MAX_BODY_BYTES,
        )
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_get("/v1/models", self._list_models)
        app.router.add_get("/health", self._health)
        return app

    # --- middlewares -----------------------------------------------------------------------

    @web.middleware
    async def _track_request(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Log one line per request, and know its task so that a stop can end it."""
        began = time.monotonic()
        task = asyncio.current_task()
        if task is not None:
            self._requests.add(task)
        status = 499  # the client went away before an answer (nginx's convention)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            status = exc.status
            raise
        else:
            status = response.status
            return response
        finally:
            self._requests.discard(task)
            log.info(
                "%s %s model=%s status=%d error=%s %.3fs",
                request.method,
                request.path,
                request.get(MODEL, "-"),
                status,
                request.get(ERROR, "-"),
                time.monotonic() - began,
            )

    @web.middleware
    async def _openai_errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Under /v1 every failure is answered in OpenAI's error shape."""
        if not request.path.startswith("/v1/"):
            return await handler(request)
        try:
            return await handler(request)
        except ApiError as exc:
            return self._error_response(request, exc)
        except web.HTTPException as exc:
            message = f"{exc.reason} ({request.method} {request.path})"
            return self._error_response(request, ApiError(exc.status, message))
        except NotConnectedError:
            return self._error_response(request, unavailable_error())
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            internal = ApiError(500, "internal error", error_type="server_error", code="internal")
            return self._error_response(request, internal)

    @web.middleware
    async def _check_key(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._keys is not None and request.path.startswith("/v1/"):
            token = bearer_token(request.headers.get("Authorization"))
            if not key_matches(token, self._keys):
                raise auth_error()
        return await handler(request)

    @staticmethod
    def _error_response(request: web.Request, error: ApiError) -> web.Response:
        request[ERROR] = error.label
        return web.json_response(error.body(), status=error.status)

    # --- routes ----------------------------------------------------------------------------

    async def _health(self, _: web.Request) -> web.Response:
        if not self.ready():
            body = {"status": "unavailable", "reason": "not connected to the broker"}
            return web.json_response(body, status=503)
        return web.json_response({"status": "ok", "models": len(self.models())})

    async def _list_models(self, _: web.Request) -> web.Response:
        data = [
            {"id": name, "object": "model", "created": self._created, "owned_by": "aigloo"}
            for name in self.models()
        ]
        return web.json_response({"object": "list", "data": data})

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._infer(request, "chat")

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._infer(request, "completion")

    async def _infer(self, request: web.Request, kind: Kind) -> web.StreamResponse:
        body = parse_body(kind, await request.read())
        request[MODEL] = body.model
        infer = to_infer_request(
            body,
            timeout_s=self.config.request_timeout_s,
            default_max_tokens=self.config.default_max_tokens,
        )
        meta = ResponseMeta.of(kind, infer)
        if body.stream:
            encoder = StreamEncoder(meta, include_usage=body.include_usage)
            return await self._stream(request, infer, encoder)
        return await self._respond(infer, meta)

    async def _respond(self, infer: InferRequest, meta: ResponseMeta) -> web.Response:
        try:
            final = await self._await_final(infer)
        except TimeoutError:
            raise timeout_error(self.wait_s) from None
        error = final_error(final)
        if error is not None:
            raise error
        return web.json_response(response_body(meta, final))

    async def _await_final(self, infer: InferRequest) -> InferFinal:
        async with self._replies(infer) as replies:
            async for message in replies:
                if isinstance(message, InferFinal):
                    return message
        raise ApiError(500, "the reply stream ended without a final", error_type="server_error")

    async def _stream(
        self, request: web.Request, infer: InferRequest, encoder: StreamEncoder
    ) -> web.StreamResponse:
        events = EventStream(request)
        try:
            async with self._replies(infer) as replies:
                async for message in replies:
                    await self._relay(events, encoder, message)
        except TimeoutError:
            error = timeout_error(self.wait_s)
            if not events.started:
                raise error from None
            request[ERROR] = error.label
            await events.send(error.body())
        except ConnectionResetError:  # the client left; upstream is already cancelled
            request[ERROR] = "client_gone"
            return events.response or web.Response(status=499, reason="Client Closed Request")
        return await events.finish()

    @staticmethod
    async def _relay(
        events: EventStream, encoder: StreamEncoder, message: InferReplyMessage
    ) -> None:
        """Forward one reply; a failure before any chunk is raised as an HTTP error."""
        if isinstance(message, InferChunk):
            event = encoder.chunk(message)
            if event is not None:
                await events.send(event)
        elif isinstance(message, InferFinal):
            error = final_error(message)
            if error is not None:
                if not events.started:
                    raise error
                events.request[ERROR] = error.label
            for closing in encoder.end(message):
                await events.send(closing)

    # --- the reply stream ------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _replies(
        self, infer: InferRequest
    ) -> AsyncIterator[AsyncIterator[InferReplyMessage]]:
        """The request's reply stream, bounded by `wait_s` (TimeoutError past it).

        Unless the final arrived, leaving early (timeout, client gone) cancels the request
        upstream so a worker does not keep generating for nobody.
        """
        stream = self.client.stream(infer)
        try:
            async with asyncio.timeout(self.wait_s):
                yield stream
        except (TimeoutError, asyncio.CancelledError, ConnectionResetError):
            self._cancel_upstream(infer.id)
            raise
        finally:
            if isinstance(stream, AsyncGenerator):
                await stream.aclose()

    def _cancel_upstream(self, request_id: str) -> None:
        """Send the cancel from its own task: the handler may itself be being cancelled."""
        task = asyncio.create_task(self._send_cancel(request_id))
        self._cancels.add(task)
        task.add_done_callback(self._cancels.discard)

    async def _send_cancel(self, request_id: str) -> None:
        try:
            async with asyncio.timeout(CANCEL_PUBLISH_S):
                await self.client.cancel(request_id)
        except (TimeoutError, NotConnectedError) as exc:
            log.warning("could not cancel request %s upstream: %s", request_id, exc)

    async def _end_requests(self) -> None:
        """Cancel the requests in flight (each then cancels upstream) and let them end.

        Cancelled again until they end: Python 3.11's wait_for (aiomqtt's publish) can
        swallow a cancellation that lands as the publish completes.
        """
        pending = set(self._requests)
        deadline = time.monotonic() + END_REQUESTS_S
        while pending and time.monotonic() < deadline:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=RECANCEL_S)

    async def _flush_cancels(self) -> None:
        """Give cancels of the requests cut short by a stop a moment to go out."""
        if self._cancels:
            await asyncio.wait(set(self._cancels), timeout=STOP_CANCELS_S)
        for task in list(self._cancels):
            task.cancel()
