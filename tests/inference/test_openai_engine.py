"""The openai engine against a real `mlx_lm.server` serving the demo model, and against a tiny
real HTTP server for the answers mlx_lm.server never gives (auth refused, context overflow).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from aigloo_edge.config import UpstreamConfig
from aigloo_edge.inference.engine import (
    ContextLengthError,
    EngineError,
    Generation,
    UnknownModelError,
)
from aigloo_edge.inference.openai_engine import OpenAIEngine
from tests.support.inference import engine_events

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
STORY = [{"role": "user", "content": "Write a long story about a dragon and a knight."}]
SERVER_START_S = 60.0
KEY_VARIABLE = "AIGLOO_TEST_UPSTREAM_KEY"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class MlxServer:
    base_url: str
    model: str  # what its /v1/models lists for a local model: the resolved directory path


def _wait_until_up(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mlx_lm.server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base_url}/models", timeout=2).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    pytest.fail(f"mlx_lm.server did not answer within {SERVER_START_S} s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def mlx_server(
    demo_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MlxServer]:
    """`mlx_lm.server` on a free port serving the demo model; stopped after the module."""
    model = str(demo_model_dir.resolve())
    work = tmp_path_factory.mktemp("mlx-server")
    # /v1/models also lists the Hugging Face cache, and answers an empty body if it is missing.
    (work / "hf-cache").mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(work / "hf-cache")}
    port, log = _free_port(), work / "server.log"
    command = [sys.executable, "-m", "mlx_lm", "server", "--model", model]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_until_up(process, base_url, log)
        yield MlxServer(base_url, model)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
async def engine(mlx_server: MlxServer) -> AsyncIterator[OpenAIEngine]:
    served = OpenAIEngine(UpstreamConfig(base_url=mlx_server.base_url, models=[mlx_server.model]))
    await served.start()
    yield served
    await served.aclose()


async def test_chat_streams_the_answer_then_one_finish(
    engine: OpenAIEngine, mlx_server: MlxServer
) -> None:
    """Greedy chat streams pieces that make the answer, then stop with the upstream's counts."""
    pieces, finished = await engine_events(
        engine, Generation(mlx_server.model, messages=QUESTION, max_tokens=24)
    )
    assert "Paris" in "".join(pieces)
    assert len(pieces) > 1, "streamed, not one blob"
    assert finished.finish_reason == "stop"
    assert finished.prompt_tokens > 10
    assert 0 < finished.completion_tokens <= 24
    assert finished.ttft_s is not None
    assert finished.ttft_s > 0
    assert finished.tokens_per_s is not None


async def test_models_are_discovered_and_raw_prompts_hit_max_tokens(
    mlx_server: MlxServer,
) -> None:
    """With no models configured, /models names them; a raw prompt via /completions stops at
    max_tokens with finish "length" and the upstream's exact count."""
    served = OpenAIEngine(UpstreamConfig(base_url=mlx_server.base_url))
    await served.start()
    try:
        assert served.model_names() == [mlx_server.model]
        pieces, finished = await engine_events(
            served, Generation(mlx_server.model, prompt="Once upon a time", max_tokens=5)
        )
    finally:
        await served.aclose()
    assert "".join(pieces).strip()
    assert finished.finish_reason == "length"
    assert finished.completion_tokens == 5
    assert finished.prompt_tokens > 0


async def test_cancel_stops_early_and_the_upstream_serves_on(
    engine: OpenAIEngine, mlx_server: MlxServer
) -> None:
    """Setting `cancel` after two pieces ends the stream with "cancelled" well short of
    max_tokens; the upstream, left by the closed connection, answers the next request."""
    pieces, finished = await engine_events(
        engine, Generation(mlx_server.model, messages=STORY, max_tokens=64), cancel_after=2
    )
    assert len(pieces) == 2
    assert finished.finish_reason == "cancelled"
    assert finished.completion_tokens < 64
    _, after = await engine_events(engine, Generation(mlx_server.model, prompt="Hi", max_tokens=2))
    assert after.finish_reason == "length"


async def test_model_the_upstream_lacks_is_unknown(mlx_server: MlxServer) -> None:
    """A configured model the upstream cannot load comes back as its 404: UnknownModelError."""
    served = OpenAIEngine(UpstreamConfig(base_url=mlx_server.base_url, models=["no-such-model"]))
    await served.start()
    try:
        with pytest.raises(UnknownModelError, match=r"no-such-model.*404"):
            await engine_events(served, Generation("no-such-model", prompt="Hi", max_tokens=2))
    finally:
        await served.aclose()


async def test_unknown_model_fails_before_any_request() -> None:
    """A model outside the served list raises UnknownModelError naming both, without HTTP: the
    upstream here is a dead port, so any request would have failed as a connect error."""
    upstream = UpstreamConfig(base_url=f"http://127.0.0.1:{_free_port()}/v1", models=["smollm2"])
    served = OpenAIEngine(upstream)
    await served.start()
    try:
        with pytest.raises(UnknownModelError, match=r"'other'.*\['smollm2'\]"):
            await engine_events(served, Generation("other", prompt="Hi"))
    finally:
        await served.aclose()


async def test_unreachable_upstream_fails_start_naming_the_url() -> None:
    """Discovery against a port nobody listens on raises EngineError with the URL it tried."""
    base_url = f"http://127.0.0.1:{_free_port()}/v1"
    served = OpenAIEngine(UpstreamConfig(base_url=base_url))
    try:
        with pytest.raises(EngineError, match=re.escape(f"{base_url}/models")) as raised:
            await served.start()
    finally:
        await served.aclose()
    assert not isinstance(raised.value, UnknownModelError)


# --- a tiny real upstream for the answers mlx_lm.server does not give --------------------------


@dataclass
class TinyUpstream:
    """Answers every request with `status` and `body` (JSON); remembers what it was sent."""

    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)
    authorizations: list[str | None] = field(default_factory=list)
    base_url: str = ""


def _handler(upstream: TinyUpstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._answer()

        def _answer(self) -> None:
            upstream.authorizations.append(self.headers.get("Authorization"))
            data = json.dumps(upstream.body).encode()
            self.send_response(upstream.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    return Handler


@pytest.fixture
def tiny() -> Iterator[TinyUpstream]:
    upstream = TinyUpstream()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(upstream))
    upstream.base_url = f"http://127.0.0.1:{server.server_port}/v1"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield upstream
    server.shutdown()
    server.server_close()
    thread.join()


async def test_api_key_is_sent_but_never_shown(
    tiny: TinyUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key from `api_key_env` goes out as a Bearer header; a refusal becomes EngineError with
    the status and the upstream's message, the key masked even where the upstream quotes it."""
    key = "sk-test-0123456789abcdef"
    monkeypatch.setenv(KEY_VARIABLE, key)
    tiny.status = 401
    tiny.body = {"error": {"message": f"Incorrect API key provided: {key}", "code": "bad_key"}}
    upstream = UpstreamConfig(base_url=tiny.base_url, api_key_env=KEY_VARIABLE, models=["m"])
    served = OpenAIEngine(upstream)
    await served.start()
    try:
        with pytest.raises(EngineError) as raised:
            await engine_events(served, Generation("m", messages=QUESTION))
    finally:
        await served.aclose()
    assert tiny.authorizations == [f"Bearer {key}"]
    message = str(raised.value)
    assert "401" in message
    assert "Incorrect API key provided" in message
    assert key not in message
    assert not isinstance(raised.value, UnknownModelError | ContextLengthError)


async def test_missing_key_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """An `api_key_env` that is not set fails start with the variable's name."""
    monkeypatch.delenv(KEY_VARIABLE, raising=False)
    upstream = UpstreamConfig(
        base_url="http://127.0.0.1:9/v1", api_key_env=KEY_VARIABLE, models=["m"]
    )
    with pytest.raises(EngineError, match=re.escape(KEY_VARIABLE)):
        await OpenAIEngine(upstream).start()


async def test_context_overflow_is_a_context_length_error(tiny: TinyUpstream) -> None:
    """llama.cpp's 400 for a prompt over the context window becomes ContextLengthError."""
    tiny.status = 400
    tiny.body = {
        "error": {
            "code": 400,
            "message": "the request exceeds the available context size, try increasing it",
            "type": "exceed_context_size_error",
        }
    }
    served = OpenAIEngine(UpstreamConfig(base_url=tiny.base_url, models=["m"]))
    await served.start()
    try:
        with pytest.raises(ContextLengthError, match=r"400.*exceeds the available context"):
            await engine_events(served, Generation("m", prompt="long " * 10))
    finally:
        await served.aclose()
