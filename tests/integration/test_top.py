"""`aigloo top` against a real Mosquitto and the live twin, driven with Textual's Pilot in an
80x24 terminal: what it shows matches what the rig publishes, and its keys act on the rig,
asking first for power actions and explaining what they did not do."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import OptionList, Sparkline

from aigloo_edge import display
from aigloo_edge.ops.state import RigState
from aigloo_edge.ops.watch import Watcher
from aigloo_edge.tui.app import TopApp
from aigloo_edge.tui.dialogs import ChoiceDialog, ConfirmDialog
from tests.support.broker import RunningBroker
from tests.support.collect import Collector
from tests.support.node import machine_running, node_config

ROOT = Path(__file__).resolve().parents[2]
SUNNY = ROOT / "scenarios" / "sunny-day.yaml"
SIZE = (80, 24)
SHOWN_WITHIN_S = 10.0
QUIET_S = 0.5  # how long "nothing was published" is watched for


@contextlib.asynccontextmanager
async def rig_running(
    broker: RunningBroker, tmp_path: Path, *, rules: bool = False
) -> AsyncIterator[None]:
    """The live twin (station, probes, fans, Studio, MacBook Pro, Air) at speed 60, and with
    `rules` the shipped rules engine beside it, as `aigloo up` runs them on the Mini."""
    sections: dict[str, Any] = {"twin": {"scenario": str(SUNNY), "speed": 60}}
    components = ["twin"]
    if rules:
        components.append("rules")
        sections["rules"] = {
            "dir": str(ROOT / "rules"),
            "state_file": str(tmp_path / "state" / "rules.sqlite3"),
            "safety": {"settle": 0.2, "startup_grace": 2, "reassert": 1},
        }
    config = node_config(broker, "mini", components=components, **sections)
    async with machine_running(broker, config, "rules" if rules else "sensors"):
        yield


@contextlib.asynccontextmanager
async def published(broker: RunningBroker) -> AsyncIterator[RigState]:
    """What the broker carries, read by a client of the test's own (not the dashboard's)."""
    async with broker.session("admin", component="published") as admin:
        watcher = Watcher(admin, RigState(broker.topics))
        await watcher.connected()
        yield watcher.state


def dashboard(broker: RunningBroker, **overrides: Any) -> TopApp:
    return TopApp(broker.settings("mobile", **overrides), "F")


def screen_text(pilot: Pilot[None]) -> str:
    """The terminal's text as the owner sees it, modals included (what export_screenshot draws,
    as plain text)."""
    app = pilot.app
    console = Console(width=SIZE[0], height=SIZE[1], file=io.StringIO(), record=True)
    # The compositor is private; it is what App.export_screenshot renders from.
    console.print(
        app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    )
    return console.export_text()


async def until_shown(
    pilot: Pilot[None], shown: Callable[[str], bool], timeout: float = SHOWN_WITHIN_S
) -> str:
    """The screen's text once `shown(text)` holds; fails with the screen if it never does."""
    deadline = time.monotonic() + timeout
    while True:
        text = screen_text(pilot)
        if shown(text):
            return text
        if time.monotonic() > deadline:
            pytest.fail(f"not shown within {timeout:g} s; the screen:\n{text}")
        await pilot.pause(0.1)


def line_of(text: str, start: str) -> str:
    """The screen line that begins (after spaces) with `start`, or ''."""
    return next((line for line in text.splitlines() if line.strip().startswith(start)), "")


def matches_published(state: RigState) -> Callable[[str], bool]:
    """The SoC, the box's temperature in °F and the fan profile, as the broker last said."""

    def shown(text: str) -> bool:
        if state.battery is None or state.fans is None or "internal" not in state.probes:
            return False
        soc = f"Station  {state.battery.value.soc_pct:.0f} %"
        inside = display.temperature(state.probes["internal"].value.temperature_c, "F")
        fans = state.fans.value
        return (
            line_of(text, "Station").startswith(soc)
            and inside in line_of(text, "internal")
            and f"Fans {fans.profile} ({fans.duty_pct:.0f} %)" in text
        )

    return shown


async def choose(pilot: Pilot[None], choice: str) -> None:
    """In the open ChoiceDialog, highlight `choice` and press Enter."""
    dialog = pilot.app.screen
    assert isinstance(dialog, ChoiceDialog)
    ids = [option_id for option_id, _ in dialog.choices]
    dialog.query_one(OptionList).highlighted = ids.index(choice)
    await pilot.press("enter")


async def open_dialog(pilot: Pilot[None], key: str) -> None:
    await pilot.press(key)
    await until_shown(pilot, lambda _: isinstance(pilot.app.screen, ChoiceDialog | ConfirmDialog))


async def test_the_dashboard_shows_the_values_the_twin_publishes(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """The station's SoC, the internal probe in °F and the fan profile on screen are the values
    on the broker, and the sparklines end with the latest SoC and temperature."""
    async with rig_running(broker, tmp_path), published(broker) as rig:
        app = dashboard(broker)
        async with app.run_test(size=SIZE) as pilot:
            await until_shown(pilot, matches_published(rig))
            await until_shown(pilot, lambda _: len(rig.history.get("soc", ())) > 1)
            await until_shown(
                pilot,
                lambda _: (
                    _sparkline_ends(app, "soc", rig.history["soc"][-1])
                    and _sparkline_ends(
                        app,
                        "inside",
                        display.temperature_value(rig.history["temp:internal"][-1], "F"),
                    )
                ),
            )


def _sparkline_ends(app: TopApp, name: str, value: float) -> bool:
    data = app.query_one(f"#{name}", Sparkline).data or []
    return bool(data) and data[-1] == pytest.approx(value)


async def test_every_section_fits_an_80x24_terminal(broker: RunningBroker, tmp_path: Path) -> None:
    """Nodes, station, sparklines, probes, fans, rules, last events, the status line and the
    footer's keys are all on one 80x24 screen, with no scrolling."""
    async with rig_running(broker, tmp_path, rules=True):
        app = dashboard(broker)
        async with app.run_test(size=SIZE) as pilot:
            text = await until_shown(
                pilot, lambda t: all(line_of(t, n) for n in ("studio", "mbp", "air", "internal"))
            )
    lines = text.splitlines()
    assert len(lines) == SIZE[1]
    assert "● connected" in lines[0]
    for start in ("node ", "Station", "Solar", "SoC", "Inside", "probe", "Rules", "Last events"):
        assert line_of(text, start), f"no line starting {start!r}:\n{text}"
    assert "Macs" in line_of(text, "Inside")
    assert "Fans" in line_of(text, "Solar")
    for key in ("f Fans", "s Sleep", "w Wake", "r Rules", "o Outputs", "q Quit"):
        assert key in lines[-1]


async def test_choosing_max_in_the_fan_dialog_sets_the_profile_and_shows_it(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """`f` opens the profiles; choosing `max` publishes `fans/profile/set`, the twin applies it,
    and the status line says it was done."""
    async with rig_running(broker, tmp_path), published(broker) as rig:
        app = dashboard(broker)
        async with app.run_test(size=SIZE) as pilot:
            await until_shown(pilot, lambda t: "Fans normal" in t)
            await open_dialog(pilot, "f")
            await choose(pilot, "max")
            text = await until_shown(pilot, lambda t: "fans max: done in" in t)
            assert rig.fans is not None
            assert rig.fans.value.profile == "max"
            assert "Fans max (100 %)" in text


async def test_sleep_asks_first_and_no_cancels_without_publishing(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """`s` asks before putting the Studio to sleep (other keys are ignored meanwhile); `n` closes
    the question, nothing goes to `nodes/studio/power/set`, and the status line says so."""
    async with rig_running(broker, tmp_path), broker.session("admin") as admin:
        commands = Collector(admin, broker.topics.node_power_set("studio"))
        app = dashboard(broker)
        async with app.run_test(size=SIZE) as pilot:
            await until_shown(pilot, lambda t: "awake" in line_of(t, "studio"))
            await open_dialog(pilot, "s")
            assert "Put studio to sleep?" in screen_text(pilot)
            await pilot.press("f")  # the dashboard's keys start nothing while a question is open
            assert isinstance(app.screen, ConfirmDialog)
            await pilot.press("n")
            text = await until_shown(pilot, lambda t: "nothing sent" in t)
            assert not isinstance(app.screen, ConfirmDialog)
            assert "sleep studio: cancelled, nothing sent" in text
            await asyncio.sleep(QUIET_S)
            assert commands.queue.empty()


async def test_sleep_confirmed_with_y_puts_the_studio_to_sleep_and_says_so(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """`s` then `y`: the command goes out, the twin's Studio reports `sleeping`, and the nodes
    table and the status line show it."""
    async with rig_running(broker, tmp_path):
        app = dashboard(broker)
        async with app.run_test(size=SIZE) as pilot:
            await until_shown(pilot, lambda t: "awake" in line_of(t, "studio"))
            await open_dialog(pilot, "s")
            await pilot.press("y")
            text = await until_shown(pilot, lambda t: "sleep studio: done in" in t)
            assert "sleeping" in line_of(text, "studio")


async def test_turning_a_station_output_off_asks_first_then_shows_it_off(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """`o` lists the outputs with their state; choosing DC asks yes/no, and after `y` the
    station (the twin) reports DC off, on the broker and in the station line."""
    async with rig_running(broker, tmp_path), published(broker) as rig:
        app = dashboard(broker)
        async with app.run_test(size=SIZE) as pilot:
            await until_shown(pilot, lambda t: "DC on" in line_of(t, "Station"))
            await open_dialog(pilot, "o")
            assert "DC  is on: turn it off" in screen_text(pilot)
            await choose(pilot, "dc")
            await until_shown(pilot, lambda _: isinstance(app.screen, ConfirmDialog))
            assert "Turn the station's DC output off?" in screen_text(pilot)
            await pilot.press("y")
            text = await until_shown(pilot, lambda t: "dc off: done in" in t)
            assert "DC off" in line_of(text, "Station")
            assert rig.battery is not None
            assert rig.battery.value.outputs.dc is False


async def test_disabling_a_rule_with_r_shows_it_disabled(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """`r` lists the engine's rules; choosing an enabled one disables it: the engine reports it
    disabled on the broker and the Rules section shows it so."""
    rule = "fans-max-when-hot"
    async with rig_running(broker, tmp_path, rules=True), published(broker) as rig:
        app = dashboard(broker)
        async with app.run_test(size=SIZE) as pilot:
            await until_shown(pilot, lambda _: rule in app.state.rules)
            await open_dialog(pilot, "r")
            await choose(pilot, rule)
            text = await until_shown(pilot, lambda t: f"disable rule {rule}: done" in t)
            assert line_of(text, "disabled").split()[:2] == ["disabled", rule]
            assert not rig.rules[rule].enabled


async def test_an_action_the_rig_cannot_carry_out_says_why_it_was_not_sent(
    broker: RunningBroker,
) -> None:
    """With no sensor bridge (nor twin) on the broker, choosing a fan profile sends nothing and
    the status line says why; `r` with no rules engine says none is reported."""
    async with broker.session("admin") as admin:
        commands = Collector(admin, broker.topics.fans_profile_set())
        app = dashboard(broker)
        async with app.run_test(size=SIZE) as pilot:
            await until_shown(pilot, lambda t: "● connected" in t)
            await open_dialog(pilot, "f")
            await choose(pilot, "max")
            await until_shown(pilot, lambda t: "fans max: not sent: no fan controller" in t)
            await pilot.press("r")
            await until_shown(pilot, lambda t: "rules: none reported" in t)
            await asyncio.sleep(QUIET_S)
            assert commands.queue.empty()


async def test_a_refused_password_is_shown_as_refused(broker: RunningBroker) -> None:
    """Wrong credentials: the header says the broker refused them and what to check, rather
    than 'connecting' for ever."""
    app = dashboard(broker, password=SecretStr("not-the-password"))
    async with app.run_test(size=SIZE) as pilot:
        text = await until_shown(pilot, lambda t: "● refused" in t)
    assert "as 'mobile'" in text.splitlines()[0]


async def test_a_lost_broker_is_shown_and_the_dashboard_reconnects(
    broker: RunningBroker,
) -> None:
    """The broker going away turns the header to `lost … reconnecting`; when it is back the
    session reconnects by itself and the header says `connected` again."""
    app = dashboard(broker)
    async with app.run_test(size=SIZE) as pilot:
        await until_shown(pilot, lambda t: "● connected" in t)
        await broker.astop()
        await until_shown(pilot, lambda t: "● lost" in t)
        await broker.astart()
        await until_shown(pilot, lambda t: "● connected" in t)
