"""The node agent against a real broker: telemetry, info, sleep, drain, rejected commands."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aigloo_edge.mqtt import Session
from aigloo_edge.node.agent import NodeAgent, node_session
from aigloo_edge.node.jobs import DrainingError
from aigloo_edge.node.power import DryRunDriver
from aigloo_edge.payloads import BridgeRejected, NodeInfo, NodeTelemetry, PowerState
from aigloo_edge.runtime import cancel_and_wait
from tests.support.broker import RunningBroker
from tests.support.collect import Collector, wait_until
from tests.support.node import node_config


@contextlib.asynccontextmanager
async def agent_running(broker: RunningBroker, **sections: Any) -> AsyncIterator[NodeAgent]:
    config = node_config(broker, **sections)
    session = node_session(config)
    agent = NodeAgent(config, session)
    tasks = [asyncio.create_task(session.run()), asyncio.create_task(agent.run())]
    try:
        await session.wait_connected(10)
        yield agent
    finally:
        for task in tasks:
            await cancel_and_wait(task)


async def _states(seen: Collector, topic: str, count: int) -> list[PowerState]:
    return [PowerState.from_json(await seen.value_on(topic)) for _ in range(count)]


async def test_telemetry_has_the_contracted_fields_and_units(broker: RunningBroker) -> None:
    """Telemetry is retained, expires, and carries CPU %, memory bytes, disks, uptime (SI)."""
    t = broker.topics
    async with broker.session("admin", component="watcher") as admin:
        seen = Collector(admin, t.node_telemetry("studio"))
        async with agent_running(broker):
            message = await seen.next()
    telemetry = NodeTelemetry.from_json(message.payload)
    assert message.retain or message.qos >= 0  # retained on the broker; live copies may not say
    assert telemetry.node == "studio"
    assert 0 <= telemetry.cpu_pct <= 100
    assert telemetry.memory_used_bytes > 0
    assert telemetry.memory_available_bytes > 0
    assert [d.mount for d in telemetry.disks] == ["/"]
    assert telemetry.uptime_s is not None
    assert telemetry.uptime_s > 0
    assert telemetry.process_count is not None
    assert telemetry.process_count > 0
    assert telemetry.v == 1
    assert telemetry.ts > 1.7e9


async def test_info_is_retained_on_start(broker: RunningBroker) -> None:
    """`info` says who the node is; a late subscriber still gets it (retained)."""
    t = broker.topics
    async with agent_running(broker), broker.session("admin", component="late") as admin:
        seen = Collector(admin, t.node_info("studio"))
        message = await seen.next()
    info = NodeInfo.from_json(message.payload)
    assert message.retain
    assert (info.node, info.role, info.components) == ("studio", "studio", ["agent"])
    assert info.memory_bytes > 0
    assert info.cpu_cores >= 1


async def test_telemetry_comes_every_interval(broker: RunningBroker) -> None:
    """At a 0.5 s interval, several messages arrive within a few seconds."""
    t = broker.topics
    async with broker.session("admin", component="watcher") as admin:
        seen = Collector(admin, t.node_telemetry("studio"))
        await admin.sync_subscriptions()
        async with agent_running(broker):
            for _ in range(4):
                await seen.next()


async def test_a_change_past_its_deadband_is_published_at_once(broker: RunningBroker) -> None:
    """With an hour-long interval, only the first sample and a real change are published."""
    t = broker.topics
    huge = {
        name: 1e9
        for name in ("cpu_pct", "memory_pct", "disk_pct", "power_w", "temperature_c", "battery_pct")
    }
    telemetry = {"interval_s": 3600, "sources": ["psutil"], "deadbands": huge}
    async with broker.session("admin", component="watcher") as admin:
        seen = Collector(admin, t.node_telemetry("studio"))
        await admin.sync_subscriptions()
        async with agent_running(broker, telemetry=telemetry) as agent:
            first = NodeTelemetry.from_json((await seen.next()).payload)
            with pytest.raises(TimeoutError):
                await seen.next(timeout=2.5)
            with agent.jobs.job("r1"):
                changed = NodeTelemetry.from_json((await seen.next(timeout=3)).payload)
    assert (first.infer_queue, changed.infer_queue) == (0, 1)


async def test_retained_telemetry_expires(broker: RunningBroker) -> None:
    """After the agent stops, its retained telemetry disappears once the expiry passes."""
    t = broker.topics
    async with agent_running(broker), broker.session("admin", component="first") as admin:
        await Collector(admin, t.node_telemetry("studio")).next()
    await asyncio.sleep(2.6)  # interval 0.5 s x 3 = 1.5 s, rounded up to MQTT's whole seconds
    async with broker.session("admin", component="later") as admin:
        later = Collector(admin, t.node_telemetry("studio"))
        with pytest.raises(TimeoutError):
            await later.next(timeout=1.0)


def _command_driver(tmp_path: Path) -> tuple[dict[str, Any], Path]:
    marker = tmp_path / "slept"
    power = {"driver": "command", "sleep_command": ["sh", "-c", f"echo slept >> {marker}"]}
    return power, marker


async def test_sleep_publishes_sleeping_then_calls_the_driver_once(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """`sleep` (sent twice with one id) → `sleeping`, then the OS command runs once."""
    t = broker.topics
    power, marker = _command_driver(tmp_path)
    async with broker.session("admin", component="ctl") as admin:
        states = Collector(admin, t.node_power("studio"))
        async with agent_running(broker, power=power):
            assert (await _states(states, t.node_power("studio"), 1))[0].state == "awake"
            command = json.dumps({"state": "sleep", "id": "c-1"}).encode()
            await admin.publish(t.node_power_set("studio"), command)
            await admin.publish(t.node_power_set("studio"), command)
            sleeping = (await _states(states, t.node_power("studio"), 1))[0]
            await wait_until(marker.exists)
            await asyncio.sleep(0.3)
    assert sleeping.state == "sleeping"
    assert marker.read_text() == "slept\n"


async def test_sleep_drains_running_jobs_first(broker: RunningBroker) -> None:
    """A node with a running job refuses new ones and sleeps only once the job is done."""
    t = broker.topics
    async with broker.session("admin", component="ctl") as admin:
        states = Collector(admin, t.node_power("studio"))
        async with agent_running(broker) as agent:
            driver = agent.driver
            assert isinstance(driver, DryRunDriver)
            await _states(states, t.node_power("studio"), 1)
            with agent.jobs.job("long-inference"):
                await admin.publish(t.node_power_set("studio"), b"sleep")
                await wait_until(lambda: not agent.jobs.accepting)
                with pytest.raises(DrainingError), agent.jobs.job("new-one"):
                    pass
                with pytest.raises(TimeoutError):
                    await states.next(timeout=0.5)
                assert driver.calls == []
            sleeping = (await _states(states, t.node_power("studio"), 1))[0]
            await wait_until(lambda: len(driver.calls) == 1)
    assert sleeping.state == "sleeping"
    assert sleeping.reason == "sleep after draining 1 jobs"


async def test_forced_sleep_does_not_wait_for_jobs(broker: RunningBroker) -> None:
    """`{"state": "sleep", "force": true}` sleeps at once even with a job running."""
    t = broker.topics
    async with broker.session("admin", component="ctl") as admin:
        states = Collector(admin, t.node_power("studio"))
        async with agent_running(broker) as agent:
            await _states(states, t.node_power("studio"), 1)
            with agent.jobs.job("long-inference"):
                await admin.publish(t.node_power_set("studio"), b'{"state":"sleep","force":true}')
                sleeping = (await _states(states, t.node_power("studio"), 1))[0]
    assert sleeping.state == "sleeping"
    assert sleeping.reason == "sleep forced with 1 jobs running"


async def test_wake_heard_by_the_node_means_awake_and_taking_jobs(broker: RunningBroker) -> None:
    """A dry-run node that "slept" answers `wake` with `awake` and takes jobs again."""
    t = broker.topics
    async with broker.session("admin", component="ctl") as admin:
        states = Collector(admin, t.node_power("studio"))
        async with agent_running(broker) as agent:
            await _states(states, t.node_power("studio"), 1)
            await admin.publish(t.node_power_set("studio"), b"sleep")
            await _states(states, t.node_power("studio"), 1)
            await admin.publish(t.node_power_set("studio"), b"wake")
            awake = (await _states(states, t.node_power("studio"), 1))[0]
            assert agent.jobs.accepting
    assert awake.state == "awake"


async def test_malformed_power_command_is_rejected_and_changes_nothing(
    broker: RunningBroker,
) -> None:
    """`snooze` is reported on the node's rejected topic; no sleep, no state change."""
    t = broker.topics
    async with broker.session("admin", component="ctl") as admin:
        states = Collector(admin, t.node_power("studio"))
        reports = Collector(admin, t.bridge_rejected("studio"))
        await admin.sync_subscriptions()
        async with agent_running(broker) as agent:
            await _states(states, t.node_power("studio"), 1)
            await admin.publish(t.node_power_set("studio"), b"snooze")
            report = BridgeRejected.from_json((await reports.next()).payload)
            with pytest.raises(TimeoutError):
                await states.next(timeout=0.5)
            assert isinstance(agent.driver, DryRunDriver)
            assert agent.driver.calls == []
    assert report.topic == t.node_power_set("studio")
    assert "state" in report.reason


async def test_session_type_is_the_node(broker: RunningBroker) -> None:
    """The agent's session says `online`/`offline` on the node's own availability topic."""
    config = node_config(broker)
    session: Session = node_session(config)
    assert session.availability_topic == broker.topics.node_availability("studio")
