"""YAML files whose every error names file:line: the loader behind configs and rule files.

PyYAML builds plain data; we also keep the line of every key and list item, so a pydantic
validation error (which knows only the field path) can point at the line a person must fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from aigloo_edge.errors import ConfigError

PathKey = tuple[str | int, ...]
ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """Parsed data plus the 1-based line of each mapping key and list item, by path."""

    path: Path
    data: Any
    lines: dict[PathKey, int]

    def line_of(self, location: PathKey) -> int:
        """The line of `location`, or of its nearest ancestor present in the file."""
        for end in range(len(location), 0, -1):
            line = self.lines.get(location[:end])
            if line is not None:
                return line
        return 1


def read_yaml(path: Path) -> YamlDocument:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text") from exc
    return parse_yaml(text, path)


def parse_yaml(text: str, path: Path) -> YamlDocument:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(_describe_yaml_error(path, exc)) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    lines: dict[PathKey, int] = {}
    if node is not None:
        _index(node, (), lines, path)
    return YamlDocument(path, data, lines)


def _describe_yaml_error(path: Path, exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
    text = f"{where}: invalid YAML: {exc.problem or exc.context}"
    if exc.context and exc.context_mark and exc.problem:
        text += f" ({exc.context} started at line {exc.context_mark.line + 1})"
    return text


def _index(node: yaml.Node, here: PathKey, lines: dict[PathKey, int], path: Path) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                raise ConfigError(f"{path}:{key_node.start_mark.line + 1}: duplicate key {key!r}")
            seen.add(key)
            lines[(*here, key)] = key_node.start_mark.line + 1
            _index(value_node, (*here, key), lines, path)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*here, index)] = item.start_mark.line + 1
            _index(item, (*here, index), lines, path)


def validate(
    document: YamlDocument, model: type[ModelT], context: dict[str, Any] | None = None
) -> ModelT:
    """Validate the document against a strict model; errors become one ConfigError."""
    if not isinstance(document.data, dict):
        raise ConfigError(f"{document.path}:1: expected a mapping of settings at the top level")
    try:
        return model.model_validate(document.data, context=context)
    except ValidationError as exc:
        raise ConfigError(describe_errors(document, exc)) from exc


def describe_errors(document: YamlDocument, exc: ValidationError) -> str:
    """`file:line: field: reason`, one line per problem, in file order."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        location: PathKey = tuple(error["loc"])
        field = ".".join(str(part) for part in location) or "(top level)"
        reason = _reason(error["type"], error["msg"])
        problems.append((document.line_of(location), f"{field}: {reason}"))
    problems.sort(key=lambda item: item[0])
    return "\n".join(f"{document.path}:{line}: {text}" for line, text in problems)


def _reason(kind: str, message: str) -> str:
    if kind == "extra_forbidden":
        return "unknown setting (check the spelling; see the config reference)"
    if kind == "missing":
        return "required setting is missing"
    return message
