"""Issue 10 (2): components SIGKILLed as `aigloo run CONFIG` processes.

The node agent's kill is covered by tests/integration/test_agent_process.py (offline within
1.5 keepalives); the session-level kill and freeze by test_process_lifecycle.py. Here: the
rules engine killed with a rule in its `for` phase (`pending`), and the dispatcher killed with
a request in flight.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml

from aigloo_edge.inference.client import InferClient
from aigloo_edge.mqtt import Inbound, Session
from aigloo_edge.payloads import (
    ChatMessage,
    Climate,
    FanProfileCommand,
    InferFinal,
    InferRequest,
)
from tests.support.broker import RunningBroker
from tests.support.collect import Collector
from tests.support.inference import serving_info
from tests.support.node import node_config

RecordProperty = Callable[[str, object], None]  # pytest's record_property

AIGLOO = str(Path(sys.executable).parent / "aigloo")
KEEPALIVE_S = 5  # the smallest a machine config accepts
FOR_S = 6.0
PENDING_RULES = f"""
defaults:
  fans.profile: normal
rules:
  - id: hot
    when: env.internal.temperature_c > 30
    for: {FOR_S:g}s
    set: {{fans.profile: max}}
    priority: 100
"""


def _write_config(
    broker: RunningBroker, path: Path, node: str, components: list[str], **sections: Any
) -> Path:
    config = node_config(broker, node, components=components, **sections)
    data = config.model_dump(mode="json", exclude_defaults=True)
    data["broker"]["keepalive"] = KEEPALIVE_S
    path.write_text(yaml.safe_dump(data))
    return path


@asynccontextmanager
async def aigloo_run(config: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(AIGLOO, "run", str(config))
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


def _drain(collector: Collector) -> list[Inbound]:
    items = []
    while not collector.queue.empty():
        items.append(collector.queue.get_nowait())
    return items


async def test_killed_rules_engine_keeps_its_pending_timer(
    broker: RunningBroker, tmp_path: Path, record_property: RecordProperty
) -> None:
    """SIGKILL the rules engine 1.5 s into a 6 s `for`: it goes `offline` within 1.5 keepalives,
    and once started again the rule fires neither early nor late: its timer continues from the
    SQLite state instead of starting over (or firing at once)."""
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "thermal.yaml").write_text(PENDING_RULES)
    section = {
        "dir": str(rules_dir),
        "state_file": str(tmp_path / "state" / "rules.sqlite3"),
        "safety": {"settle": 0.2, "startup_grace": 1, "reassert": 60},
    }
    config = _write_config(broker, tmp_path / "mini.yaml", "mini", ["rules"], rules=section)
    t = broker.topics
    availability = t.bridge_availability("rules")
    async with (
        broker.session("admin", component="watcher") as admin,
        broker.session("sensors") as sensors,
    ):
        seen = Collector(admin, availability)
        commands = Collector(admin, t.fans_profile_set())
        async with aigloo_run(config) as first:
            assert await seen.value_on(availability, timeout=20) == b"online"
            await asyncio.sleep(1.0)  # past settle: the engine has its retained inputs
            reading = Climate(probe="internal", temperature_c=35)
            await sensors.publish(t.env_climate("internal"), reading, retain=True)
            hot_at = time.monotonic()
            await asyncio.sleep(1.5)
            first.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            assert await seen.value_on(availability, timeout=10) == b"offline"
            to_offline = time.monotonic() - killed_at
        early = [FanProfileCommand.parse(m.payload).profile for m in _drain(commands)]
        assert "max" not in early, "fired before its `for` was over"
        async with aigloo_run(config):
            assert await seen.value_on(availability, timeout=20) == b"online"
            async with asyncio.timeout(FOR_S + 10):
                while FanProfileCommand.parse((await commands.next()).payload).profile != "max":
                    pass
            fired_after = time.monotonic() - hot_at
    figures = (
        f"rules SIGKILL: offline after {to_offline:.2f} s; `for` {FOR_S:g} s rule fired "
        f"{fired_after:.2f} s after the reading (killed and restarted while pending)"
    )
    print(figures)
    record_property("kill_rules", figures)
    assert to_offline <= 1.5 * KEEPALIVE_S + 1.0
    assert fired_after >= FOR_S - 0.5, "the pending timer was lost or skipped (fired early)"
    assert fired_after <= FOR_S + 4.0, "the pending timer started over after the restart"


async def _fake_worker(admin: Session, node: str, model: str) -> Collector:
    """Retained state of a node that serves `model`; the requests forwarded to it, unanswered."""
    t = admin.topics
    forwarded = Collector(admin, t.node_infer(node))
    await admin.sync_subscriptions()
    await admin.publish(t.node_info(node), serving_info(node, [model]), retain=True)
    await admin.publish(t.node_availability(node), "online", retain=True)
    return forwarded


async def test_killed_dispatcher_still_leaves_the_client_a_final_answer_by_the_deadline(
    broker: RunningBroker, tmp_path: Path, record_property: RecordProperty
) -> None:
    """SIGKILL the dispatcher while a request is at a worker that never answers: the dispatcher
    goes `offline` within 1.5 keepalives, and the client still gets a final (error) answer by
    the request's deadline."""
    section = {"accept_timeout_s": 30.0}
    config = _write_config(
        broker, tmp_path / "mini.yaml", "mini", ["dispatcher"], dispatcher=section
    )
    t = broker.topics
    availability = t.bridge_availability("dispatcher")
    async with (
        broker.session("admin", component="watcher") as admin,
        broker.session("gateway") as gateway,
    ):
        seen = Collector(admin, availability)
        forwarded = await _fake_worker(admin, "studio", "demo")
        client = InferClient(gateway, "gateway")
        async with aigloo_run(config) as dispatcher:
            assert await seen.value_on(availability, timeout=20) == b"online"
            await asyncio.sleep(0.5)  # it has read the retained node state
            deadline_s = 4.0
            request = InferRequest(
                id="k1",
                model="demo",
                messages=[ChatMessage(role="user", content="hi")],
                deadline=time.time() + deadline_s,
            )
            sent_at = time.monotonic()
            final: InferFinal | None = None

            async def ask() -> None:
                nonlocal final
                async for reply in client.stream(request):
                    if isinstance(reply, InferFinal):
                        final = reply

            asking = asyncio.create_task(ask())
            await forwarded.next(10)  # the request is at the worker: in flight
            dispatcher.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            assert await seen.value_on(availability, timeout=10) == b"offline"
            to_offline = time.monotonic() - killed_at
            done, _ = await asyncio.wait({asking}, timeout=deadline_s + 2.0)
            waited = time.monotonic() - sent_at
            if not done:
                asking.cancel()
    figures = (
        f"dispatcher SIGKILL: offline after {to_offline:.2f} s; client final: "
        f"{final.error if final else None} after {waited:.2f} s (deadline {deadline_s:g} s)"
    )
    print(figures)
    record_property("kill_dispatcher", figures)
    assert to_offline <= 1.5 * KEEPALIVE_S + 1.0
    assert final is not None, f"no final answer {waited:.1f} s after a {deadline_s:g} s deadline"
    assert not final.ok
