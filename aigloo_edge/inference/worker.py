"""The inference worker inside a node agent: takes requests on `nodes/<id>/infer`, runs them on
its engine (per-model concurrency, a bounded wait queue, deadlines, cancels) and streams the
replies. Jobs are counted by the agent's JobTracker, so telemetry shows the queue and sleep
drains it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from aigloo_edge.inference.engine import (
    ContextLengthError,
    Engine,
    EngineError,
    Finished,
    Generation,
    UnknownModelError,
)
from aigloo_edge.inference.replies import Replier, take_request
from aigloo_edge.mqtt import Inbound, Session
from aigloo_edge.node.jobs import DrainingError, JobTracker
from aigloo_edge.payloads import InferCancel, InferErrorCode, InferRequest
from aigloo_edge.runtime import cancel_and_wait

log = logging.getLogger(__name__)
REMEMBERED_IDS: Final = 1024
GOODBYE_S: Final = 1.0


@dataclass(eq=False)
class Job:
    request: InferRequest
    replier: Replier
    received: float
    queued: int  # how many must finish before it starts, when it was taken
    stop: threading.Event = field(default_factory=threading.Event)  # seen by the engine thread
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)  # seen while waiting
    pieces: list[str] = field(default_factory=list)
    first_piece_at: float | None = None

    @property
    def text(self) -> str:
        return "".join(self.pieces)


class Worker:
    """Serves `engine`'s models for node `node` through `session`."""

    def __init__(
        self,
        node: str,
        session: Session,
        engine: Engine,
        *,
        jobs: JobTracker,
        queue_size: int,
        per_model_concurrency: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.node = node
        self.session = session
        self.engine = engine
        self.jobs = jobs
        self.queue_size = queue_size
        self._concurrency = per_model_concurrency
        self._slots = {m: asyncio.Semaphore(per_model_concurrency) for m in engine.model_names()}
        self._clock = clock
        self._running: dict[str, Job] = {}
        # Jobs taken per model, running or waiting: counted when taken, not when they reach
        # the slot, so requests arriving together are told their true place in the queue.
        self._taken: collections.Counter[str] = collections.Counter()
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        topics = session.topics
        session.route(topics.node_infer(node), self._on_request)
        session.route_model(topics.infer_cancel(), InferCancel.from_json, self._on_cancel)

    @property
    def models(self) -> list[str]:
        return self.engine.model_names()

    async def run(self) -> None:
        """Serve until cancelled; then every job still open gets its final answer."""
        try:
            await asyncio.Event().wait()
        finally:
            # Each job answers `worker_lost` as it is cancelled; a cancel landing mid-publish
            # can be swallowed (Python 3.11), hence cancel_and_wait.
            await asyncio.gather(*(cancel_and_wait(t, retry_s=0.1) for t in list(self._tasks)))
            await self.engine.aclose()

    # --- intake ------------------------------------------------------------------------------

    async def _on_request(self, message: Inbound) -> None:
        taken = await take_request(self.session, message)
        if taken is None:
            return
        request, replier = taken
        refusal = self._refusal(request)
        if refusal is not None:
            await replier.error(*refusal)
            return
        self._remember(request.id)
        ahead = self._taken[request.model]
        self._taken[request.model] += 1
        queued = max(0, ahead - self._concurrency + 1)
        job = Job(request, replier, received=time.perf_counter(), queued=queued)
        task = asyncio.create_task(self._serve(job), name=f"infer-{request.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _refusal(self, request: InferRequest) -> tuple[InferErrorCode, str] | None:
        """Why a request cannot be taken (code, reason), or None to take it."""
        if request.id in self._seen:
            return "duplicate_id", f"request id {request.id!r} was already used on this worker"
        if request.model not in self._slots:
            return "unknown_model", (
                f"{self.node} does not serve {request.model!r}; it serves {sorted(self._slots)}"
            )
        if request.deadline is not None and request.deadline <= self._clock():
            return "deadline", "the deadline passed before the request arrived"
        if not self.jobs.accepting:
            return "busy", f"{self.node} is draining for sleep"
        waiting = sum(max(0, n - self._concurrency) for n in self._taken.values())
        if self._taken[request.model] >= self._concurrency and waiting >= self.queue_size:
            return "busy", f"{self.node}'s queue is full ({self.queue_size} waiting)"
        return None

    def _remember(self, request_id: str) -> None:
        self._seen[request_id] = None
        while len(self._seen) > REMEMBERED_IDS:
            self._seen.popitem(last=False)

    async def _on_cancel(self, _: Inbound, cancel: InferCancel) -> None:
        job = self._running.get(cancel.id)
        if job is not None:
            log.info("cancelling %s", cancel.id, extra={"node": self.node})
            job.stop.set()
            job.cancelled.set()

    # --- one job -----------------------------------------------------------------------------

    async def _serve(self, job: Job) -> None:
        request, replier = job.request, job.replier
        self._running[request.id] = job
        try:
            with self.jobs.job(request.id):
                await self._within_deadline(job)
        except DrainingError as exc:
            await replier.error("busy", str(exc))
        except asyncio.CancelledError:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(GOODBYE_S):
                    await replier.error("worker_lost", f"{self.node}'s worker is stopping")
            raise
        except Exception as exc:  # one request's failure must not take the worker down
            log.exception("request %s failed", request.id, extra={"node": self.node})
            await replier.error("internal", f"{type(exc).__name__}: {exc}")
        finally:
            job.stop.set()
            del self._running[request.id]
            self._taken[request.model] -= 1

    async def _within_deadline(self, job: Job) -> None:
        deadline = job.request.deadline
        when = (
            None
            if deadline is None
            else asyncio.get_running_loop().time() + (deadline - self._clock())
        )
        try:
            async with asyncio.timeout_at(when):
                await self._queue_then_generate(job)
        except TimeoutError:
            job.stop.set()
            await job.replier.error("deadline", "the deadline passed", text=job.text)

    async def _queue_then_generate(self, job: Job) -> None:
        model = job.request.model
        slot = self._slots[model]
        job.replier.announce(self.node, model, job.queued)
        if not await _acquire_unless(slot, job.cancelled):
            await job.replier.error("cancelled", "cancelled while queued")
            return
        try:
            await self._generate(job)
        finally:
            slot.release()

    async def _generate(self, job: Job) -> None:
        request, replier = job.request, job.replier
        stream = self.engine.stream(_generation(request), job.stop)
        try:
            async with contextlib.aclosing(stream) as events:
                async for event in events:
                    if isinstance(event, Finished):
                        await self._finish(job, event)
                        return
                    job.first_piece_at = job.first_piece_at or time.perf_counter()
                    job.pieces.append(event.text)
                    self.jobs.generated()  # a streamed piece is one generated token
                    if request.stream:
                        await replier.chunk(event.text)
        except UnknownModelError as exc:
            await replier.error("unknown_model", str(exc))
        except ContextLengthError as exc:
            await replier.error("context_length", str(exc))
        except EngineError as exc:
            await replier.error("engine", str(exc), text=job.text)

    async def _finish(self, job: Job, finished: Finished) -> None:
        counts = {
            "model": job.request.model,
            "node": self.node,
            "prompt_tokens": finished.prompt_tokens,
            "completion_tokens": finished.completion_tokens,
            "cached_tokens": finished.cached_tokens,
            "tokens_per_s": finished.tokens_per_s,
            # Time to first token as the worker saw it: queueing and model loading included.
            "ttft_s": None if job.first_piece_at is None else job.first_piece_at - job.received,
        }
        if finished.finish_reason == "cancelled":
            await job.replier.error("cancelled", "cancelled", text=job.text, **counts)
            return
        await job.replier.final(
            ok=True, text=job.text, finish_reason=finished.finish_reason, **counts
        )


async def _acquire_unless(slot: asyncio.Semaphore, cancelled: asyncio.Event) -> bool:
    """Wait for a slot; False (holding nothing) if `cancelled` is set first."""
    acquire = asyncio.ensure_future(slot.acquire())
    cancel_wait = asyncio.ensure_future(cancelled.wait())
    try:
        await asyncio.wait({acquire, cancel_wait}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        cancel_wait.cancel()
        if not acquire.done():
            acquire.cancel()
    if acquire.cancelled():
        return False
    if cancelled.is_set():
        slot.release()
        return False
    return True


def _generation(request: InferRequest) -> Generation:
    messages = None
    if request.messages is not None:
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
    return Generation(
        model=request.model,
        messages=messages,
        prompt=request.prompt,
        max_tokens=request.max_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
    )
