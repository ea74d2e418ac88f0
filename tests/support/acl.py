"""Probe topics (one concrete instance of every contract row) and what a role may do there."""

from __future__ import annotations

from typing import Literal

from paho.mqtt.client import topic_matches_sub

from aigloo_edge.broker import role_grants
from aigloo_edge.topics import SPECS, Topics

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
