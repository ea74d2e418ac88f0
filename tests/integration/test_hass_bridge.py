"""The Home Assistant bridge on a real Mosquitto, with the live twin (station, probes, fans,
Studio, MacBook Pro, Air) and the shipped rules: what an HA pointed at the broker would see and
do. Payloads are checked against HA's documented discovery rules (tests/unit/test_hass_schema),
and the controls are driven exactly as HA would: the discovery's command topic and payload."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from aigloo_edge.hass import DeviceDiscovery
from aigloo_edge.mqtt import Inbound, Session
from aigloo_edge.payloads import Climate, FanProfileState, PowerState, RuleState
from aigloo_edge.topics import Topics
from tests.support.broker import RunningBroker
from tests.support.collect import Collector
from tests.support.node import machine_running, node_config
from tests.unit.test_hass_schema import ABBREVIATIONS, check_message, expand

ROOT = Path(__file__).resolve().parents[2]
SUNNY = ROOT / "scenarios" / "sunny-day.yaml"
WAIT_S = 15.0
EXPECTED = {"studio", "mbp", "air", "station", "fans", "probe_internal", "probe_ambient", "rules"}


class HomeAssistant:
    """What an HA instance would hold: the retained discovery messages, by device id."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.topics = Topics(session.topics.base)
        self.devices: dict[str, bytes] = {}
        self.arrivals: list[str] = []
        self.changed = asyncio.Event()
        session.route(f"{self.topics.discovery_prefix}/device/+/config", self._on_config)

    async def _on_config(self, message: Inbound) -> None:
        device_id = message.topic.split("/")[-2].removeprefix("aigloo_")
        self.arrivals.append(device_id)
        if message.payload:
            self.devices[device_id] = message.payload
        else:
            self.devices.pop(device_id, None)
        self.changed.set()

    async def until(self, condition: Any, timeout: float = WAIT_S) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self.changed.clear()
                await self.changed.wait()

    def component(self, device_id: str, key: str) -> dict[str, Any]:
        components = json.loads(self.devices[device_id])["cmps"]
        return expand(components[key], ABBREVIATIONS)

    async def press(self, device_id: str, key: str, payload_key: str) -> None:
        """Send what HA sends when the user uses this control."""
        control = self.component(device_id, key)
        payload = control.get(payload_key, payload_key)
        await self.session.publish(control["command_topic"], str(payload))


@pytest_asyncio.fixture
async def ha(broker: RunningBroker, tmp_path: Path) -> AsyncIterator[HomeAssistant]:
    mini = node_config(
        broker,
        "mini",
        components=["twin", "rules", "hass"],
        twin={"scenario": str(SUNNY), "speed": 1},
        rules={"dir": str(ROOT / "rules"), "state_file": str(tmp_path / "rules.sqlite3")},
        hass={"birth_delay_s": 0.2, "settle_s": 0.5},
    )
    async with (
        broker.session("homeassistant", component="ha") as session,
        machine_running(broker, mini, online_as="homeassistant"),
    ):
        home = HomeAssistant(session)
        await session.sync_subscriptions()
        await home.until(lambda: home.devices.keys() >= EXPECTED)
        yield home


def topic(availability: dict[str, str]) -> str:
    return availability.get("topic") or availability["t"]  # `t`: HA's abbreviation


async def wait_for(session: Session, topic: str, accept: Any) -> bytes:
    seen = Collector(session, topic)
    await session.sync_subscriptions()
    async with asyncio.timeout(WAIT_S):
        while True:
            payload = (await seen.next(WAIT_S)).payload
            if accept(payload):
                return payload


async def test_every_device_appears_with_payloads_home_assistant_accepts(
    ha: HomeAssistant,
) -> None:
    """Each node, the station, the fans, each probe and the rules engine get one retained
    device-discovery message that breaks none of HA's documented rules."""
    topics = ha.topics
    for device_id, payload in ha.devices.items():
        message = DeviceDiscovery(device_id, topics.hass_device_config(device_id), payload)
        assert check_message(topics, message) == [], device_id
    rules = json.loads(ha.devices["rules"])["cmps"]
    assert {"rule_fans-max-when-hot", "rule_fans-max-when-hot_active"} <= rules.keys()


async def test_controls_work_as_home_assistant_sends_them(ha: HomeAssistant) -> None:
    """The fan select, the Studio's power switch, the DC output switch and a rule's switch
    change the rig when driven with the discovery's own command topic and payload."""
    t, session = ha.topics, ha.session
    fans = ha.component("fans", "profile")
    await session.publish(fans["command_topic"], "max")
    assert FanProfileState.from_json(
        await wait_for(session, t.fans_profile(), lambda p: b'"max"' in p)
    )
    await ha.press("studio", "power", "payload_off")
    state = await wait_for(session, t.node_power("studio"), lambda p: b"sleeping" in p)
    assert PowerState.from_json(state).state == "sleeping"
    await ha.press("station", "dc_output", "payload_off")
    await wait_for(session, t.battery(), lambda p: b'"dc":false' in p.replace(b" ", b""))
    await ha.press("rules", "rule_fans-quiet-when-cool", "payload_off")
    rule = await wait_for(
        session, t.rule_state("fans-quiet-when-cool"), lambda p: b'"enabled":false' in p
    )
    assert RuleState.from_json(rule).enabled is False


async def test_home_assistant_birth_gets_every_device_again(
    ha: HomeAssistant, broker: RunningBroker
) -> None:
    """`online` on homeassistant/status (HA restarted) makes the bridge publish every device's
    discovery again, after its small random delay."""
    ha.arrivals.clear()
    await ha.session.publish("homeassistant/status", "online")
    await ha.until(lambda: set(ha.arrivals) >= EXPECTED)
    assert ha.devices.keys() >= EXPECTED


async def test_entities_follow_the_last_will_of_their_component(ha: HomeAssistant) -> None:
    """The station's entities are available while the sensor bridge is online; the Studio's
    power switch while the Studio or the waker (the Mini's agent) is."""
    t = ha.topics
    battery = ha.component("station", "soc")
    assert [topic(a) for a in battery["availability"]] == [t.bridge_availability("sensors")]
    switch = ha.component("studio", "power")
    topics = {topic(a) for a in switch["availability"]}
    assert topics == {t.node_availability("studio"), t.node_availability("mini")}
    assert switch["availability_mode"] == "any"
    online = await wait_for(ha.session, t.bridge_availability("sensors"), lambda p: True)
    assert online == b"online"


async def test_a_removed_probe_and_rule_leave_home_assistant(
    ha: HomeAssistant, broker: RunningBroker
) -> None:
    """A probe whose retained reading is cleared loses its device (an empty retained payload);
    a rule whose state is cleared leaves the rules device in HA's two steps."""
    t = ha.topics
    async with broker.session("sensors", component="probe-owner") as sensors:
        reading = Climate(probe="exhaust", temperature_c=30.0)
        await sensors.publish(t.env_climate("exhaust"), reading, retain=True)
        await ha.until(lambda: "probe_exhaust" in ha.devices)
        await sensors.publish(t.env_climate("exhaust"), b"", retain=True)
        await ha.until(lambda: "probe_exhaust" not in ha.devices)
    async with broker.session("rules", component="rule-owner") as rules:
        state = RuleState(rule="extra-rule", enabled=True, active=False)
        await rules.publish(t.rule_state("extra-rule"), state, retain=True)
        await ha.until(lambda: "rule_extra-rule" in ha.devices["rules"].decode())
        ha.arrivals.clear()
        await rules.publish(t.rule_state("extra-rule"), b"", retain=True)
        await ha.until(lambda: "rule_extra-rule" not in ha.devices["rules"].decode())
    assert ha.arrivals.count("rules") == 2  # the interim message, then the device without it


async def test_a_node_cleared_while_the_bridge_was_down_is_removed_at_start(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """A device HA still holds from an earlier run is withdrawn when the rig no longer has it;
    the station stays (a lost station's readings are cleared, its device is not)."""
    t = Topics(broker.topics.base)
    hass = node_config(broker, "mini", components=["hass"], hass={"settle_s": 0.3})
    async with broker.session("homeassistant", component="ha") as session:
        home = HomeAssistant(session)
        await session.sync_subscriptions()
        for device_id in ("oldnode", "station"):
            await session.publish(t.hass_device_config(device_id), b'{"dev": {}}', retain=True)
        await home.until(lambda: {"oldnode", "station"} <= home.devices.keys())
        async with machine_running(broker, hass, online_as="homeassistant"):
            await home.until(lambda: "oldnode" not in home.devices)
        assert "station" in home.devices


@pytest.mark.parametrize("payload", [b"offline", b"garbage"])
async def test_only_online_on_the_status_topic_is_a_birth(
    ha: HomeAssistant, payload: bytes
) -> None:
    """HA's last will (`offline`) or anything else on its status topic publishes nothing."""
    ha.arrivals.clear()
    await ha.session.publish("homeassistant/status", payload)
    await asyncio.sleep(0.6)  # longer than the bridge's birth delay
    assert ha.arrivals == []
