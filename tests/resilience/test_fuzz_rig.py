"""Hostile payloads at every topic a running rig subscribes to, on a real Mosquitto.

One rig for the module: the Mini (live twin as station, probes, fans, MacBook Pro and Air; the
shipped rules; the Home Assistant bridge; plain values; the dispatcher) and the Studio's own
agent with an inference worker (a fake engine: instant answers). `admin` then publishes the
hostile corpus and generated hostile payloads (tests/support/hostile.py) to each subscribed
topic, NOT retained, so the rig's own retained state stays and comes back at once. Then:
nothing died, the rejections were counted and reported, no NaN/inf came out, and valid inputs
still work end to end.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from hypothesis import HealthCheck, Phase, given, settings

from aigloo_edge.app import run_machine
from aigloo_edge.config import AgentConfig, InferenceConfig
from aigloo_edge.inference.client import InferClient
from aigloo_edge.inference.engine import Engine, Event, Finished, Generation, Piece, check_served
from aigloo_edge.mqtt import Inbound, Session
from aigloo_edge.payloads import (
    BridgeHealth,
    BridgeRejected,
    Climate,
    FanProfileState,
    InferFinal,
    InferRequest,
    RuleState,
)
from aigloo_edge.runtime import cancel_and_wait
from tests.support.broker import RunningBroker, make_broker
from tests.support.hostile import HOSTILE_CORPUS, hostile_payloads, nonfinite_in
from tests.support.node import node_config

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parents[2]
SUNNY = ROOT / "scenarios" / "sunny-day.yaml"
AIGLOO = Path(sys.executable).parent / "aigloo"
GENERATED_PER_TOPIC = 25
WAIT_S = 20.0
FAKE_MODEL = "fake"
# Components whose availability must stay `online` throughout (none of these is fuzzed).
WATCHED = ("dispatcher", "rules", "homeassistant", "plain", "sensors")
WATCHED_NODES = ("studio", "mbp")
FUZZED = ("studio", "dispatcher", "rules", "plain", "sensors", "homeassistant")


class FakeEngine:
    """Answers `pong` at once: the worker's parsing, not a model, is under test."""

    name = "fake"

    def model_names(self) -> list[str]:
        return [FAKE_MODEL]

    async def stream(
        self, generation: Generation, cancel: threading.Event
    ) -> AsyncGenerator[Event, None]:
        check_served(generation.model, self.model_names())
        yield Piece("pong")
        yield Finished("stop", 1, 1, 0.0, 1.0)

    async def aclose(self) -> None:
        return None


async def _open_fake(_config: InferenceConfig) -> Engine:
    return FakeEngine()


@dataclass
class Watch:
    """What `admin` sees on the whole broker while the rig runs."""

    availability: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    rejected_total: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    health_rejected: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    nonfinite: list[tuple[str, str]] = field(default_factory=list)
    fuzzed: set[str] = field(default_factory=set)
    discovery: set[str] = field(default_factory=set)
    summaries: set[str] = field(default_factory=set)  # components that sent a summary report

    async def on_message(self, message: Inbound) -> None:
        topic = message.topic
        if topic.endswith("/availability"):
            self.availability[topic].append(message.payload)
        if topic.endswith("/rejected") and "/bridge/" in topic:
            report = BridgeRejected.from_json(message.payload)
            total = max(self.rejected_total[report.component], report.total)
            self.rejected_total[report.component] = total
            if report.suppressed:
                self.summaries.add(report.component)
        if topic.endswith("/health") and "/bridge/" in topic and message.payload:
            health = BridgeHealth.from_json(message.payload)
            total = max(self.health_rejected[health.component], health.rejected)
            self.health_rejected[health.component] = total
        if topic.startswith("homeassistant/device/") and message.payload:
            self.discovery.add(topic.split("/")[2])
        if topic not in self.fuzzed and (hit := nonfinite_in(message.payload)) is not None:
            self.nonfinite.append((topic, hit))

    def rejections(self) -> dict[str, int]:
        names = set(self.rejected_total) | set(self.health_rejected)
        return {
            name: max(self.rejected_total.get(name, 0), self.health_rejected.get(name, 0))
            for name in sorted(names)
        }


class HandlerFailures(logging.Handler):
    """Records a Session's `handler for <topic> failed`: an exception that was not a clean
    PayloadError (reported as `handler_error`, with a traceback in the log)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.failures: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            self.failures.append(f"{record.getMessage()}: {type(error).__name__}: {error}")


@dataclass
class Rig:
    broker: RunningBroker
    admin: Session
    watch: Watch
    tasks: dict[str, asyncio.Task[None]]
    owner_config: Path
    failures: HandlerFailures
    sent: Counter[str] = field(default_factory=Counter)
    before: dict[str, int] = field(default_factory=dict)
    after: dict[str, int] = field(default_factory=dict)
    barrage_s: float = 0.0


def _generated(count: int) -> list[bytes]:
    """`count` hostile payloads from the hypothesis strategy (derandomized: the same each run)."""
    out: list[bytes] = []

    @settings(
        max_examples=count,
        database=None,
        derandomize=True,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(payload=hostile_payloads())
    def collect(payload: bytes) -> None:
        out.append(payload)

    collect()
    return out


def _targets(rig_topics: Any) -> list[str]:
    """Every topic some component of the rig subscribes to (one concrete instance of each)."""
    t = rig_topics
    return [
        # commands
        t.node_power_set("studio"),  # the Studio's agent
        t.node_power_set("mbp"),  # a twin-played node
        t.fans_profile_set(),
        t.power_output_set("ac"),
        t.power_output_set("dc"),
        t.rule_set("fans-max-when-hot"),
        t.rule_set("no-such-rule"),
        # inference
        t.infer_request(),
        t.node_infer("studio"),
        t.infer_cancel(),
        t.infer_policy("studio"),
        # state the rules, hass, plain and the dispatcher read
        t.battery(),
        t.solar(),
        t.env_climate("internal"),
        t.env_climate("garage"),  # a probe the rig does not have
        t.fans_profile(),
        t.node_telemetry("studio"),
        t.node_info("mbp"),
        t.node_power("studio"),
        t.node_availability("air"),
        t.rule_state("fans-max-when-hot"),
        t.hass_status(),
        t.hass_device_config("fans"),  # what HA holds: the bridge compares it with its own
    ]


async def _aigloo(config: Path, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        str(AIGLOO),
        *args,
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"},
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def _until(condition: Any, what: Any, timeout: float = WAIT_S) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not condition():  # noqa: ASYNC110 - state owned by the watcher's route
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not in {timeout} s: {what()}") from None


def _configs(broker: RunningBroker, tmp: Path) -> tuple[AgentConfig, AgentConfig, Path]:
    mini = node_config(
        broker,
        "mini",
        components=["twin", "rules", "hass", "plain", "dispatcher"],
        twin={"scenario": str(SUNNY), "speed": 1, "nodes": ["mbp", "air"]},
        rules={"dir": str(ROOT / "rules"), "state_file": str(tmp / "rules.sqlite3")},
        hass={"birth_delay_s": 0.2, "settle_s": 0.5},
        plain={},
        dispatcher={"accept_timeout_s": 10.0},
    )
    (tmp / "fake-model").mkdir()
    studio = node_config(
        broker,
        "studio",
        components=["agent", "inference"],
        inference={"models": {FAKE_MODEL: str(tmp / "fake-model")}},
    )
    owner = node_config(broker, "air").model_dump(mode="json", include={"node", "role", "broker"})
    owner["components"] = ["agent"]
    owner["display"] = {"temperature": "C"}
    owner_path = tmp / "owner.yaml"
    owner_path.write_text(yaml.safe_dump(owner))
    return mini, studio, owner_path


async def _barrage(rig: Rig) -> None:
    """Every target topic gets the corpus and the generated payloads, not retained."""
    generated = _generated(GENERATED_PER_TOPIC)
    began = time.monotonic()
    for topic in _targets(rig.broker.topics):
        for payload in (*HOSTILE_CORPUS, *generated):
            await rig.admin.publish(topic, payload)
            rig.sent[topic] += 1
    # Poison what the HA bridge believes HA holds, then make it sync (a valid reading of a new
    # probe marks a change): the bridge reads the poisoned discovery outside any route.
    fans_config = rig.broker.topics.hass_device_config("fans")
    await rig.admin.publish(fans_config, b"[" * 10_000)
    shed = Climate(probe="shed", temperature_c=20.0)
    await rig.admin.publish(rig.broker.topics.env_climate("shed"), shed.to_json())
    rig.sent[fans_config] += 1
    rig.sent[rig.broker.topics.env_climate("shed")] += 1
    rig.barrage_s = time.monotonic() - began


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    """The rig, after the barrage (and the rate-limited rejection reports it caused)."""
    broker = make_broker(tmp_path_factory.mktemp("broker"))
    mini, studio, owner = _configs(broker, tmp_path_factory.mktemp("rig"))
    watch = Watch()
    tasks: dict[str, asyncio.Task[None]] = {}
    failures = HandlerFailures()
    session_log = logging.getLogger("aigloo_edge.mqtt.session")
    session_log.addHandler(failures)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("aigloo_edge.inference.engines.open_engine", _open_fake)
        try:
            async with broker.session("admin", component="fuzzer") as admin:
                admin.route(broker.topics.all(), watch.on_message)
                admin.route("homeassistant/#", watch.on_message)
                await admin.sync_subscriptions()
                tasks["mini"] = asyncio.create_task(run_machine(mini))
                tasks["studio"] = asyncio.create_task(run_machine(studio))
                t = broker.topics
                online = [t.bridge_availability(c) for c in WATCHED]
                online += [t.node_availability(n) for n in WATCHED_NODES]
                await _until(
                    lambda: all(watch.availability[a][-1:] == [b"online"] for a in online),
                    lambda: dict(watch.availability),
                )
                await _until(
                    lambda: {"aigloo_fans", "aigloo_rules", "aigloo_studio"} <= watch.discovery,
                    lambda: watch.discovery,
                )
                rig = Rig(broker, admin, watch, tasks, owner, failures)
                watch.fuzzed = set(_targets(t)) | {t.env_climate("shed")}
                rig.before = watch.rejections()
                await _barrage(rig)
                # Rejections past the first per interval are reported in a summary within two
                # reject_report_interval_s (5 s): wait for every fuzzed component's.
                await _until(
                    lambda: set(FUZZED) <= watch.summaries or any(t.done() for t in tasks.values()),
                    lambda: (watch.summaries, dict(watch.rejected_total)),
                    timeout=2 * admin.settings.reject_report_interval_s + 5,
                )
                await asyncio.sleep(0.5)
                rig.after = watch.rejections()
                yield rig
        finally:
            for task in tasks.values():
                await cancel_and_wait(task)
            broker.stop()
            session_log.removeHandler(failures)


async def test_every_component_stays_up_through_the_barrage(rig: Rig, record_property: Any) -> None:
    """No component's task ended, and every watched availability said `online` from start to
    end: no hostile payload killed a loop or a connection."""
    record_property("hostile_messages", sum(rig.sent.values()))
    record_property("hostile_topics", len(rig.sent))
    record_property("barrage_s", round(rig.barrage_s, 1))
    print(f"\nhostile messages per topic ({sum(rig.sent.values())} in {rig.barrage_s:.1f} s):")
    for topic, count in rig.sent.items():
        print(f"  {topic}: {count}")
    for name, task in rig.tasks.items():
        assert not task.done(), (name, task.exception() if not task.cancelled() else "cancelled")
    t = rig.broker.topics
    watched = [t.bridge_availability(c) for c in WATCHED]
    watched += [t.node_availability(n) for n in WATCHED_NODES]
    for topic in watched:
        seen = rig.watch.availability[topic]
        assert seen, topic
        assert set(seen) == {b"online"}, (topic, seen)


async def test_rejections_are_counted_and_reported(rig: Rig, record_property: Any) -> None:
    """Every fuzzed component's reported rejection total grew, each rejection was a clean
    reason (no handler raised anything but PayloadError), and the plain component (one route
    per source) counted at least one rejection per non-empty payload on its sources."""
    grown = {c: rig.after.get(c, 0) - rig.before.get(c, 0) for c in rig.after}
    record_property("rejections", json.dumps(grown))
    print(f"\nrejections reported per component: {grown}")
    for component in FUZZED:
        assert grown.get(component, 0) > 0, (component, grown)
    assert rig.failures.failures == [], "rejected with a traceback, not a clean reason"
    t = rig.broker.topics
    plain_sources = [
        t.battery(),
        t.solar(),
        t.env_climate("internal"),
        t.fans_profile(),
        t.node_telemetry("studio"),
        t.node_power("studio"),
        t.rule_state("fans-max-when-hot"),
    ]
    nonempty = sum(1 for p in HOSTILE_CORPUS if p) + sum(
        1 for p in _generated(GENERATED_PER_TOPIC) if p
    )
    assert grown["plain"] >= nonempty * len(plain_sources), (grown["plain"], nonempty)


async def test_no_hostile_reading_comes_out_as_a_value(rig: Rig) -> None:
    """Nothing the rig published (plain values, rule states and events, discovery, replies)
    holds NaN/inf, and `aigloo status --json` shows only finite numbers."""
    assert rig.watch.nonfinite == []
    code, out, err = await _aigloo(rig.owner_config, "status", "--json")
    assert code == 0, err
    assert nonfinite_in(out.encode()) is None, out


async def test_valid_commands_still_work_end_to_end(rig: Rig) -> None:
    """After the barrage the fans take `max` and report it, and a rule disabled over MQTT
    reports enabled=false (the rules engine still evaluates and answers)."""
    t, admin = rig.broker.topics, rig.admin
    seen: asyncio.Queue[Inbound] = asyncio.Queue()

    async def keep(message: Inbound) -> None:
        seen.put_nowait(message)

    admin.route(t.fans_profile(), keep)
    admin.route(t.rule_state("fans-quiet-when-cool"), keep)
    await admin.sync_subscriptions()
    await admin.publish(t.fans_profile_set(), "max")
    await admin.publish(t.rule_set("fans-quiet-when-cool"), "disable")
    fans_max = rule_off = False
    async with asyncio.timeout(WAIT_S):
        while not (fans_max and rule_off):
            message = await seen.get()
            if message.topic == t.fans_profile() and message.payload:
                fans_max = FanProfileState.from_json(message.payload).profile == "max"
            elif message.payload:
                rule_off = RuleState.from_json(message.payload).enabled is False
    await admin.publish(t.rule_set("fans-quiet-when-cool"), "enable")


async def test_valid_inference_still_answers_through_the_dispatcher(rig: Rig) -> None:
    """After the barrage a request for the served model gets its answer from the Studio's
    worker through the dispatcher, and one for an unknown model a prompt error."""
    client = InferClient(rig.admin, "fuzzer")
    finals: list[InferFinal] = []
    for request_id, model in (("after-fuzz-1", FAKE_MODEL), ("after-fuzz-2", "no-such-model")):
        request = InferRequest(id=request_id, model=model, prompt="ping", max_tokens=4)
        async with asyncio.timeout(WAIT_S):
            async for reply in client.stream(request):
                if isinstance(reply, InferFinal):
                    finals.append(reply)
    served, unknown = finals
    assert served.ok, served
    assert (served.text, served.node) == ("pong", "studio")
    assert not unknown.ok, unknown
    assert unknown.error is not None


async def test_junk_readings_make_no_home_assistant_device(rig: Rig) -> None:
    """Only junk ever arrived for probe `garage`: HA got no device for it; probe `shed`, with
    one valid reading, got one."""
    await _until(lambda: "aigloo_probe_shed" in rig.watch.discovery, lambda: rig.watch.discovery)
    assert "aigloo_probe_garage" not in rig.watch.discovery
