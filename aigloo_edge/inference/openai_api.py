"""The OpenAI HTTP API as the gateway speaks it: request bodies in, response bodies out.

Pure mapping, no I/O. Bodies of `/v1/chat/completions` and `/v1/completions` become one
InferRequest; the reply stream (InferChunk..., InferFinal) becomes OpenAI's streamed chunks or
its one JSON response; failures become OpenAI's error body with a fitting HTTP status.
Unknown keys in a body are ignored (clients send many optional ones); the features we do not
implement but which change the answer's meaning (n > 1, stop sequences, non-text content)
are refused with a 400 rather than silently ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from aigloo_edge.errors import AiglooError
from aigloo_edge.inference.client import new_request_id
from aigloo_edge.payloads import (
    InferChunk,
    InferErrorCode,
    InferFinal,
    InferRequest,
    now,
)

Kind = Literal["chat", "completion"]
JsonObject = dict[str, Any]

# OpenAI's defaults when a body leaves these out.
DEFAULT_TEMPERATURE: Final = 1.0
DEFAULT_TOP_P: Final = 1.0
MAX_TOKENS_LIMIT: Final = 32_768


# --- errors ---------------------------------------------------------------------------------


class ApiError(AiglooError):
    """An answer in OpenAI's error shape: an HTTP status and `{"error": {...}}`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str = "invalid_request_error",
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.code = code

    @property
    def label(self) -> str:
        """A short name for logs: the code, else the status."""
        return self.code or str(self.status)

    def body(self) -> JsonObject:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "code": self.code,
                "param": None,
            }
        }


# Our error code → (HTTP status, OpenAI error type, OpenAI error code). The OpenAI SDKs pick
# their exception class from the status; the two codes OpenAI defines itself are renamed.
_FINAL_ERRORS: Final[dict[InferErrorCode, tuple[int, str, str]]] = {
    "bad_request": (400, "invalid_request_error", "bad_request"),
    "context_length": (400, "invalid_request_error", "context_length_exceeded"),
    "duplicate_id": (400, "invalid_request_error", "duplicate_id"),
    "unknown_model": (404, "invalid_request_error", "model_not_found"),
    "cancelled": (408, "timeout_error", "cancelled"),
    "busy": (429, "rate_limit_error", "busy"),
    "engine": (500, "server_error", "engine"),
    "internal": (500, "server_error", "internal"),
    "no_worker": (503, "server_error", "no_worker"),
    "node_asleep_power_saving": (503, "server_error", "node_asleep_power_saving"),
    "worker_lost": (503, "server_error", "worker_lost"),
    "deadline": (504, "timeout_error", "deadline"),
}


def final_error(final: InferFinal) -> ApiError | None:
    """The error a final reports, or None when it carries an answer."""
    if final.ok and final.error is None and final.finish_reason not in ("cancelled", "error"):
        return None
    if final.error is not None:
        code, message = final.error.code, final.error.message
    elif final.finish_reason == "cancelled":
        code, message = "cancelled", "the request was cancelled"
    else:
        code, message = "internal", "the request failed without a reason"
    status, error_type, openai_code = _FINAL_ERRORS[code]
    return ApiError(status, message, error_type=error_type, code=openai_code)


def timeout_error(wait_s: float) -> ApiError:
    return ApiError(
        504, f"no answer within {wait_s:g} s", error_type="timeout_error", code="deadline"
    )


def unavailable_error() -> ApiError:
    return ApiError(
        503, "not connected to the broker", error_type="server_error", code="unavailable"
    )


def auth_error() -> ApiError:
    return ApiError(
        401,
        "missing or incorrect API key: send `Authorization: Bearer <key>`",
        code="invalid_api_key",
    )


def describe_body_error(exc: ValidationError) -> str:
    """`field: reason` per problem, never echoing the input (it may hold private text)."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False, include_context=False):
        where = ".".join(str(part) for part in error["loc"]) or "body"
        reason = error["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {reason}")
    return "; ".join(parts)


# --- request bodies -------------------------------------------------------------------------


class Body(BaseModel):
    """Tolerant of unknown keys, strict on types (no "1" for 1), no NaN/inf."""

    model_config = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False, frozen=True)


class StreamOptions(Body):
    include_usage: bool = False


class SamplingBody(Body):
    """What chat completions and completions share."""

    model: str = Field(min_length=1, max_length=200)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: float | None = Field(default=None, ge=0, le=5)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int | None = None
    stop: None = None

    @field_validator("n")
    @classmethod
    def _one_choice(cls, value: int | None) -> int | None:
        if value not in (None, 1):
            raise ValueError("only n=1 is supported")
        return value

    @field_validator("stop", mode="before")
    @classmethod
    def _no_stop_sequences(cls, value: object) -> None:
        if value not in (None, "", []):
            raise ValueError("stop sequences are not supported")

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def token_limit(self) -> int | None:
        return self.max_tokens


def _text_of_parts(parts: list[object]) -> str:
    """Join `[{"type": "text", "text": ...}, ...]`; any other part type is refused by name."""
    texts = []
    for part in parts:
        if not isinstance(part, dict):
            raise ValueError("each content part must be an object")  # noqa: TRY004 - a 400
        kind = part.get("type")
        if kind != "text":
            raise ValueError(f"content part type {str(kind)[:40]!r} is not supported")
        text = part.get("text")
        if not isinstance(text, str):
            raise ValueError("a text content part needs a string 'text'")  # noqa: TRY004
        texts.append(text)
    return "\n".join(texts)


class OpenAIMessage(Body):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str

    @field_validator("content", mode="before")
    @classmethod
    def _parts_to_text(cls, value: object) -> object:
        return _text_of_parts(value) if isinstance(value, list) else value

    def to_wire(self) -> JsonObject:
        """The ChatMessage fields (validated with the whole InferRequest, for clear errors)."""
        # Newer OpenAI clients say `developer` for what our models know as `system`.
        role = "system" if self.role == "developer" else self.role
        return {"role": role, "content": self.content}


class ChatCompletionBody(SamplingBody):
    messages: Annotated[list[OpenAIMessage], Field(min_length=1)]
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT)

    def token_limit(self) -> int | None:
        # The newer name wins: it is what current clients mean.
        return self.max_completion_tokens or self.max_tokens


class CompletionBody(SamplingBody):
    prompt: str

    @field_validator("prompt", mode="before")
    @classmethod
    def _single_prompt(cls, value: object) -> object:
        if not isinstance(value, list):
            return value
        if len(value) == 1 and isinstance(value[0], str):
            return value[0]
        raise ValueError("only a single prompt string is supported")


AnyBody = ChatCompletionBody | CompletionBody
_BODY_MODELS: Final[dict[Kind, type[AnyBody]]] = {
    "chat": ChatCompletionBody,
    "completion": CompletionBody,
}


def parse_body(kind: Kind, raw: bytes) -> AnyBody:
    """Validate a request body; any problem is a 400 ApiError naming the field and reason."""
    try:
        return _BODY_MODELS[kind].model_validate_json(raw)
    except ValidationError as exc:
        raise ApiError(400, describe_body_error(exc)) from None


DEFAULT_MAX_TOKENS: Final = 1024


def to_infer_request(
    body: AnyBody,
    *,
    timeout_s: float,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
    started: float | None = None,
) -> InferRequest:
    """The InferRequest for `body`, with a fresh id and a deadline `timeout_s` from now."""
    start = now() if started is None else started
    fields: JsonObject = {
        "id": new_request_id(),
        "model": body.model,
        "temperature": DEFAULT_TEMPERATURE if body.temperature is None else body.temperature,
        "top_p": DEFAULT_TOP_P if body.top_p is None else body.top_p,
        "stream": body.stream,
        "deadline": start + timeout_s,
    }
    # OpenAI has no small default; chat clients often send none and expect a whole answer.
    fields["max_tokens"] = body.token_limit() or default_max_tokens
    if isinstance(body, ChatCompletionBody):
        fields["messages"] = [message.to_wire() for message in body.messages]
    else:
        fields["prompt"] = body.prompt
    try:
        return InferRequest.model_validate(fields)
    except ValidationError as exc:  # e.g. a message longer than the wire allows
        raise ApiError(400, describe_body_error(exc)) from None


# --- responses ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResponseMeta:
    """What every response object of one request shares."""

    kind: Kind
    request_id: str
    model: str
    created: int

    @classmethod
    def of(cls, kind: Kind, request: InferRequest) -> ResponseMeta:
        return cls(kind, request.id, request.model, math.floor(request.ts))

    @property
    def response_id(self) -> str:
        prefix = "chatcmpl" if self.kind == "chat" else "cmpl"
        return f"{prefix}-{self.request_id}"

    def envelope(self, object_name: str, model: str | None = None) -> JsonObject:
        return {
            "id": self.response_id,
            "object": object_name,
            "created": self.created,
            "model": model or self.model,
        }


def finish_reason(final: InferFinal) -> str:
    return "length" if final.finish_reason == "length" else "stop"


def usage(final: InferFinal) -> JsonObject:
    prompt = final.prompt_tokens or 0
    completion = final.completion_tokens or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def response_body(meta: ResponseMeta, final: InferFinal) -> JsonObject:
    """The non-streamed answer: `chat.completion` or `text_completion`, with usage."""
    choice: JsonObject = {"index": 0, "finish_reason": finish_reason(final), "logprobs": None}
    if meta.kind == "chat":
        choice["message"] = {"role": "assistant", "content": final.text}
        body = meta.envelope("chat.completion", final.model)
    else:
        choice["text"] = final.text
        body = meta.envelope("text_completion", final.model)
    return {**body, "choices": [choice], "usage": usage(final)}


@dataclass
class StreamEncoder:
    """Turns one request's reply stream into OpenAI stream chunks, in order.

    Drops redelivered chunks (seq already seen), gives the first chat delta its role, and
    makes the final chunk carry whatever of the final's text the chunks did not.
    """

    meta: ResponseMeta
    include_usage: bool = False
    next_seq: int = 0
    sent_text: list[str] = field(default_factory=list)

    @property
    def object_name(self) -> str:
        return "chat.completion.chunk" if self.meta.kind == "chat" else "text_completion"

    def chunk(self, chunk: InferChunk) -> JsonObject | None:
        """The stream chunk for `chunk`, or None for a redelivered one."""
        if chunk.seq < self.next_seq:
            return None
        self.next_seq = chunk.seq + 1
        event = self._choice_chunk(chunk.text, None)
        self.sent_text.append(chunk.text)
        return event

    def end(self, final: InferFinal) -> list[JsonObject]:
        """The events closing the stream: the finish_reason chunk and, if asked, usage;
        or a single error event when the final reports a failure."""
        error = final_error(final)
        if error is not None:
            return [error.body()]
        sent = "".join(self.sent_text)
        rest = final.text.removeprefix(sent) if final.text.startswith(sent) else ""
        events = [self._choice_chunk(rest, finish_reason(final), final.model)]
        if self.include_usage:
            events.append({**self._envelope(final.model), "choices": [], "usage": usage(final)})
        return events

    def _choice_chunk(self, text: str, reason: str | None, model: str | None = None) -> JsonObject:
        choice: JsonObject = {"index": 0, "finish_reason": reason, "logprobs": None}
        if self.meta.kind == "chat":
            delta: JsonObject = {} if self.sent_text else {"role": "assistant"}
            if text or not reason:
                delta["content"] = text
            choice["delta"] = delta
        else:
            choice["text"] = text
        event = {**self._envelope(model), "choices": [choice]}
        if self.include_usage:  # OpenAI: every other chunk then carries `usage: null`
            event["usage"] = None
        return event

    def _envelope(self, model: str | None) -> JsonObject:
        return self.meta.envelope(self.object_name, model)
