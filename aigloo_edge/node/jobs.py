"""Running jobs on a node, so it can drain them (stop taking new ones, let the rest finish)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator

from aigloo_edge.errors import AiglooError


class DrainingError(AiglooError):
    """A job was offered while the node is draining for sleep."""


class JobTracker:
    """Counts running jobs; `drain` refuses new ones and waits for the running ones. It also
    counts the tokens they generate, for the telemetry's tokens per second."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._running: set[str] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.accepting = True
        self._clock = clock
        self._tokens = 0
        self._counted_since = clock()

    def generated(self, tokens: int = 1) -> None:
        self._tokens += tokens

    def tokens_per_s(self) -> float:
        """Tokens generated per second since the last call (0 while idle)."""
        now = self._clock()
        elapsed, tokens = now - self._counted_since, self._tokens
        self._tokens, self._counted_since = 0, now
        return tokens / elapsed if elapsed > 0 else 0.0

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
