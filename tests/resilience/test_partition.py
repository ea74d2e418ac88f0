"""Issue 10 (3): the node agent partitioned from the broker by a TCP proxy, then healed.

The agent runs in the test's process, connected through `TcpProxy` with a 2 s keepalive; a
dispatcher (direct to the broker) keeps its routing view of the node. Routing a request around
the node would need a second worker with the demo model loaded; the dispatcher's routing state
(`views[node].online`, which `ready` and so `choose` read) is asserted instead: while the node
is cut off the dispatcher will not send it anything.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from aigloo_edge.config import DispatcherConfig
from aigloo_edge.inference.dispatcher import Dispatcher
from aigloo_edge.mqtt import Session
from aigloo_edge.node.agent import NodeAgent
from aigloo_edge.runtime import cancel_and_wait
from tests.support.broker import RunningBroker
from tests.support.collect import Collector, wait_until
from tests.support.node import node_config
from tests.support.proxy import CutMode, TcpProxy

RecordProperty = Callable[[str, object], None]  # pytest's record_property

KEEPALIVE_S = 2
# Mosquitto checks keepalives on a whole-second clock, at most every 5 s: see
# tests/integration/test_process_lifecycle.py. A closed connection is noticed at once.
SWEEP_SLACK_S = 7.0
RETURN_BOUND_S = 4.0  # the reconnect backoff: up to 2 s after a dropped attempt, + connecting


async def _partition(broker: RunningBroker, mode: CutMode, cut_s: float) -> tuple[float, float]:
    """Cut the agent off for `cut_s`; (seconds to `offline`, seconds from heal to `online`)."""
    config = node_config(broker)
    topic = broker.topics.node_availability(config.node)
    async with TcpProxy("127.0.0.1", broker.ports["mqtt"]) as proxy:
        settings = config.broker.settings_for(config.node).model_copy(
            update={"port": proxy.port, "keepalive": KEEPALIVE_S}
        )
        session = Session(settings, component=config.node, availability_topic=topic)
        agent = NodeAgent(config, session)
        dispatcher_session = Session(broker.settings("dispatcher"), component="dispatcher")
        dispatcher = Dispatcher(dispatcher_session, DispatcherConfig())
        runs = [session.run(), agent.run(), dispatcher_session.run(), dispatcher.run()]
        tasks = [asyncio.create_task(run) for run in runs]
        try:
            async with broker.session("admin", component="watcher") as watcher:
                seen = Collector(watcher, topic)
                assert await seen.value_on(topic, timeout=10) == b"online"
                view = config.node
                await wait_until(lambda: view in dispatcher.views and dispatcher.views[view].online)
                proxy.cut(mode)
                cut_at = time.monotonic()
                assert await seen.value_on(topic, timeout=cut_s) == b"offline"
                to_offline = time.monotonic() - cut_at
                await wait_until(lambda: not dispatcher.views[view].ready, timeout=2)
                await asyncio.sleep(max(0.0, cut_s - (time.monotonic() - cut_at)))
                assert not dispatcher.views[view].online, "came back through a cut link"
                proxy.heal()
                healed_at = time.monotonic()
                assert await seen.value_on(topic, timeout=15) == b"online"
                to_return = time.monotonic() - healed_at
                await wait_until(lambda: dispatcher.views[view].ready, timeout=5)
        finally:
            for task in tasks:
                await cancel_and_wait(task)
    return to_offline, to_return


async def test_cut_link_shows_node_offline_and_it_returns_by_itself_after_heal(
    broker: RunningBroker, record_property: RecordProperty
) -> None:
    """A 5 s partition that resets the connection: the broker publishes the node's will at once,
    the dispatcher stops routing to it, and after `heal()` the node is back within 8 s."""
    to_offline, to_return = await _partition(broker, "close", 5.0)
    figures = (
        f"partition close 5 s: offline after {to_offline:.2f} s, back {to_return:.2f} s after heal"
    )
    print(figures)
    record_property("partition_close", figures)
    assert to_offline <= 1.5 * KEEPALIVE_S
    assert to_return <= RETURN_BOUND_S


@pytest.mark.slow
async def test_silent_partition_shows_node_offline_by_keepalive_and_it_returns(
    broker: RunningBroker, record_property: RecordProperty
) -> None:
    """A 30 s partition that drops packets silently: the will goes out after 1.5 keepalives (plus
    Mosquitto's sweep), and after `heal()` the node is back within 8 s, by itself."""
    to_offline, to_return = await _partition(broker, "blackhole", 30.0)
    figures = (
        f"partition blackhole 30 s: offline after {to_offline:.2f} s, "
        f"back {to_return:.2f} s after heal"
    )
    print(figures)
    record_property("partition_blackhole", figures)
    assert to_offline <= 1.5 * KEEPALIVE_S + SWEEP_SLACK_S
    assert to_return <= RETURN_BOUND_S
