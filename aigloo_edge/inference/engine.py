"""The one interface every inference engine offers (mlx-lm in process, an OpenAI-compatible
upstream over HTTP), and what flows through it: a Generation in, text Pieces then one Finished out.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Literal, Protocol

from aigloo_edge.errors import AiglooError


class EngineError(AiglooError):
    """A model could not be loaded or run (the engine's fault, not the request's)."""


class UnknownModelError(EngineError):
    """The engine does not serve the requested model."""


def check_served(model: str, served: list[str]) -> None:
    """Raise UnknownModelError, naming what is served, unless `model` is among `served`."""
    if model not in served:
        raise UnknownModelError(f"unknown model {model!r}; this engine serves {sorted(served)}")


class ContextLengthError(EngineError):
    """The prompt does not fit the model's context window."""


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


FinishReason = Literal["stop", "length", "cancelled"]


@dataclass(frozen=True, slots=True)
class Finished:
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    ttft_s: float | None
    tokens_per_s: float | None
    cached_tokens: int = 0  # prompt tokens reused from an earlier request's cache


Event = Piece | Finished


class Engine(Protocol):
    """Streams generations for the models it serves."""

    name: str

    def model_names(self) -> list[str]:
        """The models this engine can serve (loaded or not)."""
        ...

    def stream(
        self, generation: Generation, cancel: threading.Event
    ) -> AsyncGenerator[Event, None]:
        """Pieces of text as they come, then exactly one Finished; `cancel` stops early.

        Raises UnknownModelError, ContextLengthError or EngineError before or while streaming.
        """
        ...

    async def aclose(self) -> None:
        """Release the engine's threads, connections and models."""
        ...
