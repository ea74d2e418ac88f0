"""Machine configs: the shipped files load; every mistake names file:line, field and reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from aigloo_edge.cli import app
from aigloo_edge.config import load_config
from aigloo_edge.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
BAD = ROOT / "tests" / "data" / "configs"


@pytest.mark.parametrize("name", ["studio", "mbp", "mini", "air", "local"])
def test_shipped_agent_files_are_valid(name: str) -> None:
    """Every file in agents/ loads; paths are made absolute relative to the file."""
    config = load_config(ROOT / "agents" / f"{name}.yaml")
    assert config.node == ("mini" if name == "local" else name)
    assert config.broker.credentials_file.is_absolute()


def test_mini_wakes_the_studio_and_the_macbook_pro() -> None:
    config = load_config(ROOT / "agents" / "mini.yaml")
    assert config.waker is not None
    assert set(config.waker.targets) == {"studio", "mbp"}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "typo.yaml",
            [
                "typo.yaml:6: broker.prot: unknown setting (check the spelling; see the config "
                "reference)",
            ],
        ),
        (
            "bad_values.yaml",
            [
                "bad_values.yaml:1: node: String should match pattern '^[a-z0-9_-]{1,64}$'",
                "bad_values.yaml:6: telemetry.interval_s: Input should be greater than or equal "
                "to 0.5",
                "bad_values.yaml:8: telemetry.deadbands.cpu_pct: Input should be greater than 0",
                "bad_values.yaml:9: components.1: Input should be 'agent', 'waker', "
                "'inference', 'dispatcher', 'gateway', 'rules', 'sensors', 'fans', "
                "'twin', 'hass' or 'plain'",
            ],
        ),
        (
            "command_without_command.yaml",
            [
                "command_without_command.yaml:5: power: give sleep_command exactly "
                "when driver is 'command'",
            ],
        ),
        (
            "waker_bad_mac.yaml",
            [
                "waker_bad_mac.yaml:9: waker.targets.studio.mac: String should match pattern "
                "'^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$'",
            ],
        ),
        ("duplicate_key.yaml", ["duplicate_key.yaml:3: duplicate key 'node'"]),
        (
            "broken_yaml.yaml",
            [
                "broken_yaml.yaml:5:1: invalid YAML: expected ',' or ']', but got '<stream end>' "
                "(while parsing a flow sequence started at line 4)",
            ],
        ),
        ("missing_broker.yaml", ["missing_broker.yaml:1: broker: required setting is missing"]),
        (
            "not_a_mapping.yaml",
            [
                "not_a_mapping.yaml:1: expected a mapping of settings at the top level",
            ],
        ),
    ],
)
def test_bad_config_gives_the_exact_error(name: str, expected: list[str]) -> None:
    """The message names the file, the line, the field and the reason, one line each."""
    with pytest.raises(ConfigError) as caught:
        load_config(BAD / name)
    assert str(caught.value).splitlines() == [f"{BAD}/{line}" for line in expected]


def test_config_check_reports_each_file_and_fails_on_any_error() -> None:
    """`aigloo config check` says ok per good file, prints errors, and exits 1."""
    result = CliRunner().invoke(
        app, ["config", "check", str(ROOT / "agents" / "studio.yaml"), str(BAD / "typo.yaml")]
    )
    assert result.exit_code == 1
    assert "studio.yaml: ok (node studio: agent, inference)" in result.stdout
    assert "typo.yaml:6: broker.prot: unknown setting" in result.stderr


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read: No such file"):
        load_config(tmp_path / "nope.yaml")
