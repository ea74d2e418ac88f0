"""The `aigloo` command line stays quick to start: every command imports `aigloo_edge.cli`."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import get_args

from aigloo_edge.ops.cli import FanProfileChoice
from aigloo_edge.payloads import FanProfile

HEAVY = ("pydantic", "textual", "aigloo_edge.payloads", "aigloo_edge.config", "aigloo_edge.mqtt")


def test_importing_the_cli_loads_no_models_dashboard_or_mqtt() -> None:
    """The operator, dashboard and service commands register without loading pydantic, the wire
    models, Textual or the MQTT session: they load when a command runs."""
    code = f"import sys, aigloo_edge.cli; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    assert done.stdout.strip() == "[]"


def test_the_fans_command_offers_exactly_the_contracts_profiles() -> None:
    assert get_args(FanProfileChoice) == get_args(FanProfile)
