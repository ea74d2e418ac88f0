"""The mlx engine: mlx-lm models loaded on demand, kept in an LRU bounded by a memory budget,
generating on one dedicated thread and streaming text pieces to the event loop.

MLX streams are per thread, so every load and every generation runs on the same single
worker thread; the event loop only ever sees queued pieces.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aigloo_edge.errors import AiglooError


class EngineError(AiglooError):
    """A model could not be loaded or run."""


@dataclass(frozen=True, slots=True)
class Generation:
    """What to generate: chat `messages` (role/content dicts) or a raw `prompt`."""

    model: str
    messages: list[dict[str, str]] | None = None
    prompt: str | None = None
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0


@dataclass(frozen=True, slots=True)
class Piece:
    text: str


@dataclass(frozen=True, slots=True)
class Finished:
    finish_reason: Literal["stop", "length", "cancelled"]
    prompt_tokens: int
    completion_tokens: int
    ttft_s: float | None
    tokens_per_s: float | None


Event = Piece | Finished


class MlxEngine:
    """Serves the models in `models` (name → mlx-lm directory) within `memory_budget_bytes`."""

    def __init__(self, models: dict[str, Path], memory_budget_bytes: int) -> None:
        self.models = models
        self.memory_budget_bytes = memory_budget_bytes
        self._loaded: collections.OrderedDict[str, tuple[Any, Any, int]] = collections.OrderedDict()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlx")

    def loaded(self) -> list[str]:
        return list(self._loaded)

    async def stream(self, generation: Generation, cancel: threading.Event) -> AsyncIterator[Event]:
        """Pieces of text as they are generated, then one Finished; `cancel` stops early."""
        if generation.model not in self.models:
            raise EngineError(f"unknown model {generation.model!r}; serving {sorted(self.models)}")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event | BaseException] = asyncio.Queue()

        def emit(item: Event | BaseException) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        self._thread.submit(self._generate, generation, cancel, emit)
        while True:
            item = await queue.get()
            if isinstance(item, BaseException):
                raise EngineError(f"{generation.model}: {item}") from item
            yield item
            if isinstance(item, Finished):
                return

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)

    # --- on the mlx thread --------------------------------------------------------------------

    def _generate(self, generation: Generation, cancel: threading.Event, emit: Any) -> None:
        try:
            emit(self._run(generation, cancel, emit))
        except Exception as exc:  # reported to the caller, never lost in the thread
            emit(exc)

    def _run(self, generation: Generation, cancel: threading.Event, emit: Any) -> Finished:
        from mlx_lm import stream_generate  # noqa: PLC0415 - heavy; only on the mlx thread
        from mlx_lm.sample_utils import make_sampler  # noqa: PLC0415

        model, tokenizer = self._model(generation.model)
        prompt = _prompt(tokenizer, generation)
        sampler = make_sampler(temp=generation.temperature, top_p=generation.top_p)
        started, first_at, response = time.perf_counter(), None, None
        for response in stream_generate(
            model, tokenizer, prompt, max_tokens=generation.max_tokens, sampler=sampler
        ):
            first_at = first_at or time.perf_counter()
            if response.text:
                emit(Piece(response.text))
            if cancel.is_set():
                return _finished(response, "cancelled", started, first_at)
        if response is None:
            return Finished("stop", 0, 0, None, None)
        reason: Literal["stop", "length"] = (
            "length" if response.finish_reason == "length" else "stop"
        )
        return _finished(response, reason, started, first_at)

    def _model(self, name: str) -> tuple[Any, Any]:
        if name in self._loaded:
            self._loaded.move_to_end(name)
            model, tokenizer, _ = self._loaded[name]
            return model, tokenizer
        size = _model_bytes(self.models[name])
        if size > self.memory_budget_bytes:
            raise EngineError(
                f"{name} needs {size} bytes, over the budget of {self.memory_budget_bytes}"
            )
        while self._loaded and sum(s for *_, s in self._loaded.values()) + size > (
            self.memory_budget_bytes
        ):
            self._loaded.popitem(last=False)  # least recently used goes first
        from mlx_lm import load  # noqa: PLC0415

        loaded = load(str(self.models[name]))
        model, tokenizer = loaded[0], loaded[1]
        self._loaded[name] = (model, tokenizer, size)
        return model, tokenizer


def _prompt(tokenizer: Any, generation: Generation) -> Any:
    if generation.messages is not None:
        return tokenizer.apply_chat_template(generation.messages, add_generation_prompt=True)
    return generation.prompt or ""


def _model_bytes(directory: Path) -> int:
    """Weights on disk stand for the memory a model takes (they load as they are)."""
    return sum(path.stat().st_size for path in directory.glob("*.safetensors"))


def _finished(
    response: Any,
    reason: Literal["stop", "length", "cancelled"],
    started: float,
    first_at: float | None,
) -> Finished:
    return Finished(
        finish_reason=reason,
        prompt_tokens=int(response.prompt_tokens),
        completion_tokens=int(response.generation_tokens),
        ttft_s=None if first_at is None else first_at - started,
        tokens_per_s=float(response.generation_tps) or None,
    )
