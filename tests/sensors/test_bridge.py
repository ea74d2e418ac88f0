"""The `sensors` and `fans` components as `aigloo run` starts them, on a real Mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aigloo_edge.payloads import Battery, BridgeRejected, Climate, FanProfileState, Solar
from aigloo_edge.runtime import cancel_and_wait
from aigloo_edge.sensors.bridge import SensorBridge
from aigloo_edge.sensors.ecoflow import EcoflowBleSource, Timeouts
from aigloo_edge.sensors.settings import EcoflowBleConfig, SensorsConfig
from tests.support.broker import RunningBroker
from tests.support.collect import Collector
from tests.support.ecoflow_station import EmulatedStation
from tests.support.node import machine_running, node_config

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
    async with machine_running(broker, config, "sensors"):
        yield


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


async def test_the_station_over_ble_reaches_the_bus_and_obeys_an_output_command(
    broker: RunningBroker,
) -> None:
    """Emulated RIVER 2 → battery and solar on the bus; `power/ac/set on` → the station's AC
    output switches and the next battery payload says so."""
    station = EmulatedStation(user_id="1234567890")
    config = EcoflowBleConfig(
        serial=station.serial, user_id="1234567890", address=station.address, capacity_wh=768
    )
    source = EcoflowBleSource(
        config, station, None, timeouts=Timeouts(handshake=1, resend=0.1, stale=0.5, command=1)
    )
    topics = broker.topics
    async with broker.session("admin") as admin, broker.session("sensors") as session:
        battery = Collector(admin, topics.battery())
        solar = Collector(admin, topics.solar())
        await admin.sync_subscriptions()
        bridge = SensorBridge(session, SensorsConfig(ecoflow_ble=config), {"ble": source}, source)
        await session.sync_subscriptions()
        task = asyncio.create_task(bridge.run())
        try:
            first = Battery.from_json((await battery.next()).payload)
            while first.outputs.ac is None:  # the status packet with the outputs comes next
                first = Battery.from_json((await battery.next()).payload)
            assert (first.soc_pct, first.source, first.outputs.ac) == (81.5, "ecoflow_ble", False)
            assert Solar.from_json((await solar.next()).payload).watts == 96
            await admin.publish(topics.power_output_set("ac"), b'{"state": "on", "id": "c1"}')
            while not Battery.from_json((await battery.next()).payload).outputs.ac:
                pass
            assert station.log.commands == [("ac", True)]
        finally:
            await cancel_and_wait(task)
