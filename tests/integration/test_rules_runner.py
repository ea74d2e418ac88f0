"""The rules engine on a real Mosquitto: readings in, commands, states and events out."""

from __future__ import annotations

import asyncio
import contextlib
import json
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from aigloo_edge.mqtt import Session
from aigloo_edge.payloads import (
    BridgeRejected,
    Climate,
    FanProfileCommand,
    FanProfileState,
    InferPolicy,
    RuleEvent,
    RuleState,
)
from aigloo_edge.recording import read_recording, record
from aigloo_edge.rules.explain import NoRuleStateError, fetch_rule_state
from aigloo_edge.rules.loader import load_rules
from aigloo_edge.rules.replay import replay
from aigloo_edge.rules.report import explain_lines
from tests.support.broker import RunningBroker
from tests.support.collect import Collector
from tests.support.node import machine_running, node_config

HOT_RULES = """
defaults:
  fans.profile: normal
rules:
  - id: hot
    when: env.internal.temperature_c > 30
    until: env.internal.temperature_c < 28
    set: {fans.profile: max, inference.studio_allowed: off}
    priority: 100
"""


def write_rules(directory: Path, text: str, name: str = "thermal.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


@contextlib.asynccontextmanager
async def rules_running(
    broker: RunningBroker, tmp_path: Path, **section: Any
) -> AsyncIterator[None]:
    """The rules component (as the Mini runs it) until the block ends; waits until it is online."""
    section.setdefault("dir", str(tmp_path / "rules"))
    section.setdefault("state_file", str(tmp_path / "state" / "rules.sqlite3"))
    section.setdefault("safety", {"settle": 0.2, "startup_grace": 2, "reassert": 1})
    config = node_config(broker, "mini", components=["rules"], rules=section)
    async with machine_running(broker, config, "rules"):
        yield


async def climate(sensors: Session, celsius: float) -> None:
    reading = Climate(probe="internal", temperature_c=celsius)
    await sensors.publish(sensors.topics.env_climate("internal"), reading, retain=True)


async def next_command(commands: Collector) -> str:
    return FanProfileCommand.parse((await commands.next(10)).payload).profile


async def test_a_hot_reading_sets_the_fans_and_the_inference_policy(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """Default first, then `max` once the box is hot; the policy is retained for the dispatcher."""
    write_rules(tmp_path / "rules", HOT_RULES)
    topics = broker.topics
    async with broker.session("admin") as admin, broker.session("sensors") as sensors:
        commands = Collector(admin, topics.fans_profile_set())
        events = Collector(admin, topics.rules_events())
        await climate(sensors, 25)
        async with rules_running(broker, tmp_path):
            assert await next_command(commands) == "normal"
            await climate(sensors, 32)
            assert await next_command(commands) == "max"
            fired = [
                RuleEvent.from_json(m.payload) for m in await events.until(topics.rules_events())
            ]
            while not any(e.kind == "fired" for e in fired):
                fired.append(RuleEvent.from_json((await events.next()).payload))
            policy = Collector(admin, topics.infer_policy("studio"))
            assert (
                InferPolicy.from_json(await policy.value_on(topics.infer_policy("studio"))).allowed
                is False
            )
            states = Collector(admin, topics.rule_state("hot"))
            shown = await _state_where(states, topics.rule_state("hot"), lambda s: s.active)
            assert shown.values == {"env.internal.temperature_c": 32}


async def test_malformed_readings_are_reported_and_never_count(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """Garbage on the probe topic is rejected (reported, counted); the next good reading works."""
    write_rules(tmp_path / "rules", HOT_RULES)
    topics = broker.topics
    async with broker.session("admin") as admin, broker.session("sensors") as sensors:
        commands = Collector(admin, topics.fans_profile_set())
        rejected = Collector(admin, topics.bridge_rejected("rules"))
        await climate(sensors, 25)
        async with rules_running(broker, tmp_path):
            assert await next_command(commands) == "normal"
            probe = topics.env_climate("internal")
            await sensors.publish(probe, b'{"probe": "internal", "temperature_c": "hot"}')
            report = BridgeRejected.from_json(
                await rejected.value_on(topics.bridge_rejected("rules"))
            )
            assert (report.topic, report.total) == (probe, 1)
            assert "temperature_c" in report.reason
            await climate(sensors, 33)
            assert await next_command(commands) == "max"


async def test_a_command_the_device_did_not_confirm_is_sent_again_after_a_reconnect(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """Broker restart: unconfirmed `max` goes out again; a confirmed state is not repeated."""
    write_rules(tmp_path / "rules", HOT_RULES)
    topics = broker.topics
    async with rules_running(broker, tmp_path), broker.session("sensors") as sensors:
        await climate(sensors, 35)
        async with broker.session("admin") as admin:
            commands = Collector(admin, topics.fans_profile_set())
            assert await next_command(commands) == "max"
        await broker.arestart()
        async with broker.session("admin") as admin:
            commands = Collector(admin, topics.fans_profile_set())
            assert await next_command(commands) == "max"
            await sensors.wait_connected(10)
            confirmed = FanProfileState(profile="max", duty_pct=100)
            await sensors.publish(topics.fans_profile(), confirmed, retain=True)
            await asyncio.sleep(0.3)
        await broker.arestart()
        async with broker.session("admin") as admin:
            commands = Collector(admin, topics.fans_profile_set())
            await asyncio.sleep(1.5)  # settle + reassert window
            assert commands.queue.empty()


async def test_rules_reload_when_valid_and_stay_when_a_change_is_broken(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """A valid edit is swapped in; a broken one is reported (file:line) and the old rules run."""
    path = write_rules(tmp_path / "rules", HOT_RULES)
    topics = broker.topics
    async with broker.session("admin") as admin, broker.session("sensors") as sensors:
        commands = Collector(admin, topics.fans_profile_set())
        events = Collector(admin, topics.rules_events())
        rejected = Collector(admin, topics.bridge_rejected("rules"))
        await climate(sensors, 25)
        async with rules_running(broker, tmp_path):
            assert await next_command(commands) == "normal"
            path.write_text(path.read_text().replace("> 30", "> 40").replace("< 28", "< 38"))
            await _event_of_kind(events, "reloaded")
            path.write_text(path.read_text().replace("> 40", "> fourty"))
            report = BridgeRejected.from_json(
                await rejected.value_on(topics.bridge_rejected("rules"))
            )
            assert f"{path}:6:" in report.reason
            await climate(sensors, 35)  # hot for the broken edit, not for the running rules
            await climate(sensors, 41)
            assert await next_command(commands) == "max"


async def _state_where(
    states: Collector, topic: str, wanted: Callable[[RuleState], bool]
) -> RuleState:
    """The first state on `topic` that is `wanted` (a retained older one may come first)."""
    while True:
        shown = RuleState.from_json(await states.value_on(topic))
        if wanted(shown):
            return shown


async def _event_of_kind(events: Collector, kind: str) -> RuleEvent:
    while True:
        event = RuleEvent.from_json((await events.next(10)).payload)
        if event.kind == kind:
            return event


async def test_a_rule_disabled_over_mqtt_releases_and_reports_it(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """`rules/hot/set disable` releases the rule: fans back to the default, state says so."""
    write_rules(tmp_path / "rules", HOT_RULES)
    topics = broker.topics
    async with broker.session("admin") as admin, broker.session("sensors") as sensors:
        commands = Collector(admin, topics.fans_profile_set())
        await climate(sensors, 35)
        async with rules_running(broker, tmp_path):
            assert await next_command(commands) == "max"
            states = Collector(admin, topics.rule_state("hot"))
            await admin.publish(topics.rule_set("hot"), b"disable")
            assert await next_command(commands) == "normal"
            shown = await _state_where(states, topics.rule_state("hot"), lambda s: not s.enabled)
            assert shown.phase == "disabled"


async def test_dry_run_decides_and_reports_but_sends_no_command(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """With dry_run, events say what would happen (`dry_run: true`); no command is published."""
    write_rules(tmp_path / "rules", HOT_RULES)
    topics = broker.topics
    async with broker.session("admin") as admin, broker.session("sensors") as sensors:
        commands = Collector(admin, topics.fans_profile_set())
        events = Collector(admin, topics.rules_events())
        await climate(sensors, 35)
        async with rules_running(broker, tmp_path, dry_run=True):
            fired = await _event_of_kind(events, "fired")
            assert fired.dry_run
            command = await _event_of_kind(events, "command")
            assert command.dry_run
        assert commands.queue.empty()


async def test_a_restarted_engine_neither_refires_nor_resends(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """Stop and start with the same state file: the active rule stays, nothing fires again."""
    write_rules(tmp_path / "rules", HOT_RULES)
    topics = broker.topics
    async with broker.session("admin") as admin, broker.session("sensors") as sensors:
        commands = Collector(admin, topics.fans_profile_set())
        events = Collector(admin, topics.rules_events())
        await climate(sensors, 35)
        async with rules_running(broker, tmp_path):
            assert await next_command(commands) == "max"
            await _event_of_kind(events, "fired")
        await sensors.publish(
            topics.fans_profile(), FanProfileState(profile="max", duty_pct=100), retain=True
        )
        async with rules_running(broker, tmp_path):
            await asyncio.sleep(1.0)
            await climate(sensors, 36)
            await asyncio.sleep(0.5)
        assert commands.queue.empty()
        kinds = [json.loads(m.payload)["kind"] for m in _drain(events)]
        assert "fired" not in kinds


def _drain(collector: Collector) -> list[Any]:
    items = []
    while not collector.queue.empty():
        items.append(collector.queue.get_nowait())
    return items


async def test_a_recorded_hour_replays_to_the_decisions_the_live_engine_made(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """`aigloo record` a live run, replay it through the same rules: the same rule fires."""
    write_rules(tmp_path / "rules", HOT_RULES)
    recording = tmp_path / "day.jsonl"
    ready = asyncio.Event()
    recorder = asyncio.create_task(
        record(
            broker.settings("admin"), recording, [broker.topics.tree("env")], count=2, ready=ready
        )
    )
    await ready.wait()
    async with broker.session("sensors") as sensors:
        await climate(sensors, 25)
        await climate(sensors, 35)
    assert await asyncio.wait_for(recorder, 10) == 2
    ruleset = load_rules(tmp_path / "rules")
    steps = replay(ruleset, read_recording(recording), topics=broker.topics)
    fired = [e.rule for s in steps for e in s.decisions.events if e.kind == "fired"]
    assert fired == ["hot"]


async def test_explain_reads_a_running_rule_and_names_the_known_ones(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """`aigloo rules explain` shows a live rule's state; an unknown id lists the rules there are."""
    write_rules(tmp_path / "rules", HOT_RULES)
    async with broker.session("sensors") as sensors:
        await climate(sensors, 35)
        async with rules_running(broker, tmp_path):
            await asyncio.sleep(0.5)
            state = await fetch_rule_state(broker.settings("mobile"), "hot")
            assert (state.active, state.why) == (True, "when: env.internal.temperature_c > 30")
            text = "\n".join(explain_lines(state, state.ts))
            assert "values    env.internal.temperature_c = 35" in text
            with pytest.raises(NoRuleStateError, match=r"no state for rule 'cold'.*rules: hot"):
                await fetch_rule_state(broker.settings("mobile"), "cold")
