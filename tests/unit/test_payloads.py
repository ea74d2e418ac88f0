"""Wire models: tolerant of unknown keys, strict on types and ranges, commands plain or JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aigloo_edge.errors import PayloadError
from aigloo_edge.payloads import (
    SCHEMA_MODELS,
    Battery,
    Climate,
    FanProfileCommand,
    InferChunk,
    InferFinal,
    InferRequest,
    OutputCommand,
    PowerCommand,
    RuleCommand,
    infer_reply_adapter,
)
from aigloo_edge.schemas import check_schemas
from aigloo_edge.topics import SPECS

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


@pytest.mark.parametrize(
    ("model", "plain", "as_json", "field", "value"),
    [
        (PowerCommand, b"sleep", b'{"state": "sleep"}', "state", "sleep"),
        (OutputCommand, b"on", b'{"state": "on"}', "state", "on"),
        (FanProfileCommand, b"max", b'{"profile": "max"}', "profile", "max"),
        (RuleCommand, b"disable", b'{"action": "disable"}', "action", "disable"),
    ],
)
def test_commands_accept_a_plain_value_or_json(
    model: type[PowerCommand], plain: bytes, as_json: bytes, field: str, value: str
) -> None:
    """`sleep` and `{"state": "sleep"}` mean the same command (likewise for every command)."""
    assert getattr(model.parse(plain), field) == value
    assert getattr(model.parse(as_json), field) == value
    assert getattr(model.parse(b' "' + plain + b'"\n'), field) == value


@pytest.mark.parametrize("raw", [b"snooze", b"", b'{"state": 1}', b"{", b"\xff\xfe", b"SLEEP"])
def test_bad_commands_raise_payload_error(raw: bytes) -> None:
    """Unknown values, wrong types, broken JSON and binary all give a PayloadError."""
    with pytest.raises(PayloadError):
        PowerCommand.parse(raw)


def test_unknown_keys_are_ignored() -> None:
    """A newer sender's extra keys do not break an older reader."""
    raw = b'{"soc_pct": 80, "watts_in": 100, "watts_out": 40, "source": "twin", "new": [1]}'
    battery = Battery.from_json(raw)
    assert battery.soc_pct == 80
    assert battery.v == 1


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"probe": "internal", "temperature_c": "31"}', "temperature_c"),
        (b'{"probe": "internal", "temperature_c": NaN}', "temperature_c"),
        (b'{"probe": "internal", "temperature_c": 1e999}', "temperature_c"),
        (b'{"probe": "internal", "temperature_c": 20, "humidity_pct": 140}', "humidity_pct"),
        (b'{"probe": "Internal Probe", "temperature_c": 20}', "probe"),
        (b'{"temperature_c": 20}', "probe"),
        (b'{"probe": "internal", "temperature_c": 20, "ts": 1764374400000}', "ts"),
    ],
)
def test_wrong_types_and_ranges_are_rejected_naming_the_field(raw: bytes, field: str) -> None:
    """No string-to-number coercion, no NaN or infinity, ranges enforced; the field is named."""
    with pytest.raises(PayloadError, match=field):
        Climate.from_json(raw)


def test_rejection_reason_does_not_echo_the_input() -> None:
    """Error text names fields and reasons, never the (possibly private) rejected value."""
    with pytest.raises(PayloadError) as caught:
        InferRequest.from_json(b'{"id": "r1", "model": "m", "prompt": 5, "secret": "hunter2"}')
    assert "hunter2" not in str(caught.value)
    assert "prompt" in str(caught.value)


def test_a_time_in_milliseconds_is_refused_as_such() -> None:
    """`ts` and `deadline` are Unix seconds; a millisecond value (after 2100) says so."""
    with pytest.raises(PayloadError, match=r"deadline.*milliseconds"):
        InferRequest.from_json(b'{"id": "r1", "model": "m", "prompt": "hi", "deadline": 1.8e12}')
    assert InferRequest.from_json(b'{"id": "r1", "model": "m", "prompt": "hi", "deadline": 1.8e9}')


def test_infer_request_needs_exactly_one_of_messages_or_prompt() -> None:
    """A request with neither or both inputs is refused."""
    with pytest.raises(PayloadError, match="exactly one"):
        InferRequest.from_json(b'{"id": "r1", "model": "m"}')
    both = (
        b'{"id": "r1", "model": "m", "prompt": "hi",'
        b' "messages": [{"role": "user", "content": "hi"}]}'
    )
    with pytest.raises(PayloadError, match="exactly one"):
        InferRequest.from_json(both)


def test_infer_reply_is_a_chunk_or_a_final_by_its_type() -> None:
    """Clients parse one reply stream with one adapter, discriminated by `type`."""
    chunk = infer_reply_adapter().validate_json(InferChunk(id="r1", seq=0, text="Par").to_json())
    final = infer_reply_adapter().validate_json(InferFinal(id="r1", seq=1, ok=True).to_json())
    assert isinstance(chunk, InferChunk)
    assert isinstance(final, InferFinal)


@given(soc=st.floats(0, 100), watts=st.floats(0, 5000))
def test_round_trip_keeps_values(soc: float, watts: float) -> None:
    """What a sender serialises, a reader parses back unchanged."""
    sent = Battery(soc_pct=soc, watts_in=watts, watts_out=watts, source="ecoflow_ble")
    assert Battery.from_json(sent.to_json()) == sent


def test_every_contract_payload_has_a_model_and_a_schema() -> None:
    """Each JSON payload named in the contract has a wire model; docs/schemas is current."""
    named = {s.payload for s in SPECS if s.payload[0].isupper() and " " not in s.payload}
    assert named - {"InferReply"} <= set(SCHEMA_MODELS)
    assert check_schemas(SCHEMAS) == [], "run `aigloo schema` to refresh docs/schemas"
    telemetry = json.loads((SCHEMAS / "NodeTelemetry.json").read_text())
    assert {"v", "ts", "node", "cpu_pct"} <= set(telemetry["properties"])
