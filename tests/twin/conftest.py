"""Shared by the twin's tests: the repository's scenarios and shipped rules, loaded once."""

from __future__ import annotations

from pathlib import Path

import pytest

from aigloo_edge.rules.loader import RuleSet, load_rules
from aigloo_edge.twin.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"


def scenario(name: str) -> Scenario:
    return load_scenario(SCENARIOS / f"{name}.yaml")


@pytest.fixture(scope="session")
def shipped_rules() -> RuleSet:
    return load_rules(ROOT / "rules")
