"""The mlx engine on the real demo model: streaming, finish reasons, cancel, LRU budget."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aigloo_edge.inference.engine import (
    ContextLengthError,
    EngineError,
    Generation,
    UnknownModelError,
)
from aigloo_edge.inference.mlx_engine import MlxEngine
from tests.support.inference import engine_events

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def engine(demo_model_dir: Path) -> Iterator[MlxEngine]:
    served = MlxEngine({"smollm2": demo_model_dir}, memory_budget_bytes=2**30)
    yield served
    served.close()


async def test_streams_the_answer_then_one_finish(engine: MlxEngine) -> None:
    """Greedy chat generation streams pieces that make the answer, then stop with counts."""
    pieces, finished = await engine_events(
        engine, Generation("smollm2", messages=QUESTION, max_tokens=24)
    )
    assert "Paris" in "".join(pieces)
    assert len(pieces) > 1, "streamed, not one blob"
    assert finished.finish_reason == "stop"
    assert finished.prompt_tokens > 10
    assert 0 < finished.completion_tokens <= 24
    assert finished.ttft_s is not None
    assert finished.ttft_s > 0


async def test_max_tokens_gives_length(engine: MlxEngine) -> None:
    """Stopping at max_tokens reports `length` with exactly that many tokens."""
    _, finished = await engine_events(
        engine, Generation("smollm2", prompt="Once upon a time", max_tokens=5)
    )
    assert finished.finish_reason == "length"
    assert finished.completion_tokens == 5


async def test_cancel_stops_generation_early(engine: MlxEngine) -> None:
    """Setting the cancel event ends generation at the next token, reported `cancelled`."""
    _, finished = await engine_events(
        engine,
        Generation("smollm2", prompt="Count: one, two, three,", max_tokens=64),
        cancel_after=2,
    )
    assert finished.finish_reason == "cancelled"
    assert finished.completion_tokens < 64


async def test_unknown_model_is_an_error(engine: MlxEngine) -> None:
    """A model the engine does not serve is a clear UnknownModelError naming it."""
    with pytest.raises(UnknownModelError, match="unknown model 'gpt-9'"):
        await engine_events(engine, Generation("gpt-9", prompt="hi"))


async def test_a_prompt_over_the_context_is_refused(engine: MlxEngine) -> None:
    """A prompt longer than the model's context window (8192) is refused with both sizes."""
    long_prompt = "word " * 9000
    with pytest.raises(ContextLengthError, match=r"the prompt is \d+ tokens; smollm2 takes 8192"):
        await engine_events(engine, Generation("smollm2", prompt=long_prompt, max_tokens=4))


async def test_a_model_over_the_budget_is_refused(demo_model_dir: Path) -> None:
    """Loading is bounded by the memory budget; the error says by how much."""
    tiny = MlxEngine({"smollm2": demo_model_dir}, memory_budget_bytes=1000)
    try:
        with pytest.raises(EngineError, match="over the budget of 1000"):
            await engine_events(tiny, Generation("smollm2", prompt="hi", max_tokens=2))
    finally:
        tiny.close()


async def test_least_recently_used_model_is_evicted(demo_model_dir: Path) -> None:
    """With room for one model, loading a second evicts the first."""
    size = _weights_bytes(demo_model_dir)
    two = MlxEngine({"a": demo_model_dir, "b": demo_model_dir}, memory_budget_bytes=size + 1)
    try:
        await engine_events(two, Generation("a", prompt="hi", max_tokens=1))
        await engine_events(two, Generation("b", prompt="hi", max_tokens=1))
        assert two.loaded() == ["b"]
    finally:
        two.close()


def _weights_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("*.safetensors"))


async def test_a_repeated_prompt_reuses_the_cache_and_answers_the_same(
    demo_model_dir: Path,
) -> None:
    """The second of two identical greedy requests reuses all but one prompt token from the
    KV cache and gives the same answer; a cancelled request in between changes nothing."""
    served = MlxEngine({"smollm2": demo_model_dir}, memory_budget_bytes=2**30)
    ask = Generation("smollm2", messages=QUESTION, max_tokens=12)
    try:
        first, first_done = await engine_events(served, ask)
        await engine_events(
            served, Generation("smollm2", messages=QUESTION, max_tokens=40), cancel_after=3
        )
        second, second_done = await engine_events(served, ask)
    finally:
        served.close()
    assert first_done.cached_tokens == 0
    assert second_done.cached_tokens == second_done.prompt_tokens - 1
    assert "".join(second) == "".join(first)


async def test_a_follow_up_reuses_the_shared_history(demo_model_dir: Path) -> None:
    """A next chat turn resends the history: the shared prefix comes from the cache, and the
    answer equals that of an engine with no cache history."""
    history = [
        *QUESTION,
        {"role": "assistant", "content": "The capital of France is Paris."},
        {"role": "user", "content": "And of Italy?"},
    ]
    warm = MlxEngine({"smollm2": demo_model_dir}, memory_budget_bytes=2**30)
    cold = MlxEngine({"smollm2": demo_model_dir}, memory_budget_bytes=2**30)
    follow_up = Generation("smollm2", messages=history, max_tokens=12)
    try:
        await engine_events(warm, Generation("smollm2", messages=QUESTION, max_tokens=12))
        warm_text, warm_done = await engine_events(warm, follow_up)
        cold_text, _ = await engine_events(cold, follow_up)
    finally:
        warm.close()
        cold.close()
    assert warm_done.cached_tokens > 10
    assert "".join(warm_text) == "".join(cold_text)
