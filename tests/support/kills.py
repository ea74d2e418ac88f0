"""Components run as `aigloo run CONFIG` processes (to SIGKILL them), and what a test watches
while they die: request streams with their timings, finals counted per request id."""

from __future__ import annotations

import asyncio
import collections
import math
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aigloo_edge.inference.client import InferClient
from aigloo_edge.mqtt import Inbound, Session
from aigloo_edge.payloads import (
    InferAccepted,
    InferChunk,
    InferFinal,
    InferReplyMessage,
    InferRequest,
    NodeInfo,
    parse_infer_reply,
)
from tests.support.broker import RunningBroker
from tests.support.collect import Collector
from tests.support.node import node_config

AIGLOO = str(Path(sys.executable).parent / "aigloo")
KEEPALIVE_S = 5  # the smallest a machine config accepts
OFFLINE_BOUND_S = 1.5 * KEEPALIVE_S + 1.0  # a SIGKILLed component's last will, at the latest


def write_config(
    broker: RunningBroker, path: Path, node: str, components: list[str], **sections: Any
) -> Path:
    """A machine file for `aigloo run`, with the shortest keepalive a config accepts."""
    config = node_config(broker, node, components=components, **sections)
    data = config.model_dump(mode="json", exclude_defaults=True)
    data["broker"]["keepalive"] = KEEPALIVE_S
    path.write_text(yaml.safe_dump(data))
    return path


@asynccontextmanager
async def aigloo_run(config: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """`aigloo run config` as a child process, killed at the end of the block if still alive."""
    process = await asyncio.create_subprocess_exec(AIGLOO, "run", str(config))
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


def drain(collector: Collector) -> list[Inbound]:
    """Every message the collector holds now, without waiting."""
    items = []
    while not collector.queue.empty():
        items.append(collector.queue.get_nowait())
    return items


async def wait_serving(admin: Session, node: str, timeout: float) -> None:
    """Until `node`'s retained info lists models: its worker takes requests."""
    seen = Collector(admin, admin.topics.node_info(node))
    async with asyncio.timeout(timeout):
        while not NodeInfo.from_json((await seen.next(timeout)).payload).models:
            pass


@dataclass(eq=False)
class Tracked:
    """One request's replies as the client saw them, and when its final came; events to wait
    on. Times are NaN until the final comes, so a comparison with them fails."""

    request: InferRequest
    replies: list[InferReplyMessage] = field(default_factory=list)
    accepted: asyncio.Event = field(default_factory=asyncio.Event)
    chunked: asyncio.Event = field(default_factory=asyncio.Event)
    final_at: float = math.nan  # monotonic
    final_wall: float = math.nan  # Unix time, to compare with the deadline
    task: asyncio.Task[None] | None = None

    @property
    def final(self) -> InferFinal:
        """Its final (the test fails here if none came)."""
        last = self.replies[-1] if self.replies else None
        assert isinstance(last, InferFinal), f"request {self.request.id}: no final"
        return last

    @property
    def deadline(self) -> float:
        return self.request.deadline if self.request.deadline is not None else math.inf

    @property
    def chunks(self) -> list[InferChunk]:
        return [r for r in self.replies if isinstance(r, InferChunk)]

    @property
    def acceptances(self) -> list[InferAccepted]:
        return [r for r in self.replies if isinstance(r, InferAccepted)]

    async def done(self, timeout: float) -> None:
        assert self.task is not None
        await asyncio.wait_for(self.task, timeout)  # cancelled if it times out

    async def follow(self, client: InferClient) -> None:
        async for reply in client.stream(self.request):
            self.replies.append(reply)
            if isinstance(reply, InferAccepted):
                self.accepted.set()
            elif isinstance(reply, InferChunk):
                self.chunked.set()
            else:
                self.final_at, self.final_wall = time.monotonic(), time.time()


def track(client: InferClient, request: InferRequest) -> Tracked:
    """Send `request` through `client` and record its replies in the background."""
    tracked = Tracked(request)
    tracked.task = asyncio.create_task(tracked.follow(client), name=f"track-{request.id}")
    return tracked


class FinalTally:
    """Counts the finals published on a client's reply topics, per request id: straight from
    the broker, so a second final the client library would drop is counted too."""

    def __init__(self, session: Session, client: str) -> None:
        self.finals: collections.Counter[str] = collections.Counter()
        session.route(session.topics.filter("infer_reply", client=client), self._on_reply)

    async def _on_reply(self, message: Inbound) -> None:
        if isinstance(parse_infer_reply(message.payload), InferFinal):
            self.finals[message.topic.rsplit("/", 1)[-1]] += 1
