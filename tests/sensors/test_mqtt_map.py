"""mqtt_map: readings from any topic + JSON path (+ scale, offset), checked field by field;
a source that shares the bridge's Session and reports devices that go quiet."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from aigloo_edge.errors import ConfigError
from aigloo_edge.mqtt import Inbound, MqttSettings, Session
from aigloo_edge.payloads import BridgeRejected
from aigloo_edge.runtime import cancel_and_wait
from aigloo_edge.sensors.mqtt_map import MapResult, MqttMapper, MqttMapSource, parse_path
from aigloo_edge.sensors.readings import ClimateReading, Lost, Reading, StationReading
from aigloo_edge.sensors.settings import MqttMapConfig
from tests.support.broker import RunningBroker
from tests.support.collect import Collector

WAIT_S = 5.0
VICTRON = "victron/battery"
HA_TEMP = "homeassistant/sensor/cabin_temperature/state"
HA_HUMIDITY = "homeassistant/sensor/cabin_humidity/state"


def make_config(**changes: Any) -> MqttMapConfig:
    base: dict[str, Any] = {
        "station": {
            "soc_pct": {"topic": VICTRON, "path": "soc"},
            "watts_out": {"topic": VICTRON, "path": "dc.power", "scale": -1.0},
            "solar_w": {"topic": "victron/mppt", "path": "pv[0].watts"},
            "ac": {"topic": "inverter/state"},
        },
        "probes": {
            "cabin": {
                "temperature_c": {"topic": HA_TEMP},
                "humidity_pct": {"topic": HA_HUMIDITY},
            },
            "fridge": {
                "temperature_c": {
                    "topic": "esphome/fridge/temp_f",
                    "scale": 5 / 9,
                    "offset": -160 / 9,
                },
            },
        },
        "capacity_wh": 1280.0,
    }
    base.update(changes)
    return MqttMapConfig.model_validate(base)


def station(result: tuple[Reading, ...]) -> StationReading:
    [reading] = result
    assert isinstance(reading, StationReading)
    return reading


# --- paths ------------------------------------------------------------------------------------


def test_paths_use_dots_and_list_indexes() -> None:
    """Dotted paths; a list index may be a number segment or in brackets; empty is the payload."""
    assert parse_path("") == ()
    assert parse_path("battery.soc") == ("battery", "soc")
    assert parse_path("pv[0].watts") == ("pv", 0, "watts")
    assert parse_path("cells.1.v") == ("cells", "1", "v")


@pytest.mark.parametrize("path", ["a..b", ".a", "a.", "a[x]", "a[0"])
def test_malformed_path_is_a_config_error(path: str) -> None:
    """A path that cannot be read is refused when the mapper is built, not per message."""
    with pytest.raises(ConfigError, match="bad JSON path"):
        parse_path(path)


# --- the pure mapping -------------------------------------------------------------------------


def test_values_on_one_topic_make_one_station_reading() -> None:
    """Two values from one JSON payload (one scaled by -1) give one StationReading stamped
    mqtt_map, with the configured capacity; unmapped fields stay None."""
    mapper = MqttMapper(make_config())
    payload = json.dumps({"soc": 76.5, "dc": {"power": -42.0}}).encode()
    result = mapper.map(VICTRON, payload, at=100.0)
    assert result.problems == ()
    assert result.updated == ("station",)
    assert station(result.readings) == StationReading(
        soc_pct=76.5,
        watts_out=42.0,
        capacity_wh=1280.0,
        at=100.0,
        source="mqtt_map",
    )


def test_list_index_in_the_path() -> None:
    """`pv[0].watts` reads the first element of a list."""
    result = MqttMapper(make_config()).map("victron/mppt", b'{"pv":[{"watts":310}]}', at=1.0)
    assert station(result.readings).solar_w == 310


@pytest.mark.parametrize(
    ("payload", "state"),
    [(b"ON", True), (b"off", False), (b"true", True), (b"0", False), (b'"on"', True)],
)
def test_flags_accept_on_off_true_false_and_one_zero(payload: bytes, state: bool) -> None:
    """An output state may be ON/OFF text (Home Assistant, ESPHome), JSON true/false or 1/0."""
    result = MqttMapper(make_config()).map("inverter/state", payload, at=1.0)
    assert station(result.readings).ac is state


def test_plain_text_number_with_scale_and_offset() -> None:
    """A bare `71.6` (°F) with scale 5/9 and offset -160/9 becomes 22 °C."""
    result = MqttMapper(make_config()).map("esphome/fridge/temp_f", b"71.6", at=5.0)
    [reading] = result.readings
    assert isinstance(reading, ClimateReading)
    assert reading.probe == "fridge"
    assert reading.temperature_c == pytest.approx(22.0)
    assert (reading.source, reading.at) == ("mqtt_map", 5.0)


def test_probe_gives_no_reading_until_its_temperature_arrives() -> None:
    """Humidity alone cannot make a climate reading; once the temperature comes, the reading
    carries both, and a later humidity update repeats the last temperature."""
    mapper = MqttMapper(make_config())
    first = mapper.map(HA_HUMIDITY, b"55", at=1.0)
    assert first.readings == ()
    assert first.updated == ("cabin",)
    [with_both] = mapper.map(HA_TEMP, b"19.5", at=2.0).readings
    assert with_both == ClimateReading(
        probe="cabin", temperature_c=19.5, humidity_pct=55.0, at=2.0, source="mqtt_map"
    )
    [later] = mapper.map(HA_HUMIDITY, b"60", at=3.0).readings
    assert isinstance(later, ClimateReading)
    assert (later.temperature_c, later.humidity_pct) == (19.5, 60.0)


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (VICTRON, b'{"soc": "full"}', "station.soc_pct: expected a number, got text"),
        (VICTRON, b'{"soc": true}', "station.soc_pct: expected a number, got true/false"),
        (VICTRON, b'{"soc": null}', "station.soc_pct: expected a number, got null"),
        (VICTRON, b'{"soc": NaN}', "station.soc_pct: not a finite number"),
        (VICTRON, b'{"soc": 1e999}', "station.soc_pct: not a finite number"),
        (VICTRON, b'{"soc": ' + b"9" * 400 + b"}", "station.soc_pct: number out of range"),
        (VICTRON, b'{"soc": 250}', r"station.soc_pct: out of range \(0 to 100\)"),
        (VICTRON, b'{"charge": 50}', "station.soc_pct: no 'soc' in the payload"),
        (VICTRON, b"soc=50", "station.soc_pct: payload is not JSON"),
        ("victron/mppt", b'{"pv": []}', "station.solar_w: no 'pv\\[0\\].watts'"),
        (HA_TEMP, b"unavailable", "cabin.temperature_c: expected a number, got text"),
        (HA_TEMP, b"900", "cabin.temperature_c: out of range"),
        ("inverter/state", b"maybe", "station.ac: expected on/off"),
        ("inverter/state", b"2", "station.ac: expected on/off"),
        (HA_TEMP, b"", "empty payload"),
        (HA_TEMP, b"\xff\xfe", "not UTF-8"),
    ],
)
def test_bad_values_are_rejected_with_a_reason_and_never_become_readings(
    topic: str, payload: bytes, reason: str
) -> None:
    """Wrong types, missing paths, NaN, huge or out-of-range numbers, unknown flag words and
    undecodable payloads give a reason and no reading, and do not count as an update."""
    result = MqttMapper(make_config()).map(topic, payload, at=1.0)
    assert result.readings == ()
    assert result.updated == ()
    assert any(re.search(reason, problem) for problem in result.problems), result.problems


def test_one_bad_value_does_not_spoil_the_good_one_on_the_same_topic() -> None:
    """On a topic carrying two values, a bad one is reported and the good one still counts."""
    result = MqttMapper(make_config()).map(VICTRON, b'{"soc": 80, "dc": {"power": "x"}}', at=1.0)
    assert station(result.readings).soc_pct == 80
    assert station(result.readings).watts_out is None
    assert result.problems == ("station.watts_out: expected a number, got text",)


def test_topic_filters_with_wildcards_match() -> None:
    """A mapped topic may be an MQTT filter; messages on matching topics are read."""
    config = MqttMapConfig.model_validate(
        {"probes": {"shed": {"temperature_c": {"topic": "zigbee/+/temperature"}}}}
    )
    mapper = MqttMapper(config)
    assert mapper.topics == ("zigbee/+/temperature",)
    [reading] = mapper.map("zigbee/shed/temperature", b"12.25", at=1.0).readings
    assert isinstance(reading, ClimateReading)
    assert reading.temperature_c == 12.25
    assert mapper.map("zigbee/shed/humidity", b"40", at=1.0) == MapResult()  # not mapped


# --- the source on a Session ------------------------------------------------------------------


async def test_quiet_device_is_reported_lost_once_and_recovers() -> None:
    """A device with no valid value for stale_after gets one Lost naming its topics; a later
    value makes it fresh again. Messages are handed to the Session's dispatch directly."""
    config = make_config(stale_after=0.3)
    session = Session(MqttSettings(), component="sensors")
    readings: asyncio.Queue[Reading] = asyncio.Queue()
    source = MqttMapSource(config, session)
    task = asyncio.create_task(source.run(readings.put))
    try:
        await asyncio.sleep(0)  # let run() add its routes
        assert set(session.router.subscriptions()) == {
            VICTRON,
            "victron/mppt",
            "inverter/state",
            HA_TEMP,
            HA_HUMIDITY,
            "esphome/fridge/temp_f",
        }
        for _ in range(4):
            await asyncio.sleep(0.1)
            await session.dispatch(Inbound(HA_TEMP, b"20.0"))
        lost: dict[str, Lost] = {}
        async with asyncio.timeout(WAIT_S):
            while len(lost) < 2:
                reading = await readings.get()
                if isinstance(reading, Lost):
                    lost[reading.device] = reading
        assert set(lost) == {"station", "fridge"}  # the cabin kept reporting
        assert "esphome/fridge/temp_f" in lost["fridge"].reason
        await session.dispatch(Inbound("esphome/fridge/temp_f", b"39.2"))
        async with asyncio.timeout(WAIT_S):
            while not isinstance(reading := await readings.get(), ClimateReading) or (
                reading.probe != "fridge"
            ):
                pass
        assert reading.temperature_c == pytest.approx(4.0)
    finally:
        await cancel_and_wait(task)
    assert session.router.subscriptions() == {}  # routes removed when the source stops


async def test_bad_payload_is_rejected_through_the_session() -> None:
    """A rejected value surfaces as a PayloadError from the route, which the Session counts."""
    session = Session(MqttSettings(), component="sensors")
    readings: asyncio.Queue[Reading] = asyncio.Queue()
    task = asyncio.create_task(MqttMapSource(make_config(), session).run(readings.put))
    try:
        await asyncio.sleep(0)
        await session.dispatch(Inbound(VICTRON, b'{"soc": "full"}'))
    finally:
        await cancel_and_wait(task)
    assert session.rejections.total == 1
    assert readings.empty()


async def test_mapped_topics_through_the_real_broker(broker: RunningBroker) -> None:
    """Through Mosquitto: JSON and plain-text state topics published by another client become
    station and climate readings on a shared Session; a bad value is reported on
    bridge/<component>/rejected."""
    readings: asyncio.Queue[Reading] = asyncio.Queue()
    async with (
        broker.session("admin", component="othersystem") as other,
        broker.session("admin", component="mapper", reject_report_interval_s=0.01) as bridge,
    ):
        rejected = Collector(other, broker.topics.bridge_rejected("mapper"))
        await other.sync_subscriptions()
        task = asyncio.create_task(MqttMapSource(make_config(), bridge).run(readings.put))
        try:
            await asyncio.sleep(0)
            await bridge.sync_subscriptions()
            await other.publish(VICTRON, json.dumps({"soc": 64, "dc": {"power": -120}}))
            await other.publish(HA_TEMP, b"18.25")
            await other.publish(HA_HUMIDITY, b"unknown")
            got: list[Reading] = []
            async with asyncio.timeout(WAIT_S):
                while len(got) < 2:
                    got.append(await readings.get())
            report = BridgeRejected.from_json((await rejected.next()).payload)
        finally:
            await cancel_and_wait(task)
    by_kind = {type(r).__name__: r for r in got}
    assert by_kind["StationReading"] == StationReading(
        soc_pct=64,
        watts_out=120,
        capacity_wh=1280.0,
        at=by_kind["StationReading"].at,
        source="mqtt_map",
    )
    climate = by_kind["ClimateReading"]
    assert isinstance(climate, ClimateReading)
    assert (climate.probe, climate.temperature_c, climate.humidity_pct) == ("cabin", 18.25, None)
    assert report.topic == HA_HUMIDITY
    assert "cabin.humidity_pct: expected a number, got text" in report.reason
