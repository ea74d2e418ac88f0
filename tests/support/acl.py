"""Probe topics (one concrete instance of every contract row) and what a role may do there."""

from __future__ import annotations

from typing import Literal

from paho.mqtt.client import topic_matches_sub

from aigloo_edge.broker import role_grants
from aigloo_edge.topics import SPECS, Topics
from tests.support.broker import RunningBroker
from tests.support.collect import Collector

SAMPLE_IDS = {
    "node": "studio",
    "client": "phone",
    "request": "r1",
    "output": "ac",
    "probe": "internal",
    "rule": "fans-max",
    "component": "sensors",
    "device": "studio",
}


def probe_topics(topics: Topics) -> list[str]:
    """Every contract row once, plus another node's topics and topics outside the contract."""
    probes = []
    for spec in SPECS:
        ids = {p: SAMPLE_IDS[p] for p in spec.placeholders if p not in ("base", "discovery")}
        probes.append(topics.build(spec.name, **ids))
    probes += [
        topics.node_telemetry("mbp"),
        topics.node_power_set("mbp"),
        topics.bridge_health("rules"),
        f"{topics.base}/elsewhere",
        "outside/aigloo",
    ]
    return probes


def expected_topics(
    topics: Topics, role: str, action: Literal["read", "write"], probes: list[str]
) -> set[str]:
    grants = [g for g in role_grants(topics)[role] if g.allows(action)]
    return {p for p in probes if any(topic_matches_sub(g.topic, p) for g in grants)}


async def published_through(broker: RunningBroker, role: str, listener: str = "mqtt") -> set[str]:
    """The probe topics whose publishes by `role` (over `listener`) reach an admin observer."""
    probes = probe_topics(broker.topics)
    sentinel = f"{broker.topics.base}/bridge/{role}/sentinel"
    async with broker.session("admin", component="observer") as admin:
        seen = Collector(admin, "#")
        await admin.sync_subscriptions()
        async with broker.session(role, component=role, listener=listener) as subject:
            for topic in probes:
                await subject.publish(topic, b"probe")
            await subject.publish(sentinel, b"end")
            return {m.topic for m in await seen.until(sentinel)} & set(probes)


async def read_through(broker: RunningBroker, role: str, listener: str = "mqtt") -> set[str]:
    """The probe topics `role` (over `listener`), subscribed to each, receives from admin."""
    probes = probe_topics(broker.topics)
    sentinel = f"{broker.topics.base}/bridge/{role}/sentinel"
    async with broker.session(role, component=role, listener=listener) as subject:
        seen = Collector(subject, sentinel)
        for topic in probes:
            subject.router.add(topic, seen._put)
        await subject.sync_subscriptions()
        async with broker.session("admin", component="publisher") as admin:
            for topic in probes:
                await admin.publish(topic, b"probe")
            await admin.publish(sentinel, b"end")
            return {m.topic for m in await seen.until(sentinel)} & set(probes)
