"""Reusing a model's KV cache across requests that share a prompt prefix.

A chat grows turn by turn and every request resends the whole history; a repeated system prompt
is the same. Prefill dominates time to first token on a busy or small machine, so the tokens
already in the cache are kept and only the new tail is computed. Runs on the mlx thread only.
"""

from __future__ import annotations

from typing import Any


class PromptCache:
    """One model's KV cache and the tokens it holds."""

    def __init__(self) -> None:
        self._cache: list[Any] | None = None
        self._tokens: list[int] = []

    def prepare(self, model: Any, prompt: list[int]) -> tuple[list[Any], list[int]]:
        """The cache to generate with and the prompt tokens it still lacks."""
        from mlx_lm.models.cache import (  # noqa: PLC0415 - mlx only on the mlx thread
            can_trim_prompt_cache,
            make_prompt_cache,
            trim_prompt_cache,
        )

        # At least one prompt token must be fed: generation starts from its logits.
        keep = min(_common_prefix(self._tokens, prompt), len(prompt) - 1)
        if self._cache is None or keep <= 0 or not can_trim_prompt_cache(self._cache):
            self._cache, self._tokens = make_prompt_cache(model), []
            return self._cache, prompt
        trim_prompt_cache(self._cache, len(self._tokens) - keep)
        self._tokens = self._tokens[:keep]
        return self._cache, prompt[keep:]

    def remember(self, fed: list[int]) -> None:
        """After a generation: the tokens now in the cache (prompt and answer, as far as fed)."""
        from mlx_lm.models.cache import trim_prompt_cache  # noqa: PLC0415

        if self._cache is None:
            return
        known = self._tokens + fed
        held = int(self._cache[0].offset)
        if held > len(known):  # generation computes one token ahead; drop what we never saw
            trim_prompt_cache(self._cache, held - len(known))
            held = len(known)
        self._tokens = known[:held]

    def forget(self) -> None:
        """After a failure the cache's content is unknown: start afresh next time."""
        self._cache, self._tokens = None, []

    @property
    def size(self) -> int:
        return len(self._tokens)


def _common_prefix(a: list[int], b: list[int]) -> int:
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count
