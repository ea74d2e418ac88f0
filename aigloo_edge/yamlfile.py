"""YAML files whose every error names file:line: the loader behind configs and rule files.

PyYAML builds plain data; we also keep the line of every key and list item, so a pydantic
validation error (which knows only the field path) can point at the line a person must fix, and
where each scalar value starts, so an error inside a value (a rule's expression) can name the
column too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from aigloo_edge.errors import ConfigError

PathKey = tuple[str | int, ...]
ModelT = TypeVar("ModelT", bound=BaseModel)
# Characters after a backslash in a double-quoted scalar, beyond the letter: `\x41`, `\u00b0`.
_ESCAPE_DIGITS = {"x": 2, "u": 4, "U": 8}
# What YAML counts as a line break (Python's `splitlines` agrees on YAML-valid text).
_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")
# A node's tag and anchor, which come before its text: `!!str `, `&name `.
_PROPERTIES = re.compile(r"(?:[!&]\S*[ \t]+)+")
# PyYAML problems that need a word on how to fix them.
_YAML_HINTS = {
    "mapping values are not allowed here": (
        " (a value containing ': ' must be put in quotes, or the line is indented wrongly)"
    ),
}


class DuplicateKeyError(ConfigError):
    """A mapping with the same key twice (YAML would silently keep the last one)."""

    def __init__(self, path: Path, line: int, column: int, key: str, first_line: int) -> None:
        super().__init__(f"{path}:{line}: duplicate key {key!r}")
        self.line = line
        self.column = column
        self.key = key
        self.first_line = first_line


@dataclass(frozen=True, slots=True)
class ScalarMark:
    """Where a scalar value starts (1-based) and how it is written (`''`, `'`, `"`, `|`, `>`)."""

    line: int
    column: int
    style: str


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """Parsed data plus the 1-based line of each mapping key and list item, by path."""

    path: Path
    data: Any
    lines: dict[PathKey, int]
    scalars: dict[PathKey, ScalarMark] = field(default_factory=dict)
    source: list[str] = field(default_factory=list)
    key_columns: dict[PathKey, int] = field(default_factory=dict)

    def line_of(self, location: PathKey) -> int:
        """The line of `location`, or of its nearest ancestor present in the file."""
        for end in range(len(location), 0, -1):
            line = self.lines.get(location[:end])
            if line is not None:
                return line
        return 1

    def position_of(self, location: PathKey, *, key: bool = False) -> tuple[int, int]:
        """Line and column of the value at `location` (of its key if `key` or not a scalar)."""
        mark = self.scalars.get(location)
        if mark is not None and not key:
            return mark.line, mark.column
        for end in range(len(location), 0, -1):
            line = self.lines.get(location[:end])
            if line is not None:
                return line, self.key_columns.get(location[:end], 1)
        return 1, 1

    def position_in(self, location: PathKey, offset: int, text: str) -> tuple[int, int]:
        """Line and column of character `offset` of the scalar string at `location`.

        Exact for literal blocks (`|`) and for a plain or quoted scalar when the offset is on
        its first line (quotes and escapes such as `\\"` or `''` counted); otherwise (a folded
        block, a later line of a multi-line scalar) the start of the value.
        """
        mark = self.scalars.get(location)
        if mark is None:
            return self.line_of(location), 1
        # An offset past the end (`unexpected end`) is just after the last character written.
        offset = min(offset, len(text.rstrip()))
        if mark.style == "|":
            return self._in_literal_block(mark, offset, text)
        if mark.style in ("", "'", '"') and 0 < mark.line <= len(self.source):
            quote = 1 if mark.style else 0
            raw = self.source[mark.line - 1][mark.column - 1 + quote :]
            index = _source_index(raw, mark.style, offset)
            if index < len(raw) or (index == len(raw) and offset == len(text.rstrip())):
                return mark.line, mark.column + quote + index
        return mark.line, mark.column

    def _in_literal_block(self, mark: ScalarMark, offset: int, text: str) -> tuple[int, int]:
        """A literal block keeps its lines as written, less the block's indentation."""
        before = text[:offset]
        line = mark.line + 1 + before.count("\n")
        column_in_text = len(before) - before.rfind("\n") - 1
        text_line = text.split("\n")[before.count("\n")]
        if not 0 < line <= len(self.source):
            return mark.line, mark.column
        indent = max(0, len(self.source[line - 1]) - len(text_line))
        return line, indent + column_in_text + 1


def _source_index(raw: str, style: str, offset: int) -> int:
    """Index in `raw` (the source line from the scalar's first character) of value `offset`."""
    index = 0
    for _ in range(offset):
        if style == "'" and raw.startswith("''", index):
            index += 2
        elif style == '"' and raw.startswith("\\", index):
            index += 2 + _ESCAPE_DIGITS.get(raw[index + 1 : index + 2], 0)
        else:
            index += 1
        if index > len(raw):
            break
    return index


class _SafeLoader(yaml.SafeLoader):
    """SafeLoader whose bad tagged or implicit values (`!!int x`, `2024-13-45`) are YAML errors
    at the value, not a ValueError from deep inside PyYAML."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ArithmeticError, AttributeError, LookupError, TypeError, ValueError) as exc:
            kind = node.tag.rpartition(":")[2] or node.tag
            value = f"{node.value!r}" if isinstance(node, yaml.ScalarNode) else "this value"
            problem = f"cannot read {value} as {kind}"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from exc


def read_yaml(path: Path) -> YamlDocument:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        before = exc.object[: exc.start]
        line, column = before.count(b"\n") + 1, exc.start - (before.rfind(b"\n") + 1) + 1
        bad = exc.object[exc.start : exc.start + 1].hex()
        raise ConfigError(f"{path}:{line}:{column}: not UTF-8 text (byte 0x{bad})") from exc
    return parse_yaml(text, path)


def parse_yaml(text: str, path: Path) -> YamlDocument:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=_SafeLoader)  # noqa: S506 - a SafeLoader
        document = YamlDocument(path, data, {}, {}, text.splitlines())
        if node is not None:
            _index(node, (), document, path)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(_describe_yaml_error(path, exc)) from exc
    except yaml.reader.ReaderError as exc:
        breaks = list(_LINE_BREAK.finditer(text, 0, exc.position))
        line = len(breaks) + 1
        column = exc.position - (breaks[-1].end() if breaks else 0) + 1
        character = f"#x{exc.character:04x}" if isinstance(exc.character, int) else "?"
        raise ConfigError(
            f"{path}:{line}:{column}: invalid YAML: character {character} is not allowed in YAML"
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {' '.join(str(exc).split())}") from exc
    except RecursionError as exc:
        raise ConfigError(
            f"{path}:1: invalid YAML: nested too deeply (or an alias that contains itself)"
        ) from exc
    return document


def _describe_yaml_error(path: Path, exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
    problem = exc.problem or exc.context or "syntax error"
    text = f"{where}: invalid YAML: {problem}{_YAML_HINTS.get(problem, '')}"
    if exc.context and exc.context_mark and exc.problem:
        text += f" ({exc.context} started at line {exc.context_mark.line + 1})"
    return text


def _past_properties(document: YamlDocument, line: int, column: int) -> int:
    """The column where a scalar's text starts: after its `!tag` and `&anchor` on that line (a
    node starts at them)."""
    text = document.source[line - 1] if 0 < line <= len(document.source) else ""
    found = _PROPERTIES.match(text, column - 1)
    return found.end() + 1 if found and found.end() < len(text) else column


def _index(node: yaml.Node, here: PathKey, document: YamlDocument, path: Path) -> None:
    lines = document.lines
    if isinstance(node, yaml.ScalarNode):
        mark = node.start_mark
        column = _past_properties(document, mark.line + 1, mark.column + 1)
        document.scalars[here] = ScalarMark(mark.line + 1, column, node.style or "")
    elif isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            mark = key_node.start_mark
            if key in seen:
                first = lines[(*here, key)]
                raise DuplicateKeyError(path, mark.line + 1, mark.column + 1, key, first)
            seen.add(key)
            lines[(*here, key)] = key_node.start_mark.line + 1
            document.key_columns[(*here, key)] = key_node.start_mark.column + 1
            _index(value_node, (*here, key), document, path)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*here, index)] = item.start_mark.line + 1
            document.key_columns[(*here, index)] = item.start_mark.column + 1
            _index(item, (*here, index), document, path)


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


def describe_errors(
    document: YamlDocument,
    exc: ValidationError,
    *,
    columns: bool = False,
    explain: Callable[[ErrorDetails], str | None] | None = None,
) -> str:
    """`file:line: field: reason` (or `file:line:column: ...`), one line per problem, in order.

    `explain` may word a reason better for the file at hand (None: the generic wording).
    """
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        location: PathKey = tuple(error["loc"])
        field = ".".join(str(part) for part in location) or "(top level)"
        reason = (explain(error) if explain else None) or _reason(error["type"], error["msg"])
        line, column = document.position_of(location, key=error["type"] == "extra_forbidden")
        where = f"{line}:{column}" if columns else str(document.line_of(location))
        problems.append(((line, column), f"{document.path}:{where}: {field}: {reason}"))
    problems.sort(key=lambda item: item[0])
    return "\n".join(text for _, text in problems)


def _reason(kind: str, message: str) -> str:
    if kind == "extra_forbidden":
        return "unknown setting (check the spelling; see the config reference)"
    if kind == "missing":
        return "required setting is missing"
    return message.removeprefix("Value error, ")
