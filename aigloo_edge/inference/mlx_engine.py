"""The mlx engine: mlx-lm models loaded on demand, kept in an LRU bounded by a memory budget,
generating on one dedicated thread and streaming text pieces to the event loop.

MLX streams are per thread, so every load and every generation runs on the same single
worker thread; the event loop only ever sees queued pieces.
"""

from __future__ import annotations

import asyncio
import collections
import json
import threading
import time
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from aigloo_edge.inference.engine import (
    ContextLengthError,
    EngineError,
    Event,
    Finished,
    FinishReason,
    Generation,
    Piece,
    check_served,
)
from aigloo_edge.inference.prompt_cache import PromptCache

DEFAULT_CONTEXT: Final = 2048


class MlxEngine:
    """Serves the models in `models` (name → mlx-lm directory) within `memory_budget_bytes`."""

    name = "mlx"

    def __init__(self, models: dict[str, Path], memory_budget_bytes: int) -> None:
        self.models = models
        self.memory_budget_bytes = memory_budget_bytes
        self._loaded: collections.OrderedDict[str, _Loaded] = collections.OrderedDict()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlx")

    def model_names(self) -> list[str]:
        return sorted(self.models)

    def loaded(self) -> list[str]:
        return list(self._loaded)

    async def stream(
        self, generation: Generation, cancel: threading.Event
    ) -> AsyncGenerator[Event, None]:
        """Pieces of text as they are generated, then one Finished; `cancel` stops early."""
        check_served(generation.model, list(self.models))
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event | BaseException] = asyncio.Queue()

        def emit(item: Event | BaseException) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        self._thread.submit(self._generate, generation, cancel, emit)
        while True:
            item = _merge_ready(await queue.get(), queue)
            if isinstance(item, EngineError):
                raise item
            if isinstance(item, BaseException):
                raise EngineError(f"{generation.model}: {item}") from item
            yield item
            if isinstance(item, Finished):
                return

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)

    async def aclose(self) -> None:
        self.close()

    # --- on the mlx thread --------------------------------------------------------------------

    def _generate(self, generation: Generation, cancel: threading.Event, emit: Any) -> None:
        try:
            emit(self._run(generation, cancel, emit))
        except Exception as exc:  # reported to the caller, never lost in the thread
            emit(exc)

    def _run(self, generation: Generation, cancel: threading.Event, emit: Any) -> Finished:
        from mlx_lm.sample_utils import make_sampler  # noqa: PLC0415 - heavy; mlx thread only

        started = time.perf_counter()
        loaded = self._model(generation.model)
        prompt = _prompt_tokens(loaded.tokenizer, generation)
        room = loaded.context - len(prompt)
        if room <= 0:
            raise ContextLengthError(
                f"the prompt is {len(prompt)} tokens; {generation.model} takes {loaded.context} "
                "(prompt and answer together)"
            )
        sampler = make_sampler(temp=generation.temperature, top_p=generation.top_p)
        kv_cache, tail = loaded.prompt_cache.prepare(loaded.model, prompt)
        run = _Run(started, len(prompt), min(generation.max_tokens, room), tail, kv_cache, sampler)
        try:
            finished = self._stream(loaded, run, cancel, emit)
        except BaseException:
            loaded.prompt_cache.forget()
            raise
        loaded.prompt_cache.remember(tail + run.generated)
        return finished

    @staticmethod
    def _stream(loaded: _Loaded, run: _Run, cancel: threading.Event, emit: Any) -> Finished:
        from mlx_lm import stream_generate  # noqa: PLC0415 - heavy; mlx thread only

        response = None
        for response in stream_generate(
            loaded.model,
            loaded.tokenizer,
            run.tail,
            max_tokens=run.max_tokens,
            sampler=run.sampler,
            prompt_cache=run.kv_cache,
        ):
            run.first_at = run.first_at or time.perf_counter()
            run.generated.append(int(response.token))
            if response.text:
                emit(Piece(response.text))
            if cancel.is_set():
                return run.finished(response, "cancelled")
        if response is None:
            return Finished("stop", run.prompt_tokens, 0, None, None, run.cached)
        return run.finished(response, "length" if response.finish_reason == "length" else "stop")

    def _model(self, name: str) -> _Loaded:
        """The model loaded (evicting others if the budget needs it), most recently used."""
        if name in self._loaded:
            self._loaded.move_to_end(name)
            return self._loaded[name]
        size = _model_bytes(self.models[name])
        if size > self.memory_budget_bytes:
            raise EngineError(
                f"{name} needs {size} bytes, over the budget of {self.memory_budget_bytes}"
            )
        while self._loaded and sum(e.size for e in self._loaded.values()) + size > (
            self.memory_budget_bytes
        ):
            self._loaded.popitem(last=False)  # least recently used goes first
        from mlx_lm import load  # noqa: PLC0415

        model, tokenizer = load(str(self.models[name]))[:2]
        loaded = _Loaded(model, tokenizer, size, _context_length(self.models[name]))
        self._loaded[name] = loaded
        return loaded


@dataclass
class _Loaded:
    model: Any
    tokenizer: Any
    size: int
    context: int
    prompt_cache: PromptCache = field(default_factory=PromptCache)


@dataclass
class _Run:
    """One generation's bookkeeping on the mlx thread."""

    started: float
    prompt_tokens: int
    max_tokens: int
    tail: list[int]  # the prompt tokens the cache lacks
    kv_cache: list[Any]
    sampler: Any
    first_at: float | None = None
    generated: list[int] = field(default_factory=list)

    def finished(self, response: Any, reason: FinishReason) -> Finished:
        return Finished(
            finish_reason=reason,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=int(response.generation_tokens),
            ttft_s=None if self.first_at is None else self.first_at - self.started,
            tokens_per_s=float(response.generation_tps) or None,
            cached_tokens=self.cached,
        )

    @property
    def cached(self) -> int:
        return self.prompt_tokens - len(self.tail)


def _merge_ready(
    item: Event | BaseException, queue: asyncio.Queue[Event | BaseException]
) -> Event | BaseException:
    """Pieces that piled up while the consumer was busy (e.g. publishing) become one piece:
    a slow link then carries fewer, larger chunks instead of falling behind."""
    if not isinstance(item, Piece) or queue.empty():
        return item
    texts = [item.text]
    while not queue.empty():
        following = queue.get_nowait()
        if not isinstance(following, Piece):
            queue.put_nowait(following)  # put back: it is the last item (Finished or an error)
            break
        texts.append(following.text)
    return Piece("".join(texts))


def _prompt_tokens(tokenizer: Any, generation: Generation) -> list[int]:
    if generation.messages is not None:
        tokens = tokenizer.apply_chat_template(generation.messages, add_generation_prompt=True)
        return list(tokens)
    return list(tokenizer.encode(generation.prompt or ""))


def _context_length(directory: Path) -> int:
    """The model's context window from its config.json (`max_position_embeddings`)."""
    config = json.loads((directory / "config.json").read_text())
    return int(config.get("max_position_embeddings") or DEFAULT_CONTEXT)


def _model_bytes(directory: Path) -> int:
    """Weights on disk stand for the memory a model takes (they load as they are)."""
    return sum(path.stat().st_size for path in directory.glob("*.safetensors"))
