"""Every parser behind a subscribed topic, fed hostile payloads in-process (fast, many cases).

Each outcome must be a parsed value with only finite numbers, or a PayloadError (the message a
Session counts and reports as `invalid`): never another exception, which a Session would only
report as a `handler_error` with a traceback in the log, or which kills the loop of a component
that parses outside a route (the Home Assistant bridge's sync).
"""

from __future__ import annotations

import dataclasses
import math
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from pydantic import BaseModel

from aigloo_edge.errors import PayloadError
from aigloo_edge.hass.devices import published_components
from aigloo_edge.payloads import (
    Battery,
    Climate,
    FanProfileCommand,
    FanProfileState,
    InferCancel,
    InferPolicy,
    InferRequest,
    NodeInfo,
    NodeTelemetry,
    OutputCommand,
    PowerCommand,
    PowerState,
    RuleCommand,
    RuleState,
    Solar,
)
from aigloo_edge.plain.fields import plain_values
from aigloo_edge.rules.loader import load_rules
from aigloo_edge.rules.readings import Readings
from aigloo_edge.sensors.fan_drivers import parse_duty
from aigloo_edge.sensors.mqtt_map import MqttMapper
from aigloo_edge.sensors.settings import MqttMapConfig
from aigloo_edge.topics import Topics
from tests.support.hostile import HOSTILE_CORPUS, hostile_payloads, nonfinite_in

ROOT = Path(__file__).resolve().parents[2]
TOPICS = Topics("aigloo")
EXAMPLES = 300
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

Parser = Callable[[bytes], object]
WIRE: dict[str, Parser] = {
    "Battery": Battery.from_json,
    "Solar": Solar.from_json,
    "Climate": Climate.from_json,
    "FanProfileState": FanProfileState.from_json,
    "NodeTelemetry": NodeTelemetry.from_json,
    "NodeInfo": NodeInfo.from_json,
    "PowerState": PowerState.from_json,
    "RuleState": RuleState.from_json,
    "InferRequest": InferRequest.from_json,
    "InferCancel": InferCancel.from_json,
    "InferPolicy": InferPolicy.from_json,
    "PowerCommand": PowerCommand.parse,
    "OutputCommand": OutputCommand.parse,
    "FanProfileCommand": FanProfileCommand.parse,
    "RuleCommand": RuleCommand.parse,
}
MAPPER = MqttMapper(
    MqttMapConfig.model_validate(
        {
            "station": {
                "soc_pct": {"topic": "victron/battery", "path": "soc"},
                "watts_in": {"topic": "victron/battery", "path": "power.in", "scale": 1000},
                "ac": {"topic": "victron/ac"},
            },
            "probes": {"garage": {"temperature_c": {"topic": "esphome/garage/t"}}},
        }
    )
)


def _mapped(raw: bytes) -> object:
    """What mqtt_map makes of a payload on each of its topics; its problems as PayloadError."""
    readings: list[object] = []
    for topic in MAPPER.topics:
        result = MAPPER.map(topic, raw, at=1.0)
        readings += result.readings
    return readings


# Readers of payloads other systems publish (a fan board, a mapped station), and of retained
# discovery messages anyone with discovery rights may have left.
FOREIGN: dict[str, Parser] = {
    "sensors.mqtt_map": _mapped,
    "sensors.fan_drivers.parse_duty": lambda raw: parse_duty(raw, "state.duty"),
    "hass.devices.published_components": published_components,
}
PLAIN_SOURCES = (
    TOPICS.battery(),
    TOPICS.solar(),
    TOPICS.env_climate("internal"),
    TOPICS.fans_profile(),
    TOPICS.node_telemetry("studio"),
    TOPICS.node_power("studio"),
    TOPICS.rule_state("fans-max-when-hot"),
)
CUSTOM_TOPIC = "home/garage/climate"


def _finite(value: Any) -> str | None:
    """The first non-finite number anywhere in a parsed value, or None."""
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list | tuple):
        for item in value:
            if (bad := _finite(item)) is not None:
                return bad
    return None


def _problem(name: str, parse: Parser, payload: bytes) -> str | None:
    """Why `parse`'s outcome for `payload` is wrong, or None if it is a PayloadError (or the
    UnicodeDecodeError a Session also reports as `invalid`) or a value with finite numbers."""
    try:
        parsed = parse(payload)
    except (PayloadError, UnicodeDecodeError):
        return None
    except Exception as exc:  # the bug this test exists to find
        return f"{name} raised {type(exc).__name__} (not PayloadError) for {payload[:60]!r}"
    if (bad := _finite(parsed)) is not None:
        return f"{name} accepted {bad} from {payload[:60]!r}"
    return None


def _problems(parsers: dict[str, Parser], payload: bytes) -> list[str]:
    return [p for name, parse in parsers.items() if (p := _problem(name, parse, payload))]


@pytest.fixture(scope="module")
def readings(tmp_path_factory: pytest.TempPathFactory) -> Readings:
    """The rules engine's reader for the shipped rules plus one custom numeric signal."""
    directory = tmp_path_factory.mktemp("rules")
    for shipped in (ROOT / "rules").glob("*.yaml"):
        (directory / shipped.name).write_text(shipped.read_text())
    (directory / "garage.yaml").write_text(
        textwrap.dedent(f"""\
            signals:
              garage.temperature:
                topic: {CUSTOM_TOPIC}
                path: climate.temp
                unit: °C
            rules:
              - id: fans-max-when-garage-hot
                when: garage.temperature > 30 °C
                set: {{fans.profile: max}}
            """)
    )
    ruleset = load_rules(directory)
    return Readings(TOPICS, ruleset.signals, ruleset.custom)


@pytest.mark.parametrize("payload", HOSTILE_CORPUS, ids=range(len(HOSTILE_CORPUS)))
def test_the_hostile_corpus_is_rejected_cleanly_by_every_parser(payload: bytes) -> None:
    """Each fixed hostile payload (NaN literals, 10**400, depth 10 000, invalid UTF-8, 300 KB)
    is either parsed into finite values or refused with PayloadError by every parser."""
    assert _problems({**WIRE, **FOREIGN}, payload) == []


@FUZZ
@given(payload=hostile_payloads())
def test_wire_models_refuse_hostile_payloads_with_a_payload_error(payload: bytes) -> None:
    """Every wire model and command parser turns any hostile payload into a PayloadError or a
    value with finite numbers only: NaN/inf are never accepted."""
    assert _problems(WIRE, payload) == []


@FUZZ
@given(payload=hostile_payloads())
def test_foreign_payload_readers_refuse_hostile_payloads_cleanly(payload: bytes) -> None:
    """The readers of other systems' payloads (mqtt_map, a fan board's state, retained HA
    discovery) raise only PayloadError, whatever the nesting depth."""
    assert _problems(FOREIGN, payload) == []


@FUZZ
@given(payload=hostile_payloads())
def test_plain_values_are_never_nan_or_inf(payload: bytes) -> None:
    """The plain component turns a hostile state payload into PayloadError or plain text that
    is never `nan`/`inf`."""
    for topic in PLAIN_SOURCES:
        try:
            update = plain_values(TOPICS, topic, payload)
        except PayloadError:
            continue
        assert update is not None
        for value in update.values.values():
            assert value is None or nonfinite_in(value.encode()) is None, (topic, value)


@FUZZ
@given(payload=hostile_payloads())
def test_rules_readings_are_finite_or_refused(readings: Readings, payload: bytes) -> None:
    """The rules engine's reader gives finite readings or raises PayloadError for every
    contract topic the shipped rules read and for a custom JSON signal."""
    topics = [*PLAIN_SOURCES, TOPICS.node_availability("studio"), CUSTOM_TOPIC]
    for topic in topics:
        try:
            found, _produced = readings.extract(topic, payload)
        except (PayloadError, UnicodeDecodeError):  # both reported `invalid` by the Session
            continue
        except Exception as exc:
            raise AssertionError(
                f"readings of {topic} raised {type(exc).__name__} for {payload[:60]!r}"
            ) from exc
        for name, value in found:
            assert not (isinstance(value, float) and not math.isfinite(value)), (name, value)
