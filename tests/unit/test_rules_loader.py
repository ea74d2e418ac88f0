"""Rule files: the shipped ones load; every mistake is reported as `file:line:column: reason`.

The corpus in tests/data/rules_bad holds one broken file (or directory, for mistakes that take
two files) per mistake a rule author makes; each maps to the exact message the loader gives.
"""

from __future__ import annotations

import os
import re
import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from aigloo_edge.errors import ConfigError
from aigloo_edge.rules.catalog import (
    DEFAULT_NODES,
    DEFAULT_PROBES,
    PROBE_STALE_S,
    builtin_actuators,
    builtin_signals,
)
from aigloo_edge.rules.expr import ExprError, compile_condition
from aigloo_edge.rules.loader import RuleSet, load_rule_files, load_rules
from aigloo_edge.rules.signal_defs import CustomSignal
from aigloo_edge.rules.units import BOOL, CELSIUS, FAHRENHEIT, NumberType, Value, ValueType

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "rules"
BAD = ROOT / "tests" / "data" / "rules_bad"

_UNITS = "°C, degC, C, °F, degF, F, %, W, kW, Wh, kWh, s, m, min, h, dBm, rpm"
_DURATION = "write e.g. 30s, 2m, 1h30m (or a number of seconds)"
_SIGNAL_HINT = "(a signal of your own needs an entry with its topic under 'signals:')"

# Each corpus entry and its full message, one line per problem. A line is relative to BAD;
# `{data}` inside a reason stands for BAD too (a message naming another file).
EXPECTED: dict[str, list[str]] = {
    "yaml_unclosed_bracket.yaml": [
        "yaml_unclosed_bracket.yaml:5:1: invalid YAML: expected ',' or ']', but got "
        "'<stream end>' (while parsing a flow sequence started at line 4)",
    ],
    "yaml_colon_in_plain_scalar.yaml": [
        "yaml_colon_in_plain_scalar.yaml:3:25: invalid YAML: mapping values are not allowed "
        "here (a value containing ': ' must be put in quotes, or the line is indented wrongly)",
    ],
    "top_level_list.yaml": [
        "top_level_list.yaml:2:1: a rule file is a mapping with signals, defaults and rules, "
        "but this is a list (rules go under 'rules:')",
    ],
    "unknown_top_level_key.yaml": [
        "unknown_top_level_key.yaml:4:1: rule: unknown setting (did you mean 'rules'?)",
    ],
    "unknown_rule_key.yaml": [
        "unknown_rule_key.yaml:4:5: rules.0.unitl: unknown setting (did you mean 'until'?)",
    ],
    "missing_when.yaml": ["missing_when.yaml:2:5: rules.0.when: required setting is missing"],
    "missing_set.yaml": ["missing_set.yaml:2:5: rules.0.set: required setting is missing"],
    "empty_set.yaml": [
        "empty_set.yaml:4:5: rules.0.set: name at least one actuator and its state, "
        "e.g. {fans.profile: max}",
    ],
    "bad_rule_id.yaml": [
        "bad_rule_id.yaml:2:9: rules.0.id: a rule id is 1 to 64 of a-z, 0-9, '-' and '_', "
        "e.g. fans-max-when-hot",
    ],
    "when_is_yaml_bool.yaml": [
        "when_is_yaml_bool.yaml:3:11: rules.0.when: write the condition as an expression, "
        "e.g. env.internal.temperature_f > 90 (for always, quote it: 'true')",
    ],
    "unknown_signal_typo.yaml": [
        "unknown_signal_typo.yaml:3:11: unknown signal 'env.internal.temprature_f' "
        "(did you mean 'env.internal.temperature_f'?)",
    ],
    "unknown_signal_no_match.yaml": [
        f"unknown_signal_no_match.yaml:3:11: unknown signal 'weather.rain_mm' {_SIGNAL_HINT}",
    ],
    "unit_mismatch.yaml": ["unit_mismatch.yaml:3:33: cannot compare % with W"],
    "text_not_a_choice.yaml": [
        "text_not_a_choice.yaml:3:33: 'awkae' is not a value of nodes.studio.power "
        "(one of: awake, sleeping, waking, unreachable)",
    ],
    "condition_is_a_number.yaml": [
        "condition_is_a_number.yaml:3:11: a condition must be true or false, "
        "but this is a number in W",
    ],
    "expr_unbalanced_paren.yaml": [
        "expr_unbalanced_paren.yaml:3:77: expected ')' to close '(' at column 51",
    ],
    "expr_double_ampersand.yaml": [
        "expr_double_ampersand.yaml:3:38: use 'and' instead of '&&'",
    ],
    "expr_single_equals.yaml": ["expr_single_equals.yaml:3:30: use '==' to compare"],
    "unknown_function.yaml": [
        "unknown_function.yaml:3:11: unknown function 'average' "
        "(functions: abs, age, avg, max, min, rate)",
    ],
    "bad_duration_words.yaml": [
        f"bad_duration_words.yaml:4:10: rules.0.for: bad duration '10 minutes': {_DURATION}",
    ],
    "bad_duration_negative.yaml": [
        "bad_duration_negative.yaml:5:15: rules.0.cooldown: a duration cannot be negative ('-5s')",
    ],
    "bad_duration_word.yaml": [
        f"bad_duration_word.yaml:4:10: rules.0.for: bad duration 'soon': {_DURATION}",
    ],
    "unknown_actuator.yaml": [
        "unknown_actuator.yaml:4:11: rule fans-max-when-hot: unknown actuator 'fan.profile' "
        "(did you mean 'fans.profile'?)",
    ],
    "bad_actuator_value_text.yaml": [
        "bad_actuator_value_text.yaml:5:21: rule fans-max-when-hot: fans.profile takes off, "
        "quiet, normal, max, not 'turbo'",
    ],
    "bad_actuator_value_bool.yaml": [
        "bad_actuator_value_bool.yaml:2:13: power.ac takes on/off (true/false), not 'maybe'",
    ],
    "duplicate_rule_id.yaml": [
        "duplicate_rule_id.yaml:6:9: rule id 'fans-max-when-hot' is also used at "
        "{data}/duplicate_rule_id.yaml:2",
    ],
    "duplicate_rule_id_across_files": [
        "duplicate_rule_id_across_files/thermal.yaml:3:9: rule id 'studio-sleeps' is also "
        "used at {data}/duplicate_rule_id_across_files/power.yaml:2",
    ],
    "duplicate_yaml_key.yaml": [
        "duplicate_yaml_key.yaml:5:5: duplicate key 'when' (first at line 3): keep only one",
    ],
    "conflicting_defaults": [
        "conflicting_defaults/thermal.yaml:3:3: default fans.profile: normal conflicts with "
        "quiet at {data}/conflicting_defaults/power.yaml:2",
    ],
    "same_priority_conflict.yaml": [
        "same_priority_conflict.yaml:9:11: rules fans-max-when-hot "
        "({data}/same_priority_conflict.yaml:2) and fans-quiet-at-night ask fans.profile for "
        "max and quiet at the same priority 100: give the one that must win a higher priority",
    ],
    "dependency_cycle.yaml": [
        "dependency_cycle.yaml:2:9: rules depend on each other in a cycle: "
        "studio-asleep -> studio-idle -> studio-asleep",
    ],
    "self_dependency.yaml": [
        "self_dependency.yaml:2:9: rule fans-max-latched depends on itself "
        "(rules.fans_max_latched.active)",
    ],
    "custom_signal_bad_unit.yaml": [
        "custom_signal_bad_unit.yaml:5:11: signal 'garage.temperature': unknown unit "
        f"'celsius' (units: {_UNITS})",
    ],
    "custom_signal_builtin_name.yaml": [
        "custom_signal_builtin_name.yaml:2:3: 'power.solar.watts' is a built-in signal: "
        "choose another name for a signal with a topic",
    ],
    "custom_signal_wildcard_topic.yaml": [
        "custom_signal_wildcard_topic.yaml:3:12: signal 'garage.temperature': topic "
        "'home/+/climate' has a wildcard ('+' or '#'); a signal reads one exact topic",
    ],
    "custom_signal_unknown_key.yaml": [
        "custom_signal_unknown_key.yaml:3:5: signals.garage.temperature.tpoic: "
        "unknown setting (did you mean 'topic'?)",
    ],
    "custom_signal_text_without_choices.yaml": [
        "custom_signal_text_without_choices.yaml:5:11: signal 'garage.door': "
        "a text signal needs 'choices' and no 'unit'",
    ],
    "stale_after_unknown_builtin.yaml": [
        "stale_after_unknown_builtin.yaml:2:3: unknown signal 'env.inside.temperature_f' "
        "(did you mean 'env.internal.temperature_f'?); a new signal needs a 'topic'",
    ],
    "literal_block_second_line.yaml": [
        "literal_block_second_line.yaml:5:34: cannot compare % with W",
    ],
    "literal_block_unclosed_paren.yaml": [
        "literal_block_unclosed_paren.yaml:5:34: expected ')' to close '(' at line 4, column 47",
    ],
    "literal_block_unexpected_end.yaml": [
        "literal_block_unexpected_end.yaml:4:37: unexpected end of expression",
    ],
    "quoted_expression.yaml": [
        "quoted_expression.yaml:3:43: unknown signal 'power.solar.wats' "
        "(did you mean 'power.solar.watts'?)",
    ],
    "quoted_expression_with_escapes.yaml": [
        "quoted_expression_with_escapes.yaml:3:51: unknown signal 'power.solar.wats' "
        "(did you mean 'power.solar.watts'?)",
        "quoted_expression_with_escapes.yaml:7:48: unknown signal 'power.solar.wats' "
        "(did you mean 'power.solar.watts'?)",
    ],
    "on_stale_bad.yaml": [
        "on_stale_bad.yaml:5:15: rules.0.on_stale: Input should be 'active', 'inactive' or 'hold'",
    ],
    "priority_out_of_range.yaml": [
        "priority_out_of_range.yaml:5:15: rules.0.priority: Input should be less than or "
        "equal to 1000",
    ],
}


def _load(path: Path) -> RuleSet:
    return load_rules(path) if path.is_dir() else load_rule_files([path])


def _message_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        _load(path)
    return str(caught.value).splitlines()


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# --- the corpus of mistakes -----------------------------------------------------------------


@pytest.mark.parametrize(("name", "expected"), list(EXPECTED.items()), ids=list(EXPECTED))
def test_each_mistake_gives_the_exact_message(name: str, expected: list[str]) -> None:
    """A broken rule file is refused with every problem as `file:line:column: reason`, naming
    the place to fix (line and column, counted from 1) and what is wrong there."""
    data = str(BAD)
    wanted = [f"{data}{os.sep}{line}".replace("{data}", data) for line in expected]
    assert _message_of(BAD / name) == wanted


def test_every_corpus_entry_has_an_expected_message() -> None:
    """Each file and directory of the corpus is checked above (none is forgotten)."""
    assert sorted(path.name for path in BAD.iterdir()) == sorted(EXPECTED)


# --- the shipped rules ----------------------------------------------------------------------

# id → (file, priority, for, cooldown, on_stale, set), as rules/*.yaml say.
SHIPPED_RULES: dict[str, tuple[str, int, float, float, str, dict[str, Value]]] = {
    "studio-allowed-only-when-reachable": (
        "inference.yaml",
        20,
        0,
        0,
        "inactive",
        {"inference.studio_allowed": False},
    ),
    "studio-sleeps-without-sun": (
        "power.yaml",
        50,
        120,
        900,
        "hold",
        {
            "studio.power": "asleep",
            "inference.studio_allowed": False,
            "inference.studio_wake": False,
        },
    ),
    "studio-sleeps-on-low-battery": (
        "power.yaml",
        50,
        120,
        900,
        "hold",
        {
            "studio.power": "asleep",
            "inference.studio_allowed": False,
            "inference.studio_wake": False,
        },
    ),
    "studio-not-woken-on-low-battery": (
        "power.yaml",
        40,
        0,
        0,
        "active",
        {"inference.studio_wake": False},
    ),
    "mbp-sleeps-on-very-low-battery": (
        "power.yaml",
        50,
        120,
        900,
        "hold",
        {"mbp.power": "asleep", "inference.mbp_allowed": False},
    ),
    "ac-off-at-critical-battery": ("power.yaml", 100, 300, 0, "hold", {"power.ac": False}),
    "fans-max-when-hot": ("thermal.yaml", 100, 10, 0, "active", {"fans.profile": "max"}),
    "fans-quiet-when-cool": ("thermal.yaml", 10, 120, 0, "inactive", {"fans.profile": "quiet"}),
    "studio-sleeps-on-extreme-heat": (
        "thermal.yaml",
        200,
        60,
        600,
        "hold",
        {"studio.power": "asleep", "inference.studio_allowed": False},
    ),
    "studio-kept-from-inference-when-throttling": (
        "thermal.yaml",
        150,
        30,
        0,
        "inactive",
        {"inference.studio_allowed": False},
    ),
}


def test_shipped_rules_load_as_the_files_say() -> None:
    """rules/ loads: its rules (file, priority, timers, on_stale, states), defaults and the
    built-in actuators are what the files and the catalog say."""
    ruleset = load_rules(SHIPPED)

    assert [path.name for path in ruleset.files] == ["inference.yaml", "power.yaml", "thermal.yaml"]
    assert [rule.id for rule in ruleset.rules] == list(SHIPPED_RULES)
    for rule in ruleset.rules:
        file, priority, for_s, cooldown_s, on_stale, wanted = SHIPPED_RULES[rule.id]
        assert rule.source.startswith(f"{SHIPPED / file}:")
        assert (rule.priority, rule.for_s, rule.cooldown_s) == (priority, for_s, cooldown_s)
        assert (rule.on_stale, dict(rule.set), rule.enabled) == (on_stale, wanted, True)
        assert rule.depends_on == frozenset()
    assert dict(ruleset.defaults) == {
        "inference.studio_allowed": True,
        "inference.studio_wake": True,
        "inference.mbp_allowed": True,
        "studio.power": "awake",
        "mbp.power": "awake",
        "power.ac": True,
        "fans.profile": "normal",
    }
    assert dict(ruleset.actuators) == builtin_actuators(("studio", "mbp", "mini", "air"))
    assert ruleset.custom == {}


def test_shipped_rules_read_the_signals_their_conditions_name() -> None:
    """The compiled `when`/`until` of a shipped rule read the signals written in the file."""
    ruleset = load_rules(SHIPPED)
    hot = ruleset.rule("fans-max-when-hot")
    assert hot is not None
    assert hot.until is not None
    assert hot.when.signals == hot.until.signals == {"env.internal.temperature_f"}
    heat = ruleset.rule("studio-sleeps-on-extreme-heat")
    assert heat is not None
    assert heat.when.windows == {"env.internal.temperature_f": 120.0}


# --- several problems at once ---------------------------------------------------------------


def test_problems_in_several_files_are_all_reported_in_file_and_line_order(
    tmp_path: Path,
) -> None:
    """Every problem of every file comes in one ConfigError, sorted by file, line and column,
    not in the order the checks find them (signals are checked first, here written last)."""
    a = _write(
        tmp_path,
        "a.yaml",
        """\
        defaults:
          power.ac: maybe
        rules:
          - id: one
            when: power.solar.wats > 100
            set: {fan.profile: max}
        signals:
          garage.temperature: {topic: home/garage, unit: kelvin}
        """,
    )
    b = _write(
        tmp_path,
        "b.yaml",
        """\
        rules:
          - id: two
            when: nodes.studio.power == "awkae"
            until: power.battery.soc_pct > power.solar.watts
            set: {fans.profile: max}
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_rule_files([b, a])
    assert str(caught.value).splitlines() == [
        f"{a}:2:13: power.ac takes on/off (true/false), not 'maybe'",
        f"{a}:5:11: unknown signal 'power.solar.wats' (did you mean 'power.solar.watts'?)",
        f"{a}:6:11: rule one: unknown actuator 'fan.profile' (did you mean 'fans.profile'?)",
        f"{a}:8:50: signal 'garage.temperature': unknown unit 'kelvin' (units: {_UNITS})",
        f"{b}:3:33: 'awkae' is not a value of nodes.studio.power "
        "(one of: awake, sleeping, waking, unreachable)",
        f"{b}:4:34: cannot compare % with W",
    ]


def test_syntax_problems_in_several_files_are_reported_together(tmp_path: Path) -> None:
    """YAML and schema problems of all files come together (before any expression check)."""
    a = _write(tmp_path, "a.yaml", "rules:\n  - id: x\n    when: [a\n")
    b = _write(tmp_path, "b.yaml", "rules:\n  - id: y\n    wen: a > 1\n    set: {power.ac: on}\n")
    with pytest.raises(ConfigError) as caught:
        load_rules(tmp_path)
    assert str(caught.value).splitlines() == [
        f"{a}:4:1: invalid YAML: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence started at line 3)",
        f"{b}:2:5: rules.0.when: required setting is missing",
        f"{b}:3:5: rules.0.wen: unknown setting (did you mean 'when'?)",
    ]


# --- what a valid file means ----------------------------------------------------------------


class _Reader:
    """A SignalReader with fixed values, for evaluating a compiled condition."""

    def __init__(self, values: dict[str, Value]) -> None:
        self.values = values
        self.now = 0.0

    def value(self, signal: str) -> Value:
        return self.values[signal]

    def history(self, signal: str, seconds: float) -> Sequence[tuple[float, float]]:
        return ()

    def age(self, signal: str) -> float:
        return 0.0


def test_custom_signal_is_usable_in_an_expression(tmp_path: Path) -> None:
    """A signal with a topic, a JSON path and a unit is known to rules, in its unit: a garage
    at 31 °C is above 86 °F."""
    path = _write(
        tmp_path,
        "garage.yaml",
        """\
        signals:
          garage.temperature:
            topic: home/garage/climate
            path: climate.temp
            unit: °C
            stale_after: 5m
        rules:
          - id: fans-max-when-garage-hot
            when: garage.temperature > 86 °F
            set: {fans.profile: max}
        """,
    )
    ruleset = load_rule_files([path])

    assert ruleset.custom == {
        "garage.temperature": CustomSignal(
            "garage.temperature", "home/garage/climate", ("climate", "temp"), NumberType(CELSIUS)
        )
    }
    spec = ruleset.signals["garage.temperature"]
    assert (spec.type, spec.stale_after) == (NumberType(CELSIUS), 300.0)
    rule = ruleset.rule("fans-max-when-garage-hot")
    assert rule is not None
    assert rule.when.signals == {"garage.temperature"}
    assert rule.when.evaluate(_Reader({"garage.temperature": 31.0})) is True
    assert rule.when.evaluate(_Reader({"garage.temperature": 29.0})) is False


def test_stale_after_override_changes_only_that_builtin_signal(tmp_path: Path) -> None:
    """`signals: {NAME: {stale_after: ...}}` for a built-in signal changes its stale_after and
    nothing else; it adds no custom signal."""
    path = _write(
        tmp_path,
        "stale.yaml",
        """\
        signals:
          env.internal.temperature_f:
            stale_after: 10m
        """,
    )
    ruleset = load_rule_files([path])

    changed = ruleset.signals["env.internal.temperature_f"]
    assert (changed.type, changed.stale_after) == (NumberType(FAHRENHEIT), 600.0)
    assert ruleset.signals["env.internal.temperature_c"].stale_after == PROBE_STALE_S
    assert ruleset.custom == {}


def test_rules_are_ordered_after_the_rules_they_read(tmp_path: Path) -> None:
    """A rule reading `rules.<id>.active` ('-' in the id read as '_') is evaluated after that
    rule, whatever the order in the file."""
    path = _write(
        tmp_path,
        "chain.yaml",
        """\
        rules:
          - id: wake-blocked
            when: rules.studio_hot.active or rules.battery_low.active
            set: {inference.studio_wake: off}
          - id: studio-hot
            when: nodes.studio.temperature_c > 95 and not rules.battery_low.active
            set: {fans.profile: max}
          - id: battery-low
            when: power.battery.soc_pct < 20
            set: {studio.power: asleep}
        """,
    )
    ruleset = load_rule_files([path])

    assert [rule.id for rule in ruleset.rules] == ["battery-low", "studio-hot", "wake-blocked"]
    depends = {rule.id: rule.depends_on for rule in ruleset.rules}
    assert depends == {
        "battery-low": frozenset(),
        "studio-hot": {"battery-low"},
        "wake-blocked": {"studio-hot", "battery-low"},
    }


def test_on_and_off_become_true_and_false_for_bool_actuators(tmp_path: Path) -> None:
    """YAML's `on`/`off` (bare or quoted) and `true`/`false` are True/False for on/off
    actuators, and a bare `off` stays the fan profile "off" (YAML reads it as false)."""
    path = _write(
        tmp_path,
        "switches.yaml",
        """\
        defaults:
          power.ac: on
          power.dc: off
          inference.studio_allowed: "on"
          inference.studio_wake: "off"
          fans.profile: off
        rules:
          - id: dark
            when: power.battery.soc_pct < 5
            set: {power.ac: false, power.dc: true, inference.mbp_allowed: off}
        """,
    )
    ruleset = load_rule_files([path])

    assert dict(ruleset.defaults) == {
        "power.ac": True,
        "power.dc": False,
        "inference.studio_allowed": True,
        "inference.studio_wake": False,
        "fans.profile": "off",
    }
    rule = ruleset.rule("dark")
    assert rule is not None
    assert dict(rule.set) == {"power.ac": False, "power.dc": True, "inference.mbp_allowed": False}


def test_load_rules_on_a_missing_directory_names_it(tmp_path: Path) -> None:
    """A rules directory that does not exist is a ConfigError naming it."""
    missing = tmp_path / "no-such-rules"
    with pytest.raises(ConfigError, match=re.escape(f"{missing}: not a directory of rule files")):
        load_rules(missing)


# --- any text -------------------------------------------------------------------------------

_FRAGMENTS = (
    "rules:",
    "signals:",
    "defaults:",
    "\n",
    "\n  - ",
    "\n    ",
    "id: r",
    "when: ",
    "until: ",
    "set: {fans.profile: max}",
    "set:",
    "for: 10s",
    "priority: ",
    "on_stale: hold",
    "topic: a/b",
    "unit: °C",
    "stale_after: 1m",
    "fans.profile: off",
    "env.internal.temperature_f > 90",
    "power.solar.watts",
    "rules.r.active",
    ": ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    "|",
    ">",
    "'",
    '"',
    "#",
    "&a ",
    "*a",
    "!!int ",
    "2001-13-45",
    "\t",
    "---",
)
_YAMLISH = st.lists(st.sampled_from(_FRAGMENTS) | st.text(max_size=5), max_size=40).map("".join)
_EXPR_WORDS = (
    "env.internal.temperature_f",
    "power.solar.watts",
    "nodes.studio.power",
    "rules.r.active",
    "avg(",
    "rate(",
    "abs(",
    "(",
    ")",
    ",",
    "and",
    "or",
    "not",
    "<",
    "==",
    "=",
    "&&",
    "+",
    "/",
    "90",
    "5min",
    "°F",
    '"awake"',
    "'x",
    "true",
    "\n",
    "\\",
)
_EXPRISH = st.lists(st.sampled_from(_EXPR_WORDS) | st.text(max_size=3), max_size=20).map(" ".join)


def _assert_loads_or_reports(path: Path) -> None:
    """Either the file loads, or every line of the error is `<path>:<line>:<col>: reason`."""
    try:
        load_rule_files([path])
    except ConfigError as exc:
        lines = str(exc).splitlines()
        pattern = re.compile(rf"{re.escape(str(path))}:(\d+):(\d+): \S.*")
        for line in lines:
            found = pattern.fullmatch(line)
            assert found is not None, line
            assert int(found[1]) >= 1
            assert int(found[2]) >= 1


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300) | _YAMLISH)
def test_any_text_as_a_rule_file_loads_or_names_line_and_column(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    """Whatever a rule file holds, loading it succeeds or raises ConfigError whose every line
    is `<path>:<line>:<col>: reason`: never another exception."""
    path = tmp_path_factory.mktemp("any") / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    _assert_loads_or_reports(path)


def _rule_file_with_when(when: str, style: str) -> str:
    if style == "dumped":  # quoted, escaped or a block, as PyYAML chooses
        rule = {"id": "r", "when": when, "set": {"fans.profile": "max"}}
        return yaml.safe_dump({"rules": [rule]}, allow_unicode=True)
    if style == "literal":
        body = textwrap.indent(when, "      ", lambda _line: True)
        return f"rules:\n  - id: r\n    when: |\n{body}\n    set: {{fans.profile: max}}\n"
    return f"rules:\n  - id: r\n    when: {when}\n    set: {{fans.profile: max}}\n"


@settings(max_examples=200, deadline=None)
@given(
    when=st.text(max_size=80) | _EXPRISH,
    style=st.sampled_from(["dumped", "literal", "plain"]),
)
def test_any_condition_loads_or_names_line_and_column(
    tmp_path_factory: pytest.TempPathFactory, when: str, style: str
) -> None:
    """Whatever the `when:` of an otherwise valid rule says (as written by PyYAML, in a literal
    block or inserted as is), loading succeeds or raises ConfigError with every line
    `<path>:<line>:<col>: reason`: never another exception."""
    path = tmp_path_factory.mktemp("when") / "rules.yaml"
    path.write_text(_rule_file_with_when(when, style), encoding="utf-8")
    _assert_loads_or_reports(path)


_TYPES: dict[str, ValueType] = {
    name: spec.type for name, spec in builtin_signals(DEFAULT_NODES, DEFAULT_PROBES).items()
}
_TYPES["rules.r.active"] = BOOL
_NO_BREAKS = st.characters(exclude_characters="\n\r\x85\u2028\u2029", exclude_categories=["Cs"])


def _written(when: str, style: str) -> str:
    if style in ('"', "'"):
        value = yaml.safe_dump(when, default_style=style, width=1_000_000, allow_unicode=True)
        return f"rules:\n  - id: r\n    when: {value.strip()}\n    set: {{fans.profile: max}}\n"
    return _rule_file_with_when(when, "literal" if style == "|" else "plain")


@settings(max_examples=200, deadline=None)
@given(
    words=st.lists(st.sampled_from(_EXPR_WORDS) | st.text(_NO_BREAKS, max_size=3), max_size=12),
    style=st.sampled_from(["plain", "'", '"', "|"]),
)
def test_an_expression_error_points_at_its_culprit_in_the_file(
    tmp_path_factory: pytest.TempPathFactory, words: list[str], style: str
) -> None:
    """For a condition written plain, quoted (escapes counted) or as a literal block, the
    reported line:column is where the expression error's culprit is written in the file."""
    when = " ".join(words) if style == "|" else " ".join(words).replace("\n", " ")
    path = tmp_path_factory.mktemp("column") / "rules.yaml"
    path.write_text(_written(when, style), encoding="utf-8")
    try:
        value = yaml.safe_load(path.read_text(encoding="utf-8"))["rules"][0]["when"]
    except (yaml.YAMLError, TypeError, KeyError, IndexError):
        return  # inserted as is, it broke the YAML: the other tests cover that
    if not isinstance(value, str) or not value.strip():
        return
    try:
        compile_condition(value, _TYPES)
    except ExprError as exc:
        offset = exc.offset
    else:
        return
    if offset >= len(value) or value[offset].isspace():
        return  # `unexpected end`: just after the text, checked in the corpus
    first = _message_of(path)[0]
    found = re.match(rf"{re.escape(str(path))}:(\d+):(\d+): ", first)
    assert found is not None, first
    line, column = int(found[1]), int(found[2])
    lines = path.read_text(encoding="utf-8").splitlines()
    written = lines[line - 1][column - 1 :]
    escaped = lines[2].startswith('    when: "') and written.startswith("\\")  # `\e`, `\"`
    assert written.startswith(value[offset]) or escaped
