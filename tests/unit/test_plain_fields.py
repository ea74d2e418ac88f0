"""The plain-values mapping: each source row, number formatting, clearing, malformed input,
the change filter, the config section, and the topic patterns the `plain` role may write."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from aigloo_edge.errors import PayloadError
from aigloo_edge.payloads import (
    Battery,
    Climate,
    FanProfileState,
    NodePower,
    NodeTelemetry,
    Outputs,
    PowerState,
    RuleState,
    Solar,
)
from aigloo_edge.plain import (
    ALL_GROUPS,
    SOURCES,
    PlainConfig,
    plain_value_filters,
    plain_values,
    source_filters,
)
from aigloo_edge.plain.changes import ChangeFilter
from aigloo_edge.plain.fields import plain_number
from aigloo_edge.topics import SPECS, Topics

T = Topics()


def values(topic: str, payload: bytes) -> dict[str, str | None]:
    """field → value of one state message (the plain topics are `<topic>/<field>`)."""
    update = plain_values(T, topic, payload)
    assert update is not None
    assert all(key.startswith(topic + "/") for key in update.values)
    return {key.removeprefix(topic + "/"): value for key, value in update.values.items()}


def telemetry(power: NodePower | None = None) -> bytes:
    return NodeTelemetry(
        node="studio",
        cpu_pct=12.34,
        memory_used_bytes=1,
        memory_available_bytes=1,
        memory_pct=48.0,
        power=power,
    ).to_json()


# --- each row --------------------------------------------------------------------------------


def test_battery_fields_are_plain_numbers_and_outputs_are_command_payloads() -> None:
    """Battery: SoC, watts, whole minutes, and outputs as `on`/`off` like their commands."""
    payload = Battery(
        soc_pct=57.0,
        watts_in=120.04,
        watts_out=35.55,
        remaining_min=312.6,
        outputs=Outputs(ac=True, dc=False),
        source="twin",
    ).to_json()
    assert values("aigloo/power/battery", payload) == {
        "soc_pct": "57",
        "watts_in": "120",
        "watts_out": "35.5",
        "remaining_min": "313",
        "outputs_ac": "on",
        "outputs_dc": "off",
    }


def test_solar_gives_its_watts() -> None:
    """Solar: watts."""
    assert values("aigloo/power/solar", Solar(watts=143.27).to_json()) == {"watts": "143.3"}


def test_climate_gives_celsius_fahrenheit_humidity_battery_and_stale() -> None:
    """A probe: °C as sent, °F converted (the only conversion), humidity, battery, stale."""
    payload = Climate(
        probe="internal", temperature_c=33.9, humidity_pct=41.0, battery_pct=88.0, stale=True
    ).to_json()
    assert values("aigloo/env/internal/climate", payload) == {
        "temperature_c": "33.9",
        "temperature_f": "93",
        "humidity_pct": "41",
        "battery_pct": "88",
        "stale": "true",
    }


def test_fan_profile_gives_profile_and_duty() -> None:
    """Fans: the profile name (the value `fans/profile/set` takes) and duty %."""
    payload = FanProfileState(profile="max", duty_pct=100.0).to_json()
    assert values("aigloo/fans/profile", payload) == {"profile": "max", "duty_pct": "100"}


def test_telemetry_gives_cpu_memory_and_system_power_first() -> None:
    """Telemetry: CPU %, memory %, and the whole machine's watts when known."""
    payload = telemetry(NodePower(system_w=182.5, package_w=150.0))
    assert values("aigloo/nodes/studio/telemetry", payload) == {
        "cpu_pct": "12.3",
        "memory_pct": "48",
        "power_w": "182.5",
    }


def test_telemetry_power_falls_back_to_the_package() -> None:
    """Without a system figure the SoC package's watts stand in."""
    found = values("aigloo/nodes/studio/telemetry", telemetry(NodePower(package_w=9.04)))
    assert found["power_w"] == "9"


def test_node_power_gives_its_state() -> None:
    """A node's power: `awake` / `sleeping` / `waking` / `unreachable`."""
    payload = PowerState(state="sleeping", reason="rule").to_json()
    assert values("aigloo/nodes/studio/power", payload) == {"state": "sleeping"}


def test_rule_state_gives_enabled_active_and_phase() -> None:
    """A rule: enabled and active as true/false, and its phase."""
    payload = RuleState(rule="fans-max", enabled=True, active=False, phase="cooldown").to_json()
    assert values("aigloo/rules/fans-max/state", payload) == {
        "enabled": "true",
        "active": "false",
        "phase": "cooldown",
    }


def test_only_telemetry_values_expire() -> None:
    """Telemetry is retained with a message expiry, so its plain values are marked expiring."""
    expiring = plain_values(T, "aigloo/nodes/studio/telemetry", telemetry())
    lasting = plain_values(T, "aigloo/power/solar", Solar(watts=1).to_json())
    assert expiring is not None
    assert expiring.expiring
    assert lasting is not None
    assert not lasting.expiring


def test_every_source_yields_exactly_its_declared_fields() -> None:
    """What an extractor returns and the fields a source declares (its ACL grants) agree."""
    samples = {
        "battery": Battery(soc_pct=1, watts_in=0, watts_out=0, source="twin").to_json(),
        "solar": Solar(watts=0).to_json(),
        "env_climate": Climate(probe="internal", temperature_c=20).to_json(),
        "fans_profile": FanProfileState(profile="off", duty_pct=0).to_json(),
        "node_telemetry": telemetry(),
        "node_power": PowerState(state="awake").to_json(),
        "rule_state": RuleState(rule="r", enabled=True, active=False).to_json(),
    }
    assert {source.spec for source in SOURCES} == set(samples)
    for source in SOURCES:
        assert set(source.extract(samples[source.spec])) == set(source.fields), source.spec


def test_the_base_topic_carries_through() -> None:
    """Under another base the plain topics sit under that base's state topics."""
    fleet = Topics("sites/north/aigloo")
    update = plain_values(fleet, "sites/north/aigloo/power/solar", Solar(watts=5).to_json())
    assert update is not None
    assert update.values == {"sites/north/aigloo/power/solar/watts": "5"}


# --- formatting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "decimals", "text"),
    [
        (57.0, 1, "57"),
        (57, 1, "57"),
        (21.34, 1, "21.3"),
        (21.36, 1, "21.4"),
        (99.96, 1, "100"),
        (-3.5, 1, "-3.5"),
        (-0.04, 1, "0"),
        (312.6, 0, "313"),
        (0.125, 2, "0.12"),
        (1234567.0, 1, "1234567"),
    ],
)
def test_numbers_are_written_plainly(value: float, decimals: int, text: str) -> None:
    """No unit, no trailing `.0`, no `-0`, rounded to the given decimals."""
    assert plain_number(value, decimals) == text


# --- clearing --------------------------------------------------------------------------------


def test_a_cleared_source_clears_every_field() -> None:
    """An empty retained payload (the state was removed) clears each of its plain topics."""
    assert values("aigloo/power/battery", b"") == dict.fromkeys(
        ("soc_pct", "watts_in", "watts_out", "remaining_min", "outputs_ac", "outputs_dc")
    )


def test_fields_the_payload_lacks_are_cleared() -> None:
    """Optional fields that are absent (no humidity, outputs unknown, no power) give None."""
    probe = values(
        "aigloo/env/ambient/climate", Climate(probe="ambient", temperature_c=5).to_json()
    )
    station = values(
        "aigloo/power/battery",
        Battery(soc_pct=10, watts_in=0, watts_out=0, source="mqtt_map").to_json(),
    )
    node = values("aigloo/nodes/mbp/telemetry", telemetry(power=None))
    assert probe["humidity_pct"] is None
    assert probe["battery_pct"] is None
    assert probe["stale"] == "false"
    assert station["remaining_min"] is None
    assert station["outputs_ac"] is None
    assert station["outputs_dc"] is None
    assert node["power_w"] is None


# --- malformed and foreign input -------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"{}",
        b'{"soc_pct": "57", "watts_in": 0, "watts_out": 0, "source": "twin"}',
        b'{"soc_pct": 140, "watts_in": 0, "watts_out": 0, "source": "twin"}',
        b'{"soc_pct": NaN, "watts_in": 0, "watts_out": 0, "source": "twin"}',
        b"\xff\xfe",
    ],
)
def test_malformed_payloads_raise_payload_error(payload: bytes) -> None:
    """Wrong JSON, types, ranges, NaN or bytes are a PayloadError (reported by the component)."""
    with pytest.raises(PayloadError):
        plain_values(T, "aigloo/power/battery", payload)


@pytest.mark.parametrize(
    "topic",
    [
        "aigloo/nodes/studio/availability",  # already plain
        "aigloo/nodes/studio/info",
        "aigloo/fans/profile/set",
        "aigloo/power/battery/soc_pct",  # a plain topic itself
        "aigloo/nodes/Bad Id/telemetry",
        "elsewhere/power/battery",
    ],
)
def test_other_topics_give_nothing(topic: str) -> None:
    """Topics that are not a mapped JSON state topic give None, whatever their payload."""
    assert plain_values(T, topic, b"on") is None


def test_disabled_groups_give_nothing() -> None:
    """A source whose group is switched off in the config is not mapped nor subscribed."""
    payload = Solar(watts=5).to_json()
    assert plain_values(T, "aigloo/power/solar", payload, groups={"battery"}) is None
    assert source_filters(T, {"battery", "rules"}) == [
        "aigloo/power/battery",
        "aigloo/rules/+/state",
    ]


# --- the change filter -----------------------------------------------------------------------


def test_change_filter_lets_only_changes_through() -> None:
    """The first value and every change go out; a repeat does not; a clear is a change."""
    changes = ChangeFilter()
    topic = "aigloo/power/battery/soc_pct"
    assert changes.due(topic, "57", 0.0, None)
    changes.sent(topic, "57", 0.0)
    assert not changes.due(topic, "57", 1000.0, None)
    assert changes.due(topic, "58", 1.0, None)
    changes.sent(topic, None, 2.0)
    assert not changes.due(topic, None, 3.0, None)
    assert changes.due(topic, "58", 4.0, None)


def test_change_filter_refreshes_expiring_values() -> None:
    """An unchanged expiring value goes out again once the refresh time has passed."""
    changes = ChangeFilter()
    topic = "aigloo/nodes/studio/telemetry/cpu_pct"
    changes.sent(topic, "12", 0.0)
    assert not changes.due(topic, "12", 9.9, 10.0)
    assert changes.due(topic, "12", 10.0, 10.0)


def test_change_filter_forgets_everything_after_a_reconnect() -> None:
    """After forget_all the same value is due again (the broker may have lost it)."""
    changes = ChangeFilter()
    changes.sent("a/b", "1", 0.0)
    changes.forget_all()
    assert changes.due("a/b", "1", 0.0, None)


# --- config ----------------------------------------------------------------------------------


def test_config_defaults_to_every_group_and_a_30s_expiry() -> None:
    """`plain: {}` maps every group; plain telemetry expires after 30 s."""
    config = PlainConfig()
    assert tuple(config.groups) == ALL_GROUPS
    assert config.telemetry_expiry_s == 30.0


@pytest.mark.parametrize(
    "data",
    [
        {"groups": ["battery", "battery"]},
        {"groups": []},
        {"groups": ["weather"]},
        {"telemetry_expiry_s": 0},
        {"expiry": 30},
    ],
)
def test_config_refuses_bad_sections(data: dict[str, object]) -> None:
    """Duplicate, empty or unknown groups, a zero expiry and unknown keys are errors."""
    with pytest.raises(ValidationError):
        PlainConfig.model_validate(data)


# --- what the `plain` role may write ---------------------------------------------------------


def _levels_may_meet(a: str, b: str) -> bool:
    """Whether two topic filters without `#` could match one same topic."""
    left, right = a.split("/"), b.split("/")
    return len(left) == len(right) and all(
        x == y or "+" in (x, y) for x, y in zip(left, right, strict=True)
    )


@pytest.mark.parametrize("base", ["aigloo", "sites/north/aigloo"])
def test_plain_topics_never_meet_a_contract_topic(base: str) -> None:
    """No plain topic pattern can match a topic of the contract: above all no command topic
    (`fans/profile/set`, `nodes/+/power/set`, ...), so the role can write nothing else."""
    topics = Topics(base)
    patterns = plain_value_filters(topics)
    rows = [topics.filter(spec.name) for spec in SPECS]
    commands = [topics.filter(s.name) for s in SPECS if s.payload.endswith("Command")]
    assert len(commands) == 4
    assert all("#" not in pattern for pattern in patterns)
    for pattern in patterns:
        assert not any(_levels_may_meet(pattern, row) for row in rows), pattern
        concrete = pattern.replace("+", "studio")
        assert topics.match(concrete) is None, concrete


def test_plain_patterns_are_one_per_source_field() -> None:
    """One pattern per `<state filter>/<field>`, none repeated: 21 in all."""
    patterns = plain_value_filters(T)
    assert len(patterns) == len(set(patterns)) == sum(len(s.fields) for s in SOURCES) == 21
    assert "aigloo/nodes/+/power/state" in patterns
    assert "aigloo/env/+/climate/temperature_f" in patterns
