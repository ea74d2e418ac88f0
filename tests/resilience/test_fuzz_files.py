"""Machine configs, rule files and scenario files, fuzzed: generated YAML documents and
mutations of the shipped files (deleted, duplicated or re-indented lines, swapped values, wrong
types, random unicode, invalid UTF-8). Every outcome is either a loaded file or a ConfigError
whose message names `file:line`: never another exception, never a traceback (`aigloo config
check` included)."""

from __future__ import annotations

import re
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from aigloo_edge.cli import app
from aigloo_edge.config import load_config
from aigloo_edge.errors import ConfigError
from aigloo_edge.rules.loader import load_rule_files
from aigloo_edge.twin.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
AGENTS = sorted((ROOT / "agents").glob("*.yaml"))
RULES = sorted((ROOT / "rules").glob("*.yaml"))
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
EXAMPLES = 150
SLOW_EXAMPLES = 3000
COUNTS: Counter[str] = Counter()  # "<kind> <outcome>" → cases, reported by the last test
runner = CliRunner()

_NO_SURROGATES = st.characters(exclude_categories=["Cs"])
WRONG_VALUES = (
    "[1, 2]",
    "{a: 1}",
    "yes",
    "-1",
    "0",
    "1e999",
    ".nan",
    "-.inf",
    "~",
    "''",
    '"\\x00"',
    "!!binary aGk=",
    "!!python/object/apply:os.system ['true']",
    "&anchor x",
    "*nowhere",
    "9" * 500,
    "x" * 5000,
    "[" * 200,
    "{",
    "- item",
    "key: value: other",
    "\t",
)
Loader = Callable[[Path], object]


def _value_split(line: str) -> tuple[str, str] | None:
    """`key: value` → (`key: `, `value`), or None if the line has no value after a colon."""
    found = re.match(r"^(\s*(?:- )?[^:#]+:\s+)(\S.*)$", line)
    return (found[1], found[2]) if found else None


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """`original` with one to four random edits, each a thing a person or a disk might do."""
    lines = original.decode("utf-8").split("\n")
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, max(0, len(lines) - 1)))
        op = draw(
            st.sampled_from(
                ["delete", "duplicate", "indent", "dedent", "swap", "wrong", "unicode", "cut"]
            )
        )
        if op == "delete" and lines:
            del lines[i]
        elif op == "duplicate" and lines:
            lines.insert(i, lines[i])
        elif op == "indent" and lines:
            lines[i] = " " * draw(st.integers(1, 6)) + lines[i]
        elif op == "dedent" and lines:
            lines[i] = lines[i].lstrip()
        elif op == "swap":
            pairs = [(n, s) for n, line in enumerate(lines) if (s := _value_split(line))]
            if len(pairs) >= 2:
                (a, (ka, va)), (b, (kb, vb)) = draw(
                    st.lists(st.sampled_from(pairs), min_size=2, max_size=2)
                )
                lines[a], lines[b] = ka + vb, kb + va
        elif op == "wrong":
            pairs = [(n, s) for n, line in enumerate(lines) if (s := _value_split(line))]
            if pairs:
                n, (key, _value) = draw(st.sampled_from(pairs))
                lines[n] = key + draw(st.sampled_from(WRONG_VALUES))
        elif op == "unicode" and lines:
            text = draw(st.text(_NO_SURROGATES, min_size=1, max_size=8))
            at = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:at] + text + lines[i][at:]
        elif op == "cut":
            lines = lines[: i + 1]
    data = "\n".join(lines).encode("utf-8")
    if draw(st.integers(0, 9)) == 0:  # now and then, bytes that are not UTF-8 at all
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\x00", b"\xed\xa0\x80"]))
        data += data[at:]
    return data


_YAML_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(_NO_SURROGATES, max_size=20)
)
_KEY_WORDS = (
    *("node", "role", "components", "broker", "telemetry", "power", "rules", "twin", "hass"),
    *("plain", "dispatcher", "inference", "port", "host", "when", "set", "id", "station"),
)
_KEYS = st.sampled_from(_KEY_WORDS) | st.text(_NO_SURROGATES, min_size=1, max_size=10)
yaml_documents = st.recursive(
    _YAML_SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_KEYS, children, max_size=5),
    max_leaves=20,
).map(lambda data: yaml.safe_dump(data, allow_unicode=True).encode("utf-8"))


def _outcome(kind: str, path: Path, load: Loader, *, every_line: bool = False) -> str:
    """Load `path`; `ok`, or `error` after checking the ConfigError names `path:line`."""
    message = None
    try:
        load(path)
    except ConfigError as exc:
        message = str(exc)
    outcome = "ok" if message is None else "error"
    if message is not None:
        lines = [line for line in message.splitlines() if line.strip()]
        assert lines, "an empty error message"
        for line in lines if every_line else lines[:1]:
            assert re.match(rf"{re.escape(str(path))}:\d+(:\d+)?: \S", line), message
    COUNTS[f"{kind} {outcome}"] += 1
    return outcome


def _config_check(path: Path) -> None:
    """`aigloo config check FILE`: exit 0 or 1, no traceback, the error naming the file."""
    result = runner.invoke(app, ["config", "check", str(path)])
    assert result.exit_code in (0, 1), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    if result.exit_code == 1:
        assert f"{path}:" in result.output, result.output


def _in_place(tmp_path_factory: pytest.TempPathFactory, source: Path, data: bytes) -> Path:
    """`data` as `source`'s file, in a copy of the repository layout (so relative paths in it,
    such as `../rules`, resolve as in the real one)."""
    root = tmp_path_factory.mktemp("fuzz")
    for folder in ("rules", "scenarios"):
        if not (root / folder).exists():
            shutil.copytree(ROOT / folder, root / folder)
    target = root / source.parent.name / source.name
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(data)
    return target


F = TypeVar("F", bound=Callable[..., None])


def _fuzz(examples: int) -> Callable[[F], F]:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _agent_case(tmp: pytest.TempPathFactory, source: Path, data: bytes) -> None:
    path = _in_place(tmp, source, data)
    _outcome("config", path, load_config)
    _config_check(path)


def _rules_case(tmp: pytest.TempPathFactory, source: Path, data: bytes) -> None:
    path = _in_place(tmp, source, data)
    _outcome("rules", path, lambda p: load_rule_files([p]), every_line=True)


def _scenario_case(tmp: pytest.TempPathFactory, source: Path, data: bytes) -> None:
    path = _in_place(tmp, source, data)
    _outcome("scenario", path, load_scenario)


@st.composite
def _mutation_of(draw: st.DrawFn, files: list[Path]) -> tuple[Path, bytes]:
    source = draw(st.sampled_from(files))
    return source, draw(mutated(source.read_bytes()))


@_fuzz(EXAMPLES)
@given(case=_mutation_of(AGENTS))
def test_mutated_agent_configs_load_or_name_file_and_line(
    tmp_path_factory: pytest.TempPathFactory, case: tuple[Path, bytes]
) -> None:
    """A shipped agents/*.yaml with random edits loads, or load_config and `aigloo config
    check` report a ConfigError naming file:line: never a traceback."""
    _agent_case(tmp_path_factory, *case)


@_fuzz(EXAMPLES)
@given(data=yaml_documents | st.binary(max_size=300))
def test_any_yaml_document_as_a_config_loads_or_names_file_and_line(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    """Any YAML document (or any bytes) as a machine config gives ok or a ConfigError naming
    file:line, through load_config and `aigloo config check`."""
    _agent_case(tmp_path_factory, AGENTS[0], data)


@_fuzz(EXAMPLES)
@given(case=_mutation_of(RULES))
def test_mutated_shipped_rules_load_or_name_file_line_and_column(
    tmp_path_factory: pytest.TempPathFactory, case: tuple[Path, bytes]
) -> None:
    """A shipped rules/*.yaml with random edits loads, or every line of the ConfigError is
    `file:line:column: reason`."""
    _rules_case(tmp_path_factory, *case)


@_fuzz(EXAMPLES)
@given(case=_mutation_of(SCENARIOS) | st.tuples(st.just(SCENARIOS[0]), yaml_documents))
def test_mutated_and_generated_scenarios_load_or_name_file_and_line(
    tmp_path_factory: pytest.TempPathFactory, case: tuple[Path, bytes]
) -> None:
    """A shipped scenario with random edits, or any YAML document as a scenario, loads or
    gives a ConfigError naming file:line."""
    _scenario_case(tmp_path_factory, *case)


@pytest.mark.slow
@_fuzz(SLOW_EXAMPLES)
@given(
    kind=st.sampled_from(["config", "rules", "scenario"]),
    case=st.data(),
)
def test_many_more_mutations_of_every_file_kind(
    tmp_path_factory: pytest.TempPathFactory, kind: str, case: st.DataObject
) -> None:
    """The same properties with many more cases (slow: `pytest -m slow`)."""
    files = {"config": AGENTS, "rules": RULES, "scenario": SCENARIOS}[kind]
    source, data = case.draw(_mutation_of(files))
    check = {"config": _agent_case, "rules": _rules_case, "scenario": _scenario_case}[kind]
    check(tmp_path_factory, source, data)


def test_zz_fuzz_counts_are_reported(record_property: Any) -> None:
    """Records how many fuzz cases of each file kind ran and how they ended (for the docs)."""
    for key, count in sorted(COUNTS.items()):
        record_property(key.replace(" ", "_"), count)
    print(f"\nfile fuzz cases: {dict(sorted(COUNTS.items()))}")
