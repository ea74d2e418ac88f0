"""Rule expressions: a small, safe language compiled once and evaluated many times.

    env.internal.temperature_f > 90
    avg(env.internal.temperature_c, 5min) >= 32 °C or nodes.studio.power == "sleeping"
    rate(power.battery.soc_pct, 10m) < -1 and not nodes.studio.online

No Python `eval`: a tokenizer (`tokens`) and a recursive-descent parser that type- and unit-checks
as it goes and builds nested closures, so evaluating is plain function calls.

Precedence, lowest first: `or`, `and`, `not`, comparisons (chains: `20 < x <= 30`), `+ -`,
`* /`, unary `-`. Numbers carry units (`90 °F`, `150W`, `5min`); a plain number takes the unit of
what it meets (`temperature_f > 90` is 90 °F); units of one dimension are converted (a literal at
compile time); different dimensions are refused. Functions: `abs`, `min`, `max`, `age(SIGNAL)`,
`avg(SIGNAL, WINDOW)` (time-weighted mean, each sample holding until the next) and
`rate(SIGNAL, WINDOW)` (change per minute over the window).

Evaluation raises `MissingSignal` for a value that is not known: a signal without a fresh value
(also for `avg`/`rate`, which read the signal's value first so a stale sensor has no average), a
`rate` from fewer than two samples, and a division by zero at run time, whose `.signal` is then
the whole expression text. `and`/`or` short-circuit: `a or b` never reads `b` when `a` is true.
"""

from __future__ import annotations

import difflib
import math
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Final, Protocol, TypeVar, cast

from aigloo_edge.errors import AiglooError
from aigloo_edge.rules.tokens import ExprError, Kind, Token, keyword_hint, tokenize
from aigloo_edge.rules.units import (
    BOOL,
    NUMBER,
    SECOND,
    BoolType,
    NumberType,
    TextType,
    Unit,
    Value,
    ValueType,
)

__all__ = [
    "ExprError",
    "Expression",
    "MissingSignal",
    "SignalReader",
    "compile_condition",
    "compile_expression",
]

FUNCTIONS: Final = ("abs", "age", "avg", "max", "min", "rate")
_USAGE: Final = {
    "abs": "abs takes one number, e.g. abs(rate(power.battery.soc_pct, 10min))",
    "age": "age takes a signal, e.g. age(env.internal.temperature_c)",
    "avg": "avg takes a signal and a window, e.g. avg(env.internal.temperature_c, 5min)",
    "max": "max takes two or more numbers, e.g. max(power.solar.watts, 100 W)",
    "min": "min takes two or more numbers, e.g. min(power.solar.watts, 500 W)",
    "rate": "rate takes a signal and a window, e.g. rate(power.battery.soc_pct, 10min)",
}
_COMPARISONS: Final = ("<", "<=", ">", ">=", "==", "!=")
# Bounds keep the parser's recursion and the closures' call depth far from Python's limit.
_MAX_NESTING: Final = 32
_MAX_DEPTH: Final = 100


class MissingSignal(AiglooError):  # noqa: N818 - the name the engine and the store use
    """A value needed during evaluation is not known (no fresh reading, too few samples)."""

    def __init__(self, signal: str) -> None:
        super().__init__(f"no current value for {signal}")
        self.signal = signal


class SignalReader(Protocol):
    """What an expression reads; `SignalStore` implements it."""

    @property
    def now(self) -> float: ...

    def value(self, signal: str) -> Value:
        """The latest value; MissingSignal if there is none or it is stale."""
        ...

    def history(self, signal: str, seconds: float) -> Sequence[tuple[float, float]]:
        """(t, value) samples, oldest first, with t in [now - seconds, now], plus the latest
        sample before that if any. Empty if none; never raises."""
        ...

    def age(self, signal: str) -> float:
        """Seconds since the last update; MissingSignal if never seen."""
        ...


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled expression; `windows` maps each signal to its longest avg/rate window (s)."""

    text: str
    type: ValueType
    signals: frozenset[str]
    windows: Mapping[str, float] = field(compare=False)
    _run: Callable[[SignalReader], Value] = field(repr=False, compare=False)

    def evaluate(self, reader: SignalReader) -> Value:
        return self._run(reader)


def compile_expression(text: str, signals: Mapping[str, ValueType]) -> Expression:
    """Compile `text` against the signals' types; ExprError says what is wrong and where."""
    parser = _Parser(text, signals)
    result = parser.parse()
    windows = MappingProxyType(dict(parser.windows))
    return Expression(text, result.type, frozenset(parser.used), windows, result.run)


def compile_condition(text: str, signals: Mapping[str, ValueType]) -> Expression:
    """Like `compile_expression`, for an expression that must be true or false."""
    expression = compile_expression(text, signals)
    if not isinstance(expression.type, BoolType):
        described = _describe(expression.type)
        raise ExprError(f"a condition must be true or false, but this is {described}", 0)
    return expression


# --- compiled operands ----------------------------------------------------------------------

T = TypeVar("T")
NumFn = Callable[[SignalReader], float]
BoolFn = Callable[[SignalReader], bool]
TextFn = Callable[[SignalReader], str]
# Folding calls a closure built only from constants, which never touches its reader.
_NO_READER: Final = cast(SignalReader, None)


@dataclass(frozen=True, slots=True)
class _Num:
    unit: Unit
    run: NumFn
    offset: int
    depth: int = 1
    const: float | None = None  # known at compile time

    @property
    def type(self) -> ValueType:
        return NumberType(self.unit)


@dataclass(frozen=True, slots=True)
class _Bool:
    run: BoolFn
    offset: int
    depth: int = 1

    @property
    def type(self) -> ValueType:
        return BOOL


@dataclass(frozen=True, slots=True)
class _Text:
    choices: tuple[str, ...]  # empty: any text
    run: TextFn
    offset: int
    depth: int = 1
    const: str | None = None  # a string literal
    name: str = ""  # the signal, for messages

    @property
    def type(self) -> ValueType:
        return TextType(self.choices)


_Typed = _Num | _Bool | _Text


@dataclass(frozen=True, slots=True)
class _Arg:
    value: _Typed
    name: str | None  # set when the argument is a bare signal name


def _constant(value: T) -> Callable[[SignalReader], T]:
    return lambda _reader: value


def _describe(kind: ValueType) -> str:
    return "text" if isinstance(kind, TextType) else str(kind)


def _is_plain(unit: Unit) -> bool:
    return unit == NUMBER


def _depth(offset: int, *parts: _Typed) -> int:
    depth = 1 + max((part.depth for part in parts), default=0)
    if depth > _MAX_DEPTH:
        raise ExprError("expression is too long or nested too deeply", offset)
    return depth


def _number(unit: Unit, run: NumFn, offset: int, *parts: _Num) -> _Num:
    """A numeric node; folded to a constant when all its parts are constants."""
    if all(part.const is not None for part in parts):
        value = run(_NO_READER)
        return _Num(unit, _constant(value), offset, 1, value)
    return _Num(unit, run, offset, _depth(offset, *parts))


def _need_number(what: str, operand: _Typed) -> _Num:
    if not isinstance(operand, _Num):
        described = _describe(operand.type)
        raise ExprError(f"{what} needs numbers, but this is {described}", operand.offset)
    return operand


def _need_bool(what: str, operand: _Typed) -> _Bool:
    if not isinstance(operand, _Bool):
        described = _describe(operand.type)
        raise ExprError(f"{what} needs true/false, but this is {described}", operand.offset)
    return operand


# --- units ----------------------------------------------------------------------------------


def _convert(operand: _Num, to: Unit) -> _Num:
    """`operand` in `to` (same dimension), computed as `Unit.convert` does."""
    if operand.unit == to or _is_plain(operand.unit):
        return replace(operand, unit=to)
    scale, shift, to_scale = operand.unit.scale, operand.unit.offset - to.offset, to.scale
    run = operand.run
    return _number(to, lambda r: (run(r) * scale + shift) / to_scale, operand.offset, operand)


def _unify(
    op: Token, a: _Num, b: _Num, refusal: str, *, convert_literal: bool
) -> tuple[_Num, _Num]:
    """Both operands in one unit: a plain number adopts the other's unit, else `b` is converted
    (or `a`, when `convert_literal` and only `a` is a constant, so it converts at compile time)."""
    if a.unit == b.unit or _is_plain(b.unit):
        return a, _convert(b, a.unit)
    if _is_plain(a.unit):
        return _convert(a, b.unit), b
    if a.unit.dimension != b.unit.dimension:
        raise ExprError(refusal.format(a=a.unit, b=b.unit), op.offset)
    if convert_literal and a.const is not None and b.const is None:
        return _convert(a, b.unit), b
    return a, _convert(b, a.unit)


# --- operators ------------------------------------------------------------------------------


def _logic(op: Token, a: _Typed, b: _Typed) -> _Bool:
    left, right = _need_bool(f"'{op.text}'", a), _need_bool(f"'{op.text}'", b)
    if op.text == "and":
        return _both(left, right, op.offset)
    ra, rb = left.run, right.run
    return _Bool(lambda r: ra(r) or rb(r), left.offset, _depth(op.offset, left, right))


def _both(left: _Bool, right: _Bool, offset: int) -> _Bool:
    ra, rb = left.run, right.run
    return _Bool(lambda r: ra(r) and rb(r), left.offset, _depth(offset, left, right))


def _negate(op: Token, operand: _Typed) -> _Typed:
    if op.text == "not":
        flag = _need_bool("'not'", operand)
        run = flag.run
        return _Bool(lambda r: not run(r), op.offset, _depth(op.offset, flag))
    number = _need_number("'-'", operand)
    value = number.run
    return _number(number.unit, lambda r: -value(r), op.offset, number)


_ORDERINGS: Final[dict[str, Callable[[NumFn, NumFn], BoolFn]]] = {
    "<": lambda a, b: lambda r: a(r) < b(r),
    "<=": lambda a, b: lambda r: a(r) <= b(r),
    ">": lambda a, b: lambda r: a(r) > b(r),
    ">=": lambda a, b: lambda r: a(r) >= b(r),
}
ValueFn = Callable[[SignalReader], Value]
_EQUALITIES: Final[dict[str, Callable[[ValueFn, ValueFn], BoolFn]]] = {
    "==": lambda a, b: lambda r: a(r) == b(r),
    "!=": lambda a, b: lambda r: a(r) != b(r),
}


def _compare(op: Token, a: _Typed, b: _Typed) -> _Bool:
    refusal = "cannot compare {a} with {b}"
    if op.text in _ORDERINGS:
        left, right = _need_number(f"'{op.text}'", a), _need_number(f"'{op.text}'", b)
        left, right = _unify(op, left, right, refusal, convert_literal=True)
        run = _ORDERINGS[op.text](left.run, right.run)
    elif isinstance(a, _Num) and isinstance(b, _Num):
        left, right = _unify(op, a, b, refusal, convert_literal=True)
        run = _EQUALITIES[op.text](left.run, right.run)
    elif isinstance(a, _Text) and isinstance(b, _Text):
        _check_choices(op, a, b)
        run = _EQUALITIES[op.text](a.run, b.run)
    elif isinstance(a, _Bool) and isinstance(b, _Bool):
        run = _EQUALITIES[op.text](a.run, b.run)
    else:
        raise ExprError(f"cannot compare {_describe(a.type)} with {_describe(b.type)}", op.offset)
    return _Bool(run, a.offset, _depth(op.offset, a, b))


def _check_choices(op: Token, a: _Text, b: _Text) -> None:
    """Refuse a comparison that can never be true: a typo in a state name, most likely."""
    for literal, signal in ((a, b), (b, a)):
        if literal.const is not None and signal.const is None:
            if signal.choices and literal.const not in signal.choices:
                choices = ", ".join(signal.choices)
                message = f"'{literal.const}' is not a value of {signal.name} (one of: {choices})"
                raise ExprError(message, literal.offset)
            return
    if a.choices and b.choices and not set(a.choices) & set(b.choices):
        names = [text.name or f"'{text.const}'" for text in (a, b)]
        raise ExprError(f"{names[0]} and {names[1]} never have the same value", op.offset)


def _add(op: Token, a: _Typed, b: _Typed) -> _Num:
    left, right = _need_number(f"'{op.text}'", a), _need_number(f"'{op.text}'", b)
    _refuse_offset_literal(op, left, right)
    if op.text == "+":
        left, right = _unify(op, left, right, "cannot add {a} and {b}", convert_literal=False)
        ra, rb = left.run, right.run
        return _number(left.unit, lambda r: ra(r) + rb(r), left.offset, left, right)
    left, right = _unify(op, left, right, "cannot subtract {b} from {a}", convert_literal=False)
    ra, rb = left.run, right.run
    return _number(left.unit, lambda r: ra(r) - rb(r), left.offset, left, right)


def _refuse_offset_literal(op: Token, left: _Num, right: _Num) -> None:
    """`x_c + 2 °F`: 2 °F as a temperature is -16.7 °C, not the 1.1 °C difference meant.

    Two signals convert correctly (`x_c - y_f` is a difference in °C), so only literals.
    """
    a, b = left.unit, right.unit
    mixed = a != b and not _is_plain(a) and not _is_plain(b) and a.dimension == b.dimension
    literal = left.const is not None or right.const is not None
    if mixed and literal and (a.offset or b.offset):
        verb = "add °X to" if op.text == "+" else "subtract °X from"
        raise ExprError(
            f"cannot {verb.replace('°X', str(b))} {a}: write the temperature difference in "
            f"{a}, or without a unit",
            op.offset,
        )


def _multiply(op: Token, a: _Typed, b: _Typed) -> _Num:
    left, right = _need_number("'*'", a), _need_number("'*'", b)
    if not (_is_plain(left.unit) or _is_plain(right.unit)):
        raise ExprError(f"cannot multiply {left.unit} by {right.unit}", op.offset)
    unit = right.unit if _is_plain(left.unit) else left.unit
    ra, rb = left.run, right.run
    return _number(unit, lambda r: ra(r) * rb(r), left.offset, left, right)


def _divide(op: Token, a: _Typed, b: _Typed, text: str) -> _Num:
    """W / 2 is in W; W / kW is a plain ratio; a plain number over a unit is refused."""
    left, right = _need_number("'/'", a), _need_number("'/'", b)
    unit = left.unit
    if not _is_plain(right.unit):
        if left.unit.dimension != right.unit.dimension:
            raise ExprError(f"cannot divide {left.unit} by {right.unit}", op.offset)
        right, unit = _convert(right, left.unit), NUMBER
    if right.const == 0:
        raise ExprError("division by zero", right.offset)
    ra, rb = left.run, right.run

    def quotient(reader: SignalReader) -> float:
        dividend, divisor = ra(reader), rb(reader)
        if divisor == 0:
            raise MissingSignal(text)  # no value, like a missing reading
        return dividend / divisor

    return _number(unit, quotient, left.offset, left, right)


# --- functions ------------------------------------------------------------------------------


def _abs(name: Token, args: list[_Arg]) -> _Num:
    if len(args) != 1:
        raise ExprError(_USAGE["abs"], name.offset)
    number = _need_number("abs", args[0].value)
    run = number.run
    return _number(number.unit, lambda r: abs(run(r)), name.offset, number)


def _extreme(name: Token, args: list[_Arg]) -> _Num:
    """min/max in the first unit among the arguments; the others are converted to it."""
    if len(args) < 2:
        raise ExprError(_USAGE[name.text], name.offset)
    numbers = [_need_number(name.text, arg.value) for arg in args]
    unit = next((n.unit for n in numbers if not _is_plain(n.unit)), NUMBER)
    for number in numbers:
        if not _is_plain(number.unit) and number.unit.dimension != unit.dimension:
            raise ExprError(f"{name.text} cannot mix {unit} and {number.unit}", number.offset)
    runs = tuple(_convert(n, unit).run for n in numbers)
    if name.text == "min":
        return _number(unit, lambda r: min([run(r) for run in runs]), name.offset, *numbers)
    return _number(unit, lambda r: max([run(r) for run in runs]), name.offset, *numbers)


def _signal_argument(function: Token, arg: _Arg, *, numeric: bool) -> tuple[str, Unit]:
    if arg.name is None:
        message = f"{function.text} needs a signal name here, not an expression"
        raise ExprError(message, arg.value.offset)
    if not isinstance(arg.value, _Num):
        if numeric:
            described = _describe(arg.value.type)
            message = f"{function.text} needs a numeric signal, but {arg.name} is {described}"
            raise ExprError(message, arg.value.offset)
        return arg.name, NUMBER
    return arg.name, arg.value.unit


def _window(arg: _Arg) -> float:
    value = arg.value
    if not isinstance(value, _Num) or value.const is None or value.unit.dimension != "duration":
        raise ExprError("the window must be a duration such as 5min, 30s or 2h", value.offset)
    seconds = value.unit.to_base(value.const)
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ExprError("the window must be a finite duration longer than zero", value.offset)
    return seconds


def _average(signal: str, seconds: float) -> NumFn:
    def average(reader: SignalReader) -> float:
        reader.value(signal)  # a stale signal has no average either
        samples = reader.history(signal, seconds)
        if not samples:
            raise MissingSignal(signal)
        now = reader.now
        return _time_weighted_mean(samples, max(now - seconds, samples[0][0]), now)

    return average


def _time_weighted_mean(samples: Sequence[tuple[float, float]], start: float, end: float) -> float:
    """Mean over [start, end] of the step function the samples make (each holds until the next)."""
    total = weight = 0.0
    ends = [t for t, _ in samples[1:]] + [end]
    for (t, value), until in zip(samples, ends, strict=True):
        span = min(until, end) - max(t, start)
        if span > 0:
            total += value * span
            weight += span
    return total / weight if weight > 0 else samples[-1][1]


def _rate(signal: str, seconds: float) -> NumFn:
    def rate(reader: SignalReader) -> float:
        reader.value(signal)  # a stale signal has no rate either
        samples = reader.history(signal, seconds)
        now = reader.now
        if len(samples) < 2:
            raise MissingSignal(signal)
        start, start_value = _value_at(samples, now - seconds)
        if now <= start:
            raise MissingSignal(signal)
        return (samples[-1][1] - start_value) / ((now - start) / 60)

    return rate


def _value_at(samples: Sequence[tuple[float, float]], at: float) -> tuple[float, float]:
    """(at, the value holding then), or the first sample when none is that old."""
    older = [value for t, value in samples if t <= at]
    return (at, older[-1]) if older else samples[0]


# --- parser ---------------------------------------------------------------------------------


class _Parser:
    """Recursive descent, one method per precedence level, building closures as it goes."""

    def __init__(self, text: str, signals: Mapping[str, ValueType]) -> None:
        self.text = text
        self.signals = signals
        self.tokens = tokenize(text)
        self.ahead: deque[Token] = deque()
        self.nesting = 0
        self.used: set[str] = set()
        self.windows: dict[str, float] = {}

    def peek(self, distance: int = 0) -> Token:
        while len(self.ahead) <= distance:
            self.ahead.append(next(self.tokens))
        return self.ahead[distance]

    def advance(self) -> Token:
        token = self.peek()
        if token.kind is not Kind.END:
            self.ahead.popleft()
        return token

    @contextmanager
    def nested(self, at: Token) -> Iterator[None]:
        self.nesting += 1
        if self.nesting > _MAX_NESTING:
            raise ExprError("expression is too long or nested too deeply", at.offset)
        try:
            yield
        finally:
            self.nesting -= 1

    def parse(self) -> _Typed:
        if self.peek().kind is Kind.END:
            raise ExprError("empty expression", 0)
        result = self.disjunction()
        extra = self.peek()
        if extra.kind is not Kind.END:
            message = f"unexpected '{extra.text}' after a complete expression"
            raise ExprError(message + keyword_hint(extra.text), extra.offset)
        return result

    def disjunction(self) -> _Typed:
        left = self.conjunction()
        while self.peek().is_(Kind.KEYWORD, "or"):
            op = self.advance()
            left = _logic(op, left, self.conjunction())
        return left

    def conjunction(self) -> _Typed:
        left = self.negation()
        while self.peek().is_(Kind.KEYWORD, "and"):
            op = self.advance()
            left = _logic(op, left, self.negation())
        return left

    def negation(self) -> _Typed:
        if not self.peek().is_(Kind.KEYWORD, "not"):
            return self.comparison()
        op = self.advance()
        with self.nested(op):
            return _negate(op, self.negation())

    def comparison(self) -> _Typed:
        """`a < b <= c` is `a < b and b <= c`, with `b` compiled once."""
        left = self.sum()
        result: _Bool | None = None
        while self.peek().is_(Kind.SYMBOL, *_COMPARISONS):
            op = self.advance()
            right = self.sum()
            test = _compare(op, left, right)
            result = test if result is None else _both(result, test, op.offset)
            left = right
        return left if result is None else result

    def sum(self) -> _Typed:
        left = self.product()
        while self.peek().is_(Kind.SYMBOL, "+", "-"):
            op = self.advance()
            left = _add(op, left, self.product())
        return left

    def product(self) -> _Typed:
        left = self.unary()
        while self.peek().is_(Kind.SYMBOL, "*", "/"):
            op = self.advance()
            right = self.unary()
            if op.text == "*":
                left = _multiply(op, left, right)
            else:
                left = _divide(op, left, right, self.text)
        return left

    def unary(self) -> _Typed:
        if not self.peek().is_(Kind.SYMBOL, "-"):
            return self.primary()
        op = self.advance()
        with self.nested(op):
            return _negate(op, self.unary())

    def primary(self) -> _Typed:
        token = self.advance()
        match token.kind:
            case Kind.NUMBER:
                return _Num(token.unit, _constant(token.number), token.offset, 1, token.number)
            case Kind.STRING:
                text = token.text[1:-1]
                return _Text((text,), _constant(text), token.offset, const=text)
            case Kind.KEYWORD if token.text in ("true", "false"):
                return _Bool(_constant(token.text == "true"), token.offset)
            case Kind.NAME:
                return self.call(token) if self.peek().is_(Kind.SYMBOL, "(") else self.signal(token)
            case Kind.SYMBOL if token.text == "(":
                with self.nested(token):
                    inner = self.disjunction()
                    self.close(token)
                return replace(inner, offset=token.offset)  # errors point at the '('
            case Kind.END:
                raise ExprError("unexpected end of expression", token.offset)
        raise ExprError(f"unexpected '{token.text}'", token.offset)

    def close(self, opening: Token) -> None:
        if not self.peek().is_(Kind.SYMBOL, ")"):
            message = f"expected ')' to close '(' at column {opening.offset + 1}"
            raise ExprError(message, self.peek().offset)
        self.advance()

    def signal(self, token: Token) -> _Typed:
        name = token.text
        kind = self.signals.get(name)
        if kind is None:
            raise ExprError(_unknown_signal(name, self.signals), token.offset)
        self.used.add(name)
        if isinstance(kind, NumberType):
            return _Num(kind.unit, lambda r: float(r.value(name)), token.offset)
        if isinstance(kind, TextType):
            return _Text(kind.choices, lambda r: str(r.value(name)), token.offset, name=name)
        return _Bool(lambda r: bool(r.value(name)), token.offset)

    def call(self, name: Token) -> _Typed:
        if name.text not in FUNCTIONS:
            message = f"unknown function '{name.text}' (functions: {', '.join(FUNCTIONS)})"
            raise ExprError(message, name.offset)
        opening = self.advance()
        with self.nested(opening):
            args = self.arguments(opening)
        match name.text:
            case "abs":
                return _abs(name, args)
            case "min" | "max":
                return _extreme(name, args)
            case "age":
                return self.age(name, args)
        return self.windowed(name, args)

    def arguments(self, opening: Token) -> list[_Arg]:
        args: list[_Arg] = []
        if self.peek().is_(Kind.SYMBOL, ")"):
            self.advance()
            return args
        while True:
            first, after = self.peek(), self.peek(1)
            bare = first.kind is Kind.NAME and after.is_(Kind.SYMBOL, ",", ")")
            args.append(_Arg(self.disjunction(), first.text if bare else None))
            if not self.peek().is_(Kind.SYMBOL, ","):
                self.close(opening)
                return args
            self.advance()

    def age(self, name: Token, args: list[_Arg]) -> _Num:
        if len(args) != 1:
            raise ExprError(_USAGE["age"], name.offset)
        signal, _ = _signal_argument(name, args[0], numeric=False)
        return _Num(SECOND, lambda r: r.age(signal), name.offset)

    def windowed(self, name: Token, args: list[_Arg]) -> _Num:
        """avg or rate; records the window so the signal store keeps enough history."""
        if len(args) != 2:
            raise ExprError(_USAGE[name.text], name.offset)
        signal, unit = _signal_argument(name, args[0], numeric=True)
        seconds = _window(args[1])
        self.windows[signal] = max(seconds, self.windows.get(signal, 0.0))
        if name.text == "avg":
            return _Num(unit, _average(signal, seconds), name.offset)
        return _Num(unit.per_minute(), _rate(signal, seconds), name.offset)


def _unknown_signal(name: str, signals: Mapping[str, ValueType]) -> str:
    message = f"unknown signal '{name}'"
    close = difflib.get_close_matches(name, list(signals), n=1)
    if close:
        return f"{message} (did you mean '{close[0]}'?)"
    return message + keyword_hint(name)
