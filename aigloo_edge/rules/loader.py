"""Load `rules/*.yaml` into one checked, compiled `RuleSet`, or say exactly what is wrong.

Every problem in every file is reported at once, one per line, as `file:line:column: reason`.
Checks: YAML and field syntax, durations, expressions (syntax, unknown signals, units, types),
actuators and their values, duplicate rule ids and signals, conflicting defaults, two rules
asking one actuator for different states at the same priority, and rules depending on each
other in a cycle (through `rules.<id>.active`).
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from aigloo_edge.errors import ConfigError
from aigloo_edge.rules.catalog import (
    DEFAULT_NODES,
    DEFAULT_PROBES,
    ActuatorSpec,
    SignalSpec,
    builtin_actuators,
    builtin_signals,
    rule_signal,
)
from aigloo_edge.rules.expr import ExprError, Expression, compile_condition
from aigloo_edge.rules.model import ActuatorValue, RuleDef, RuleFile, SignalDef, StaleAction
from aigloo_edge.rules.units import (
    BOOL,
    LITERAL_UNITS,
    NUMBER,
    BoolType,
    NumberType,
    TextType,
    ValueType,
)
from aigloo_edge.yamlfile import (
    DuplicateKeyError,
    PathKey,
    YamlDocument,
    describe_errors,
    read_yaml,
)

_SIGNAL_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")
# One problem, one line: a line break quoted in a reason (`unexpected '\n'`) is escaped.
_ESCAPED_BREAKS = {ord(ch): repr(ch)[1:-1] for ch in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}
# `expected ')' to close '(' at column 7`: a column of the expression, not of the file.
_EXPR_COLUMN = re.compile(r"(?<=to close '\(' )at column (\d+)$")


@dataclass(frozen=True, slots=True)
class CustomSignal:
    """A signal read from any topic: the JSON `path` (or the whole payload) of `topic`."""

    name: str
    topic: str
    path: tuple[str, ...]
    type: ValueType


@dataclass(frozen=True, slots=True)
class CompiledRule:
    id: str
    order: int
    source: str  # `file:line`, for messages
    when: Expression
    until: Expression | None
    for_s: float
    cooldown_s: float
    priority: int
    enabled: bool
    on_stale: StaleAction
    set: Mapping[str, ActuatorValue]
    description: str | None
    depends_on: frozenset[str]
    fingerprint: str  # changes when the definition changes (hot reload keeps state otherwise)


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[CompiledRule, ...]  # in evaluation order: a rule after those it reads
    defaults: Mapping[str, ActuatorValue]
    signals: Mapping[str, SignalSpec]
    custom: Mapping[str, CustomSignal]
    actuators: Mapping[str, ActuatorSpec]
    files: tuple[Path, ...] = ()

    def rule(self, rule_id: str) -> CompiledRule | None:
        return next((rule for rule in self.rules if rule.id == rule_id), None)


@dataclass
class _Problems:
    lines: list[tuple[str, int, int, str]] = field(default_factory=list)

    def add(self, document: YamlDocument, where: tuple[int, int], reason: str) -> None:
        self.lines.append((str(document.path), where[0], where[1], reason))

    def raise_if_any(self) -> None:
        if self.lines:
            ordered = sorted(self.lines)
            raise ConfigError(
                "\n".join(
                    f"{f}:{line}:{col}: {why.translate(_ESCAPED_BREAKS)}"
                    for f, line, col, why in ordered
                )
            )


@dataclass
class _Parsed:
    document: YamlDocument
    model: RuleFile


def rule_files(directory: Path) -> list[Path]:
    """The rule files of a directory, in name order (`*.yaml` and `*.yml`); a file is itself."""
    if directory.is_file():
        return [directory]
    if not directory.is_dir():
        raise ConfigError(f"{directory}: not a directory of rule files")
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


def load_rules(
    directory: Path,
    nodes: Sequence[str] = DEFAULT_NODES,
    probes: Sequence[str] = DEFAULT_PROBES,
) -> RuleSet:
    """Every rule file of `directory` as one RuleSet; raises ConfigError listing all problems."""
    return load_rule_files(rule_files(directory), nodes, probes)


def load_rule_files(
    paths: Iterable[Path],
    nodes: Sequence[str] = DEFAULT_NODES,
    probes: Sequence[str] = DEFAULT_PROBES,
) -> RuleSet:
    problems = _Problems()
    parsed = [p for p in (_parse(path, problems) for path in paths) if p is not None]
    problems.raise_if_any()
    signals, custom = _signals(parsed, builtin_signals(nodes, probes), problems)
    actuators = builtin_actuators(nodes)
    defaults = _defaults(parsed, actuators, problems)
    rules = _rules(parsed, signals, actuators, problems)
    problems.raise_if_any()
    ordered = _in_dependency_order(rules, parsed, problems)
    _check_priorities(ordered, parsed, problems)
    problems.raise_if_any()
    files = tuple(item.document.path for item in parsed)
    return RuleSet(tuple(ordered), defaults, signals, custom, actuators, files)


def _parse(path: Path, problems: _Problems) -> _Parsed | None:
    try:
        document = read_yaml(path)
    except DuplicateKeyError as exc:
        reason = f"duplicate key {exc.key!r} (first at line {exc.first_line}): keep only one"
        problems.lines.append((str(path), exc.line, exc.column, reason))
        return None
    except ConfigError as exc:
        problems.lines.append(_split_message(str(exc), path))
        return None
    data = document.data if document.data is not None else {}
    if not isinstance(data, dict):
        what = "a list (rules go under 'rules:')" if isinstance(data, list) else "a single value"
        reason = f"a rule file is a mapping with signals, defaults and rules, but this is {what}"
        problems.add(document, _first_content(document), reason)
        return None
    try:
        return _Parsed(document, RuleFile.model_validate(data))
    except ValidationError as exc:
        described = describe_errors(document, exc, columns=True, explain=_explain)
        for line in described.splitlines():
            problems.lines.append(_split_message(line, path))
        return None


def _first_content(document: YamlDocument) -> tuple[int, int]:
    """Where the document's data starts: past comments, blank lines and `---`."""
    for number, text in enumerate(document.source, start=1):
        stripped = text.strip()
        if stripped and not stripped.startswith(("#", "---", "%")):
            return number, len(text) - len(text.lstrip()) + 1
    return 1, 1


_RULE_ID_RULE = "a rule id is 1 to 64 of a-z, 0-9, '-' and '_', e.g. fans-max-when-hot"
_SECTIONS: Mapping[str, type[BaseModel]] = {"signals": SignalDef, "rules": RuleDef}


def _explain(error: ErrorDetails) -> str | None:
    """The reason a rule author needs, where pydantic's wording is generic."""
    location = error["loc"]
    if error["type"] == "extra_forbidden":
        return _unknown_setting(location)
    if location[-1:] == ("id",) and error["type"] == "string_pattern_mismatch":
        return _RULE_ID_RULE
    if location[-1:] == ("set",) and error["type"] == "too_short":
        return "name at least one actuator and its state, e.g. {fans.profile: max}"
    if location[-1:] in (("when",), ("until",)) and error["type"] == "string_type":
        return (
            "write the condition as an expression, e.g. env.internal.temperature_f > 90 "
            "(for always, quote it: 'true')"
        )
    return None


def _unknown_setting(location: tuple[int | str, ...]) -> str:
    """`unknown setting`, with the setting meant or the settings there are."""
    model: type[BaseModel] = RuleFile
    if len(location) > 1 and location[0] in _SECTIONS:
        model = _SECTIONS[str(location[0])]
    known = [info.alias or name for name, info in model.model_fields.items()]
    close = difflib.get_close_matches(str(location[-1]), known, n=1)
    if close:
        return f"unknown setting (did you mean {close[0]!r}?)"
    return f"unknown setting (settings here: {', '.join(known)})"


def _split_message(message: str, path: Path) -> tuple[str, int, int, str]:
    """`file:line[:col]: reason` back into parts, so all problems sort together."""
    rest = message.removeprefix(f"{path}:").removeprefix(f"{path}")
    parts = rest.split(":", 2)
    if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit():
        return str(path), int(parts[0]), int(parts[1]), parts[2].strip()
    if len(parts) >= 2 and parts[0].isdigit():
        return str(path), int(parts[0]), 1, ":".join(parts[1:]).strip()
    return str(path), 1, 1, rest.strip(" :")


# --- signals --------------------------------------------------------------------------------


def _signals(
    parsed: list[_Parsed], builtin: dict[str, SignalSpec], problems: _Problems
) -> tuple[dict[str, SignalSpec], dict[str, CustomSignal]]:
    signals = dict(builtin)
    custom: dict[str, CustomSignal] = {}
    first_seen: dict[str, str] = {}
    for item in parsed:
        for name, definition in item.model.signals.items():
            where = item.document.position_of(("signals", name), key=True)
            if name in first_seen:
                problems.add(
                    item.document, where, f"signal {name!r} is also defined at {first_seen[name]}"
                )
                continue
            first_seen[name] = f"{item.document.path}:{where[0]}"
            problem = _add_signal(name, definition, builtin, signals, custom)
            if problem:
                setting, reason = problem
                if setting:
                    where = item.document.position_of(("signals", name, setting))
                problems.add(item.document, where, reason)
    return signals, custom


def _add_signal(
    name: str,
    definition: SignalDef,
    builtin: dict[str, SignalSpec],
    signals: dict[str, SignalSpec],
    custom: dict[str, CustomSignal],
) -> tuple[str, str] | None:
    """Add one `signals:` entry; else the setting at fault ('': the name) and the reason."""
    if definition.topic is None:  # only a new stale_after for a built-in signal
        if name not in builtin:
            return "", _unknown("signal", name, builtin) + "; a new signal needs a 'topic'"
        spec = builtin[name]
        signals[name] = SignalSpec(name, spec.type, definition.stale_after, spec.description)
        return None
    problem = _custom_problem(name, definition, builtin)
    if problem:
        return problem
    value_type = _signal_type(definition)
    if isinstance(value_type, tuple):
        return value_type[0], f"signal {name!r}: {value_type[1]}"
    path = tuple(part for part in definition.path.split(".") if part)
    description = definition.description or definition.topic
    signals[name] = SignalSpec(name, value_type, definition.stale_after, description)
    custom[name] = CustomSignal(name, definition.topic, path, value_type)
    return None


def _custom_problem(
    name: str, definition: SignalDef, builtin: Mapping[str, SignalSpec]
) -> tuple[str, str] | None:
    if name in builtin:
        return "", f"{name!r} is a built-in signal: choose another name for a signal with a topic"
    if not _valid_signal_name(name):
        return "", f"signal name {name!r}: use letters, digits and '_', with '.' between parts"
    if any(ch in (definition.topic or "") for ch in "+#"):
        return "topic", (
            f"signal {name!r}: topic {definition.topic!r} has a wildcard ('+' or '#'); "
            "a signal reads one exact topic"
        )
    return None


def _signal_type(definition: SignalDef) -> ValueType | tuple[str, str]:
    """The signal's type; else the setting at fault and why."""
    if definition.type == "text":
        if not definition.choices or definition.unit:
            fault = "unit" if definition.choices else "type"
            return fault, "a text signal needs 'choices' and no 'unit'"
        return TextType(tuple(definition.choices))
    if definition.choices is not None:
        return "choices", "'choices' is for text signals (type: text)"
    if definition.type == "bool":
        return ("unit", "a bool signal has no 'unit'") if definition.unit else BOOL
    if definition.unit and definition.unit not in LITERAL_UNITS:
        return "unit", f"unknown unit {definition.unit!r} (units: {', '.join(LITERAL_UNITS)})"
    return NumberType(LITERAL_UNITS[definition.unit] if definition.unit else NUMBER)


def _valid_signal_name(name: str) -> bool:
    parts = name.split(".")
    return set(name) <= _SIGNAL_NAME_CHARS and all(p and not p[0].isdigit() for p in parts)


def _unknown(kind: str, name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {kind} {name!r}{hint}"


# --- actuators and defaults ----------------------------------------------------------------


class _BadValueError(ValueError):
    """An actuator state a rule or default cannot use."""


class _UnknownActuatorError(_BadValueError):
    """An actuator name that does not exist."""


def _actuator_value(
    actuators: Mapping[str, ActuatorSpec], name: str, value: ActuatorValue
) -> ActuatorValue:
    """The state as the actuator takes it (`on` → True); _BadValueError says why it cannot."""
    actuator = actuators.get(name)
    if actuator is None:
        raise _UnknownActuatorError(_unknown("actuator", name, actuators))
    if isinstance(actuator.type, BoolType):
        if isinstance(value, bool):
            return value
        if value in ("on", "off", "true", "false"):
            return value in ("on", "true")
        raise _BadValueError(f"{name} takes on/off (true/false), not {value!r}")
    assert isinstance(actuator.type, TextType)  # actuators are bool or text
    if isinstance(value, bool) and _show(value) in actuator.type.choices:
        return _show(value)  # YAML reads a bare `off` as false: `fans.profile: off`
    if isinstance(value, str) and value in actuator.type.choices:
        return value
    raise _BadValueError(f"{name} takes {', '.join(actuator.type.choices)}, not {_show(value)!r}")


def _defaults(
    parsed: list[_Parsed], actuators: Mapping[str, ActuatorSpec], problems: _Problems
) -> dict[str, ActuatorValue]:
    defaults: dict[str, ActuatorValue] = {}
    where_set: dict[str, str] = {}
    for item in parsed:
        for name, raw in item.model.defaults.items():
            where = item.document.position_of(("defaults", name), key=True)
            try:
                value = _actuator_value(actuators, name, raw)
            except _BadValueError as exc:
                at_key = isinstance(exc, _UnknownActuatorError)
                at = where if at_key else item.document.position_of(("defaults", name))
                problems.add(item.document, at, str(exc))
                continue
            if name in defaults and defaults[name] != value:
                problems.add(
                    item.document,
                    where,
                    f"default {name}: {_show(value)} conflicts with {_show(defaults[name])} "
                    f"at {where_set[name]}",
                )
                continue
            defaults[name] = value
            where_set[name] = f"{item.document.path}:{where[0]}"
    return defaults


def _show(value: ActuatorValue) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return value


# --- rules ----------------------------------------------------------------------------------


def _rules(
    parsed: list[_Parsed],
    signals: Mapping[str, SignalSpec],
    actuators: Mapping[str, ActuatorSpec],
    problems: _Problems,
) -> list[CompiledRule]:
    all_ids = [rule.id for item in parsed for rule in item.model.rules]
    with_rules = dict(signals)
    for rule_id in all_ids:
        name = rule_signal(rule_id)
        with_rules[name] = SignalSpec(name, BOOL, None, f"rule {rule_id} is active")
    types = {name: spec.type for name, spec in with_rules.items()}
    compiled: list[CompiledRule] = []
    seen: dict[str, str] = {}
    for item in parsed:
        for index, rule in enumerate(item.model.rules):
            where = item.document.position_of(("rules", index, "id"))
            source = f"{item.document.path}:{where[0]}"
            if rule.id in seen:
                problems.add(
                    item.document, where, f"rule id {rule.id!r} is also used at {seen[rule.id]}"
                )
                continue
            seen[rule.id] = source
            result = _compile_rule(item.document, (index, rule), types, actuators, problems)
            if result is not None:
                compiled.append(_finish(rule, result, source, len(compiled), all_ids))
    return compiled


def _compile_rule(
    document: YamlDocument,
    indexed: tuple[int, RuleDef],
    types: Mapping[str, ValueType],
    actuators: Mapping[str, ActuatorSpec],
    problems: _Problems,
) -> tuple[Expression, Expression | None, dict[str, ActuatorValue]] | None:
    index, rule = indexed
    when = _condition(document, ("rules", index, "when"), rule.when, types, problems)
    until = None
    if rule.until is not None:
        until = _condition(document, ("rules", index, "until"), rule.until, types, problems)
    wanted: dict[str, ActuatorValue] = {}
    for name, raw in rule.set.items():
        try:
            wanted[name] = _actuator_value(actuators, name, raw)
        except _BadValueError as exc:
            at_key = isinstance(exc, _UnknownActuatorError)
            where = document.position_of(("rules", index, "set", name), key=at_key)
            problems.add(document, where, f"rule {rule.id}: {exc}")
    if when is None or (rule.until is not None and until is None) or len(wanted) != len(rule.set):
        return None
    return when, until, wanted


def _condition(
    document: YamlDocument,
    location: PathKey,
    text: str,
    types: Mapping[str, ValueType],
    problems: _Problems,
) -> Expression | None:
    try:
        return compile_condition(text, types)
    except ExprError as exc:
        where = document.position_in(location, exc.offset, text)
        message = _EXPR_COLUMN.sub(
            lambda found: _at(where, document.position_in(location, int(found[1]) - 1, text)),
            exc.message,
        )
        if message.startswith("unknown signal ") and "(" not in message:
            message += " (a signal of your own needs an entry with its topic under 'signals:')"
        problems.add(document, where, message)
        return None


def _at(here: tuple[int, int], there: tuple[int, int]) -> str:
    """`at column 7` (on the line of the message) or `at line 3, column 7`, in the file."""
    return (
        f"at column {there[1]}" if here[0] == there[0] else f"at line {there[0]}, column {there[1]}"
    )


def _finish(
    rule: RuleDef,
    compiled: tuple[Expression, Expression | None, dict[str, ActuatorValue]],
    source: str,
    order: int,
    all_ids: list[str],
) -> CompiledRule:
    when, until, wanted = compiled
    read = when.signals | (until.signals if until else frozenset())
    depends = frozenset(other for other in all_ids if rule_signal(other) in read)
    fingerprint = hashlib.sha256(rule.model_dump_json().encode()).hexdigest()[:16]
    return CompiledRule(
        id=rule.id,
        order=order,
        source=source,
        when=when,
        until=until,
        for_s=rule.for_,
        cooldown_s=rule.cooldown,
        priority=rule.priority,
        enabled=rule.enabled,
        on_stale=rule.on_stale,
        set=wanted,
        description=rule.description,
        depends_on=depends,
        fingerprint=fingerprint,
    )


def _in_dependency_order(
    rules: list[CompiledRule], parsed: list[_Parsed], problems: _Problems
) -> list[CompiledRule]:
    """Rules ordered so each comes after the rules it reads; a cycle is a problem."""
    by_id = {rule.id: rule for rule in rules}
    ordered: list[CompiledRule] = []
    state: dict[str, str] = {}

    def visit(rule: CompiledRule, trail: list[str]) -> None:
        if state.get(rule.id) == "done":
            return
        if state.get(rule.id) == "visiting":
            cycle = [*trail[trail.index(rule.id) :], rule.id]
            reason = f"rules depend on each other in a cycle: {' -> '.join(cycle)}"
            if len(cycle) == 2:
                reason = f"rule {rule.id} depends on itself ({rule_signal(rule.id)})"
            _report_at_rule((rule, ("id",)), parsed, problems, reason)
            return
        state[rule.id] = "visiting"
        for other in sorted(rule.depends_on):
            if other in by_id:
                visit(by_id[other], [*trail, rule.id])
        state[rule.id] = "done"
        ordered.append(rule)

    for rule in rules:
        visit(rule, [])
    return ordered


def _report_at_rule(
    at: tuple[CompiledRule, PathKey],
    parsed: list[_Parsed],
    problems: _Problems,
    reason: str,
) -> None:
    """Report at a setting of a rule: `("id",)` is its id, `("set", name)` an actuator's key."""
    rule, setting = at
    path = rule.source.rpartition(":")[0]
    item = next(item for item in parsed if str(item.document.path) == path)
    index = next(i for i, defined in enumerate(item.model.rules) if defined.id == rule.id)
    location = ("rules", index, *setting)
    where = item.document.position_of(location, key=setting[:1] == ("set",))
    if not any(existing[3] == reason for existing in problems.lines):
        problems.add(item.document, where, reason)


def _check_priorities(
    rules: list[CompiledRule], parsed: list[_Parsed], problems: _Problems
) -> None:
    """Two rules asking one actuator for different states need different priorities."""
    claims: dict[tuple[str, int], CompiledRule] = {}
    for rule in sorted(rules, key=lambda r: r.order):
        for actuator, value in rule.set.items():
            other = claims.setdefault((actuator, rule.priority), rule)
            if other is not rule and other.set[actuator] != value:
                _report_at_rule(
                    (rule, ("set", actuator)),
                    parsed,
                    problems,
                    f"rules {other.id} ({other.source}) and {rule.id} ask {actuator} for "
                    f"{_show(other.set[actuator])} and {_show(value)} at the same priority "
                    f"{rule.priority}: give the one that must win a higher priority",
                )
