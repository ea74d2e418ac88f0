"""The twin reproduces the owner's figures (the seed): ~3 h on the battery alone at full load;
lid closed with the Studio at max inference, 93 °F inside and ~150 °F hottest cores."""

from __future__ import annotations

import pytest

from aigloo_edge.rules.units import celsius_to_fahrenheit as c_to_f
from aigloo_edge.twin.simulate import simulate
from tests.twin.conftest import scenario


def test_battery_only_full_load_runs_three_hours_with_no_rules() -> None:
    """The seed: "Full system can run continuously for ~3hrs on only the EcoFlow River 2"."""
    result = simulate(scenario("battery-only-full-load"), None, hours=4, step_s=10.0)
    empty = result.summary.time_to_empty_h
    assert empty is not None
    assert empty == pytest.approx(3.0, abs=0.25)
    assert result.summary.battery_out_wh == pytest.approx(768.0)


def test_lid_closed_studio_at_max_settles_at_93_f_with_150_f_cores() -> None:
    """The seed: lid closed, max inference on the Studio → 93 °F inside, ~150 °F hottest cores."""
    result = simulate(scenario("calibration-lid-closed-studio-max"), None, hours=1.5, step_s=5.0)
    series = result.series
    assert series.machine_w["studio"][-1] == pytest.approx(270.0)  # Apple's max
    inside = series.inside_c[-1]
    assert inside == pytest.approx(34.0, abs=1.5)
    assert series.inside_c[-1] == pytest.approx(series.inside_c[-10], abs=0.05)  # steady
    assert c_to_f(inside) == pytest.approx(93.0, abs=2.7)
    assert series.core_c["studio"][-1] == pytest.approx(66.0, abs=5.0)
    hottest = max(core[-1] for core in series.core_c.values())
    assert c_to_f(hottest) == pytest.approx(150.0, abs=9.0)
