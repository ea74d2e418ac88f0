"""The bridge's publisher on a real Mosquitto: merged station fields, deadbands, heartbeat,
lost devices reported stale and never republished as fresh."""

from __future__ import annotations

import asyncio

from aigloo_edge.mqtt import Session
from aigloo_edge.payloads import Battery, Climate, Solar
from aigloo_edge.sensors.publisher import Publisher
from aigloo_edge.sensors.readings import ClimateReading, Lost, StationReading
from aigloo_edge.sensors.settings import Deadbands
from tests.support.broker import RunningBroker
from tests.support.collect import Collector

T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def publisher(session: Session, clock: Clock, heartbeat_s: float = 30.0) -> Publisher:
    return Publisher(session, Deadbands(), heartbeat_s, capacity_wh=768, clock=clock)


async def drain(collector: Collector, wait_s: float = 0.3) -> list[bytes]:
    await asyncio.sleep(wait_s)
    seen = []
    while not collector.queue.empty():
        seen.append(collector.queue.get_nowait().payload)
    return seen


async def test_station_fields_arriving_in_pieces_are_published_together(
    broker: RunningBroker,
) -> None:
    """SoC from one packet, watts from the next: one battery payload with both, and solar."""
    topics = broker.topics
    clock = Clock()
    async with broker.session("admin") as admin, broker.session("sensors") as sensors:
        battery = Collector(admin, topics.battery())
        solar = Collector(admin, topics.solar())
        await admin.sync_subscriptions()
        out = publisher(sensors, clock)
        await out.put(StationReading(soc_pct=57, ac=True, at=T0))
        await out.put(StationReading(watts_in=120, watts_out=80, solar_w=110, at=T0 + 1))
        got = Battery.from_json((await battery.next()).payload)
        assert (got.soc_pct, got.watts_in, got.watts_out, got.outputs.ac) == (57, 120, 80, True)
        assert (got.capacity_wh, got.source, got.ts) == (768, "ecoflow_ble", T0 + 1)
        assert Solar.from_json((await solar.next()).payload).watts == 110


async def test_small_changes_wait_for_the_heartbeat_and_big_ones_go_at_once(
    broker: RunningBroker,
) -> None:
    """0.1 °C is inside the 0.2 °C deadband: not sent until the heartbeat; 1 °C is sent."""
    topics = broker.topics
    clock = Clock()
    async with broker.session("admin") as admin, broker.session("sensors") as sensors:
        climate = Collector(admin, topics.env_climate("internal"))
        await admin.sync_subscriptions()
        out = publisher(sensors, clock)
        await out.put(ClimateReading("internal", 30.0, at=T0))
        await out.put(ClimateReading("internal", 30.1, at=T0 + 1))
        clock.now = T0 + 2
        await out.put(ClimateReading("internal", 31.1, at=T0 + 2))
        temperatures = [Climate.from_json(p).temperature_c for p in await drain(climate)]
        assert temperatures == [30.0, 31.1]
        clock.now = T0 + 40
        await out.put(ClimateReading("internal", 31.15, at=T0 + 40))
        assert [Climate.from_json(p).ts for p in await drain(climate)] == [T0 + 40]


async def test_a_lost_probe_is_stale_and_a_lost_station_is_cleared(broker: RunningBroker) -> None:
    """Lost probe → retained climate with stale=true; lost station → retained battery removed."""
    topics = broker.topics
    clock = Clock()
    async with broker.session("admin") as admin, broker.session("sensors") as sensors:
        climate = Collector(admin, topics.env_climate("internal"))
        battery = Collector(admin, topics.battery())
        await admin.sync_subscriptions()
        out = publisher(sensors, clock)
        await out.put(ClimateReading("internal", 30.0, at=T0))
        await out.put(StationReading(soc_pct=50, watts_in=0, watts_out=10, at=T0))
        await out.put(Lost("internal", "no advert for 300s", at=T0 + 300))
        await out.put(Lost("station", "link lost", at=T0 + 300))
        stale = Climate.from_json((await drain(climate))[-1])
        assert (stale.stale, stale.ts) == (True, T0)
        assert (await drain(battery))[-1] == b""
        # The heartbeat never republishes what was lost.
        clock.now = T0 + 400
        assert out.station.soc_pct is None
        assert "internal" not in out.probes
