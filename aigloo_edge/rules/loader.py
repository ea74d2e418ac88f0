"""Load `rules/*.yaml` into one checked, compiled `RuleSet`, or say exactly what is wrong.

Every problem in every file is reported at once, one per line, as `file:line:column: reason`.
Checks: YAML and field syntax, durations, expressions (syntax, unknown signals, units, types),
actuators and their values, duplicate rule ids and signals, conflicting defaults, two rules
asking one actuator for different states at the same priority, and rules depending on each
other in a cycle (through `rules.<id>.active`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

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
from aigloo_edge.rules.model import ActuatorValue, RuleDef, StaleAction
from aigloo_edge.rules.rulefiles import ParsedFile, Problems, parse_rule_file, rule_files
from aigloo_edge.rules.signal_defs import CustomSignal, collect_signals, unknown_name
from aigloo_edge.rules.units import (
    BOOL,
    BoolType,
    TextType,
    ValueType,
)
from aigloo_edge.yamlfile import (
    PathKey,
    YamlDocument,
)

# `expected ')' to close '(' at column 7`: a column of the expression, not of the file.
_EXPR_COLUMN = re.compile(r"(?<=to close '\(' )at column (\d+)$")


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
    problems = Problems()
    parsed = [p for p in (parse_rule_file(path, problems) for path in paths) if p is not None]
    problems.raise_if_any()
    signals, custom = collect_signals(parsed, builtin_signals(nodes, probes), problems)
    actuators = builtin_actuators(nodes)
    defaults = _defaults(parsed, actuators, problems)
    rules = _rules(parsed, signals, actuators, problems)
    problems.raise_if_any()
    ordered = _in_dependency_order(rules, parsed, problems)
    _check_priorities(ordered, parsed, problems)
    problems.raise_if_any()
    files = tuple(item.document.path for item in parsed)
    return RuleSet(tuple(ordered), defaults, signals, custom, actuators, files)


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
        raise _UnknownActuatorError(unknown_name("actuator", name, actuators))
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
    parsed: list[ParsedFile], actuators: Mapping[str, ActuatorSpec], problems: Problems
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
    parsed: list[ParsedFile],
    signals: Mapping[str, SignalSpec],
    actuators: Mapping[str, ActuatorSpec],
    problems: Problems,
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
    problems: Problems,
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
    problems: Problems,
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
    rules: list[CompiledRule], parsed: list[ParsedFile], problems: Problems
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
    parsed: list[ParsedFile],
    problems: Problems,
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
    rules: list[CompiledRule], parsed: list[ParsedFile], problems: Problems
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
