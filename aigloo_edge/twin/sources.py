"""Where each number of a scenario comes from: `{value, source}` notes and `sources:` maps.

`strip` takes the notes out of the parsed YAML (so the models see plain values) and keeps them
by path; `check_declared` finds `sources:` keys that name no setting, `check_covered` numbers
with no source. Problems are kept as `file:line: field: reason`, with the scenario's others.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from aigloo_edge.yamlfile import PathKey, YamlDocument


@dataclass
class Collected:
    """The notes found so far, and the problems, for one scenario file."""

    document: YamlDocument
    notes: dict[PathKey, str] = field(default_factory=dict)
    declared: list[tuple[PathKey, str, PathKey]] = field(default_factory=list)  # (map, key, target)
    problems: list[tuple[int, str]] = field(default_factory=list)

    def problem(self, location: PathKey, reason: str) -> None:
        line = self.document.line_of(location)
        where = ".".join(str(p) for p in location) or "(top level)"
        self.problems.append((line, f"{self.document.path}:{line}: {where}: {reason}"))


def strip(node: Any, path: PathKey, out: Collected) -> Any:
    """The data without source notes (`{value, source}` → value; `sources:` maps collected)."""
    if isinstance(node, dict):
        if "value" in node and set(node) <= {"value", "source"}:
            note = node.get("source")
            if not isinstance(note, str) or not note.strip():
                where = (*path, "source") if "source" in node else path
                out.problem(where, 'say where the value comes from: source: "..." (text)')
                out.notes[path] = ""  # reported once, here
            else:
                out.notes[path] = note.strip()
            return strip(node["value"], path, out)
        stripped: dict[Any, Any] = {}
        for key, value in node.items():
            if key == "sources":
                _collect_sources(value, path, out)
                continue
            stripped[key] = strip(value, (*path, str(key)), out)
        return stripped
    if isinstance(node, list):
        return [strip(item, (*path, index), out) for index, item in enumerate(node)]
    return node


def _collect_sources(sources: Any, path: PathKey, out: Collected) -> None:
    here = (*path, "sources")
    if not isinstance(sources, dict):
        out.problem(here, "a map of setting: where its value comes from")
        return
    for key, note in sources.items():
        if not isinstance(note, str) or not note.strip():
            out.problem((*here, str(key)), "say where the value comes from (text)")
            continue
        target = (*path, *(int(p) if p.isdigit() else p for p in str(key).split(".")))
        out.notes[target] = note.strip()
        out.declared.append((path, str(key), target))


def check_declared(data: dict[str, Any], out: Collected) -> None:
    """Every `sources:` key names a setting of its section."""
    for section, key, target in out.declared:
        if _lookup(data, target) is _MISSING:
            known = list(_keys(_lookup(data, section)))
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            out.problem((*section, "sources", key), f"names no setting here{hint}")


def check_covered(data: dict[str, Any], sections: Iterable[str], out: Collected) -> None:
    """Every number of the parameter sections has a source."""
    for section in sections:
        for path, value in _numbers(data.get(section), (section,)):
            if not any(path[:end] in out.notes for end in range(len(path), 0, -1)):
                key = path[-1]
                out.problem(
                    path,
                    f'no source for {value!r}: write {key}: {{value: {value!r}, source: "..."}}'
                    f" or add {key} to the section's sources:",
                )


_MISSING: Final = object()


def _lookup(data: Any, path: PathKey) -> Any:
    for part in path:
        in_map = isinstance(data, dict) and part in data
        in_list = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if not (in_map or in_list):
            return _MISSING
        data = data[part]
    return data


def _keys(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            for sub in _keys(value):
                yield f"{key}.{sub}"


def _numbers(node: Any, path: PathKey) -> Iterator[tuple[PathKey, float]]:
    if isinstance(node, bool):
        return
    if isinstance(node, int | float):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _numbers(value, (*path, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _numbers(value, (*path, index))
