"""`aigloo status` and the control commands, as the owner runs them, against a real Mosquitto
with the live twin (station, probes, fans, Studio, MacBook Pro, Air) and the shipped rules."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
import yaml

from aigloo_edge.mqtt import Inbound, Session
from aigloo_edge.payloads import Battery, Climate, FanProfileState, PowerState, RuleState
from aigloo_edge.rules.units import celsius_to_fahrenheit
from aigloo_edge.runtime import cancel_and_wait
from tests.support.broker import RunningBroker
from tests.support.node import machine_running, node_config

ROOT = Path(__file__).resolve().parents[2]
SUNNY = ROOT / "scenarios" / "sunny-day.yaml"
AIGLOO = Path(sys.executable).parent / "aigloo"


@dataclass
class Ran:
    code: int
    out: str
    err: str


@dataclass
class Rig:
    broker: RunningBroker
    config: Path  # what the owner's machine (the Air) reads: the broker and the display unit

    async def aigloo(self, *args: str, config: Path | None = None) -> Ran:
        process = await asyncio.create_subprocess_exec(
            str(AIGLOO),
            *args,
            "--config",
            str(config or self.config),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"},
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None
        return Ran(process.returncode, out.decode(), err.decode())

    async def retained(self, topic: str) -> bytes:
        """The retained payload on `topic` now (b"" if none arrives within a second), read by a
        client that leaves nothing retained itself."""
        session = Session(self.broker.settings("admin"), component="peek", announce=False)
        got: asyncio.Queue[bytes] = asyncio.Queue()

        async def keep(message: Inbound) -> None:
            got.put_nowait(message.payload)

        session.route(topic, keep)
        running = asyncio.create_task(session.run())
        try:
            await session.wait_connected(10)
            await session.sync_subscriptions()
            try:
                return await asyncio.wait_for(got.get(), 1.0)
            except TimeoutError:
                return b""
        finally:
            await cancel_and_wait(running)


def owner_config(broker: RunningBroker, tmp_path: Path, unit: str = "F") -> Path:
    """The Air's config file: its broker and how the owner reads temperatures."""
    config = node_config(broker, "air").model_dump(mode="json", include={"node", "role", "broker"})
    config["components"] = ["agent"]
    config["display"] = {"temperature": unit}
    path = tmp_path / f"air-{unit}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest_asyncio.fixture
async def rig(broker: RunningBroker, tmp_path: Path) -> AsyncIterator[Rig]:
    mini = node_config(
        broker,
        "mini",
        components=["twin", "rules"],
        twin={"scenario": str(SUNNY), "speed": 1},
        rules={"dir": str(ROOT / "rules"), "state_file": str(tmp_path / "rules.sqlite3")},
    )
    async with machine_running(broker, mini, online_as="rules"):
        rig = Rig(broker, owner_config(broker, tmp_path))
        await _wait_for(rig, broker.topics.rule_state("fans-max-when-hot"))
        yield rig


async def _wait_for(rig: Rig, topic: str) -> None:
    for _ in range(50):
        if await rig.retained(topic):
            return
    raise AssertionError(f"nothing retained on {topic}")


async def test_status_json_shows_what_the_rig_published(rig: Rig) -> None:
    """`aigloo status --json` gives the retained battery, probe, fan and node values as
    published (SI units), every played node, and the shipped rules' pending ones."""
    t = rig.broker.topics
    for _ in range(3):  # a fresh reading may land between the two reads: then read again
        ran = await rig.aigloo("status", "--json")
        assert ran.code == 0, ran.err
        shown = json.loads(ran.out)
        battery = Battery.from_json(await rig.retained(t.battery()))
        if shown["battery"]["ts"] == battery.ts:
            break
    assert shown["battery"]["soc_pct"] == battery.soc_pct
    assert shown["battery"]["outputs"]["ac"] == battery.outputs.ac
    internal = Climate.from_json(await rig.retained(t.env_climate("internal")))
    assert shown["probes"]["internal"]["temperature_c"] == pytest.approx(
        internal.temperature_c, abs=0.5
    )
    fans = FanProfileState.from_json(await rig.retained(t.fans_profile()))
    assert shown["fans"]["profile"] == fans.profile
    assert set(shown["nodes"]) >= {"studio", "mbp", "air"}
    assert shown["nodes"]["studio"]["power"] == "awake"
    assert shown["unreadable"] == {}


async def test_status_shows_temperatures_in_the_owners_unit(rig: Rig, tmp_path: Path) -> None:
    """Temperatures read in °F with the default display, in °C when the config says C, and the
    whole screen fits 80 columns."""
    internal = Climate.from_json(await rig.retained(rig.broker.topics.env_climate("internal")))
    fahrenheit = await rig.aigloo("status")
    celsius = await rig.aigloo("status", config=owner_config(rig.broker, tmp_path, "C"))
    assert fahrenheit.code == celsius.code == 0, fahrenheit.err + celsius.err
    f_value = celsius_to_fahrenheit(internal.temperature_c)
    assert any(f"{f_value + d:.1f} °F" in fahrenheit.out for d in (-0.1, 0.0, 0.1))
    assert any(f"{internal.temperature_c + d:.1f} °C" in celsius.out for d in (-0.1, 0.0, 0.1))
    assert "°C" not in fahrenheit.out
    assert "°F" not in celsius.out
    for section in ("Nodes", "Station", "Solar", "Fans", "Climate", "Rules", "Last events"):
        assert section in fahrenheit.out
    assert max(len(line) for line in fahrenheit.out.splitlines()) <= 80


async def test_fans_set_waits_until_the_controller_reports_it(rig: Rig) -> None:
    """`aigloo fans set max` returns once fans/profile says max, and says so."""
    ran = await rig.aigloo("fans", "set", "max")
    assert ran.code == 0, ran.out + ran.err
    assert "fans max: done in" in ran.out
    state = FanProfileState.from_json(await rig.retained(rig.broker.topics.fans_profile()))
    assert state.profile == "max"
    again = await rig.aigloo("fans", "set", "max")
    assert "already so (fans are max)" in again.out


async def test_node_sleep_and_wake_report_the_state_reached(rig: Rig) -> None:
    """Sleeping the Studio returns when it reports `sleeping`; waking it when it is back
    online and `awake`."""
    topic = rig.broker.topics.node_power("studio")
    slept = await rig.aigloo("node", "sleep", "studio")
    assert slept.code == 0, slept.out + slept.err
    assert PowerState.from_json(await rig.retained(topic)).state == "sleeping"
    woke = await rig.aigloo("node", "wake", "studio")
    assert woke.code == 0, woke.out + woke.err
    assert "wake studio: done in" in woke.out
    assert PowerState.from_json(await rig.retained(topic)).state == "awake"


async def test_station_output_switch_is_confirmed_by_the_station(rig: Rig) -> None:
    """`aigloo power dc off` returns when the station's reading shows DC off; `on` again."""
    off = await rig.aigloo("power", "dc", "off")
    assert off.code == 0, off.out + off.err
    assert Battery.from_json(await rig.retained(rig.broker.topics.battery())).outputs.dc is False
    on = await rig.aigloo("power", "dc", "on")
    assert on.code == 0, on.out + on.err


async def test_rules_disable_and_enable_are_confirmed_by_the_engine(rig: Rig) -> None:
    """Disabling a rule returns when its retained state says enabled=false; enabling it again
    when it says true."""
    topic = rig.broker.topics.rule_state("fans-quiet-when-cool")
    off = await rig.aigloo("rules", "disable", "fans-quiet-when-cool")
    assert off.code == 0, off.out + off.err
    assert RuleState.from_json(await rig.retained(topic)).enabled is False
    on = await rig.aigloo("rules", "enable", "fans-quiet-when-cool")
    assert on.code == 0, on.out + on.err
    assert RuleState.from_json(await rig.retained(topic)).enabled is True


async def test_unknown_ids_are_explained_and_nothing_is_sent(rig: Rig) -> None:
    """A misspelt node or rule is refused before publishing, with a did-you-mean; exit 1."""
    node = await rig.aigloo("node", "sleep", "stdio")
    assert node.code == 1
    assert "not sent: no node 'stdio' (did you mean 'studio'?)" in node.out
    rule = await rig.aigloo("rules", "disable", "fans-max-when-hott")
    assert rule.code == 1
    assert "did you mean 'fans-max-when-hot'?" in rule.out
    assert PowerState.from_json(
        await rig.retained(rig.broker.topics.node_power("studio"))
    ).state == ("awake")


async def test_commands_say_why_not_when_no_controller_is_there(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """With no sensor bridge on the broker, `fans set` and `power ac` explain instead of waiting,
    and `status` leaves nothing retained behind (no availability of its own)."""
    config = owner_config(broker, tmp_path)
    rig = Rig(broker, config)
    fans = await rig.aigloo("fans", "set", "quiet")
    assert fans.code == 1
    assert "not sent: no fan controller has reported" in fans.out
    output = await rig.aigloo("power", "ac", "off")
    assert "not sent: no station has reported" in output.out
    status = await rig.aigloo("status", "--json")
    assert status.code == 0
    assert await rig.retained(broker.topics.tree("bridge")) == b""
