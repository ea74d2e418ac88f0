"""Every role against every topic of the contract: the broker enforces the role table.

For each role, the role publishes one message to every probe topic (then a sentinel) and an
admin records what got through; and admin publishes to every probe topic while the role,
subscribed to each, records what it may read. What gets through must be exactly what the
grants in `aigloo_edge.broker.roles` allow (see tests/unit/test_roles.py for the intent).
"""

from __future__ import annotations

import pytest

from aigloo_edge.broker import ALL_ROLES
from tests.support.acl import expected_topics, probe_topics, published_through, read_through
from tests.support.broker import RunningBroker


@pytest.mark.parametrize("role", ALL_ROLES)
async def test_role_may_publish_exactly_its_grants(broker: RunningBroker, role: str) -> None:
    """A role's publishes reach subscribers only on topics its grants allow it to write."""
    probes = probe_topics(broker.topics)
    received = await published_through(broker, role)
    assert received == expected_topics(broker.topics, role, "write", probes)


@pytest.mark.parametrize("role", ALL_ROLES)
async def test_role_may_read_exactly_its_grants(broker: RunningBroker, role: str) -> None:
    """A role subscribed to every probe topic receives only those its grants let it read."""
    probes = probe_topics(broker.topics)
    received = await read_through(broker, role)
    assert received == expected_topics(broker.topics, role, "read", probes)
