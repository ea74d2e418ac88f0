"""The plain-values component against a real Mosquitto: retained JSON state in, retained plain
values out; changes, clears, expiry and rejected input; and a phone on the websockets listener
reading a plain value and sending a plain command, the path a phone app takes."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from aigloo_edge.mqtt import Inbound, Session
from aigloo_edge.payloads import (
    Battery,
    Climate,
    NodePower,
    NodeTelemetry,
    Outputs,
    RuleState,
)
from aigloo_edge.plain import PlainConfig
from aigloo_edge.plain.component import PlainValues
from aigloo_edge.runtime import cancel_and_wait
from aigloo_edge.sensors.fans import FanController
from aigloo_edge.sensors.settings import FansConfig
from tests.support.broker import RunningBroker
from tests.support.collect import wait_until

PLAIN_ROLE = "plain"  # the component's own broker user: its ACL is what is tested here too


class Seen:
    """Every payload a session receives on `topic_filter`, by topic, in order."""

    def __init__(self, session: Session, topic_filter: str) -> None:
        self.by_topic: dict[str, list[bytes]] = {}
        session.route(topic_filter, self._put)

    async def _put(self, message: Inbound) -> None:
        self.by_topic.setdefault(message.topic, []).append(message.payload)

    def last(self, topic: str) -> bytes | None:
        payloads = self.by_topic.get(topic)
        return payloads[-1] if payloads else None

    async def until(self, topic: str, payload: bytes) -> None:
        await wait_until(lambda: self.last(topic) == payload)


@contextlib.asynccontextmanager
async def plain_component(
    broker: RunningBroker, config: PlainConfig | None = None
) -> AsyncIterator[PlainValues]:
    """The component on its own session, subscribed before the block starts."""
    async with broker.session(PLAIN_ROLE, component="plain") as session:
        component = PlainValues(session, config or PlainConfig())
        await session.sync_subscriptions()
        task = asyncio.create_task(component.run())
        try:
            yield component
        finally:
            await cancel_and_wait(task)


def battery(soc: float, *, dc: bool = False) -> bytes:
    return Battery(
        soc_pct=soc,
        watts_in=120,
        watts_out=35.5,
        remaining_min=300,
        outputs=Outputs(ac=True, dc=dc),
        source="twin",
    ).to_json()


def telemetry(cpu: float) -> bytes:
    return NodeTelemetry(
        node="studio",
        cpu_pct=cpu,
        memory_used_bytes=1,
        memory_available_bytes=1,
        memory_pct=40,
        power=NodePower(system_w=180),
    ).to_json()


async def test_retained_state_becomes_plain_values_that_follow_changes_and_clears(
    broker: RunningBroker,
) -> None:
    """State published before the component starts is mapped; a change republishes only the
    fields that changed; a field that disappears and a cleared source clear their topics."""
    t = broker.topics
    base = t.base
    async with broker.session("admin", component="source") as source:
        await source.publish(t.battery(), battery(57), retain=True)
        climate = Climate(probe="internal", temperature_c=33.9, humidity_pct=41)
        await source.publish(t.env_climate("internal"), climate.to_json(), retain=True)
        await source.publish(t.node_telemetry("studio"), telemetry(12.34), retain=True)
        rule = RuleState(rule="fans-max", enabled=True, active=False, phase="idle")
        await source.publish(t.rule_state("fans-max"), rule.to_json(), retain=True)
        async with (
            broker.session("admin", component="observer") as observer,
            plain_component(broker),
        ):
            seen = Seen(observer, f"{base}/#")
            await observer.sync_subscriptions()
            await seen.until(f"{base}/power/battery/outputs_dc", b"off")
            await seen.until(f"{base}/env/internal/climate/temperature_f", b"93")
            await seen.until(f"{base}/nodes/studio/telemetry/power_w", b"180")
            await seen.until(f"{base}/rules/fans-max/state/phase", b"idle")
            assert seen.last(f"{base}/power/battery/soc_pct") == b"57"
            assert seen.last(f"{base}/power/battery/outputs_ac") == b"on"
            assert seen.last(f"{base}/env/internal/climate/humidity_pct") == b"41"
            assert seen.last(f"{base}/nodes/studio/telemetry/cpu_pct") == b"12.3"
            assert seen.last(f"{base}/rules/fans-max/state/enabled") == b"true"

            await source.publish(t.battery(), battery(58, dc=True), retain=True)
            await seen.until(f"{base}/power/battery/outputs_dc", b"on")
            assert seen.last(f"{base}/power/battery/soc_pct") == b"58"
            assert seen.by_topic[f"{base}/power/battery/watts_in"] == [b"120"]  # unchanged

            dry = Climate(probe="internal", temperature_c=34.0)
            await source.publish(t.env_climate("internal"), dry.to_json(), retain=True)
            await seen.until(f"{base}/env/internal/climate/humidity_pct", b"")

            await source.publish(t.battery(), b"", retain=True)
            await seen.until(f"{base}/power/battery/outputs_dc", b"")
            assert seen.last(f"{base}/power/battery/soc_pct") == b""
        assert await retained_under(broker, f"{base}/power/battery/+") == {}


async def test_plain_telemetry_values_expire_with_their_source(broker: RunningBroker) -> None:
    """Plain telemetry values carry the configured message expiry; other values last."""
    t = broker.topics
    config = PlainConfig(telemetry_expiry_s=1)
    async with broker.session("admin", component="source") as source:
        async with (
            broker.session("admin", component="observer") as observer,
            plain_component(broker, config),
        ):
            seen = Seen(observer, f"{t.base}/#")
            await observer.sync_subscriptions()
            await source.publish(t.node_telemetry("studio"), telemetry(50), retain=True)
            rule = RuleState(rule="hot", enabled=False, active=False, phase="disabled")
            await source.publish(t.rule_state("hot"), rule.to_json(), retain=True)
            await seen.until(f"{t.base}/nodes/studio/telemetry/power_w", b"180")
            await seen.until(f"{t.base}/rules/hot/state/phase", b"disabled")
        await asyncio.sleep(2.5)
        assert await retained_under(broker, f"{t.base}/nodes/studio/telemetry/+") == {}
        lasting = await retained_under(broker, f"{t.base}/rules/hot/state/+")
        assert lasting[f"{t.base}/rules/hot/state/enabled"] == b"false"


async def test_malformed_state_is_reported_and_later_input_still_flows(
    broker: RunningBroker,
) -> None:
    """A payload that does not validate is reported on bridge/plain/rejected and clears the
    source's plain topics; the next good payload is mapped as usual."""
    t = broker.topics
    base = t.base
    async with (
        broker.session("admin", component="source") as source,
        broker.session("admin", component="observer") as observer,
        plain_component(broker),
    ):
        seen = Seen(observer, f"{base}/#")
        await observer.sync_subscriptions()
        await source.publish(t.battery(), battery(57), retain=True)
        await seen.until(f"{base}/power/battery/soc_pct", b"57")

        await source.publish(t.battery(), b'{"soc_pct": "lots"}', retain=True)
        await wait_until(lambda: seen.last(t.bridge_rejected("plain")) is not None)
        report = json.loads(seen.last(t.bridge_rejected("plain")) or b"{}")
        assert report["topic"] == t.battery()
        assert report["kind"] == "invalid"
        assert "soc_pct" in report["reason"]
        await seen.until(f"{base}/power/battery/soc_pct", b"")

        await source.publish(t.battery(), battery(61), retain=True)
        await seen.until(f"{base}/power/battery/soc_pct", b"61")


async def test_phone_over_websockets_reads_plain_values_and_sets_the_fan_profile(
    broker: RunningBroker,
) -> None:
    """A phone (mobile role, MQTT 3.1.1 over websockets) reads `fans/profile/profile`, sends
    the plain command `max` to `fans/profile/set`, and reads the profile the fans reached."""
    t = broker.topics
    profile = f"{t.base}/fans/profile/profile"
    async with (
        broker.session("sensors") as sensors,
        plain_component(broker),
        broker.session("mobile", listener="websockets", protocol="3.1.1") as phone,
    ):
        fans = FanController(sensors, FansConfig(driver="dry-run", initial="quiet"))
        await sensors.sync_subscriptions()
        fans_task = asyncio.create_task(fans.run())
        try:
            seen = Seen(phone, f"{t.base}/fans/profile/+")
            await phone.sync_subscriptions()
            await seen.until(profile, b"quiet")
            await phone.publish(t.fans_profile_set(), b"max")
            await seen.until(profile, b"max")
            assert seen.last(f"{t.base}/fans/profile/duty_pct") == b"100"
        finally:
            await cancel_and_wait(fans_task)


async def retained_under(broker: RunningBroker, topic_filter: str) -> dict[str, bytes]:
    """What a new subscriber is given as retained under `topic_filter` (a sentinel ends it)."""
    sentinel = f"{broker.topics.base}/bridge/reader/sentinel"
    async with broker.session("admin", component="reader", announce=False) as reader:
        seen = Seen(reader, topic_filter)
        ended = Seen(reader, sentinel)
        await reader.sync_subscriptions()
        await reader.publish(sentinel, b"end")
        await wait_until(lambda: ended.last(sentinel) is not None)
    return {topic: payloads[-1] for topic, payloads in seen.by_topic.items() if payloads[-1]}
