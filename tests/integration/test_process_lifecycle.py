"""A component process seen from outside: last will on SIGKILL, clean `offline` on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aigloo_edge.mqtt import MqttSettings
from tests.support.broker import RunningBroker
from tests.support.collect import Collector

KEEPALIVE_S = 2


def _settings_json(settings: MqttSettings) -> str:
    data = json.loads(settings.model_dump_json())
    data["password"] = settings.resolved_password()
    return json.dumps(data)


@asynccontextmanager
async def component_process(
    settings: MqttSettings, component: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.session_proc",
        _settings_json(settings),
        component,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(15):
            assert (await process.stdout.readline()).strip() == b"ready"
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_sigkill_shows_offline_within_one_and_a_half_keepalives(
    broker: RunningBroker,
) -> None:
    """A killed process cannot say goodbye; the broker's last will says `offline` for it."""
    topic = broker.topics.bridge_availability("rules")
    settings = broker.settings("rules", keepalive=KEEPALIVE_S)
    async with broker.session("admin", component="watcher") as watcher:
        seen = Collector(watcher, topic)
        async with component_process(settings, "rules") as process:
            assert await seen.value_on(topic) == b"online"
            process.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            assert await seen.value_on(topic, timeout=10) == b"offline"
            elapsed = time.monotonic() - killed_at
    # The kernel closes a killed process's socket, so the broker notices at once; the bound
    # is the keepalive's, which covers silent deaths too (next test).
    assert elapsed <= 1.5 * KEEPALIVE_S + 1.0, elapsed


async def test_frozen_process_is_declared_offline_by_keepalive(broker: RunningBroker) -> None:
    """A silent client (SIGSTOP: socket open, no pings) is dropped after 1.5 keepalives."""
    topic = broker.topics.bridge_availability("rules")
    settings = broker.settings("rules", keepalive=KEEPALIVE_S)
    async with broker.session("admin", component="watcher") as watcher:
        seen = Collector(watcher, topic)
        async with component_process(settings, "rules") as process:
            assert await seen.value_on(topic) == b"online"
            process.send_signal(signal.SIGSTOP)
            frozen_at = time.monotonic()
            try:
                assert await seen.value_on(topic, timeout=10) == b"offline"
            finally:
                process.send_signal(signal.SIGCONT)
            elapsed = time.monotonic() - frozen_at
    # Mosquitto 2.0 (keepalive.c) sweeps for expired keepalives only when more than 5 s have
    # passed since its last sweep, on a whole-second clock: "now - last packet > 1.5 keepalive"
    # is noticed up to 6 s (+1 s rounding) late. The last ping may precede the freeze by up to
    # one keepalive, hence the lower bound of half a keepalive (still not an instant close).
    assert 0.5 * KEEPALIVE_S <= elapsed <= 1.5 * KEEPALIVE_S + 7.0, elapsed


async def test_sigterm_says_offline_and_exits_zero(broker: RunningBroker) -> None:
    """SIGTERM makes the component publish `offline` itself, disconnect and exit 0."""
    topic = broker.topics.bridge_availability("rules")
    async with broker.session("admin", component="watcher") as watcher:
        seen = Collector(watcher, topic)
        async with component_process(broker.settings("rules"), "rules") as process:
            assert await seen.value_on(topic) == b"online"
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            assert await seen.value_on(topic) == b"offline"
            async with asyncio.timeout(10):
                assert await process.wait() == 0
    # Far sooner than the 30 s keepalive: the process said goodbye, not the will.
    assert time.monotonic() - started < 10
