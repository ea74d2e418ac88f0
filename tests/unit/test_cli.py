"""The `aigloo` command line: version, help, schema, topics, broker init."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from aigloo_edge import __version__
from aigloo_edge.cli import app
from aigloo_edge.contract_doc import HEADER

runner = CliRunner()


def test_version_from_the_installed_console_script() -> None:
    """`aigloo --version` works as a user runs it (the console script in the venv)."""
    script = shutil.which("aigloo", path=str(Path(sys.executable).parent))
    assert script is not None
    out = subprocess.run([script, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"aigloo-edge {__version__}"


def test_help_lists_every_command_group() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("broker", "config", "run", "agent", "models", "schema", "topics", "up"):
        assert command in result.stdout


def test_schema_writes_then_checks(tmp_path: Path) -> None:
    out = tmp_path / "schemas"
    assert runner.invoke(app, ["schema", "--out", str(out)]).exit_code == 0
    assert (out / "NodeTelemetry.json").is_file()
    assert runner.invoke(app, ["schema", "--out", str(out), "--check"]).exit_code == 0
    (out / "Battery.json").write_text("{}")
    stale = runner.invoke(app, ["schema", "--out", str(out), "--check"])
    assert stale.exit_code == 1
    assert "Battery.json" in stale.stderr


def test_topics_prints_the_contract_for_a_base() -> None:
    result = runner.invoke(app, ["topics", "--base", "sites/north/aigloo"])
    assert result.exit_code == 0
    assert result.stdout.startswith(HEADER)
    assert "`sites/north/aigloo/power/battery`" in result.stdout


def test_broker_init_never_prints_a_password(tmp_path: Path) -> None:
    result = runner.invoke(app, ["broker", "init", str(tmp_path / "b"), "--tls"])
    assert result.exit_code == 0, result.output
    creds = yaml.safe_load((tmp_path / "b" / "credentials.yaml").read_text())
    passwords = list(creds["users"].values())
    assert passwords
    assert not any(pw in result.output for pw in passwords)
    assert "TLS ready" in result.output
