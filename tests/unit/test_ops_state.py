"""The operator tools' pure parts: the rig's state from messages, the status screen, and the
warnings a control command gives when a rule wants the opposite."""

from __future__ import annotations

import io
import time

import pytest
from rich.console import Console

from aigloo_edge.ops.control import Fans, NodePower, Output, RuleSwitch, conflicting_rules
from aigloo_edge.ops.state import STALE_AFTER_S, RigState
from aigloo_edge.ops.views import status_json, status_view
from aigloo_edge.payloads import (
    Battery,
    Climate,
    FanProfileState,
    NodeTelemetry,
    Outputs,
    PowerState,
    RuleEvent,
    RuleState,
    Solar,
)
from aigloo_edge.payloads import (
    NodePower as NodePowerReading,
)
from aigloo_edge.topics import Topics

T = Topics("rig")
NOW = 1_800_000_000.0


def rig() -> RigState:
    state = RigState(T)
    state.apply(T.node_availability("studio"), b"online", NOW)
    state.apply(T.node_power("studio"), PowerState(state="awake", ts=NOW).to_json(), NOW)
    telemetry = NodeTelemetry(
        node="studio",
        cpu_pct=42.0,
        memory_used_bytes=1,
        memory_available_bytes=1,
        memory_pct=10.0,
        power=NodePowerReading(system_w=180.0),
        temperatures_c={"gpu": 66.0},
        ts=NOW,
    )
    state.apply(T.node_telemetry("studio"), telemetry.to_json(), NOW)
    battery = Battery(
        soc_pct=57.0,
        watts_in=120.0,
        watts_out=240.0,
        remaining_min=125.0,
        outputs=Outputs(ac=True, dc=False),
        source="twin",
        ts=NOW,
    )
    state.apply(T.battery(), battery.to_json(), NOW)
    state.apply(T.solar(), Solar(watts=120.0, ts=NOW).to_json(), NOW)
    climate = Climate(probe="internal", temperature_c=33.0, humidity_pct=40.0, ts=NOW)
    state.apply(T.env_climate("internal"), climate.to_json(), NOW)
    fans = FanProfileState(profile="max", duty_pct=100.0, ts=NOW)
    state.apply(T.fans_profile(), fans.to_json(), NOW)
    return state


def hot_rule() -> RuleState:
    return RuleState(
        rule="fans-max-when-hot",
        enabled=True,
        active=True,
        phase="active",
        since=NOW - 60,
        why="env.internal.temperature_f = 91.4 > 90",
        set={"fans.profile": "max"},
        priority=100,
    )


def render(state: RigState, unit: str = "F") -> str:
    out = io.StringIO()
    console = Console(file=out, width=80, color_system=None)
    console.print(status_view(state, "F" if unit == "F" else "C", NOW))
    return out.getvalue()


def test_each_contract_row_lands_in_the_state() -> None:
    """Availability, power, telemetry, battery, solar, climate and fans become the views the
    screens read, with the sparkline series sampled."""
    state = rig()
    studio = state.nodes["studio"]
    assert studio.online is True
    assert studio.power_state == "awake"
    assert studio.wall_w == 180.0
    assert state.battery is not None
    assert state.battery.value.soc_pct == 57.0
    assert state.fans is not None
    assert state.fans.value.profile == "max"
    assert list(state.history["soc"]) == [57.0]
    assert list(state.history["power:studio"]) == [180.0]
    assert list(state.history["temp:internal"]) == [33.0]


def test_a_bad_payload_is_counted_with_its_reason_and_keeps_the_old_value() -> None:
    """A malformed battery reading is counted and explained; the last good one stays shown."""
    state = rig()
    assert state.apply(T.battery(), b'{"soc_pct": "lots"}', NOW) == "battery"
    assert state.apply(T.node_availability("mbp"), b"maybe", NOW) == "node_availability"
    assert state.battery is not None
    assert state.battery.value.soc_pct == 57.0
    assert state.unreadable_total == 2
    assert "soc_pct" in state.unreadable[T.battery()].reason
    assert "must be online or offline" in state.unreadable[T.node_availability("mbp")].reason


def test_cleared_retained_messages_remove_what_they_described() -> None:
    """An empty retained battery (a lost station) or rule state (a removed rule) clears it."""
    state = rig()
    state.apply(T.rule_state("r1"), hot_rule().model_copy(update={"rule": "r1"}).to_json(), NOW)
    state.apply(T.battery(), b"", NOW)
    state.apply(T.rule_state("r1"), b"", NOW)
    assert state.battery is None
    assert "r1" not in state.rules


def test_topics_outside_the_contract_are_ignored() -> None:
    state = rig()
    assert state.apply("rig/somewhere/else", b"x", NOW) is None
    assert state.apply(T.infer_request(), b"{}", NOW) is None
    assert state.unreadable_total == 0


def test_a_probe_is_stale_by_its_flag_or_its_age() -> None:
    state = rig()
    assert not state.probe_stale("internal", NOW)
    assert state.probe_stale("internal", NOW + STALE_AFTER_S + 1)
    lost = Climate(probe="internal", temperature_c=33.0, stale=True, ts=NOW)
    state.apply(T.env_climate("internal"), lost.to_json(), NOW)
    assert state.probe_stale("internal", NOW)
    assert state.probe_stale("exhaust", NOW)  # never seen


def test_active_rules_come_by_priority_and_events_are_kept() -> None:
    state = rig()
    quiet = hot_rule().model_copy(update={"rule": "quiet", "priority": 10})
    idle = hot_rule().model_copy(update={"rule": "idle", "active": False, "phase": "idle"})
    for rule in (quiet, hot_rule(), idle):
        state.apply(T.rule_state(rule.rule), rule.to_json(), NOW)
    event = RuleEvent(kind="fired", rule="fans-max-when-hot", why="hot", ts=NOW)
    state.apply(T.rules_events(), event.to_json(), NOW)
    assert [r.rule for r in state.active_rules()] == ["fans-max-when-hot", "quiet"]
    assert state.events[-1].why == "hot"


def test_status_screen_fits_80_columns_in_the_owners_unit() -> None:
    """The one-shot screen shows every section, 33 °C as 91.4 °F (or 33.0 °C), and no line is
    wider than 80 columns."""
    state = rig()
    state.apply(T.rule_state("fans-max-when-hot"), hot_rule().to_json(), NOW)
    screen = render(state)
    for text in ("studio", "awake", "180 W", "57 %", "in 120 W", "2 h 05 min", "AC on", "DC off"):
        assert text in screen
    assert "91.4 °F" in screen
    assert "fans-max-when-hot" in screen
    assert "91.4 > 90" in screen
    assert "33.0 °C" in render(state, "C")
    assert max(len(line) for line in screen.splitlines()) <= 80


def test_status_json_keeps_si_units() -> None:
    shown = status_json(rig(), NOW)
    assert shown["probes"] == {
        "internal": pytest.approx(
            {
                "ts": NOW,
                "temperature_c": 33.0,
                "humidity_pct": 40.0,
                "battery_pct": None,
                "rssi_dbm": None,
                "stale": False,
            }
        )
    }


@pytest.mark.parametrize(
    ("action", "warned"),
    [
        (Fans(10, "quiet"), True),  # the active rule sets max
        (Fans(10, "max"), False),
        (Output(10, "ac", False), False),  # no rule sets power.ac
        (NodePower(10, "studio", "wake"), False),
        (RuleSwitch(10, "fans-max-when-hot", False), False),
    ],
)
def test_a_command_an_active_rule_contradicts_is_warned_about(action: object, warned: bool) -> None:
    """The owner hears that the rules engine will put its own value back."""
    state = rig()
    state.apply(T.rule_state("fans-max-when-hot"), hot_rule().to_json(), NOW)
    assert isinstance(action, Fans | Output | NodePower | RuleSwitch)
    warnings = conflicting_rules(state, action)
    assert bool(warnings) is warned
    if warned:
        assert "aigloo rules disable fans-max-when-hot" in warnings[0]


def test_node_power_reads_unreachable_after_the_command_as_a_failure() -> None:
    """A wake the waker could not carry out (unreachable, with its reason) fails the command;
    an unreachable state from before the command does not."""
    state = rig()
    sent_at = time.time()
    action = NodePower(10, "studio", "wake")
    old = PowerState(state="unreachable", reason="old", ts=sent_at - 60)
    state.apply(T.node_power("studio"), old.to_json(), NOW)
    assert action.failed(state, sent_at) is None
    new = PowerState(state="unreachable", reason="no MAC address configured", ts=sent_at + 1)
    state.apply(T.node_power("studio"), new.to_json(), NOW)
    assert action.failed(state, sent_at) == "studio is unreachable: no MAC address configured"
