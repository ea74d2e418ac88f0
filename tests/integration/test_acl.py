"""Every role against every topic of the contract: the broker enforces the role table.

For each role, the role publishes one message to every probe topic (then a sentinel) and an
admin records what got through; and admin publishes to every probe topic while the role,
subscribed to each, records what it may read. What gets through must be exactly what the
grants in `aigloo_edge.broker.roles` allow (see tests/unit/test_roles.py for the intent).
"""

from __future__ import annotations

import pytest

from aigloo_edge.broker import ALL_ROLES
from tests.support.acl import expected_topics, probe_topics
from tests.support.broker import RunningBroker
from tests.support.collect import Collector


@pytest.mark.parametrize("role", ALL_ROLES)
async def test_role_may_publish_exactly_its_grants(broker: RunningBroker, role: str) -> None:
    """A role's publishes reach subscribers only on topics its grants allow it to write."""
    probes = probe_topics(broker.topics)
    sentinel = f"{broker.topics.base}/bridge/{role}/sentinel"
    async with broker.session("admin", component="observer") as admin:
        seen = Collector(admin, "#")
        await admin.sync_subscriptions()
        async with broker.session(role, component=role) as subject:
            for topic in probes:
                await subject.publish(topic, b"probe")
            await subject.publish(sentinel, b"end")
            received = {m.topic for m in await seen.until(sentinel)} & set(probes)
    assert received == expected_topics(broker.topics, role, "write", probes)


@pytest.mark.parametrize("role", ALL_ROLES)
async def test_role_may_read_exactly_its_grants(broker: RunningBroker, role: str) -> None:
    """A role subscribed to every probe topic receives only those its grants let it read."""
    probes = probe_topics(broker.topics)
    sentinel = f"{broker.topics.base}/bridge/{role}/sentinel"
    async with broker.session(role, component=role) as subject:
        seen = Collector(subject, sentinel)
        for topic in probes:
            subject.router.add(topic, seen._put)
        subject.router.add(sentinel, seen._put)
        await subject.sync_subscriptions()
        async with broker.session("admin", component="publisher") as admin:
            for topic in probes:
                await admin.publish(topic, b"probe")
            await admin.publish(sentinel, b"end")
            received = {m.topic for m in await seen.until(sentinel)} & set(probes)
    assert received == expected_topics(broker.topics, role, "read", probes)
