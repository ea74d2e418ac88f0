"""The live twin on a real Mosquitto: it publishes what the sensor bridge and the node agents
would, obeys the same commands, and the real rules engine runs against it unchanged."""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import pytest
from pydantic import ValidationError

from aigloo_edge.app import run_machine
from aigloo_edge.config import AgentConfig, load_config
from aigloo_edge.errors import ConfigError
from aigloo_edge.mqtt import Session
from aigloo_edge.payloads import (
    Battery,
    Climate,
    FanProfileState,
    NodeInfo,
    NodeTelemetry,
    PowerState,
    Solar,
)
from aigloo_edge.runtime import cancel_and_wait
from aigloo_edge.twin.live import LiveTwin
from aigloo_edge.twin.model import Twin
from aigloo_edge.twin.scenario import load_scenario
from tests.support.broker import RunningBroker
from tests.support.collect import Collector
from tests.support.node import node_config

ROOT = Path(__file__).resolve().parents[2]
HOT = ROOT / "scenarios" / "hot-afternoon-lid-closed.yaml"
SPEED = 1800.0  # half an hour of the scenario per second
TICK_S = 0.05
WAIT_S = 10.0
PLAYED = ("studio", "mbp", "air")
T = TypeVar("T")


def twin_config(broker: RunningBroker, *components: str, **sections: Any) -> AgentConfig:
    """The twin (and `components`) as the Mini would run them, on the hot scenario, fast."""
    sections.setdefault("twin", {"scenario": str(HOT), "speed": SPEED})
    return node_config(broker, "mini", components=["twin", *components], **sections)


def studio_at_full_inference() -> Twin:
    """The hot scenario's physics with the Studio at inference from the start (270 W)."""
    model = Twin(load_scenario(HOT), follow_schedule=False)
    model.set_load("studio", "inference")
    return model


@contextlib.asynccontextmanager
async def twin_running(broker: RunningBroker, model: Twin | None = None) -> AsyncIterator[LiveTwin]:
    twin = LiveTwin(twin_config(broker), model, tick_s=TICK_S)
    task = asyncio.create_task(twin.run())
    try:
        yield twin
    finally:
        await cancel_and_wait(task)


class Watch(Generic[T]):
    """The messages on one topic, parsed, in order of arrival (empty retained ones skipped)."""

    def __init__(self, session: Session, topic: str, parse: Callable[[bytes], T]) -> None:
        self.collector = Collector(session, topic)
        self.parse = parse

    async def next(self, where: Callable[[T], bool] = lambda _: True, timeout: float = WAIT_S) -> T:
        """The next value that satisfies `where` (the ones before it are dropped)."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.collector.queue.get()
                if message.payload and where(value := self.parse(message.payload)):
                    return value

    def empty(self) -> bool:
        return self.collector.queue.empty()


def text(payload: bytes) -> str:
    return payload.decode()


def power(payload: bytes) -> str:
    return PowerState.from_json(payload).state


def is_(expected: str) -> Callable[[str], bool]:
    return lambda value: value == expected


async def test_the_station_and_both_probes_are_published_as_the_bridge_would(
    broker: RunningBroker,
) -> None:
    """Battery and solar say `source: twin`; `internal` (in the box) and `ambient` (outside)
    climates appear; every `ts` is the wall clock's, so the rules engine sees fresh readings."""
    t = broker.topics
    async with broker.session("admin") as admin:
        battery = Watch(admin, t.battery(), Battery.from_json)
        solar = Watch(admin, t.solar(), Solar.from_json)
        inside = Watch(admin, t.env_climate("internal"), Climate.from_json)
        outside = Watch(admin, t.env_climate("ambient"), Climate.from_json)
        fans = Watch(admin, t.fans_profile(), FanProfileState.from_json)
        async with twin_running(broker):
            station, sun = await battery.next(), await solar.next()
            box, air, profile = await inside.next(), await outside.next(), await fans.next()
    assert (station.source, sun.source) == ("twin", "twin")
    assert station.capacity_wh == 768
    assert (station.outputs.ac, station.outputs.dc) == (True, True)
    assert 85 <= station.soc_pct <= 90  # the scenario starts at 90 %
    assert sun.watts > 100  # noon sun in July
    assert 20 < air.temperature_c < 36
    assert box.temperature_c >= air.temperature_c - 1
    assert (profile.profile, profile.duty_pct) == ("normal", 60.0)
    for payload in (station, sun, box, air, profile):
        assert abs(payload.ts - time.time()) < 5


async def test_the_played_machines_are_online_with_info_and_telemetry(
    broker: RunningBroker,
) -> None:
    """Studio, MacBook Pro and Air come online as their agents would; the Mini is not played."""
    t = broker.topics
    async with broker.session("admin") as admin:
        watches = {
            node: (
                Watch(admin, t.node_availability(node), text),
                Watch(admin, t.node_info(node), NodeInfo.from_json),
                Watch(admin, t.node_telemetry(node), NodeTelemetry.from_json),
            )
            for node in PLAYED
        }
        studio_power = Watch(admin, t.node_power("studio"), power)
        mini = Watch(admin, t.tree("nodes", "mini"), text)
        info: dict[str, NodeInfo] = {}
        telemetry: dict[str, NodeTelemetry] = {}
        async with twin_running(broker, studio_at_full_inference()):
            for node, (availability, infos, samples) in watches.items():
                await availability.next(is_("online"))
                info[node], telemetry[node] = await infos.next(), await samples.next()
            assert await studio_power.next() == "awake"
    assert info["studio"].hardware == "Mac Studio (M3 Ultra) — twin"
    assert (info["studio"].role, info["studio"].models) == ("studio", [])
    studio = telemetry["studio"]
    assert studio.power is not None
    assert studio.power.system_w == 270
    assert studio.cpu_pct > 90
    assert set(studio.temperatures_c) == {"core"}
    assert studio.battery is None
    mbp_battery = telemetry["mbp"].battery
    assert mbp_battery is not None
    assert mbp_battery.plugged
    assert mini.empty(), "the Mini runs its own agent: the twin says nothing for it"


async def test_sleep_then_wake_goes_offline_then_waking_then_online(
    broker: RunningBroker,
) -> None:
    """`sleep` → `power: sleeping`, then `offline`; `wake` → `waking`, then `online` and
    `awake` after the (speeded-up) boot delay; the physics follows."""
    t = broker.topics
    async with broker.session("admin") as admin:
        availability = Watch(admin, t.node_availability("studio"), text)
        states = Watch(admin, t.node_power("studio"), power)
        async with twin_running(broker) as twin:
            await availability.next(is_("online"))
            await states.next(is_("awake"))

            await admin.publish(t.node_power_set("studio"), "sleep")
            assert await states.next() == "sleeping"
            assert await availability.next() == "offline"
            assert twin.model.view().machines["studio"].power == "sleeping"

            await admin.publish(t.node_power_set("studio"), '{"state": "wake", "id": "w1"}')
            assert await states.next() == "waking"
            assert await availability.next() == "online"
            assert await states.next() == "awake"
            assert twin.model.view().machines["studio"].power == "awake"


async def test_max_fans_cool_the_box_that_quiet_fans_let_heat_up(broker: RunningBroker) -> None:
    """Under `quiet` the Studio at 270 W heats the closed box past 45 °C; `max` brings it down
    by several degrees within simulated minutes; `fans/profile` reports each profile."""
    t = broker.topics
    async with broker.session("admin") as admin:
        inside = Watch(admin, t.env_climate("internal"), Climate.from_json)
        fans = Watch(admin, t.fans_profile(), FanProfileState.from_json)
        async with twin_running(broker, studio_at_full_inference()):
            await fans.next()  # the initial profile
            await admin.publish(t.fans_profile_set(), "quiet")
            quiet = await fans.next()
            assert (quiet.profile, quiet.duty_pct) == ("quiet", 35.0)
            hot = await inside.next(lambda c: c.temperature_c > 45)

            await admin.publish(t.fans_profile_set(), '{"profile": "max"}')
            full = await fans.next()
            assert (full.profile, full.duty_pct) == ("max", 100.0)
            await inside.next(lambda c: c.temperature_c < hot.temperature_c - 4)


async def test_ac_off_darkens_the_macs_on_ac_and_cuts_the_watts_out(
    broker: RunningBroker,
) -> None:
    """AC off: the battery's watts out drop, the Studio (no battery) goes offline and cannot be
    woken (`unreachable`), the MacBook Pro runs on its own battery; AC on: the Studio starts."""
    t = broker.topics
    async with broker.session("admin") as admin:
        battery = Watch(admin, t.battery(), Battery.from_json)
        studio = Watch(admin, t.node_availability("studio"), text)
        studio_power = Watch(admin, t.node_power("studio"), power)
        mbp = Watch(admin, t.node_telemetry("mbp"), NodeTelemetry.from_json)
        async with twin_running(broker, studio_at_full_inference()):
            before = await battery.next(lambda b: b.watts_out > 250)
            await studio.next(is_("online"))
            await mbp.next()

            await admin.publish(t.power_output_set("ac"), "off")
            after = await battery.next(lambda b: b.outputs.ac is False)
            assert after.watts_out < before.watts_out - 250
            assert await studio.next() == "offline"
            unplugged = await mbp.next(lambda m: m.battery is not None and not m.battery.plugged)
            assert unplugged.power is None  # it takes nothing from the station now

            await admin.publish(t.node_power_set("studio"), "wake")
            assert await studio_power.next(lambda s: s != "awake") == "unreachable"

            await admin.publish(t.power_output_set("ac"), "on")
            assert await studio_power.next() == "waking"
            assert await studio.next() == "online"
            assert await studio_power.next() == "awake"


async def test_the_rules_engine_turns_the_fans_to_max_on_a_hot_afternoon(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """The real rules component against the live twin, as `aigloo up` runs them: the Studio's
    afternoon inference heats the closed box and the fans go to max with no one asking."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "thermal.yaml").write_text(
        textwrap.dedent(
            """
            defaults:
              fans.profile: normal
            rules:
              - id: fans-max-when-hot
                when: env.internal.temperature_c > 38
                until: env.internal.temperature_c < 35
                set: {fans.profile: max}
                priority: 100
            """
        )
    )
    section = {
        "dir": str(rules),
        "state_file": str(tmp_path / "state" / "rules.sqlite3"),
        "safety": {"settle": 0.2, "startup_grace": 2, "reassert": 1},
    }
    config = twin_config(broker, "rules", rules=section)
    t = broker.topics
    async with broker.session("admin") as admin:
        inside = Watch(admin, t.env_climate("internal"), Climate.from_json)
        fans = Watch(admin, t.fans_profile(), FanProfileState.from_json)
        task = asyncio.create_task(run_machine(config))
        try:
            assert (await fans.next()).profile == "normal"
            await inside.next(lambda c: c.temperature_c > 38, timeout=30)
            await fans.next(lambda f: f.profile == "max")
        finally:
            await cancel_and_wait(task)


def test_local_config_runs_the_twin_instead_of_the_fans() -> None:
    """agents/local.yaml: the twin plays the Studio, MacBook Pro and Air on a shipped scenario
    (its path relative to the file); no fans component answers fan commands beside it."""
    config = load_config(ROOT / "agents" / "local.yaml")
    assert config.twin is not None
    assert config.twin.scenario.is_absolute()
    assert config.twin.scenario.exists()
    assert config.twin.nodes == list(PLAYED)
    assert not {"fans", "sensors"} & set(config.components)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"components": ["twin", "fans"], "fans": {}}, "drop fans from components"),
        ({"components": ["agent", "twin"]}, "'mini' runs its own agent here"),
        ({"twin": {"scenario": "x.yaml", "nodes": ["studio", "studio"]}}, "listed twice"),
    ],
)
def test_a_twin_that_would_double_a_real_component_is_refused(
    changes: dict[str, Any], reason: str
) -> None:
    """The twin is the station, the probes, the fans and its machines: a config that runs the
    fans component too, or plays the machine whose own agent runs, is an error."""
    data: dict[str, Any] = {
        "node": "mini",
        "role": "mini",
        "broker": {"credentials_file": "c.yaml"},
        "components": ["twin"],
        "twin": {"scenario": "x.yaml", "nodes": ["studio", "mini"]},
    }
    data.update(changes)
    with pytest.raises(ValidationError, match=reason):
        AgentConfig.model_validate(data)


def test_a_played_node_the_scenario_does_not_have_is_refused(tmp_path: Path) -> None:
    """`twin.nodes` names machines of the scenario; another name fails at start, saying which."""
    config = AgentConfig.model_validate(
        {
            "node": "mini",
            "role": "mini",
            "broker": {"credentials_file": str(tmp_path / "credentials.yaml")},
            "components": ["twin"],
            "twin": {"scenario": str(HOT), "nodes": ["studio", "nas"]},
        }
    )
    with pytest.raises(ConfigError, match=r"twin.nodes: nas not among the machines"):
        LiveTwin(config)
