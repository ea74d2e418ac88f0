"""Rule files read and schema-checked, with every problem kept as `file:line:column: reason`."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from aigloo_edge.errors import ConfigError
from aigloo_edge.rules.model import RuleDef, RuleFile, SignalDef
from aigloo_edge.yamlfile import DuplicateKeyError, YamlDocument, describe_errors, read_yaml

# One problem, one line: a line break quoted in a reason (`unexpected '\n'`) is escaped.
_ESCAPED_BREAKS = {ord(ch): repr(ch)[1:-1] for ch in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


@dataclass
class Problems:
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
class ParsedFile:
    document: YamlDocument
    model: RuleFile


def rule_files(directory: Path) -> list[Path]:
    """The rule files of a directory, in name order (`*.yaml` and `*.yml`); a file is itself."""
    if directory.is_file():
        return [directory]
    if not directory.is_dir():
        raise ConfigError(f"{directory}: not a directory of rule files")
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


def parse_rule_file(path: Path, problems: Problems) -> ParsedFile | None:
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
        return ParsedFile(document, RuleFile.model_validate(data))
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
