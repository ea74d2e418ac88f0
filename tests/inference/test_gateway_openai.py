"""The whole path with the official `openai` client: gateway → dispatcher → worker (demo model)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from aigloo_edge.broker.files import write_private
from tests.support.broker import RunningBroker, free_port
from tests.support.inference import (
    MODEL,
    dispatcher_running,
    gateway_running,
    worker_running,
)

KEY = "sk-aigloo-test-key"
QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is the capital of France?"}
]


@pytest.fixture
async def api(
    broker: RunningBroker, demo_model_dir: Path, tmp_path: Path
) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official client pointed at a gateway that needs KEY, in front of the cluster."""
    keys = tmp_path / "api-keys"
    write_private(keys, f"# gateway keys\n{KEY}\n")
    async with (
        worker_running(broker, demo_model_dir),
        dispatcher_running(broker),
        gateway_running(broker, free_port(), api_keys_file=str(keys)) as url,
        openai.AsyncOpenAI(base_url=url, api_key=KEY, max_retries=0) as client,
    ):
        yield client


async def test_chat_completion_answers_with_usage(api: openai.AsyncOpenAI) -> None:
    """A plain chat completion: the answer, `stop`, and token usage."""
    reply = await api.chat.completions.create(model=MODEL, messages=QUESTION, temperature=0)
    choice = reply.choices[0]
    assert "Paris" in (choice.message.content or "")
    assert choice.message.role == "assistant"
    assert choice.finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.completion_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


async def test_chat_completion_streams_deltas_then_usage(api: openai.AsyncOpenAI) -> None:
    """With stream=True the answer arrives as several deltas, then finish_reason and usage."""
    stream = await api.chat.completions.create(
        model=MODEL,
        messages=QUESTION,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    deltas, reasons, usage = [], [], None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            deltas.append(choice.delta.content or "")
            reasons.append(choice.finish_reason)
    assert "Paris" in "".join(deltas)
    assert len([d for d in deltas if d]) > 1
    assert reasons[-1] == "stop"
    assert usage is not None
    assert usage.completion_tokens > 0


async def test_legacy_completion_stops_at_max_tokens(api: openai.AsyncOpenAI) -> None:
    """/v1/completions with a raw prompt and max_tokens=5 ends with `length`."""
    reply = await api.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=5)
    assert reply.choices[0].finish_reason == "length"
    assert reply.choices[0].text
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 5


async def test_models_lists_what_the_cluster_serves(api: openai.AsyncOpenAI) -> None:
    """/v1/models lists the models of the online workers."""
    models = [model.id async for model in api.models.list()]
    assert models == [MODEL]


async def test_a_wrong_key_is_refused(api: openai.AsyncOpenAI) -> None:
    """A client with another key gets 401 (AuthenticationError)."""
    intruder = api.with_options(api_key="sk-wrong")
    with pytest.raises(openai.AuthenticationError):
        await intruder.models.list()


async def test_an_unknown_model_is_not_found(api: openai.AsyncOpenAI) -> None:
    """A model nobody serves is 404 (NotFoundError), code model_not_found."""
    with pytest.raises(openai.NotFoundError) as caught:
        await api.chat.completions.create(model="gpt-9", messages=QUESTION)
    assert caught.value.code == "model_not_found"


async def test_a_prompt_over_the_context_is_a_bad_request(api: openai.AsyncOpenAI) -> None:
    """A prompt longer than the model's context is 400 with code context_length_exceeded."""
    with pytest.raises(openai.BadRequestError) as caught:
        await api.completions.create(model=MODEL, prompt="word " * 9000, max_tokens=4)
    assert caught.value.code == "context_length_exceeded"


async def test_max_tokens_out_of_range_is_a_bad_request(api: openai.AsyncOpenAI) -> None:
    """max_tokens=0 is refused 400 before it reaches the cluster."""
    with pytest.raises(openai.BadRequestError):
        await api.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=0)
