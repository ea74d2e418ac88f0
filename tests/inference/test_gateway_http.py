"""The OpenAI HTTP gateway over a real broker: keys, health, models, errors, timeouts, SSE.

The gateway runs on a free port with a real InferClient on a `gateway` session and no
dispatcher, so requests are never answered: what is tested here happens before or without an
answer. Answers through the real dispatcher and worker are in test_gateway_openai.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from aigloo_edge.config import GatewayConfig
from aigloo_edge.errors import ConfigError
from aigloo_edge.inference.client import InferClient
from aigloo_edge.inference.gateway import Gateway, load_api_keys
from aigloo_edge.mqtt import Session
from aigloo_edge.payloads import (
    InferCancel,
    InferRequest,
)
from aigloo_edge.runtime import cancel_and_wait
from tests.support.broker import RunningBroker, free_port
from tests.support.collect import WAIT_S, Collector

KEY = "sk-test-0123456789"
CHAT = {"model": "smollm", "messages": [{"role": "user", "content": "hi"}]}


@dataclass
class Running:
    url: str
    gateway: Gateway
    session: Session


@contextlib.asynccontextmanager
async def running_gateway(
    broker: RunningBroker,
    tmp_path: Path,
    *,
    keys: bool = True,
    models: list[str] | None = None,
    ready: bool = True,
    timeout_s: float = 600.0,
) -> AsyncIterator[Running]:
    keys_file = None
    if keys:
        keys_file = tmp_path / "api-keys"
        keys_file.write_text(f"# gateway keys\n\n{KEY}\n")
        keys_file.chmod(0o600)
    config = GatewayConfig(port=free_port(), api_keys_file=keys_file, request_timeout_s=timeout_s)
    async with broker.session("gateway", component="gateway") as session:
        client = InferClient(session, "gateway")
        await session.sync_subscriptions()
        gateway = Gateway(config, client, lambda: list(models or []), lambda: ready)
        task = asyncio.create_task(gateway.run())
        try:
            async with asyncio.timeout(WAIT_S):
                await gateway.listening.wait()
            yield Running(f"http://127.0.0.1:{config.port}", gateway, session)
        finally:
            await cancel_and_wait(task)


@contextlib.asynccontextmanager
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    timeout = aiohttp.ClientTimeout(total=WAIT_S * 2)
    async with aiohttp.ClientSession(timeout=timeout) as client:
        yield client


async def assert_nothing_published(running: Running, watcher: Collector) -> None:
    """The gateway's session publishes a sentinel last: if it is the first thing the watcher
    sees, the gateway published nothing before it (one connection keeps the order)."""
    await running.session.publish(running.session.topics.infer_cancel(), InferCancel(id="mark"))
    seen = await watcher.until(running.session.topics.infer_cancel())
    assert [m.payload for m in seen[:-1]] == []


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- keys, health, models -------------------------------------------------------------------


async def test_missing_or_wrong_key_is_401_and_publishes_nothing(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """Without a valid bearer key every /v1 route is 401 `invalid_api_key`; no request goes out."""
    async with (
        broker.session("dispatcher", component="dispatcher") as observer,
        running_gateway(broker, tmp_path) as running,
        http() as client,
    ):
        watcher = Collector(observer, observer.topics.tree("infer"))
        await observer.sync_subscriptions()
        for headers in ({}, auth("sk-wrong"), {"Authorization": f"Basic {KEY}"}):
            for method, path in (("POST", "/v1/chat/completions"), ("GET", "/v1/models")):
                async with client.request(
                    method, running.url + path, json=CHAT, headers=headers
                ) as response:
                    assert response.status == 401
                    error = (await response.json())["error"]
                    assert error["code"] == "invalid_api_key"
                    assert error["type"] == "invalid_request_error"
        await assert_nothing_published(running, watcher)


async def test_health_needs_no_key_and_counts_models(broker: RunningBroker, tmp_path: Path) -> None:
    """/health answers 200 with the model count when ready, without an API key."""
    async with (
        running_gateway(broker, tmp_path, models=["a", "b"]) as running,
        http() as client,
        client.get(running.url + "/health") as response,
    ):
        assert response.status == 200
        assert await response.json() == {"status": "ok", "models": 2}


async def test_health_is_503_when_not_ready(broker: RunningBroker, tmp_path: Path) -> None:
    """/health is 503 `unavailable` while the gateway is not connected to the broker."""
    async with (
        running_gateway(broker, tmp_path, ready=False) as running,
        http() as client,
        client.get(running.url + "/health") as response,
    ):
        assert response.status == 503
        assert await response.json() == {
            "status": "unavailable",
            "reason": "not connected to the broker",
        }


async def test_models_lists_what_models_returns(broker: RunningBroker, tmp_path: Path) -> None:
    """/v1/models is an OpenAI list of the names `models()` gives, owned by aigloo."""
    async with (
        running_gateway(broker, tmp_path, models=["smollm", "qwen"]) as running,
        http() as client,
        client.get(running.url + "/v1/models", headers=auth()) as response,
    ):
        assert response.status == 200
        body = await response.json()
    assert body["object"] == "list"
    assert [model["id"] for model in body["data"]] == ["smollm", "qwen"]
    for model in body["data"]:
        assert model["object"] == "model"
        assert model["owned_by"] == "aigloo"
        assert isinstance(model["created"], int)


async def test_no_keys_file_means_no_key_needed(broker: RunningBroker, tmp_path: Path) -> None:
    """Without `api_keys_file` the /v1 routes are open."""
    async with (
        running_gateway(broker, tmp_path, keys=False, models=["smollm"]) as running,
        http() as client,
        client.get(running.url + "/v1/models") as response,
    ):
        assert response.status == 200


def test_keys_file_skips_comments_and_blanks(tmp_path: Path) -> None:
    """Keys are the non-blank lines that are not `#` comments, stripped."""
    path = tmp_path / "keys"
    path.write_text("# ops\n\n  sk-one  \n#sk-not\nsk-two\n")
    assert load_api_keys(path) == {"sk-one", "sk-two"}


@pytest.mark.parametrize("content", [None, "", "# only a comment\n\n"])
def test_missing_or_empty_keys_file_is_a_config_error(tmp_path: Path, content: str | None) -> None:
    """A keys file that is missing or holds no key is a ConfigError naming the path."""
    path = tmp_path / "keys"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=str(path)):
        load_api_keys(path)


# --- bad requests ---------------------------------------------------------------------------


async def test_malformed_body_is_an_openai_400(broker: RunningBroker, tmp_path: Path) -> None:
    """A body that is not valid JSON, or misses fields, is a 400 OpenAI error; nothing goes out."""
    async with (
        broker.session("dispatcher", component="dispatcher") as observer,
        running_gateway(broker, tmp_path) as running,
        http() as client,
    ):
        watcher = Collector(observer, observer.topics.tree("infer"))
        await observer.sync_subscriptions()
        url = running.url + "/v1/chat/completions"
        async with client.post(url, data=b"{nope", headers=auth()) as response:
            assert response.status == 400
            error = (await response.json())["error"]
            assert error["type"] == "invalid_request_error"
            assert error["message"].startswith("body: Invalid JSON")
        async with client.post(url, json={"model": "m"}, headers=auth()) as response:
            assert response.status == 400
            assert "messages: Field required" in (await response.json())["error"]["message"]
        await assert_nothing_published(running, watcher)


async def test_unknown_v1_path_is_an_openai_404(broker: RunningBroker, tmp_path: Path) -> None:
    """An unknown /v1 route answers 404 in OpenAI's error shape."""
    async with (
        running_gateway(broker, tmp_path) as running,
        http() as client,
        client.post(running.url + "/v1/embeddings", json={}, headers=auth()) as response,
    ):
        assert response.status == 404
        assert "error" in await response.json()


# --- timeouts and disconnects (no one answers) ----------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_unanswered_request_is_504_and_cancelled_upstream(
    broker: RunningBroker, tmp_path: Path, stream: bool
) -> None:
    """With no reply by timeout + grace, the client gets a 504 and the request is cancelled."""
    async with (
        broker.session("dispatcher", component="dispatcher") as observer,
        running_gateway(broker, tmp_path, timeout_s=0.2) as running,
        http() as client,
    ):
        running.gateway.reply_grace_s = 0.3
        requests = Collector(observer, observer.topics.infer_request())
        cancels = Collector(observer, observer.topics.infer_cancel())
        await observer.sync_subscriptions()
        url = running.url + "/v1/chat/completions"
        async with client.post(url, json=CHAT | {"stream": stream}, headers=auth()) as response:
            assert response.status == 504
            assert (await response.json())["error"]["type"] == "timeout_error"
        request = InferRequest.from_json((await requests.next()).payload)
        assert InferCancel.from_json((await cancels.next()).payload).id == request.id


async def test_client_gone_cancels_the_request(broker: RunningBroker, tmp_path: Path) -> None:
    """When the HTTP client disconnects mid-request, the gateway publishes its cancel."""
    async with (
        broker.session("dispatcher", component="dispatcher") as observer,
        running_gateway(broker, tmp_path) as running,
        http() as client,
    ):
        requests = Collector(observer, observer.topics.infer_request())
        cancels = Collector(observer, observer.topics.infer_cancel())
        await observer.sync_subscriptions()
        body = CHAT | {"stream": True}
        url = running.url + "/v1/chat/completions"
        post = asyncio.create_task(client.post(url, json=body, headers=auth()))
        request = InferRequest.from_json((await requests.next()).payload)
        await cancel_and_wait(post)
        assert InferCancel.from_json((await cancels.next()).payload).id == request.id


async def test_stop_cancels_requests_in_flight_and_closes_the_port(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """Cancelling run() cancels the requests still waiting upstream and stops listening."""
    async with (
        broker.session("dispatcher", component="dispatcher") as observer,
        broker.session("gateway", component="gateway") as session,
        http() as client,
    ):
        requests = Collector(observer, observer.topics.infer_request())
        cancels = Collector(observer, observer.topics.infer_cancel())
        await observer.sync_subscriptions()
        config = GatewayConfig(port=free_port())
        gateway = Gateway(config, InferClient(session, "gateway"), list, lambda: True)
        serving = asyncio.create_task(gateway.run())
        async with asyncio.timeout(WAIT_S):
            await gateway.listening.wait()
        url = f"http://127.0.0.1:{config.port}"
        post = asyncio.create_task(client.post(url + "/v1/chat/completions", json=CHAT))
        request = InferRequest.from_json((await requests.next()).payload)
        await cancel_and_wait(serving)
        assert InferCancel.from_json((await cancels.next()).payload).id == request.id
        with pytest.raises(aiohttp.ClientConnectionError):
            await post
        with pytest.raises(aiohttp.ClientConnectionError):
            await client.get(url + "/health")
