"""The `signals:` sections: custom signals read from any topic, and stale_after overrides."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aigloo_edge.rules.catalog import SignalSpec
from aigloo_edge.rules.model import SignalDef
from aigloo_edge.rules.rulefiles import ParsedFile, Problems
from aigloo_edge.rules.units import BOOL, LITERAL_UNITS, NUMBER, NumberType, TextType, ValueType

_SIGNAL_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")


@dataclass(frozen=True, slots=True)
class CustomSignal:
    """A signal read from any topic: the JSON `path` (or the whole payload) of `topic`."""

    name: str
    topic: str
    path: tuple[str, ...]
    type: ValueType


def collect_signals(
    parsed: list[ParsedFile], builtin: dict[str, SignalSpec], problems: Problems
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
            return "", unknown_name("signal", name, builtin) + "; a new signal needs a 'topic'"
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


def unknown_name(kind: str, name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {kind} {name!r}{hint}"
