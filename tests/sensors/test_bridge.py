"""The `sensors` and `fans` components as `aigloo run` starts them, on a real Mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aigloo_edge.app import run_machine
from aigloo_edge.payloads import Battery, BridgeRejected, Climate, FanProfileState
from aigloo_edge.runtime import cancel_and_wait
from tests.support.broker import RunningBroker
from tests.support.collect import Collector
from tests.support.node import node_config

MAPPED = {
    "mqtt_map": {
        "station": {
            "soc_pct": {"topic": "victron/shunt/soc"},
            "watts_in": {"topic": "victron/shunt/state", "path": "in_w"},
            "watts_out": {"topic": "victron/shunt/state", "path": "out_w"},
        },
        "probes": {"exhaust": {"temperature_c": {"topic": "esphome/box/exhaust"}}},
    }
}


@contextlib.asynccontextmanager
async def bridge_running(broker: RunningBroker, **sections: Any) -> AsyncIterator[None]:
    config = node_config(broker, "mini", components=["sensors", "fans"], **sections)
    task = asyncio.create_task(run_machine(config))
    try:
        async with broker.session("admin", component="wait-sensors") as admin:
            seen = Collector(admin, broker.topics.bridge_availability("sensors"))
            while (await seen.next(10)).payload != b"online":
                pass
        yield
    finally:
        await cancel_and_wait(task)


async def test_mapped_readings_become_the_contracts_battery_and_climate(
    broker: RunningBroker,
) -> None:
    """Values from foreign topics (a shunt, an ESPHome probe) come out as battery and climate."""
    topics = broker.topics
    async with broker.session("admin") as admin:
        battery = Collector(admin, topics.battery())
        climate = Collector(admin, topics.env_climate("exhaust"))
        await admin.sync_subscriptions()
        async with bridge_running(broker, sensors=MAPPED, fans={"driver": "dry-run"}):
            await asyncio.sleep(0.3)  # the mapping's subscriptions
            await admin.publish("victron/shunt/soc", b"57.5")
            await admin.publish("victron/shunt/state", b'{"in_w": 120, "out_w": 80}')
            await admin.publish("esphome/box/exhaust", b"31.2")
            got = Battery.from_json((await battery.next()).payload)
            assert (got.soc_pct, got.watts_in, got.watts_out, got.source) == (
                57.5,
                120,
                80,
                "mqtt_map",
            )
            assert Climate.from_json((await climate.next()).payload).temperature_c == 31.2


async def test_the_fans_apply_a_profile_and_a_readonly_station_refuses_outputs(
    broker: RunningBroker,
) -> None:
    """fans/profile/set → fans/profile; power/ac/set with only mapped readings is refused."""
    topics = broker.topics
    async with broker.session("admin") as admin:
        fans = Collector(admin, topics.fans_profile())
        rejected = Collector(admin, topics.bridge_rejected("sensors"))
        async with bridge_running(broker, sensors=MAPPED, fans={"driver": "dry-run"}):
            assert FanProfileState.from_json((await fans.next()).payload).profile == "normal"
            await admin.publish(topics.fans_profile_set(), b"max")
            state = FanProfileState.from_json((await fans.next()).payload)
            assert (state.profile, state.duty_pct) == ("max", 100)
            await admin.publish(topics.power_output_set("ac"), b"off")
            report = BridgeRejected.from_json((await rejected.next()).payload)
            assert "no station source here can switch outputs" in report.reason
