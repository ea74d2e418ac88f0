"""Scenario files: the shipped ones load with a source for every number, and each mistake in
the corpus (tests/data/scenarios_bad, one mistake per file) gets its exact file:line message."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from aigloo_edge.errors import ConfigError
from aigloo_edge.twin.scenario import PARAMETER_SECTIONS, parse_clock, parse_range, parse_scenario
from tests.twin.conftest import ROOT, SCENARIOS, scenario

BAD = ROOT / "tests" / "data" / "scenarios_bad"
SHIPPED = sorted(path.stem for path in SCENARIOS.glob("*.yaml"))
_NO_SOURCE = (
    'no source for {v}: write {k}: {{value: {v}, source: "..."}} '
    "or add {k} to the section's sources:"
)

# Each corpus file and its full message, one line per problem, `file:line: field: reason`.
EXPECTED: dict[str, list[str]] = {
    "negative_capacity.yaml": [
        "6: station.capacity_wh: a battery holds more than 0 Wh, not -768",
    ],
    "efficiency_above_one.yaml": [
        "10: station.inverter_efficiency: an efficiency is a fraction up to 1; "
        "1.2 would create energy",
    ],
    "efficiency_zero.yaml": [
        "8: station.charge_efficiency: an efficiency is a fraction above 0; 0 would pass no energy",
    ],
    "negative_fan_power.yaml": [
        "35: fans.profiles.quiet.watts: a power cannot be negative (-0.55 W): "
        "nothing here makes power",
    ],
    "soc_above_100.yaml": [
        "7: station.initial_soc_pct: a percentage from 0 to 100, not 120",
    ],
    "below_absolute_zero.yaml": [
        "43: box.outside.constant_c: -300 °C is below absolute zero",
    ],
    "powers_out_of_order.yaml": [
        "21: machines.studio: powers must rise sleep_w <= idle_w <= inference_w <= max_w, "
        "not 1 / 9 / 300 / 270 W",
    ],
    "latitude_out_of_range.yaml": [
        "15: solar.latitude: a latitude is from -90 (south pole) to 90 (north pole), not 98.57",
    ],
    "cloud_above_one.yaml": [
        "19: solar.cloud: a fraction from 0 to 1, not 1.5",
    ],
    "cloud_time_unquoted.yaml": [
        "20: solar.cloud.0.at: put the time in quotes, e.g. '10:00' "
        "(YAML reads an unquoted 10:00 as the number 600)",
    ],
    "bad_period.yaml": [
        "31: load.studio.0: a period is 'always' or 'HH:MM-HH:MM' in quotes, "
        "e.g. '10:00-12:30', not '10:00 to 12:00'",
    ],
    "unknown_setting.yaml": [
        "5: station.inverter_idle_w: required setting is missing",
        "11: station.inverter_idel_w: unknown setting (did you mean 'inverter_idle_w'?)",
    ],
    "load_unknown_machine.yaml": [
        "31: load.stuido: no such machine (did you mean 'studio'? machines: studio)",
    ],
    "start_without_offset.yaml": [
        "3: start: give the start with its UTC offset, e.g. 2025-06-21T08:00:00-06:00 "
        "(the clock of the schedules and the sun)",
    ],
    "laptop_battery_incomplete.yaml": [
        "21: machines.studio: a laptop's battery needs all of battery_wh, battery_pct, "
        "charge_w and charge_efficiency (a desktop none of them)",
    ],
    "fan_off_unquoted.yaml": [
        "33: fans.profiles.0.[key]: write 'off' in quotes (YAML reads a bare off as false)",
    ],
    "duplicate_key.yaml": [
        "18: duplicate key 'panel_peak_w'",
    ],
    "outside_min_above_max.yaml": [
        "43: box.outside: min_c (30) is above max_c (20)",
    ],
    "missing_source.yaml": [
        "11: station.inverter_idle_w: " + _NO_SOURCE.format(k="inverter_idle_w", v=10),
    ],
    "empty_source.yaml": [
        '6: station.capacity_wh.source: say where the value comes from: source: "..." (text)',
    ],
    "inline_without_source.yaml": [
        '40: box.thermal_mass_j_per_k: say where the value comes from: source: "..." (text)',
    ],
    "source_names_nothing.yaml": [
        "39: fans.sources.profile: names no setting here (did you mean 'profiles'?)",
    ],
}


def test_every_corpus_file_has_an_expected_message() -> None:
    assert sorted(EXPECTED) == sorted(path.name for path in BAD.glob("*.yaml"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_broken_scenario_names_file_line_field_and_reason(name: str) -> None:
    """Each mistake is reported exactly, at the line to fix, with the physical reason."""
    path = BAD / name
    with pytest.raises(ConfigError) as caught:
        parse_scenario(path.read_text(), path)
    assert str(caught.value).splitlines() == [f"{path}:{line}" for line in EXPECTED[name]]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenarios_load_with_a_source_for_every_number(name: str) -> None:
    loaded = scenario(name)
    assert loaded.name == name
    assert loaded.sources
    assert all(note for note in loaded.sources.values())
    assert {key.split(".")[0] for key in loaded.sources} <= set(PARAMETER_SECTIONS)


def test_battery_only_scenario_explains_its_calibration() -> None:
    """The 3 h calibration is written down where the numbers are."""
    text = (SCENARIOS / "battery-only-full-load.yaml").read_text()
    assert "~3 h" in text or "~3hrs" in text
    notes = scenario("battery-only-full-load").sources
    assert "calibrated" in notes["machines.studio.inference_w"]


def test_inline_source_and_sources_map_are_equivalent() -> None:
    base = (BAD.parent / "scenarios_bad" / "negative_capacity.yaml").read_text()
    fixed = base.replace("capacity_wh: -768", 'capacity_wh: {value: 768, source: "spec sheet"}')
    loaded = parse_scenario(fixed, Path("inline.yaml"))
    assert loaded.station.capacity_wh == 768
    assert loaded.sources["station.capacity_wh"] == "spec sheet"
    assert loaded.sources["station"] == "test data"


def test_several_problems_are_reported_together_in_line_order() -> None:
    text = (
        (BAD / "negative_capacity.yaml")
        .read_text()
        .replace("inverter_efficiency: 0.9", "inverter_efficiency: 1.5")
    )
    with pytest.raises(ConfigError) as caught:
        parse_scenario(text, Path("two.yaml"))
    lines = str(caught.value).splitlines()
    assert [line.split(":")[1] for line in lines] == ["6", "10"]


def test_a_scenario_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match=r"^list\.yaml:1: a scenario is a mapping"):
        parse_scenario("- station\n", Path("list.yaml"))


def test_clock_times_and_periods() -> None:
    assert parse_clock("09:30") == 9.5 * 3600
    assert parse_range("always") == (0.0, 86400.0)
    assert parse_range("22:00-02:00") == (22 * 3600.0, 2 * 3600.0)  # past midnight
    for bad in ("24:00", "9h", "12:00-12:00"):
        with pytest.raises(ValueError, match=r"HH:MM|empty"):
            parse_range(bad) if "-" in bad else parse_clock(bad)


def test_cloud_steps_must_go_in_time_order() -> None:
    text = (BAD / "cloud_time_unquoted.yaml").read_text()
    text = text.replace(
        "    - {at: 10:00, factor: 0.5}",
        '    - {at: "12:00", factor: 0.5}\n    - {at: "10:00", factor: 0.2}',
    )
    with pytest.raises(ConfigError, match="cloud steps go in time order"):
        parse_scenario(text, Path("order.yaml"))


def test_a_machine_unplugged_needs_its_own_battery() -> None:
    text = textwrap.dedent((BAD / "negative_capacity.yaml").read_text()).replace(
        "capacity_wh: -768", "capacity_wh: 768"
    )
    text = text.replace("    outlet: ac\n", "    outlet: none\n")
    with pytest.raises(ConfigError, match="outlet 'none' needs its own battery"):
        parse_scenario(text, Path("unplugged.yaml"))
