"""Collecting messages a Session receives, for assertions without sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aigloo_edge.mqtt import Inbound, Session

WAIT_S = 5.0


class Collector:
    """Routes `topic_filter` on `session` into a queue."""

    def __init__(self, session: Session, topic_filter: str) -> None:
        self.queue: asyncio.Queue[Inbound] = asyncio.Queue()
        session.route(topic_filter, self._put)

    async def _put(self, message: Inbound) -> None:
        self.queue.put_nowait(message)

    async def next(self, timeout: float = WAIT_S) -> Inbound:
        async with asyncio.timeout(timeout):
            return await self.queue.get()

    async def until(self, topic: str, timeout: float = WAIT_S) -> list[Inbound]:
        """Every message up to and including the first on `topic` (a sentinel)."""
        seen: list[Inbound] = []
        async with asyncio.timeout(timeout):
            while True:
                message = await self.queue.get()
                seen.append(message)
                if message.topic == topic:
                    return seen

    async def value_on(self, topic: str, timeout: float = WAIT_S) -> bytes:
        """The payload of the next message on `topic`, skipping others."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.queue.get()
                if message.topic == topic:
                    return message.payload


async def wait_until(condition: Callable[[], bool], timeout: float = WAIT_S) -> None:
    """Poll `condition` (state owned by another task) until true or the timeout expires."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - the state has no event to wait on
            await asyncio.sleep(0.01)
