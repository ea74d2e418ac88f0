"""Rule expressions: syntax, precedence, types and units, functions, errors, and evaluation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aigloo_edge.rules.expr import (
    ExprError,
    Expression,
    MissingSignal,
    SignalReader,
    compile_condition,
    compile_expression,
)
from aigloo_edge.rules.units import (
    BOOL,
    CELSIUS,
    FAHRENHEIT,
    HOUR,
    KILOWATT,
    MINUTE,
    NUMBER,
    PERCENT,
    SECOND,
    WATT,
    NumberType,
    TextType,
    Value,
    ValueType,
)

POWER_STATES = ("awake", "sleeping", "waking", "unreachable")
SIGNALS: dict[str, ValueType] = {
    "env.internal.temperature_f": NumberType(FAHRENHEIT),
    "env.internal.temperature_c": NumberType(CELSIUS),
    "exhaust_c": NumberType(CELSIUS),
    "power.battery.soc_pct": NumberType(PERCENT),
    "power.battery.remaining_min": NumberType(MINUTE),
    "power.solar.watts": NumberType(WATT),
    "power.grid.kw": NumberType(KILOWATT),
    "nodes.studio.uptime_s": NumberType(SECOND),
    "nodes.studio.uptime_h": NumberType(HOUR),
    "nodes.studio.load": NumberType(NUMBER),
    "nodes.studio.online": BOOL,
    "nodes.studio.power": TextType(POWER_STATES),
    "nodes.mbp.power": TextType(POWER_STATES),
    "fans.profile": TextType(("quiet", "max")),
}
NOW = 1000.0
UNITS = "°C, degC, C, °F, degF, F, %, W, kW, Wh, kWh, s, m, min, h, dBm, rpm"


@dataclass
class FakeReader:
    """A SignalReader over recorded samples: (time, value) per signal, oldest first."""

    samples: dict[str, list[tuple[float, Value]]] = field(default_factory=dict)
    now: float = NOW
    stale: set[str] = field(default_factory=set)

    @classmethod
    def current(cls, values: Mapping[str, Value]) -> FakeReader:
        """Each signal read once, just now."""
        return cls({name: [(NOW, value)] for name, value in values.items()})

    def value(self, signal: str) -> Value:
        samples = self.samples.get(signal)
        if not samples or signal in self.stale:
            raise MissingSignal(signal)
        return samples[-1][1]

    def history(self, signal: str, seconds: float) -> Sequence[tuple[float, float]]:
        numeric = [(t, float(v)) for t, v in self.samples.get(signal, []) if t <= self.now]
        start = self.now - seconds
        older = [s for s in numeric if s[0] < start]
        return [*older[-1:], *(s for s in numeric if s[0] >= start)]

    def age(self, signal: str) -> float:
        samples = self.samples.get(signal)
        if not samples:
            raise MissingSignal(signal)
        return self.now - samples[-1][0]


def run(text: str, values: Mapping[str, Value] | None = None) -> Value:
    """`text` compiled and evaluated with the given values read just now."""
    return compile_expression(text, SIGNALS).evaluate(FakeReader.current(values or {}))


def over_time(text: str, signal: str, samples: list[tuple[float, Value]]) -> Value:
    """`text` evaluated at NOW with `signal`'s recorded samples."""
    return compile_expression(text, SIGNALS).evaluate(FakeReader({signal: samples}))


def test_the_reader_double_is_a_signal_reader() -> None:
    """FakeReader satisfies the SignalReader protocol (checked by mypy through this binding)."""
    reader: SignalReader = FakeReader()
    assert reader.now == NOW


# --- operators and precedence ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 * 3", 7.0),
        ("(1 + 2) * 3", 9.0),
        ("10 - 4 - 3", 3.0),
        ("12 / 3 / 2", 2.0),
        ("2 * 3 / 4", 1.5),
        ("-2 * 3", -6.0),
        ("2 * -3", -6.0),
        ("- -2", 2.0),
        ("-(1 + 2)", -3.0),
        ("1e3 + 0.5", 1000.5),
        (".5 * 4", 2.0),
        ("abs(-3.5)", 3.5),
        ("min(3, 1, 2)", 1.0),
        ("max(3, 1, 2)", 3.0),
    ],
)
def test_arithmetic_follows_precedence_and_left_associativity(text: str, expected: float) -> None:
    """`* /` bind tighter than `+ -`, unary minus tighter still, and chains go left to right."""
    assert run(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true or false and false", True),
        ("(true or false) and false", False),
        ("not false and false", False),
        ("not (false and false)", True),
        ("not 1 > 2", True),
        ("1 + 1 == 2 and 2 * 2 == 4", True),
        ("false or not true or true", True),
        ("true and true and false", False),
    ],
)
def test_logic_precedence_is_or_then_and_then_not_then_comparison(
    text: str, expected: bool
) -> None:
    """`or` binds loosest, then `and`, then `not`, then comparisons."""
    assert run(text) is expected


@pytest.mark.parametrize(
    ("op", "results"),
    [
        ("<", (True, False, False)),
        ("<=", (True, True, False)),
        (">", (False, False, True)),
        (">=", (False, True, True)),
        ("==", (False, True, False)),
        ("!=", (True, False, True)),
    ],
)
def test_each_comparison_operator(op: str, results: tuple[bool, bool, bool]) -> None:
    """Each comparison gives the expected truth for a value below, at and above 30 %."""
    text = f"power.battery.soc_pct {op} 30"
    got = tuple(run(text, {"power.battery.soc_pct": soc}) for soc in (29.0, 30.0, 31.0))
    assert got == results


@pytest.mark.parametrize(("celsius", "expected"), [(19.9, False), (20.0, False), (25.0, True)])
def test_comparison_chains_mean_each_pair_and_both(celsius: float, expected: bool) -> None:
    """`20 < x <= 30` is `20 < x and x <= 30`."""
    text = "20 < env.internal.temperature_c <= 30"
    assert run(text, {"env.internal.temperature_c": celsius}) is expected


def test_comparison_chains_check_the_upper_bound_too() -> None:
    """The second comparison of a chain matters: 30 passes `<= 30`, 30.1 does not."""
    text = "20 < env.internal.temperature_c <= 30"
    assert run(text, {"env.internal.temperature_c": 30.0}) is True
    assert run(text, {"env.internal.temperature_c": 30.1}) is False
    assert run("1 < 2 < 3") is True
    assert run("3 > 2 > 2") is False
    assert run("1 == 1 != 2") is True


def test_equality_of_booleans() -> None:
    """true/false compare with `==` and `!=`."""
    assert run("nodes.studio.online == true", {"nodes.studio.online": True}) is True
    assert run("nodes.studio.online != true", {"nodes.studio.online": True}) is False


# --- units -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        # °F literal against a °C signal: 90 °F is 32.2 °C.
        ("env.internal.temperature_c > 90 °F", {"env.internal.temperature_c": 32.3}, True),
        ("env.internal.temperature_c > 90 °F", {"env.internal.temperature_c": 32.1}, False),
        ("90 degF < env.internal.temperature_c", {"env.internal.temperature_c": 32.3}, True),
        # °C literal against a °F signal: 32 °C is 89.6 °F.
        ("env.internal.temperature_f > 32 °C", {"env.internal.temperature_f": 89.7}, True),
        ("env.internal.temperature_f > 32C", {"env.internal.temperature_f": 89.5}, False),
        # W and kW both ways.
        ("power.solar.watts > 0.1 kW", {"power.solar.watts": 150.0}, True),
        ("power.solar.watts > 0.2kW", {"power.solar.watts": 150.0}, False),
        ("power.grid.kw < 900 W", {"power.grid.kw": 0.8}, True),
        ("power.grid.kw < 700W", {"power.grid.kw": 0.8}, False),
        # Durations: min against h and s, s against min, h against s.
        ("power.battery.remaining_min > 2h", {"power.battery.remaining_min": 121.0}, True),
        ("power.battery.remaining_min > 2 h", {"power.battery.remaining_min": 119.0}, False),
        ("power.battery.remaining_min < 90 s", {"power.battery.remaining_min": 1.4}, True),
        ("power.battery.remaining_min < 90s", {"power.battery.remaining_min": 1.6}, False),
        ("nodes.studio.uptime_s >= 2m", {"nodes.studio.uptime_s": 120.0}, True),
        ("nodes.studio.uptime_s >= 2 min", {"nodes.studio.uptime_s": 119.0}, False),
        ("nodes.studio.uptime_h > 5400 s", {"nodes.studio.uptime_h": 1.6}, True),
        ("nodes.studio.uptime_h > 5400 s", {"nodes.studio.uptime_h": 1.4}, False),
        ("5min == 300 s and 1 h == 60 min and 1h == 3600s", {}, True),
        ("power.battery.soc_pct < 30 %", {"power.battery.soc_pct": 29.0}, True),
        ("power.battery.soc_pct < 30%", {"power.battery.soc_pct": 31.0}, False),
    ],
)
def test_literals_convert_to_the_signal_unit(
    text: str, values: dict[str, Value], expected: bool
) -> None:
    """A literal in another unit of the same dimension is converted before comparing."""
    assert run(text, values) is expected


def test_signals_in_different_units_convert_at_run_time() -> None:
    """°C and °F signals, and W and kW signals, compare and subtract after conversion."""
    temperatures: dict[str, Value] = {
        "env.internal.temperature_f": 212.0,
        "env.internal.temperature_c": 100.0,
    }
    assert run("env.internal.temperature_f - env.internal.temperature_c", temperatures) == (
        pytest.approx(0.0, abs=1e-9)
    )
    assert run("env.internal.temperature_c - env.internal.temperature_f", temperatures) == (
        pytest.approx(0.0, abs=1e-9)
    )
    slightly_cooler = {**temperatures, "env.internal.temperature_f": 211.9}
    assert run("env.internal.temperature_f < env.internal.temperature_c", slightly_cooler) is True
    assert run("env.internal.temperature_c > env.internal.temperature_f", slightly_cooler) is True
    power: dict[str, Value] = {"power.solar.watts": 500.0, "power.grid.kw": 1.0}
    assert run("power.grid.kw + power.solar.watts", power) == pytest.approx(1.5)
    assert run("power.solar.watts + power.grid.kw", power) == pytest.approx(1500.0)
    assert run("power.solar.watts < power.grid.kw", power) is True


@pytest.mark.parametrize(
    ("text", "expected_type", "value"),
    [
        ("env.internal.temperature_f + 10", NumberType(FAHRENHEIT), 100.0),
        ("10 + env.internal.temperature_f", NumberType(FAHRENHEIT), 100.0),
        ("2 * power.solar.watts", NumberType(WATT), 300.0),
        ("power.solar.watts / 2", NumberType(WATT), 75.0),
        ("power.solar.watts / 0.3 kW", NumberType(NUMBER), 0.5),
        ("power.solar.watts + 1 kW", NumberType(WATT), 1150.0),
        ("-power.solar.watts", NumberType(WATT), -150.0),
        ("abs(-power.solar.watts)", NumberType(WATT), 150.0),
        ("max(5, power.solar.watts, 0.2 kW)", NumberType(WATT), 200.0),
        ("min(0.1 kW, power.solar.watts)", NumberType(KILOWATT), 0.1),
        ("min(1, 2)", NumberType(NUMBER), 1.0),
        ("min(5 min, 30 s)", NumberType(MINUTE), 0.5),
        ("nodes.studio.load * 2", NumberType(NUMBER), 6.0),
    ],
)
def test_plain_numbers_adopt_the_other_unit_and_results_carry_units(
    text: str, expected_type: ValueType, value: float
) -> None:
    """A plain number takes the unit it meets; +,- keep the left unit; W/kW gives a ratio."""
    values: dict[str, Value] = {
        "env.internal.temperature_f": 90.0,
        "power.solar.watts": 150.0,
        "nodes.studio.load": 3.0,
    }
    expression = compile_expression(text, SIGNALS)
    assert expression.type == expected_type
    assert expression.evaluate(FakeReader.current(values)) == pytest.approx(value)


def test_a_plain_literal_compares_in_the_signal_unit() -> None:
    """`temperature_f > 90` means 90 °F, and `temperature_c > 90` means 90 °C."""
    assert run("env.internal.temperature_f > 90", {"env.internal.temperature_f": 91.0}) is True
    assert run("env.internal.temperature_c > 90", {"env.internal.temperature_c": 91.0}) is True
    assert run("90 < env.internal.temperature_c", {"env.internal.temperature_c": 89.0}) is False


def test_numeric_results_are_floats_even_from_integer_readings() -> None:
    """A reader may hand back an int; the expression's number is a float."""
    result = run("power.solar.watts", {"power.solar.watts": 150})
    assert isinstance(result, float)
    assert result == 150.0


# --- text ------------------------------------------------------------------------------------


def test_text_signals_compare_with_their_choices_in_either_quote() -> None:
    """A text signal equals a string literal among its choices; '…' and "…" both work."""
    values: dict[str, Value] = {"nodes.studio.power": "sleeping", "nodes.mbp.power": "awake"}
    assert run('nodes.studio.power == "sleeping"', values) is True
    assert run("nodes.studio.power == 'awake'", values) is False
    assert run("'sleeping' != nodes.studio.power", values) is False
    assert run("nodes.studio.power == nodes.mbp.power", values) is False
    expression = compile_expression("nodes.studio.power", SIGNALS)
    assert expression.type == TextType(POWER_STATES)
    assert expression.evaluate(FakeReader.current(values)) == "sleeping"


def test_mixed_condition_from_the_design() -> None:
    """The brief's example condition evaluates with the average and the text state."""
    text = 'avg(env.internal.temperature_c, 5min) >= 32 °C or nodes.studio.power == "sleeping"'
    condition = compile_condition(text, SIGNALS)
    hot = FakeReader(
        {"env.internal.temperature_c": [(0.0, 33.0)], "nodes.studio.power": [(NOW, "awake")]}
    )
    assert condition.evaluate(hot) is True
    cool = FakeReader(
        {"env.internal.temperature_c": [(0.0, 20.0)], "nodes.studio.power": [(NOW, "awake")]}
    )
    assert condition.evaluate(cool) is False


# --- errors ---------------------------------------------------------------------------------

ERRORS: list[tuple[str, str, int]] = [
    # names
    (
        "env.intrenal.temperature_f > 90",
        "unknown signal 'env.intrenal.temperature_f' (did you mean 'env.internal.temperature_f'?)",
        0,
    ),
    ("power.solar.watts > zzz", "unknown signal 'zzz'", 20),
    (
        "power.solar.watts > 1 and True",
        "unknown signal 'True' (keywords are lowercase: 'true')",
        26,
    ),
    (
        "mean(power.solar.watts) > 1",
        "unknown function 'mean' (functions: abs, age, avg, max, min, rate)",
        0,
    ),
    # arity and arguments
    (
        "avg(env.internal.temperature_c) > 1",
        "avg takes a signal and a window, e.g. avg(env.internal.temperature_c, 5min)",
        0,
    ),
    (
        "1 < rate(power.battery.soc_pct, 10m, 1)",
        "rate takes a signal and a window, e.g. rate(power.battery.soc_pct, 10min)",
        4,
    ),
    ("abs() > 1", "abs takes one number, e.g. abs(rate(power.battery.soc_pct, 10min))", 0),
    ("min(1) > 0", "min takes two or more numbers, e.g. min(power.solar.watts, 500 W)", 0),
    ("age() > 1s", "age takes a signal, e.g. age(env.internal.temperature_c)", 0),
    ("avg(power.solar.watts + 1, 5min)", "avg needs a signal name here, not an expression", 4),
    (
        "avg(nodes.studio.power, 5min)",
        "avg needs a numeric signal, but nodes.studio.power is text",
        4,
    ),
    ("avg(power.solar.watts, 5)", "the window must be a duration such as 5min, 30s or 2h", 23),
    ("avg(power.solar.watts, 5 W)", "the window must be a duration such as 5min, 30s or 2h", 23),
    (
        "avg(power.solar.watts, power.battery.remaining_min)",
        "the window must be a duration such as 5min, 30s or 2h",
        23,
    ),
    ("avg(power.solar.watts, 0s)", "the window must be a finite duration longer than zero", 23),
    ("rate(power.solar.watts, -5min)", "the window must be a finite duration longer than zero", 24),
    ("age(power.solar.watts + 1)", "age needs a signal name here, not an expression", 4),
    ("min(power.solar.watts, 5 %)", "min cannot mix W and %", 23),
    ("max(1, true)", "max needs numbers, but this is true/false", 7),
    ("abs(nodes.studio.online)", "abs needs numbers, but this is true/false", 4),
    # units and literals
    ("power.solar.watts > 150 kph", f"unknown unit 'kph' (units: {UNITS})", 24),
    ("power.solar.watts > 150kph", f"unknown unit 'kph' (units: {UNITS})", 23),
    ("power.solar.watts > 2e", f"unknown unit 'e' (units: {UNITS})", 21),
    # syntax
    ("", "empty expression", 0),
    ("   ", "empty expression", 0),
    (")", "unexpected ')'", 0),
    ("power.solar.watts > )", "unexpected ')'", 20),
    ("power.solar.watts > > 1", "unexpected '>'", 20),
    ("and true", "unexpected 'and'", 0),
    ("power.solar.watts > 1 and", "unexpected end of expression", 25),
    ("(power.solar.watts > 1", "expected ')' to close '(' at column 1", 22),
    ("true and (false or true true", "expected ')' to close '(' at column 10", 24),
    ("min(1, 2", "expected ')' to close '(' at column 4", 8),
    ("nodes.studio.power == 'awake", "unterminated string", 22),
    ('nodes.studio.power == "awake', "unterminated string", 22),
    (
        "power.solar.watts > 1 foo.bar",
        "unexpected 'foo.bar' after a complete expression",
        22,
    ),
    ("(true))", "unexpected ')' after a complete expression", 6),
    (
        "power.solar.watts > 1 AND true",
        "unexpected 'AND' after a complete expression (keywords are lowercase: 'and')",
        22,
    ),
    ("power.solar.watts > 1 && true", "use 'and' instead of '&&'", 22),
    ("power.solar.watts > 1 || true", "use 'or' instead of '||'", 22),
    ("power.solar.watts > 1 & true", "use 'and' instead of '&'", 22),
    ("power.solar.watts = 1", "use '==' to compare", 18),
    ("!nodes.studio.online", "use 'not' instead of '!'", 0),
    ("power.solar.watts > 1 # hot", "unexpected character '#'", 22),
    ("env.", "unexpected character '.'", 3),
    # types and units of operators
    ("env.internal.temperature_f > power.battery.soc_pct", "cannot compare °F with %", 27),
    ("env.internal.temperature_f == 5 W", "cannot compare °F with W", 27),
    ("power.solar.watts * power.battery.soc_pct", "cannot multiply W by %", 18),
    ("power.solar.watts / power.battery.soc_pct", "cannot divide W by %", 18),
    ("1 / power.solar.watts", "cannot divide a plain number by W", 2),
    ("power.solar.watts + power.battery.soc_pct", "cannot add W and %", 18),
    ("power.solar.watts - 5 %", "cannot subtract % from W", 18),
    (
        "env.internal.temperature_c + 2 °F",
        "cannot add °F to °C: write the temperature difference in °C, or without a unit",
        27,
    ),
    (
        "env.internal.temperature_f - 1 °C > 80",
        "cannot subtract °C from °F: write the temperature difference in °F, or without a unit",
        27,
    ),
    ("power.solar.watts / 0", "division by zero", 20),
    ("power.solar.watts / 0 kW", "division by zero", 20),
    ("power.solar.watts / (2 - 2)", "division by zero", 20),
    (
        "nodes.studio.power == 'awkae'",
        "'awkae' is not a value of nodes.studio.power (one of: awake, sleeping, waking, "
        "unreachable)",
        22,
    ),
    (
        '"awkae" != nodes.studio.power',
        "'awkae' is not a value of nodes.studio.power (one of: awake, sleeping, waking, "
        "unreachable)",
        0,
    ),
    (
        "fans.profile == nodes.studio.power",
        "fans.profile and nodes.studio.power never have the same value",
        13,
    ),
    ("nodes.studio.power < 'awake'", "'<' needs numbers, but this is text", 0),
    ("nodes.studio.online > false", "'>' needs numbers, but this is true/false", 0),
    ("nodes.studio.online == 1", "cannot compare true/false with a plain number", 20),
    ("nodes.studio.power == 1", "cannot compare text with a plain number", 19),
    ("power.solar.watts > 1 and 5 W", "'and' needs true/false, but this is a number in W", 26),
    ("power.solar.watts or true", "'or' needs true/false, but this is a number in W", 0),
    ("not power.solar.watts", "'not' needs true/false, but this is a number in W", 4),
    ("-nodes.studio.online", "'-' needs numbers, but this is true/false", 1),
    ("'a' + 1", "'+' needs numbers, but this is text", 0),
    ("2 * (1 > 0)", "'*' needs numbers, but this is true/false", 4),
    # limits that keep evaluation off Python's recursion limit
    ("(" * 40 + "1" + ")" * 40, "expression is too long or nested too deeply", 32),
    ("not " * 40 + "true", "expression is too long or nested too deeply", 128),
    (
        " + ".join(["power.solar.watts"] * 120),
        "expression is too long or nested too deeply",
        0,
    ),
]


@pytest.mark.parametrize(("text", "message", "offset"), ERRORS)
def test_compile_errors_say_what_and_where(text: str, message: str, offset: int) -> None:
    """Each mistake raises ExprError with its exact message and the culprit's 0-based offset."""
    with pytest.raises(ExprError) as caught:
        compile_expression(text, SIGNALS)
    assert (caught.value.message, caught.value.offset) == (message, offset)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("text", "described"),
    [
        ("env.internal.temperature_f", "a number in °F"),
        ("1 + 1", "a plain number"),
        ("nodes.studio.power", "text"),
    ],
)
def test_a_condition_must_be_true_or_false(text: str, described: str) -> None:
    """compile_condition refuses a non-boolean expression, at offset 0, saying what it is."""
    with pytest.raises(ExprError) as caught:
        compile_condition(text, SIGNALS)
    assert caught.value.message == f"a condition must be true or false, but this is {described}"
    assert caught.value.offset == 0


def test_compile_condition_accepts_a_boolean_expression() -> None:
    """A comparison is a condition: its type is BOOL and it evaluates to a bool."""
    condition = compile_condition("power.solar.watts < 150 and true", SIGNALS)
    assert condition.type == BOOL
    assert condition.evaluate(FakeReader.current({"power.solar.watts": 100.0})) is True


# --- evaluation ------------------------------------------------------------------------------


def test_or_and_and_short_circuit_past_a_missing_signal() -> None:
    """`a or b` does not read b when a is true, nor `a and b` when a is false."""
    online_unknown = FakeReader.current({"power.solar.watts": 100.0})
    assert run("power.solar.watts < 150 or nodes.studio.online", {"power.solar.watts": 100}) is True
    condition = compile_condition("power.solar.watts > 150 and nodes.studio.online", SIGNALS)
    assert condition.evaluate(online_unknown) is False


def test_a_needed_missing_signal_raises_missing_signal_naming_it() -> None:
    """When the missing signal decides the result, evaluation raises MissingSignal for it."""
    condition = compile_condition("nodes.studio.online or power.solar.watts < 150", SIGNALS)
    with pytest.raises(MissingSignal) as caught:
        condition.evaluate(FakeReader.current({"power.solar.watts": 100.0}))
    assert caught.value.signal == "nodes.studio.online"


def test_a_stale_signal_is_missing() -> None:
    """A reader's MissingSignal for a stale value propagates."""
    reader = FakeReader({"power.solar.watts": [(NOW, 100.0)]}, stale={"power.solar.watts"})
    with pytest.raises(MissingSignal):
        compile_expression("power.solar.watts > 1", SIGNALS).evaluate(reader)


def test_division_by_zero_at_run_time_is_a_missing_value_named_by_the_expression() -> None:
    """x / 0 at run time raises MissingSignal whose signal is the expression text."""
    text = "power.solar.watts / power.grid.kw > 0.5"
    expression = compile_expression(text, SIGNALS)
    zero = FakeReader.current({"power.solar.watts": 100.0, "power.grid.kw": 0.0})
    with pytest.raises(MissingSignal) as caught:
        expression.evaluate(zero)
    assert caught.value.signal == text


# --- avg, rate, age ---------------------------------------------------------------------------


def test_avg_weights_each_sample_by_how_long_it_held() -> None:
    """Window [700, 1000]: 10 holds 700-750 (pre-window sample), 20 for 150 s, 40 for 100 s.

    (10*50 + 20*150 + 40*100) / 300 = 25.
    """
    samples: list[tuple[float, Value]] = [(600.0, 10.0), (750.0, 20.0), (900.0, 40.0)]
    result = over_time("avg(power.solar.watts, 5min)", "power.solar.watts", samples)
    assert result == pytest.approx(25.0)


def test_avg_window_is_clipped_to_the_first_sample() -> None:
    """No sample by 700, so the window starts at the first one (800): (10*100 + 30*100) / 200."""
    samples: list[tuple[float, Value]] = [(800.0, 10.0), (900.0, 30.0)]
    result = over_time("avg(power.solar.watts, 300 s)", "power.solar.watts", samples)
    assert result == pytest.approx(20.0)


def test_avg_of_one_sample_taken_now_is_that_sample() -> None:
    """A window of zero length (one sample, at now) averages to that sample's value."""
    samples: list[tuple[float, Value]] = [(NOW, 7.0)]
    assert over_time("avg(power.solar.watts, 1h)", "power.solar.watts", samples) == 7.0


def test_avg_keeps_the_signal_unit() -> None:
    """avg of a °C signal is in °C, so it compares with 90 °F by converting the literal."""
    expression = compile_expression("avg(env.internal.temperature_c, 5min)", SIGNALS)
    assert expression.type == NumberType(CELSIUS)
    samples: list[tuple[float, Value]] = [(0.0, 33.0)]
    text = "avg(env.internal.temperature_c, 5min) > 90 °F"
    assert over_time(text, "env.internal.temperature_c", samples) is True


def test_avg_without_samples_or_of_a_stale_signal_is_missing() -> None:
    """No history, or a stale latest value, means no average."""
    expression = compile_expression("avg(power.solar.watts, 5min)", SIGNALS)
    with pytest.raises(MissingSignal):
        expression.evaluate(FakeReader())
    stale = FakeReader({"power.solar.watts": [(NOW, 1.0)]}, stale={"power.solar.watts"})
    with pytest.raises(MissingSignal):
        expression.evaluate(stale)


def test_rate_with_a_sample_before_the_window() -> None:
    """Window [400, 1000]: 80 % held at 400 (from t=0), 75 % now: -5 % over 10 min = -0.5/min."""
    samples: list[tuple[float, Value]] = [(0.0, 80.0), (700.0, 78.0), (1000.0, 75.0)]
    text = "rate(power.battery.soc_pct, 10m)"
    assert over_time(text, "power.battery.soc_pct", samples) == pytest.approx(-0.5)


def test_rate_without_a_sample_before_the_window_uses_the_first_sample_time() -> None:
    """No sample by 400: from (500, 80) to now (1000) with 77 is -3 % over 500 s."""
    samples: list[tuple[float, Value]] = [(500.0, 80.0), (800.0, 77.0)]
    text = "rate(power.battery.soc_pct, 10min)"
    expected = -3.0 / (500.0 / 60.0)
    assert over_time(text, "power.battery.soc_pct", samples) == pytest.approx(expected)


def test_rate_of_a_single_sample_is_missing() -> None:
    """One sample gives no change to measure: MissingSignal for the signal."""
    text = "rate(power.battery.soc_pct, 10min) < -1"
    in_window: list[tuple[float, Value]] = [(990.0, 50.0)]
    before_window: list[tuple[float, Value]] = [(0.0, 50.0)]
    for samples in (in_window, before_window):
        with pytest.raises(MissingSignal) as caught:
            over_time(text, "power.battery.soc_pct", samples)
        assert caught.value.signal == "power.battery.soc_pct"


def test_rate_is_per_minute_in_the_signal_unit_and_converts_without_offset() -> None:
    """rate(°C) is °C/min; rates in °C/min and °F/min compare as differences (no 32° offset)."""
    expression = compile_expression("rate(env.internal.temperature_c, 10min)", SIGNALS)
    assert expression.type == NumberType(CELSIUS.per_minute())
    reader = FakeReader(
        {
            "env.internal.temperature_c": [(400.0, 20.0), (NOW, 30.0)],  # +1 °C/min
            "env.internal.temperature_f": [(400.0, 68.0), (NOW, 86.0)],  # +1.8 °F/min
        }
    )
    text = "rate(env.internal.temperature_c, 10min) - rate(env.internal.temperature_f, 10min)"
    assert compile_expression(text, SIGNALS).evaluate(reader) == pytest.approx(0.0, abs=1e-9)
    condition = compile_condition("rate(env.internal.temperature_f, 10min) > 1.7", SIGNALS)
    assert condition.evaluate(reader) is True


def test_the_brief_rate_condition() -> None:
    """`rate(soc, 10m) < -1 and not online`: a fast drain with the studio offline."""
    condition = compile_condition(
        "rate(power.battery.soc_pct, 10m) < -1 and not nodes.studio.online", SIGNALS
    )
    reader = FakeReader(
        {
            "power.battery.soc_pct": [(400.0, 50.0), (NOW, 35.0)],  # -1.5 %/min
            "nodes.studio.online": [(NOW, False)],
        }
    )
    assert condition.evaluate(reader) is True


def test_age_is_seconds_since_the_last_update_for_any_signal() -> None:
    """age() reads the reader's age in s (any signal type) and compares with durations."""
    reader = FakeReader({"nodes.studio.power": [(880.0, "awake")]})
    expression = compile_expression("age(nodes.studio.power)", SIGNALS)
    assert expression.type == NumberType(SECOND)
    assert expression.evaluate(reader) == 120.0
    assert compile_condition("age(nodes.studio.power) > 1m", SIGNALS).evaluate(reader) is True
    assert compile_condition("age(nodes.studio.power) > 3m", SIGNALS).evaluate(reader) is False
    with pytest.raises(MissingSignal):
        expression.evaluate(FakeReader())


def test_signals_and_longest_windows_are_recorded() -> None:
    """`signals` lists every signal read; `windows` the longest avg/rate window per signal."""
    text = (
        "avg(power.solar.watts, 5min) > 1 and rate(power.solar.watts, 10m) < 2"
        " and avg(env.internal.temperature_c, 30 s) > 0 and age(nodes.studio.power) < 1h"
        " and nodes.studio.online"
    )
    expression = compile_condition(text, SIGNALS)
    assert expression.signals == {
        "power.solar.watts",
        "env.internal.temperature_c",
        "nodes.studio.power",
        "nodes.studio.online",
    }
    assert dict(expression.windows) == {
        "power.solar.watts": 600.0,
        "env.internal.temperature_c": 30.0,
    }
    assert expression.text == text


def test_expressions_compare_by_text_and_type() -> None:
    """Two compilations of one text are equal and hash alike (usable as keys)."""
    first: Expression = compile_expression("power.solar.watts > 1", SIGNALS)
    second = compile_expression("power.solar.watts > 1", SIGNALS)
    assert first == second
    assert hash(first) == hash(second)


# --- robustness ------------------------------------------------------------------------------

# fmt: off
TOKENS = [
    *SIGNALS,
    "and", "or", "not", "true", "false", "AND", "True",
    "<", "<=", ">", ">=", "==", "!=", "=", "!", "&&", "||",
    "+", "-", "*", "/", "(", ")", ",", ".", "%", "°", "°F", "'", '"', "'awake'", '"x"',
    "0", "1", "-3.5", "1e3", "1e999", ".5", "2e", "90 °F", "150W", "5min", "2m", "0s", "3 kph",
    "abs", "age", "avg", "min", "max", "rate", "mean",
]
# fmt: on


def _error_offset(text: str) -> int | None:
    """The ExprError offset compiling `text`, or None if it compiles; other errors propagate."""
    try:
        compile_expression(text, SIGNALS)
    except ExprError as error:
        return error.offset
    return None


@given(st.text())
def test_arbitrary_text_raises_only_expr_error(text: str) -> None:
    """Any text either compiles or raises ExprError; nothing else escapes."""
    offset = _error_offset(text)
    assert offset is None or 0 <= offset <= len(text)


@given(st.lists(st.sampled_from(TOKENS), max_size=40), st.sampled_from([" ", ""]))
def test_token_soup_raises_only_expr_error(tokens: list[str], separator: str) -> None:
    """Random sequences of real tokens either compile or raise ExprError with a valid offset."""
    text = separator.join(tokens)
    offset = _error_offset(text)
    assert offset is None or 0 <= offset <= len(text)
