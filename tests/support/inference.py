"""Running inference workers on the demo model against a test broker, and reading replies."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from aigloo_edge.app import run_machine
from aigloo_edge.inference.client import InferClient
from aigloo_edge.inference.engine import Engine, Finished, Generation, Piece
from aigloo_edge.payloads import InferChunk, InferFinal, InferReplyMessage, InferRequest, NodeInfo
from aigloo_edge.runtime import cancel_and_wait
from tests.support.broker import RunningBroker
from tests.support.collect import Collector
from tests.support.node import machine_running, node_config

MODEL = "smollm2"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
LOAD_S = 60.0  # the first request on a 2-core CPU also loads the model


def inference_section(model_dir: Path, **overrides: Any) -> dict[str, Any]:
    return {"models": {MODEL: str(model_dir)}, **overrides}


@contextlib.asynccontextmanager
async def worker_running(
    broker: RunningBroker, model_dir: Path, node: str = "studio", **inference: Any
) -> AsyncIterator[None]:
    """A node agent with its inference worker, until the block ends; waits for its `info`."""
    config = node_config(
        broker,
        node,
        components=["agent", "inference"],
        inference=inference_section(model_dir, **inference),
    )
    task = asyncio.create_task(run_machine(config))
    try:
        async with broker.session("admin", component=f"wait-{node}") as admin:
            seen = Collector(admin, broker.topics.node_info(node))
            while not NodeInfo.from_json((await seen.next(LOAD_S)).payload).models:
                pass
        yield
    finally:
        await cancel_and_wait(task)


def serving_info(node: str, models: list[str]) -> NodeInfo:
    """The retained info of a node that serves `models` (for tests that play a worker)."""
    return NodeInfo(
        node=node,
        role="studio",
        hostname=node,
        hardware="test",
        os="Darwin",
        os_version="15",
        version="0",
        cpu_cores=1,
        memory_bytes=1,
        models=models,
    )


def ask(request_id: str, **fields: Any) -> InferRequest:
    fields.setdefault("messages", QUESTION)
    return InferRequest(id=request_id, model=fields.pop("model", MODEL), **fields)


async def collect(
    client: InferClient, request: InferRequest, *, to_node: str | None = None
) -> tuple[list[InferReplyMessage], InferFinal]:
    """Every reply to `request`, and its final."""
    replies: list[InferReplyMessage] = []
    async with asyncio.timeout(LOAD_S):
        async for reply in client.stream(request, to_node=to_node):
            replies.append(reply)
    final = replies[-1]
    assert isinstance(final, InferFinal)
    return replies, final


def chunks(replies: list[InferReplyMessage]) -> list[InferChunk]:
    return [r for r in replies if isinstance(r, InferChunk)]


@contextlib.asynccontextmanager
async def dispatcher_running(broker: RunningBroker, **section: Any) -> AsyncIterator[None]:
    """A dispatcher (as the Mini runs it) until the block ends; waits until it subscribed."""
    section.setdefault("accept_timeout_s", 10.0)  # generous: a loaded CI machine is slow
    instance = section.get("instance", "dispatcher")
    config = node_config(broker, "mini", components=["dispatcher"], dispatcher=section)
    async with machine_running(broker, config, instance):
        yield


@contextlib.asynccontextmanager
async def gateway_running(broker: RunningBroker, port: int, **section: Any) -> AsyncIterator[str]:
    """The OpenAI gateway on 127.0.0.1:`port` until the block ends; yields its /v1 URL."""
    config = node_config(broker, "mini", components=["gateway"], gateway={"port": port, **section})
    task = asyncio.create_task(run_machine(config))
    url = f"http://127.0.0.1:{port}"
    try:
        async with asyncio.timeout(10), httpx.AsyncClient() as http:
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{url}/health")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
        yield f"{url}/v1"
    finally:
        await cancel_and_wait(task)


async def engine_events(
    engine: Engine, generation: Generation, cancel_after: int | None = None
) -> tuple[list[str], Finished]:
    """An engine's pieces and its Finished; `cancel_after` pieces sets the cancel event."""
    cancel = threading.Event()
    pieces: list[str] = []
    async for event in engine.stream(generation, cancel):
        if isinstance(event, Piece):
            pieces.append(event.text)
            if cancel_after is not None and len(pieces) >= cancel_after:
                cancel.set()
        else:
            return pieces, event
    raise AssertionError("no Finished event")
