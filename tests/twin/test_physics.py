"""The twin's physics on its own: sun, station, machines, box (no rules)."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from aigloo_edge.twin.model import Twin
from aigloo_edge.twin.solar import HAURWITZ_A, HAURWITZ_B, haurwitz_ghi
from aigloo_edge.twin.thermal import AIR_W_PER_K_PER_M3H
from tests.twin.conftest import scenario

MDT = dt.timezone(dt.timedelta(hours=-6))


def at(hour: int, minute: int = 0) -> float:
    """Unix time of 21 June 2025, local clock (the sunny-day scenario's day)."""
    return dt.datetime(2025, 6, 21, hour, minute, tzinfo=MDT).timestamp()


def run(twin: Twin, seconds: float, step: float = 10.0) -> None:
    for _ in range(math.ceil(seconds / step)):
        twin.step(step)


# --- the sun -------------------------------------------------------------------------------


def test_haurwitz_clear_sky_irradiance() -> None:
    """Haurwitz (1945): GHI = 1098 cos z exp(-0.059 / cos z); nothing below the horizon."""
    assert haurwitz_ghi(90.0) == pytest.approx(HAURWITZ_A * math.exp(-HAURWITZ_B))
    assert haurwitz_ghi(30.0) == pytest.approx(1098 * 0.5 * math.exp(-0.118))
    assert haurwitz_ghi(0.0) == haurwitz_ghi(-10.0) == 0.0


def test_no_solar_at_night() -> None:
    twin = Twin(scenario("sunny-day"), start=at(0))
    for _ in range(4 * 60):  # midnight to 04:00 local
        twin.step(60.0)
        assert twin.solar_available_w == 0.0
        assert twin.view().solar_w == 0.0


def test_solar_is_capped_at_the_stations_220_w_input() -> None:
    twin = Twin(scenario("sunny-day"), start=at(13))  # near solar noon, station at 60 %
    run(twin, 600)
    assert twin.solar_available_w > 300  # the 400 W panel could give more
    view = twin.view()
    assert view.solar_w == pytest.approx(220.0)
    assert view.watts_in == pytest.approx(220.0)


def test_interpolated_sun_matches_astral() -> None:
    sun = Twin(scenario("sunny-day")).solar.sun
    for hour in (6.5, 9.25, 13.3, 19.9):
        t = at(0) + hour * 3600
        assert sun.elevation(t) == pytest.approx(sun.exact(t), abs=0.05)


def test_solar_peaks_near_solar_noon() -> None:
    """Moab (-109.55°) on MDT: solar noon is near 13:20 local."""
    twin = Twin(scenario("sunny-day"))
    hours = [h / 4 for h in range(5 * 4, 22 * 4)]
    best = max(hours, key=lambda h: twin.solar.watts(at(0) + h * 3600))
    assert 13.0 <= best <= 13.6


def test_a_full_station_takes_only_what_the_rig_uses() -> None:
    twin = Twin(scenario("sunny-day"), start=at(12))  # Studio idle, under 220 W in all
    twin.station.energy_wh = twin.station.params.capacity_wh
    run(twin, 600)
    view = twin.view()
    assert view.soc_pct == pytest.approx(100.0)
    assert view.solar_w < 220.0
    assert view.solar_w == pytest.approx(twin.station.bus_w(view.watts_out - 1.5, 1.5, 0.0))


# --- the station ---------------------------------------------------------------------------


def test_energy_balance_battery_out_equals_wall_energy_over_efficiency() -> None:
    """Wh out of the cells (from the SoC) = the machines' wall energy, integrated from what
    each machine draws step by step, through the inverter and the cells, within 1 %."""
    sc = scenario("battery-only-full-load")
    twin = Twin(sc)
    p = sc.station
    step, wall_ac_wh, fans_wh, idle_wh = 10.0, 0.0, 0.0, 0.0
    soc_before = twin.view().soc_pct
    for _ in range(int(2 * 3600 / step)):
        twin.step(step)
        view = twin.view()
        wall_ac_wh += sum(m.wall_w for m in view.machines.values()) * step / 3600
        fans_wh += sc.fans.profiles[view.fan_profile].watts * step / 3600
        idle_wh += p.inverter_idle_w * step / 3600
    out_of_cells_wh = (soc_before - twin.view().soc_pct) / 100 * p.capacity_wh
    expected = (
        wall_ac_wh / p.inverter_efficiency + idle_wh + fans_wh / p.dc_efficiency
    ) / p.discharge_efficiency
    assert out_of_cells_wh == pytest.approx(expected, rel=0.01)
    assert twin.station.drawn_wh == pytest.approx(out_of_cells_wh, rel=1e-9)


def test_a_flat_station_shuts_its_outlets_until_switched_on() -> None:
    twin = Twin(scenario("battery-only-full-load"))
    twin.station.energy_wh = 1.0
    run(twin, 120)
    view = twin.view()
    assert view.soc_pct == 0.0
    assert not view.ac_on
    assert not view.dc_on
    assert twin.station.emptied_at is not None
    twin.set_output("ac", True)
    assert not twin.view().ac_on  # nothing to give


def test_remaining_minutes_while_discharging() -> None:
    twin = Twin(scenario("battery-only-full-load"))
    run(twin, 60)
    view = twin.view()
    assert view.remaining_min is not None
    assert 150 < view.remaining_min < 200  # about three hours from full


# --- outputs and machines --------------------------------------------------------------------


def test_ac_off_drops_the_macs_on_ac_and_the_laptops_run_on_their_batteries() -> None:
    twin = Twin(scenario("battery-only-full-load"))
    run(twin, 60)
    twin.set_output("ac", False)
    run(twin, 600)
    view = twin.view()
    for desktop in ("studio", "mini"):
        assert view.machines[desktop].power == "sleeping"
        assert view.machines[desktop].wall_w == 0.0
    for laptop in ("mbp", "air"):
        machine = view.machines[laptop]
        assert machine.power == "awake"
        assert machine.plugged is False
        assert machine.wall_w == 0.0
        assert machine.battery_pct is not None
        assert machine.battery_pct < 100.0
    assert view.watts_out == pytest.approx(1.5)  # the fans alone, on 12 V
    twin.set_power("studio", "awake")  # no power: nothing happens
    assert twin.view().machines["studio"].power == "sleeping"
    twin.set_output("ac", True)
    twin.step(1.0)
    assert twin.view().machines["studio"].power == "awake"  # restarts after power returns


def test_dc_off_stops_the_fans_and_the_box_warms() -> None:
    sc = scenario("calibration-lid-closed-studio-max")
    cooled, still = Twin(sc), Twin(sc)
    still.set_output("dc", False)
    run(cooled, 1800)
    run(still, 1800)
    assert still.view().fan_duty_pct == 0.0
    assert still.view().inside_c > cooled.view().inside_c + 10


def test_sleeping_takes_about_a_watt_and_cools_the_cores() -> None:
    twin = Twin(scenario("calibration-lid-closed-studio-max"))
    run(twin, 600)
    hot = twin.view().machines["studio"].core_c
    twin.set_power("studio", "sleeping")
    run(twin, 600)
    studio = twin.view().machines["studio"]
    assert studio.wall_w == pytest.approx(1.0)
    assert studio.cpu_pct == 0.0
    assert studio.core_c < hot - 20


def test_a_plugged_laptop_charges_and_tapers_to_its_running_power() -> None:
    twin = Twin(scenario("sunny-day"), start=at(2))  # MacBook Pro at 50 %, idle at night
    twin.step(1.0)
    assert twin.view().machines["mbp"].wall_w == pytest.approx(8 + 90)
    run(twin, 3 * 3600, step=30.0)
    mbp = twin.view().machines["mbp"]
    assert mbp.battery_pct == pytest.approx(100.0, abs=0.5)
    assert mbp.wall_w < 8 + 5


def test_unknown_machine_is_a_clear_error() -> None:
    twin = Twin(scenario("sunny-day"))
    with pytest.raises(KeyError, match="no machine 'imac'"):
        twin.set_power("imac", "awake")


def test_the_load_plan_follows_the_local_clock() -> None:
    twin = Twin(scenario("sunny-day"))  # studio 09:00-11:30, 13:00-16:00, 19:00-20:00
    assert twin.scheduled_load("studio", at(8, 59)) == "idle"
    assert twin.scheduled_load("studio", at(9)) == "inference"
    assert twin.scheduled_load("studio", at(11, 30)) == "idle"
    assert twin.scheduled_load("mini", at(12)) == "idle"
    run(twin, 3.5 * 3600, step=60.0)  # 06:00 → 09:30
    assert twin.view().machines["studio"].load == "inference"
    assert twin.view().machines["studio"].wall_w == pytest.approx(160.0)


# --- the box -------------------------------------------------------------------------------


def test_box_settles_where_heat_in_equals_heat_out() -> None:
    sc = scenario("calibration-lid-closed-studio-max")
    twin = Twin(sc)
    run(twin, 3600, step=600.0)  # large steps are exact, not unstable
    heat = (
        sum(m.wall_w for node, m in twin.view().machines.items() if sc.machines[node].in_box)
        + sc.fans.profiles["normal"].watts
    )
    conductance = sc.box.wall_w_per_k_closed + AIR_W_PER_K_PER_M3H * 84
    assert twin.view().inside_c == pytest.approx(24 + heat / conductance, abs=0.05)


def test_an_open_lid_runs_cooler() -> None:
    sc = scenario("calibration-lid-closed-studio-max")
    closed, opened = Twin(sc), Twin(sc)
    opened.box.lid = "open"
    run(closed, 3600, step=60.0)
    run(opened, 3600, step=60.0)
    assert opened.view().inside_c < closed.view().inside_c - 1.5  # 36 W/K against 29
