"""Running jobs on a node, so it can drain them (stop taking new ones, let the rest finish)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from aigloo_edge.errors import AiglooError


class DrainingError(AiglooError):
    """A job was offered while the node is draining for sleep."""


class JobTracker:
    """Counts running jobs; `drain` refuses new ones and waits for the running ones."""

    def __init__(self) -> None:
        self._running: set[str] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.accepting = True

    @property
    def running(self) -> int:
        return len(self._running)

    @contextlib.contextmanager
    def job(self, job_id: str) -> Iterator[None]:
        if not self.accepting:
            raise DrainingError(f"not taking job {job_id}: the node is draining for sleep")
        self._running.add(job_id)
        self._idle.clear()
        try:
            yield
        finally:
            self._running.discard(job_id)
            if not self._running:
                self._idle.set()

    async def drain(self, timeout: float) -> bool:
        """Stop accepting jobs; True if every running job finished within `timeout`."""
        self.accepting = False
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    def resume(self) -> None:
        self.accepting = True
