"""The gateway's model directory on a real broker: what online nodes serve."""

from __future__ import annotations

from aigloo_edge.inference.directory import ModelDirectory
from aigloo_edge.payloads import BridgeRejected
from tests.support.broker import RunningBroker
from tests.support.collect import Collector, wait_until
from tests.support.inference import MODEL, serving_info


async def test_junk_availability_is_rejected_not_read_as_offline(broker: RunningBroker) -> None:
    """A node's model stays listed when junk lands on its availability (reported as a
    rejection); a real `offline` removes it."""
    t = broker.topics
    async with (
        broker.session("gateway") as gateway,
        broker.session("admin", component="operator") as admin,
    ):
        directory = ModelDirectory(gateway)
        rejected = Collector(admin, t.bridge_rejected("gateway"))
        await gateway.sync_subscriptions()
        await admin.sync_subscriptions()
        await admin.publish(t.node_info("studio"), serving_info("studio", [MODEL]), retain=True)
        await admin.publish(t.node_availability("studio"), "online", retain=True)
        await wait_until(lambda: directory.models() == [MODEL])
        await admin.publish(t.node_availability("studio"), "onlinex")
        report = BridgeRejected.from_json((await rejected.next()).payload)
        assert report.topic == t.node_availability("studio")
        assert directory.models() == [MODEL]
        await admin.publish(t.node_availability("studio"), "offline", retain=True)
        await wait_until(lambda: directory.models() == [])
