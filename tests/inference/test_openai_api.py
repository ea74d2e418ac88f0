"""The OpenAI API mapping: request bodies in, stream chunks, responses and errors out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aigloo_edge.inference.openai_api import (
    ApiError,
    ChatCompletionBody,
    CompletionBody,
    Kind,
    ResponseMeta,
    StreamEncoder,
    final_error,
    parse_body,
    response_body,
    to_infer_request,
)
from aigloo_edge.payloads import (
    ChatMessage,
    InferChunk,
    InferError,
    InferErrorCode,
    InferFinal,
)

CHAT_META = ResponseMeta("chat", "r1", "smollm", 1_700_000_000)
COMPLETION_META = ResponseMeta("completion", "r1", "smollm", 1_700_000_000)


def raw(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def chat(**extra: Any) -> bytes:
    return raw({"model": "smollm", "messages": [{"role": "user", "content": "hi"}], **extra})


def completion(**extra: Any) -> bytes:
    return raw({"model": "smollm", "prompt": "Once", **extra})


def refusal(kind: Kind, body: bytes) -> str:
    """The 400 message for a body that must be refused."""
    with pytest.raises(ApiError) as caught:
        parse_body(kind, body)
    assert caught.value.status == 400
    error = caught.value.body()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] is None
    return str(error["message"])


def final(**fields: Any) -> InferFinal:
    values: dict[str, Any] = {"id": "r1", "seq": 0, "ok": True, "finish_reason": "stop"}
    return InferFinal(**(values | fields))


def failed(code: InferErrorCode, message: str = "it broke") -> InferFinal:
    return final(ok=False, finish_reason="error", error=InferError(code=code, message=message))


# --- request bodies -------------------------------------------------------------------------


def test_chat_body_maps_to_an_infer_request() -> None:
    """Messages, sampling, stream and token limit carry over; id is fresh, deadline is set."""
    body = parse_body("chat", chat(max_tokens=64, temperature=0.2, top_p=0.9, stream=True))
    request = to_infer_request(body, timeout_s=30, started=1000.0)
    assert request.messages == [ChatMessage(role="user", content="hi")]
    assert request.prompt is None
    assert (request.model, request.max_tokens, request.temperature, request.top_p) == (
        "smollm",
        64,
        0.2,
        0.9,
    )
    assert request.stream is True
    assert request.deadline == 1030.0
    assert request.id != to_infer_request(body, timeout_s=30).id


def test_omitted_sampling_fields_take_openai_defaults() -> None:
    """Without temperature/top_p the request uses OpenAI's defaults (1.0), not streaming."""
    request = to_infer_request(parse_body("chat", chat()), timeout_s=30)
    assert (request.temperature, request.top_p, request.stream) == (1.0, 1.0, False)


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    """The newer `max_completion_tokens` is the limit when both are given."""
    body = parse_body("chat", chat(max_tokens=10, max_completion_tokens=20))
    assert to_infer_request(body, timeout_s=1).max_tokens == 20


def test_text_parts_are_joined_and_developer_is_system() -> None:
    """List content of text parts becomes one string; the `developer` role maps to system."""
    body = raw(
        {
            "model": "m",
            "messages": [
                {"role": "developer", "content": "be brief"},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                },
            ],
        }
    )
    request = to_infer_request(parse_body("chat", body), timeout_s=1)
    assert request.messages == [
        ChatMessage(role="system", content="be brief"),
        ChatMessage(role="user", content="a\nb"),
    ]


def test_extra_keys_empty_stop_and_n_1_are_accepted() -> None:
    """Unknown keys are ignored; `stop` empty or null and `n: 1` are fine."""
    extras: list[dict[str, Any]] = [
        {"user": "x", "seed": 3},
        {"stop": None},
        {"stop": ""},
        {"stop": []},
        {"n": 1},
    ]
    for extra in extras:
        assert isinstance(parse_body("chat", chat(**extra)), ChatCompletionBody)
        assert isinstance(parse_body("completion", completion(**extra)), CompletionBody)


def test_stream_options_include_usage() -> None:
    """`stream_options.include_usage` is read; it defaults to off."""
    assert parse_body(
        "chat", chat(stream=True, stream_options={"include_usage": True})
    ).include_usage
    assert not parse_body("chat", chat(stream=True)).include_usage


def test_completion_prompt_string_or_list_of_one() -> None:
    """A completions prompt is a string, or a list holding exactly one string."""
    for prompt in ("Once", ["Once"]):
        request = to_infer_request(parse_body("completion", completion(prompt=prompt)), timeout_s=1)
        assert request.prompt == "Once"
        assert request.messages is None


@pytest.mark.parametrize(
    ("kind", "body", "expected"),
    [
        ("chat", chat(n=2), "n: only n=1 is supported"),
        ("chat", chat(stop=["\n"]), "stop: stop sequences are not supported"),
        ("completion", completion(stop="END"), "stop: stop sequences are not supported"),
        ("completion", completion(prompt=["a", "b"]), "prompt: only a single prompt string"),
        ("completion", completion(prompt=[1, 2, 3]), "prompt: only a single prompt string"),
        ("chat", chat(max_tokens=0), "max_tokens: Input should be greater than or equal to 1"),
        ("chat", chat(top_p=0), "top_p: Input should be greater than 0"),
        ("chat", raw({"model": "m", "messages": []}), "messages: List should have at least 1"),
        ("chat", raw({"messages": [{"role": "user", "content": "x"}]}), "model: Field required"),
        ("chat", b"{nope", "body: Invalid JSON"),
        ("chat", b"[]", "body: Input should be an object"),
    ],
)
def test_bad_bodies_are_400_naming_the_field(kind: Kind, body: bytes, expected: str) -> None:
    """Each malformed body is refused with `field: reason`."""
    assert expected in refusal(kind, body)


def test_non_text_content_part_is_refused_by_type() -> None:
    """An image part is a 400 that names its type."""
    body = raw(
        {
            "model": "m",
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}],
        }
    )
    assert (
        refusal("chat", body)
        == "messages.0.content: content part type 'image_url' is not supported"
    )


def test_validation_messages_never_echo_the_input() -> None:
    """A wrongly typed value is described without repeating it (it may be private text)."""
    secret = "my-private-prompt-text"
    message = refusal("chat", chat(temperature=secret, messages=[{"role": "x", "content": secret}]))
    assert secret not in message
    assert "temperature" in message
    assert "messages.0.role" in message


def test_strings_are_not_coerced_to_numbers() -> None:
    """`"0.5"` is not a temperature: types are strict."""
    assert "temperature" in refusal("chat", chat(temperature="0.5"))


def test_an_oversized_message_for_the_wire_is_a_400() -> None:
    """Input the wire model refuses (a message over its length limit) is a 400 too."""
    body = parse_body("chat", chat(messages=[{"role": "user", "content": "x" * 200_001}]))
    with pytest.raises(ApiError) as caught:
        to_infer_request(body, timeout_s=1)
    assert caught.value.status == 400
    assert "messages.0.content" in caught.value.message


# --- streaming ------------------------------------------------------------------------------


def test_chat_chunks_carry_the_role_first_then_content() -> None:
    """The first chat delta has role `assistant`; later ones only content."""
    encoder = StreamEncoder(CHAT_META)
    first = encoder.chunk(InferChunk(id="r1", seq=0, text="Hel"))
    second = encoder.chunk(InferChunk(id="r1", seq=1, text="lo"))
    assert first == {
        "id": "chatcmpl-r1",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "smollm",
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": "Hel"},
                "finish_reason": None,
                "logprobs": None,
            }
        ],
    }
    assert second is not None
    assert second["choices"][0]["delta"] == {"content": "lo"}


def test_redelivered_chunks_are_dropped() -> None:
    """A chunk whose seq was already relayed (an MQTT redelivery) yields nothing."""
    encoder = StreamEncoder(CHAT_META)
    assert encoder.chunk(InferChunk(id="r1", seq=0, text="a")) is not None
    assert encoder.chunk(InferChunk(id="r1", seq=0, text="a")) is None


def test_completion_chunks_are_text_completions() -> None:
    """Completions stream `text_completion` objects with `choices[0].text`."""
    encoder = StreamEncoder(COMPLETION_META)
    event = encoder.chunk(InferChunk(id="r1", seq=0, text="upon"))
    assert event is not None
    assert (event["id"], event["object"]) == ("cmpl-r1", "text_completion")
    assert event["choices"][0]["text"] == "upon"


def test_stream_end_carries_finish_reason_and_model() -> None:
    """The closing chunk has an empty delta, the finish reason and the final's model."""
    encoder = StreamEncoder(CHAT_META)
    encoder.chunk(InferChunk(id="r1", seq=0, text="hi"))
    [closing] = encoder.end(final(text="hi", finish_reason="length", model="smollm-q4"))
    assert closing["choices"][0]["delta"] == {}
    assert closing["choices"][0]["finish_reason"] == "length"
    assert closing["model"] == "smollm-q4"
    assert "usage" not in closing


def test_stream_end_with_usage_adds_a_usage_chunk() -> None:
    """With include_usage a last chunk with empty choices carries the token counts."""
    encoder = StreamEncoder(CHAT_META, include_usage=True)
    chunk = encoder.chunk(InferChunk(id="r1", seq=0, text="hi"))
    assert chunk is not None
    assert chunk["usage"] is None
    closing, usage = encoder.end(final(text="hi", prompt_tokens=5, completion_tokens=2))
    assert closing["usage"] is None
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}


def test_stream_end_sends_text_the_chunks_did_not() -> None:
    """A final whose text was never chunked still reaches the client, with the role."""
    [closing] = StreamEncoder(CHAT_META).end(final(text="whole answer"))
    assert closing["choices"][0]["delta"] == {"role": "assistant", "content": "whole answer"}
    encoder = StreamEncoder(COMPLETION_META)
    encoder.chunk(InferChunk(id="r1", seq=0, text="whole "))
    [closing] = encoder.end(final(text="whole answer"))
    assert closing["choices"][0]["text"] == "answer"


def test_stream_end_of_a_failure_is_an_error_event() -> None:
    """A failed or cancelled final in a stream becomes one `{"error": ...}` event."""
    encoder = StreamEncoder(CHAT_META, include_usage=True)
    [event] = encoder.end(failed("worker_lost", "the node went away"))
    assert event == {
        "error": {
            "message": "the node went away",
            "type": "server_error",
            "code": "worker_lost",
            "param": None,
        }
    }
    [event] = StreamEncoder(CHAT_META).end(final(finish_reason="cancelled"))
    assert event["error"]["code"] == "cancelled"


# --- responses ------------------------------------------------------------------------------


def test_chat_response_body() -> None:
    """A non-streamed chat answer is a `chat.completion` with message and usage."""
    body = response_body(
        CHAT_META, final(text="hello", model="smollm", prompt_tokens=3, completion_tokens=1)
    )
    assert body == {
        "id": "chatcmpl-r1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "smollm",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hello"},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }


def test_completion_response_body() -> None:
    """A non-streamed completion is a `text_completion`; missing counts are zero."""
    body = response_body(COMPLETION_META, final(text="upon", finish_reason="length"))
    assert (body["id"], body["object"], body["model"]) == ("cmpl-r1", "text_completion", "smollm")
    assert body["choices"][0]["text"] == "upon"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def test_meta_of_a_request() -> None:
    """Response ids derive from the request id; `created` is its whole-second timestamp."""
    request = to_infer_request(parse_body("chat", chat()), timeout_s=1)
    meta = ResponseMeta.of("chat", request)
    assert meta.response_id == f"chatcmpl-{request.id}"
    assert meta.created == int(request.ts)
    assert meta.model == "smollm"


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "error_type", "openai_code"),
    [
        ("bad_request", 400, "invalid_request_error", "bad_request"),
        ("context_length", 400, "invalid_request_error", "context_length_exceeded"),
        ("duplicate_id", 400, "invalid_request_error", "duplicate_id"),
        ("unknown_model", 404, "invalid_request_error", "model_not_found"),
        ("cancelled", 408, "timeout_error", "cancelled"),
        ("busy", 429, "rate_limit_error", "busy"),
        ("engine", 500, "server_error", "engine"),
        ("internal", 500, "server_error", "internal"),
        ("no_worker", 503, "server_error", "no_worker"),
        ("node_asleep_power_saving", 503, "server_error", "node_asleep_power_saving"),
        ("worker_lost", 503, "server_error", "worker_lost"),
        ("deadline", 504, "timeout_error", "deadline"),
    ],
)
def test_final_errors_map_to_http_status_and_body(
    code: InferErrorCode, status: int, error_type: str, openai_code: str
) -> None:
    """Every InferErrorCode has its HTTP status and OpenAI error type and code."""
    error = final_error(failed(code, "why"))
    assert error is not None
    assert error.status == status
    assert error.body() == {
        "error": {"message": "why", "type": error_type, "code": openai_code, "param": None}
    }


def test_a_successful_final_is_no_error() -> None:
    """ok with stop or length is an answer, not an error."""
    assert final_error(final()) is None
    assert final_error(final(finish_reason="length")) is None


def test_failed_final_without_error_details() -> None:
    """A cancelled final with no error is 408; a failed one without reason is 500."""
    cancelled = final_error(final(ok=False, finish_reason="cancelled"))
    assert cancelled is not None
    assert cancelled.status == 408
    bare = final_error(final(ok=False, finish_reason=None))
    assert bare is not None
    assert (bare.status, bare.code) == (500, "internal")
