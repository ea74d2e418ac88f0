"""The console script's choice between the lean component path and the full CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from aigloo_edge.entry import component_command


@pytest.mark.parametrize(
    ("args", "plan"),
    [
        (["run", "agents/studio.yaml"], ("INFO", None, Path("agents/studio.yaml"))),
        (["agent", "a.yaml"], ("INFO", {"agent", "inference"}, Path("a.yaml"))),
        (["dispatch", "m.yaml"], ("INFO", {"dispatcher"}, Path("m.yaml"))),
        (["gateway", "m.yaml"], ("INFO", {"gateway"}, Path("m.yaml"))),
        (["--log-level", "DEBUG", "run", "a.yaml"], ("DEBUG", None, Path("a.yaml"))),
    ],
)
def test_component_commands_take_the_lean_path(
    args: list[str], plan: tuple[str, set[str] | None, Path]
) -> None:
    """`run`/`agent` FILE start without the CLI framework."""
    assert component_command(args) == plan


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["run"],
        ["run", "--help"],
        ["run", "a.yaml", "extra"],
        ["up"],
        ["--version"],
        ["--log-level", "DEBUG"],
        ["config", "check", "a.yaml"],
    ],
)
def test_everything_else_goes_to_the_full_cli(args: list[str]) -> None:
    assert component_command(args) is None
