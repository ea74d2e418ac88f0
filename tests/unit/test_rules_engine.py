"""The rules engine's pure core: timers, hysteresis, cooldowns, arbitration, fail-safes, limits.

Time is injected: every test says what time it is, so minutes of rig time pass in microseconds.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from aigloo_edge.rules.arbiter import SafetyLimits
from aigloo_edge.rules.engine import Decisions, RulesEngine
from aigloo_edge.rules.loader import RuleSet, load_rule_files
from aigloo_edge.rules.state import Snapshot
from aigloo_edge.rules.store import StateStore

T0 = 1_800_000_000.0
LIMITS = SafetyLimits(
    min_power_toggle_s=600,
    breaker_max_fires=3,
    breaker_window_s=3600,
    reassert_s=60,
    startup_grace_s=30,
    settle_s=0,
)

FANS = """
defaults:
  fans.profile: normal
rules:
  - id: hot
    when: env.internal.temperature_f > 90
    for: 10s
    until: env.internal.temperature_f < 85
    set: {fans.profile: max}
    priority: 100
    on_stale: active
"""


def ruleset(tmp_path: Path, text: str, name: str = "rules.yaml") -> RuleSet:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return load_rule_files([path])


def engine_for(tmp_path: Path, text: str, limits: SafetyLimits = LIMITS) -> RulesEngine:
    return RulesEngine(ruleset(tmp_path, text), now=T0, limits=limits)


def commands(decisions: Decisions) -> list[tuple[str, object]]:
    return [(c.actuator.name, c.value) for c in decisions.commands]


def kinds(decisions: Decisions) -> list[tuple[str, str | None]]:
    return [(e.kind, e.rule) for e in decisions.events if e.kind != "command"]


def temp(engine: RulesEngine, fahrenheit: float, at: float) -> Decisions:
    return engine.observe([("env.internal.temperature_f", fahrenheit)], T0 + at)


def test_for_needs_the_condition_to_hold_the_whole_time(tmp_path: Path) -> None:
    """`for: 10s`: a dip below the threshold restarts the wait; 10 s unbroken fires the rule."""
    engine = engine_for(tmp_path, FANS)
    assert commands(temp(engine, 80, 1)) == [("fans.profile", "normal")]
    temp(engine, 95, 2)
    assert engine.rule_state("hot").phase == "pending"
    temp(engine, 88, 6)  # below 90: the wait starts again
    temp(engine, 95, 7)
    assert commands(engine.tick(T0 + 16)) == []
    assert engine.next_deadline() == T0 + 17
    fired = engine.tick(T0 + 17)
    assert commands(fired) == [("fans.profile", "max")]
    assert kinds(fired) == [("fired", "hot")]
    assert fired.events[0].values == {"env.internal.temperature_f": 95}


def test_until_keeps_the_rule_active_between_the_thresholds(tmp_path: Path) -> None:
    """Hysteresis: active at 95 °F stays active at 87 °F and releases only below 85 °F."""
    engine = engine_for(tmp_path, FANS)
    temp(engine, 95, 1)
    engine.tick(T0 + 11)
    assert engine.rule_state("hot").active
    assert commands(temp(engine, 87, 20)) == []
    assert engine.rule_state("hot").active
    released = temp(engine, 84, 30)
    assert commands(released) == [("fans.profile", "normal")]
    assert kinds(released) == [("released", "hot")]


def test_commands_go_out_only_when_the_chosen_state_changes(tmp_path: Path) -> None:
    """Level-based: many readings that keep the same state send nothing more."""
    engine = engine_for(tmp_path, FANS)
    sent = [c for t in range(1, 60) for c in commands(temp(engine, 80 + t % 3, t))]
    assert sent == [("fans.profile", "normal")]


def test_cooldown_blocks_firing_again_until_it_ends(tmp_path: Path) -> None:
    """After a release, `cooldown: 5m` keeps the rule idle however true `when` is."""
    engine = engine_for(
        tmp_path,
        """
        rules:
          - id: low
            when: power.battery.soc_pct < 30
            set: {studio.power: asleep}
            cooldown: 5m
        """,
        SafetyLimits(min_power_toggle_s=0, settle_s=0),
    )
    soc = "power.battery.soc_pct"
    assert kinds(engine.observe([(soc, 20.0)], T0 + 1)) == [("fired", "low")]
    assert kinds(engine.observe([(soc, 40.0)], T0 + 2)) == [("released", "low")]
    assert engine.rule_state("low").phase == "cooldown"
    assert engine.rule_state("low").until == T0 + 302
    assert kinds(engine.observe([(soc, 20.0)], T0 + 250)) == []
    assert kinds(engine.tick(T0 + 302)) == [("fired", "low")]


PRIORITIES = """
defaults:
  fans.profile: normal
rules:
  - id: quiet-at-night
    when: power.solar.watts < 1
    set: {fans.profile: quiet}
    priority: 10
  - id: hot
    when: env.internal.temperature_f > 90
    set: {fans.profile: max}
    priority: 100
"""


def test_the_highest_priority_active_rule_wins_then_the_next_then_the_default(
    tmp_path: Path,
) -> None:
    """Two rules on one actuator never fight: priority decides, releases fall back in order."""
    engine = engine_for(tmp_path, PRIORITIES)
    assert commands(engine.observe([("power.solar.watts", 0.0)], T0 + 1)) == [
        ("fans.profile", "quiet")
    ]
    assert commands(temp(engine, 95, 2)) == [("fans.profile", "max")]
    assert commands(engine.observe([("power.solar.watts", 0.0)], T0 + 3)) == []
    assert commands(temp(engine, 80, 4)) == [("fans.profile", "quiet")]
    assert commands(engine.observe([("power.solar.watts", 50.0)], T0 + 5)) == [
        ("fans.profile", "normal")
    ]


def test_a_stale_thermometer_engages_the_fail_safe_at_once(tmp_path: Path) -> None:
    """on_stale: active fires without waiting for `for`, and says which signal is stale."""
    engine = engine_for(tmp_path, FANS)
    temp(engine, 80, 1)
    assert engine.next_deadline() == T0 + 1 + 300  # the probe's stale_after is 5 min
    decisions = engine.tick(T0 + 301)
    assert commands(decisions) == [("fans.profile", "max")]
    assert "env.internal.temperature_f is stale (on_stale: active)" in decisions.events[0].why
    # A fresh reading: until decides again.
    assert commands(temp(engine, 80, 302)) == [("fans.profile", "normal")]


def test_a_probe_flagged_stale_counts_as_stale(tmp_path: Path) -> None:
    """A reading of None (the source says stale) is stale even if it just arrived."""
    engine = engine_for(tmp_path, FANS)
    temp(engine, 80, 1)
    decisions = engine.observe([("env.internal.temperature_f", None)], T0 + 2)
    assert commands(decisions) == [("fans.profile", "max")]


def test_an_old_retained_reading_is_stale_on_arrival(tmp_path: Path) -> None:
    """A reading whose payload `ts` is older than stale_after never counts as fresh."""
    engine = engine_for(tmp_path, FANS)
    decisions = engine.observe([("env.internal.temperature_f", 70.0)], T0 + 1, produced=T0 - 3600)
    assert commands(decisions) == [("fans.profile", "max")]


def test_nothing_is_decided_on_signals_still_expected_at_start_up(tmp_path: Path) -> None:
    """Within the start-up grace a missing reading is unknown: the rule holds; after it, stale."""
    engine = engine_for(tmp_path, FANS)
    assert commands(engine.tick(T0 + 5)) == [("fans.profile", "normal")]
    assert engine.rule_state("hot").phase == "idle"
    assert commands(engine.tick(T0 + 30)) == [("fans.profile", "max")]


@pytest.mark.parametrize(("on_stale", "active_after"), [("inactive", False), ("hold", True)])
def test_on_stale_inactive_releases_and_hold_keeps(
    tmp_path: Path, on_stale: str, active_after: bool
) -> None:
    """A stale battery reading releases an `inactive` rule and leaves a `hold` rule as it was."""
    engine = engine_for(
        tmp_path,
        f"""
        rules:
          - id: low
            when: power.battery.soc_pct < 30
            set: {{inference.studio_allowed: off}}
            on_stale: {on_stale}
        """,
    )
    engine.observe([("power.battery.soc_pct", 20.0)], T0 + 1)
    assert engine.rule_state("low").active
    engine.tick(T0 + 1 + 120)  # the station's stale_after is 2 min
    assert engine.rule_state("low").active is active_after


POWER = """
defaults:
  studio.power: awake
rules:
  - id: low
    when: power.battery.soc_pct < 30
    set: {studio.power: asleep}
"""


def test_a_node_power_toggle_waits_for_the_anti_flapping_limit(tmp_path: Path) -> None:
    """No rule can toggle a node's power twice within min_power_toggle_s: the change waits.

    The first command only sets a state, so sleeping right after it is allowed; waking again
    is the toggle that waits.
    """
    engine = engine_for(tmp_path, POWER)
    soc = "power.battery.soc_pct"
    assert commands(engine.observe([(soc, 50.0)], T0 + 1)) == [("studio.power", "awake")]
    assert commands(engine.observe([(soc, 20.0)], T0 + 2)) == [("studio.power", "asleep")]
    held = engine.observe([(soc, 50.0)], T0 + 3)
    assert commands(held) == []
    assert [e.kind for e in held.events] == ["released", "held"]
    assert engine.arbiter.next_change() == T0 + 602
    engine.observe([(soc, 50.0)], T0 + 590)
    assert commands(engine.tick(T0 + 601)) == []
    assert commands(engine.tick(T0 + 602)) == [("studio.power", "awake")]


def test_the_circuit_breaker_disables_a_rule_that_fires_too_often(tmp_path: Path) -> None:
    """The 4th firing within the window trips the breaker (limit 3): event, rule disabled."""
    engine = engine_for(tmp_path, PRIORITIES)
    for minute in range(3):
        temp(engine, 95, minute * 60 + 1)
        temp(engine, 80, minute * 60 + 2)
    tripped = temp(engine, 95, 200)
    assert kinds(tripped) == [("tripped", "hot")]
    state = engine.rule_state("hot")
    assert (state.phase, state.enabled) == ("tripped", False)
    assert "circuit breaker" in (state.why or "")
    enabled = engine.set_enabled("hot", True, T0 + 201, "enabled by a test")
    assert [e.kind for e in enabled.events][:2] == ["enabled", "fired"]


def test_disabling_an_active_rule_releases_it(tmp_path: Path) -> None:
    """`disable` at run time releases the rule and its actuator goes back to the default."""
    engine = engine_for(tmp_path, PRIORITIES)
    temp(engine, 95, 1)
    decisions = engine.set_enabled("hot", False, T0 + 2, "disabled by a test")
    assert kinds(decisions) == [("disabled", "hot"), ("released", "hot")]
    assert commands(decisions) == [("fans.profile", "normal")]
    assert engine.rule_state("hot").phase == "disabled"


def test_a_rule_can_depend_on_another_rule_being_active(tmp_path: Path) -> None:
    """`rules.hot.active` is true in the same evaluation the rule it names fires in."""
    engine = engine_for(
        tmp_path,
        """
        rules:
          - id: studio-off-when-hot
            when: rules.hot.active and nodes.studio.online
            set: {inference.studio_allowed: off}
          - id: hot
            when: env.internal.temperature_f > 90
            set: {fans.profile: max}
        """,
    )
    engine.observe([("nodes.studio.online", True)], T0 + 1)
    decisions = temp(engine, 95, 2)
    assert kinds(decisions) == [("fired", "hot"), ("fired", "studio-off-when-hot")]


def test_state_survives_a_restart_without_refiring_or_forgetting(tmp_path: Path) -> None:
    """Persisted active rules stay active without a new command; a pending timer keeps its time."""
    text = FANS + (
        "  - id: low\n"
        "    when: power.battery.soc_pct < 30\n"
        "    for: 2m\n"
        "    set: {inference.studio_allowed: off}\n"
    )
    engine = engine_for(tmp_path, text)
    temp(engine, 95, 1)
    engine.tick(T0 + 11)  # hot fires, fans max sent
    engine.observe([("power.battery.soc_pct", 20.0)], T0 + 20)  # low pending until T0+140
    store = StateStore(tmp_path / "state.sqlite3")
    store.save(engine.snapshot.rules.items(), engine.arbiter.runtime.items())
    store.close()

    reopened = StateStore(tmp_path / "state.sqlite3")
    restarted = RulesEngine(
        ruleset(tmp_path, text), now=T0 + 60, limits=LIMITS, snapshot=reopened.load()
    )
    after = restarted.observe(
        [("env.internal.temperature_f", 95.0), ("power.battery.soc_pct", 20.0)], T0 + 61
    )
    assert commands(after) == []
    assert kinds(after) == []
    assert restarted.rule_state("hot").active
    assert restarted.next_deadline() == T0 + 140
    assert kinds(restarted.tick(T0 + 140)) == [("fired", "low")]


def test_a_reload_keeps_the_state_of_rules_that_keep_their_id(tmp_path: Path) -> None:
    """Hot reload: `hot` stays active, a removed rule is gone, a new rule is evaluated."""
    engine = engine_for(tmp_path, PRIORITIES)
    temp(engine, 95, 1)
    new = ruleset(
        tmp_path,
        FANS.replace("for: 10s", "for: 20s")
        + "  - id: dim\n    when: power.solar.watts < 1\n    set: {power.dc: off}\n",
        "new.yaml",
    )
    decisions = engine.replace_rules(new, T0 + 2)
    assert decisions.events[0].kind == "reloaded"
    assert engine.rule_state("hot").active
    assert "quiet-at-night" in decisions.changed_rules
    assert "quiet-at-night" not in engine.snapshot.rules
    assert kinds(engine.observe([("power.solar.watts", 0.0)], T0 + 3)) == [("fired", "dim")]


def test_a_state_the_device_contradicts_is_sent_again(tmp_path: Path) -> None:
    """The fan controller says `normal` after we sent `max`: after reassert_s, `max` again."""
    engine = engine_for(tmp_path, FANS)
    temp(engine, 95, 1)
    engine.tick(T0 + 11)
    engine.observe([("fans.profile", "normal")], T0 + 12)
    assert commands(engine.tick(T0 + 40)) == []
    again = engine.tick(T0 + 71)
    assert [(c.actuator.name, c.value, c.reassert) for c in again.commands] == [
        ("fans.profile", "max", True)
    ]
    engine.observe([("fans.profile", "max")], T0 + 72)
    assert commands(engine.tick(T0 + 200)) == []


def test_after_a_reconnect_unconfirmed_states_are_sent_again(tmp_path: Path) -> None:
    """`reconnected` re-sends what no device has confirmed, and nothing that is confirmed."""
    engine = engine_for(tmp_path, PRIORITIES)
    temp(engine, 95, 1)  # fans max
    engine.observe([("power.solar.watts", 0.0)], T0 + 2)
    assert commands(engine.reconnected(T0 + 3, connected_at=T0 + 1)) == []  # sent after it
    assert commands(engine.reconnected(T0 + 4, connected_at=T0 + 3)) == [("fans.profile", "max")]
    engine.observe([("fans.profile", "max")], T0 + 5)
    assert commands(engine.reconnected(T0 + 7, connected_at=T0 + 6)) == []


def test_no_command_goes_out_before_the_settle_time(tmp_path: Path) -> None:
    """Right after start, retained readings are still arriving: defaults wait for settle_s."""
    engine = RulesEngine(
        ruleset(tmp_path, FANS), now=T0, limits=SafetyLimits(settle_s=3), snapshot=Snapshot()
    )
    assert commands(temp(engine, 80, 1)) == []
    assert engine.next_deadline() == T0 + 3
    assert commands(engine.tick(T0 + 3)) == [("fans.profile", "normal")]


def test_rules_saved_by_an_earlier_run_and_since_removed_are_dropped(tmp_path: Path) -> None:
    """A restart with a rule gone from the files forgets it and reports it as changed."""
    old = engine_for(tmp_path, PRIORITIES)
    temp(old, 95, 1)
    restarted = RulesEngine(
        ruleset(tmp_path, FANS, "new.yaml"), now=T0 + 10, limits=LIMITS, snapshot=old.snapshot
    )
    first = restarted.replace_rules(restarted.ruleset, T0 + 10)
    assert "quiet-at-night" in first.changed_rules
    assert set(restarted.snapshot.rules) == {"hot"}
