"""The fans component against a real broker, as the `sensors` role, with each driver.

A profile asked on `fans/profile/set` (plain or JSON) is carried out by the driver and the state
reached is retained on `fans/profile`; invalid commands and driver failures are reported on
`bridge/sensors/rejected` and leave the retained state saying what is really in effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aigloo_edge.errors import PayloadError
from aigloo_edge.mqtt import Inbound, Session
from aigloo_edge.payloads import BridgeRejected, FanProfileState, OutputCommand
from aigloo_edge.runtime import cancel_and_wait
from aigloo_edge.sensors.fan_drivers import (
    CommandFanDriver,
    DryRunFanDriver,
    EcoflowDcFanDriver,
    FanDriver,
    FanDriverError,
    MqttFanDriver,
    ReportsFanState,
    parse_duty,
)
from aigloo_edge.sensors.fans import FanController
from aigloo_edge.sensors.settings import FanMqttDriver, FansConfig
from tests.support.broker import RunningBroker
from tests.support.collect import Collector

PROFILES = ("off", "quiet", "normal", "max")
SCRIPT = """\
import pathlib, sys, time
if sys.argv[2] == "fail":
    sys.stderr.write("checking the fan hub\\nfan hub not found\\n")
    sys.exit(1)
if sys.argv[2] == "hang":
    time.sleep(30)
pathlib.Path(sys.argv[1]).write_text(sys.argv[2])
"""


@contextlib.asynccontextmanager
async def fans_running(
    broker: RunningBroker, config: FansConfig, make_driver: Any = None
) -> AsyncIterator[FanController]:
    """The fans component on the `sensors` role's session, running until the block ends."""
    async with broker.session("sensors", component="sensors") as session:
        driver = make_driver(session) if make_driver is not None else None
        controller = FanController(session, config, driver=driver)
        await session.sync_subscriptions()
        task = asyncio.create_task(controller.run())
        try:
            yield controller
        finally:
            await cancel_and_wait(task)


def reached(state: FanProfileState | None) -> tuple[str, float] | None:
    """A state as (profile, duty %), without its timestamp."""
    return None if state is None else (state.profile, state.duty_pct)


async def next_state(seen: Collector, broker: RunningBroker) -> tuple[str, float] | None:
    """The next state published on `fans/profile`."""
    return reached(FanProfileState.from_json(await seen.value_on(broker.topics.fans_profile())))


async def retained_state(broker: RunningBroker) -> tuple[str, float] | None:
    """What a newcomer is told on `fans/profile` (the broker's retained message)."""
    async with broker.session("admin", component="newcomer") as admin:
        seen = Collector(admin, broker.topics.fans_profile())
        await admin.sync_subscriptions()
        message = await seen.next()
    assert message.retain
    return reached(FanProfileState.from_json(message.payload))


def command_config(tmp_path: Path, **failing: str) -> tuple[FansConfig, Path]:
    """A `command` driver whose profiles run a script that writes the profile to a file."""
    script = tmp_path / "fan.py"
    script.write_text(SCRIPT)
    out = tmp_path / "fans.txt"
    commands = {p: [sys.executable, str(script), str(out), failing.get(p, p)] for p in PROFILES}
    return FansConfig.model_validate({"driver": "command", "commands": commands}), out


@contextlib.asynccontextmanager
async def observing(broker: RunningBroker, *filters: str) -> AsyncIterator[Collector]:
    """An admin session recording `fans/profile`, `bridge/sensors/rejected` and `filters`."""
    t = broker.topics
    async with broker.session("admin", component="observer") as admin:
        seen = Collector(admin, t.fans_profile())
        for topic_filter in (t.bridge_rejected("sensors"), *filters):
            admin.route(topic_filter, seen._put)
        await admin.sync_subscriptions()
        yield seen


# --- dry-run --------------------------------------------------------------------------------


async def test_dry_run_applies_plain_and_json_profiles_and_retains_the_duty(
    broker: RunningBroker,
) -> None:
    """Dry-run: `max` and `{"profile": "quiet"}` are recorded and retained with their duty."""
    t = broker.topics
    driver = DryRunFanDriver()
    async with (
        observing(broker) as seen,
        broker.session("admin", component="phone") as phone,
        fans_running(broker, FansConfig(), lambda _: driver) as controller,
    ):
        assert await next_state(seen, broker) == ("normal", 60)
        await phone.publish(t.fans_profile_set(), "max")
        assert await next_state(seen, broker) == ("max", 100)
        await phone.publish(t.fans_profile_set(), json.dumps({"profile": "quiet"}))
        assert await next_state(seen, broker) == ("quiet", 35)
        assert reached(controller.state) == ("quiet", 35)
    assert driver.applied == [("normal", 60.0), ("max", 100.0), ("quiet", 35.0)]
    assert driver.state() == 35.0
    assert await retained_state(broker) == ("quiet", 35)


async def test_initial_profile_is_applied_at_start(broker: RunningBroker) -> None:
    """With no command at all, the configured `initial` profile is applied and retained."""
    driver = DryRunFanDriver()
    config = FansConfig(initial="quiet", duty={"off": 0, "quiet": 20, "normal": 50, "max": 90})
    async with observing(broker) as seen, fans_running(broker, config, lambda _: driver):
        assert await next_state(seen, broker) == ("quiet", 20)
    assert driver.applied == [("quiet", 20.0)]
    assert await retained_state(broker) == ("quiet", 20)


async def test_invalid_command_is_rejected_counted_and_not_applied(
    broker: RunningBroker,
) -> None:
    """`turbo` is reported as invalid on bridge/sensors/rejected, counted, and never applied."""
    t = broker.topics
    driver = DryRunFanDriver()
    async with (
        observing(broker) as seen,
        broker.session("admin", component="phone") as phone,
        fans_running(broker, FansConfig(), lambda _: driver) as controller,
    ):
        await next_state(seen, broker)
        await phone.publish(t.fans_profile_set(), "turbo")
        report = BridgeRejected.from_json(await seen.value_on(t.bridge_rejected("sensors")))
        assert controller.session.rejections.total == 1
        assert controller.session.rejections.by_kind["invalid"] == 1
    assert report.kind == "invalid"
    assert report.topic == t.fans_profile_set()
    assert report.total == 1
    assert "profile" in report.reason
    assert driver.applied == [("normal", 60.0)]
    assert await retained_state(broker) == ("normal", 60)


async def test_redelivered_command_id_is_applied_once(broker: RunningBroker) -> None:
    """A command repeated with the same id is not applied again; a new id is."""
    t = broker.topics
    driver = DryRunFanDriver()
    first = json.dumps({"profile": "max", "id": "rule-7"})
    async with (
        observing(broker) as seen,
        broker.session("admin", component="rules-stand-in") as rules,
        fans_running(broker, FansConfig(), lambda _: driver),
    ):
        await next_state(seen, broker)
        await rules.publish(t.fans_profile_set(), first)
        assert await next_state(seen, broker) == ("max", 100)
        await rules.publish(t.fans_profile_set(), first)
        await rules.publish(t.fans_profile_set(), json.dumps({"profile": "off", "id": "rule-8"}))
        assert await next_state(seen, broker) == ("off", 0)
    assert driver.applied == [("normal", 60.0), ("max", 100.0), ("off", 0.0)]


# --- mqtt -----------------------------------------------------------------------------------


class StandInBoard:
    """A fan board on MQTT: records commands and reports its speed in 25 % steps, as JSON."""

    def __init__(self, session: Session, command_topic: str, state_topic: str) -> None:
        self.session = session
        self.state_topic = state_topic
        self.commands: list[dict[str, Any]] = []
        self.silent = False
        session.route(command_topic, self._on_command)

    async def _on_command(self, message: Inbound) -> None:
        command = json.loads(message.payload)
        self.commands.append(command)
        if not self.silent:
            speed = round(command["speed"] / 25) * 25
            report = {"fan": {"state": command["state"], "speed": speed}}
            await self.session.publish(self.state_topic, json.dumps(report), retain=True)


@contextlib.asynccontextmanager
async def board_running(broker: RunningBroker) -> AsyncIterator[tuple[StandInBoard, FansConfig]]:
    base = broker.topics.base
    settings = FanMqttDriver(
        command_topic=f"{base}/fans/driver/speed/set",
        payload='{"state": "{on}", "speed": {duty}, "preset": "{profile}"}',
        state_topic=f"{base}/fans/driver/speed",
        state_path="fan.speed",
    )
    async with broker.session("admin", component="board") as session:
        board = StandInBoard(session, settings.command_topic, f"{base}/fans/driver/speed")
        await session.sync_subscriptions()
        yield board, FansConfig(driver="mqtt", mqtt=settings)


async def test_mqtt_driver_commands_the_board_and_reports_the_duty_it_confirms(
    broker: RunningBroker,
) -> None:
    """MQTT: the rendered template goes to the board; `fans/profile` says the duty it reports."""
    t = broker.topics
    async with (
        board_running(broker) as (board, config),
        observing(broker) as seen,
        broker.session("admin", component="phone") as phone,
        fans_running(broker, config) as controller,
    ):
        assert isinstance(controller.driver, MqttFanDriver)
        assert await next_state(seen, broker) == ("normal", 50)  # 60 % asked, 50 % run
        await phone.publish(t.fans_profile_set(), "max")
        assert await next_state(seen, broker) == ("max", 100)
        await phone.publish(t.fans_profile_set(), '{"profile": "quiet"}')
        assert await next_state(seen, broker) == ("quiet", 25)
        assert isinstance(controller.driver, ReportsFanState)
        assert controller.driver.state() == 25.0
    assert board.commands == [
        {"state": "ON", "speed": 60, "preset": "normal"},
        {"state": "ON", "speed": 100, "preset": "max"},
        {"state": "ON", "speed": 35, "preset": "quiet"},
    ]
    assert await retained_state(broker) == ("quiet", 25)


async def test_mqtt_board_silent_is_reported_and_the_state_stays(broker: RunningBroker) -> None:
    """MQTT: no confirmation in time → handler_error reported, `fans/profile` unchanged."""
    t = broker.topics
    async with (
        board_running(broker) as (board, config),
        observing(broker) as seen,
        broker.session("admin", component="phone") as phone,
    ):
        assert config.mqtt is not None
        settings = config.mqtt

        def driver(session: Session) -> FanDriver:
            return MqttFanDriver(session, settings, confirm_timeout_s=0.3)

        async with fans_running(broker, config, driver) as controller:
            assert await next_state(seen, broker) == ("normal", 50)
            board.silent = True
            await phone.publish(t.fans_profile_set(), "off")
            report = BridgeRejected.from_json(await seen.value_on(t.bridge_rejected("sensors")))
            assert reached(controller.state) == ("normal", 50)
            assert controller.failures == 1
    assert report.kind == "handler_error"
    assert "did not confirm" in report.reason
    assert board.commands[-1] == {"state": "OFF", "speed": 0, "preset": "off"}
    assert await retained_state(broker) == ("normal", 50)


def test_board_state_is_a_plain_number_or_a_json_path() -> None:
    """A board's report: `42`, or the number at a dotted path (dicts and list indices)."""
    assert parse_duty(b" 42 ") == 42.0
    assert parse_duty(b'{"fan": {"speed": 75}}', "fan.speed") == 75.0
    assert parse_duty(b'{"fans": [{"duty": "30"}]}', "$.fans.0.duty") == 30.0
    for raw, path in [(b"ON", ""), (b'{"fan": {}}', "fan.speed"), (b"150", ""), (b"{", "x")]:
        with pytest.raises(PayloadError):
            parse_duty(raw, path)


# --- ecoflow-dc -----------------------------------------------------------------------------


async def test_ecoflow_dc_switches_the_12v_output_off_for_off_and_on_otherwise(
    broker: RunningBroker,
) -> None:
    """ecoflow-dc: `off` → `power/dc/set` off (0 %); other profiles → on (fans at 100 %)."""
    t = broker.topics
    dc = t.power_output_set("dc")
    async with (
        observing(broker, dc) as seen,
        broker.session("admin", component="phone") as phone,
        fans_running(broker, FansConfig(driver="ecoflow-dc")) as controller,
    ):
        assert isinstance(controller.driver, EcoflowDcFanDriver)
        outputs = [OutputCommand.parse(await seen.value_on(dc))]
        assert await next_state(seen, broker) == ("normal", 100)
        await phone.publish(t.fans_profile_set(), "off")
        outputs.append(OutputCommand.parse(await seen.value_on(dc)))
        assert await next_state(seen, broker) == ("off", 0)
        await phone.publish(t.fans_profile_set(), '{"profile": "max"}')
        outputs.append(OutputCommand.parse(await seen.value_on(dc)))
        assert await next_state(seen, broker) == ("max", 100)
    assert [o.state for o in outputs] == ["on", "off", "on"]
    assert all(o.id is not None for o in outputs)
    assert await retained_state(broker) == ("max", 100)


# --- command --------------------------------------------------------------------------------


async def test_command_driver_runs_the_profile_command_line(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """command: each profile runs its own command line (no shell); its duty is retained."""
    t = broker.topics
    config, out = command_config(tmp_path)
    async with (
        observing(broker) as seen,
        broker.session("admin", component="phone") as phone,
        fans_running(broker, config),
    ):
        assert await next_state(seen, broker) == ("normal", 60)
        assert out.read_text() == "normal"
        await phone.publish(t.fans_profile_set(), "max")
        assert await next_state(seen, broker) == ("max", 100)
        assert out.read_text() == "max"
        await phone.publish(t.fans_profile_set(), '{"profile": "off"}')
        assert await next_state(seen, broker) == ("off", 0)
        assert out.read_text() == "off"
    assert await retained_state(broker) == ("off", 0)


async def test_command_exiting_1_is_reported_with_its_stderr_and_the_state_stays(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """command: exit 1 → handler_error with stderr's last line; state unchanged; next works."""
    t = broker.topics
    config, out = command_config(tmp_path, max="fail")
    async with (
        observing(broker) as seen,
        broker.session("admin", component="phone") as phone,
        fans_running(broker, config) as controller,
    ):
        assert await next_state(seen, broker) == ("normal", 60)
        await phone.publish(t.fans_profile_set(), "max")
        report = BridgeRejected.from_json(await seen.value_on(t.bridge_rejected("sensors")))
        assert reached(controller.state) == ("normal", 60)
        assert await retained_state(broker) == ("normal", 60)
        await phone.publish(t.fans_profile_set(), "quiet")
        assert await next_state(seen, broker) == ("quiet", 35)
    assert report.kind == "handler_error"
    assert report.topic == t.fans_profile_set()
    assert report.reason.endswith("exited 1: fan hub not found")
    assert out.read_text() == "quiet"


async def test_command_that_hangs_is_killed_and_reported(tmp_path: Path) -> None:
    """command: a command still running after its timeout is killed; apply raises."""
    config, _ = command_config(tmp_path, max="hang")
    assert config.commands is not None
    driver = CommandFanDriver(config.commands, timeout_s=0.5)
    with pytest.raises(FanDriverError, match="did not finish"):
        await driver.apply("max", 100.0)
    missing = CommandFanDriver({"max": config.commands["max"]})
    with pytest.raises(FanDriverError, match="no command configured for profile off"):
        await missing.apply("off", 0.0)
