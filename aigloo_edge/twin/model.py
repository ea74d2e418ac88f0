"""The twin: station, sun, Macs, fans and box stepped together; implements `TwinModel`.

Each `step(dt)`: the scenario's load plan sets who runs inference (unless the driver sets loads
itself: `follow_schedule=False`), every machine says what it takes from its outlet, the station
carries those loads with the sun it gets (and may run flat part-way), the machines and their
batteries advance, and the box warms by what the machines and fans inside give off.

Calibration (the scenario files carry each number's source):
* Battery alone, whole rig at its working load: the seed's "~3 h on only the EcoFlow". With
  the station's efficiencies (battery 0.97, inverter 0.90, 10 W inverter idle, DC 0.90) the
  768 Wh last 3 h for 256 W out of the cells, i.e. about 218 W at the AC outlets beside the fans.
  The Studio's inference draw is what closes that budget: 160 W, under the <200 W measured for
  an M3 Ultra running DeepSeek-R1 671B (Dave2D, reported by Wccftech, March 2025); the MacBook
  Pro 45 W, the Mini 6 W (Apple: 4-6 W idle), the Air 5 W on its charger.
  `scenarios/battery-only-full-load.yaml`; `tests/twin/test_calibration.py`.
* Lid closed, Studio at max (270 W, Apple's figure for the M3 Ultra), fans `normal`, 24 °C
  outside: inside 34 °C (93 °F, the seed) needs the box to shed about 290 W at 10 K, 29 W/K: the
  cooler's walls about 1 W/K (4 cm of polyurethane over about 1.6 m²), the rest the fans'
  ~84 m³/h through the box (four 80 mm intakes at 60 % duty, derated for the box's resistance).
  Hottest core 66 °C (150 °F, the seed) at 270 W in 34 °C air: 0.119 K/W for the Studio.
  `scenarios/calibration-lid-closed-studio-max.yaml`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from aigloo_edge.payloads import FanProfile
from aigloo_edge.twin.battery import Station
from aigloo_edge.twin.interface import MachineLoad, MachinePower, TwinView
from aigloo_edge.twin.machines import Machine
from aigloo_edge.twin.scenario import DAY_S, FAN_PROFILES, Scenario
from aigloo_edge.twin.solar import SolarArray
from aigloo_edge.twin.thermal import Box, Fans, outside_c

HOUR_S: Final = 3600.0


@dataclass
class Meter:
    """Energy since the start (Wh), kept as the twin steps."""

    wall_wh: dict[str, float] = field(default_factory=dict)  # per machine, from the station
    ac_wh: float = 0.0
    dc_wh: float = 0.0
    usb_wh: float = 0.0
    inverter_idle_wh: float = 0.0


class Twin:
    """The rig's physics for one scenario, from `start` (Unix seconds; None: the scenario's)."""

    def __init__(
        self, scenario: Scenario, start: float | None = None, *, follow_schedule: bool = True
    ) -> None:
        self.scenario = scenario
        self.t = scenario.start_ts if start is None else start
        self.follow_schedule = follow_schedule
        self.offset_s = scenario.utc_offset_s
        self.station = Station(scenario.station)
        self.solar = SolarArray(scenario.solar, self.offset_s)
        self.fans = Fans(scenario.fans)
        self.box = Box(scenario.box, self.outside_c())
        air = self.box.inside_c
        self.machines = {
            node: Machine(node, params, air if params.in_box else self.outside_c())
            for node, params in scenario.machines.items()
        }
        self.meter = Meter(wall_wh=dict.fromkeys(self.machines, 0.0))
        self.solar_available_w = self.solar.watts(self.t)
        self._schedule: dict[str, list[tuple[float, float]]] = dict(scenario.load)
        if follow_schedule:
            self._apply_schedule()
        self._settle()

    # --- TwinModel: commands ----------------------------------------------------------------

    def set_power(self, node: str, state: MachinePower) -> None:
        machine = self._machine(node)
        if machine.on and machine.commanded != state:  # a machine without power obeys nothing
            machine.commanded = state
            self._settle()

    def set_load(self, node: str, load: MachineLoad) -> None:
        machine = self._machine(node)
        if machine.load != load:
            machine.load = load
            self._settle()

    def set_fans(self, profile: FanProfile) -> None:
        if profile not in FAN_PROFILES:
            raise ValueError(f"unknown fan profile {profile!r}")
        self.fans.profile = profile

    def set_output(self, output: Literal["ac", "dc"], on: bool) -> None:
        self.station.set_output(output, on)
        self._settle()

    def _machine(self, node: str) -> Machine:
        try:
            return self.machines[node]
        except KeyError:
            known = ", ".join(self.machines)
            raise KeyError(f"no machine {node!r} in this scenario ({known})") from None

    # --- the plan ---------------------------------------------------------------------------

    def scheduled_load(self, node: str, at: float | None = None) -> MachineLoad:
        """What the scenario's plan asks of `node` at `at` (default: now)."""
        clock = ((self.t if at is None else at) + self.offset_s) % DAY_S
        for start, end in self._schedule.get(node, ()):
            inside = start <= clock < end if start < end else (clock >= start or clock < end)
            if inside:
                return "inference"
        return "idle"

    def _apply_schedule(self) -> None:
        for node, machine in self.machines.items():
            machine.load = self.scheduled_load(node)

    # --- time -------------------------------------------------------------------------------

    def outside_c(self, at: float | None = None) -> float:
        return outside_c(self.scenario.box.outside, self.t if at is None else at, self.offset_s)

    def plugged(self, machine: Machine) -> bool:
        return self.station.live(machine.params.outlet)

    def step(self, dt: float) -> None:
        """Advance the physics by `dt` seconds (loads constant over the step)."""
        if dt <= 0:
            return
        if self.follow_schedule:
            self._apply_schedule()
        station = self.station
        plugged = {node: self.plugged(m) for node, m in self.machines.items()}
        for node, machine in self.machines.items():
            machine.reconnect(plugged[node])
        draws = {node: m.draw(plugged[node]) for node, m in self.machines.items()}
        loads = {"ac": 0.0, "dc": 0.0, "usb": 0.0, "none": 0.0}
        for node, machine in self.machines.items():
            loads[machine.params.outlet] += draws[node].wall_w
        fans_on = station.dc_on
        fan_w = self.fans.watts(fans_on)
        self.solar_available_w = self.solar.watts(self.t + dt / 2)
        flows = station.step(
            dt,
            self.t,
            ac_w=loads["ac"],
            dc_w=loads["dc"] + fan_w,
            usb_w=loads["usb"],
            solar_w=self.solar_available_w,
        )
        powered_s = dt * flows.powered
        self._meter(flows.ac_w, flows.dc_w, flows.usb_w, flows.idle_w, powered_s)
        heat = fan_w * flows.powered
        outside = self.outside_c(self.t + dt / 2)
        air = self.box.inside_c
        for node, machine in self.machines.items():
            machine_air = air if machine.params.in_box else outside
            machine.advance(powered_s, plugged[node], machine_air)
            self.meter.wall_wh[node] += draws[node].wall_w * powered_s / HOUR_S
            if flows.powered < 1.0:
                dark = self.plugged(machine)  # the outlets just shut: the rest of the step
                machine.advance(dt - powered_s, dark, machine_air)
            if machine.params.in_box:
                heat += draws[node].heat_w * flows.powered
                if flows.powered < 1.0 and machine.params.battery_wh is not None:
                    heat += machine.running_w() * (1.0 - flows.powered)
        airflow = self.fans.airflow_m3h(fans_on) * flows.powered
        self.box.advance(dt, heat, airflow, outside)
        self.t += dt

    def _meter(self, ac_w: float, dc_w: float, usb_w: float, idle_w: float, dt: float) -> None:
        m = self.meter
        m.ac_wh += ac_w * dt / HOUR_S
        m.dc_wh += dc_w * dt / HOUR_S
        m.usb_wh += usb_w * dt / HOUR_S
        m.inverter_idle_wh += idle_w * dt / HOUR_S

    def _settle(self) -> None:
        """Fill the view's powers for the present state without letting time pass."""
        plugged = {node: self.plugged(m) for node, m in self.machines.items()}
        loads = {"ac": 0.0, "dc": 0.0, "usb": 0.0, "none": 0.0}
        for node, machine in self.machines.items():
            draw = machine.draw(plugged[node])
            machine.wall_w = draw.wall_w
            loads[machine.params.outlet] += draw.wall_w
        fan_w = self.fans.watts(self.station.dc_on)
        self.station.step(
            0.0,
            self.t,
            ac_w=loads["ac"],
            dc_w=loads["dc"] + fan_w,
            usb_w=loads["usb"],
            solar_w=self.solar_available_w,
        )

    # --- TwinModel: what it shows -----------------------------------------------------------

    def view(self) -> TwinView:
        station = self.station
        flows = station.flows
        fans_on = station.dc_on
        return TwinView(
            t=self.t,
            soc_pct=station.soc_pct,
            watts_in=flows.solar_w,
            watts_out=flows.out_w if flows.powered >= 1.0 else 0.0,
            solar_w=flows.solar_w,
            remaining_min=station.remaining_min(),
            capacity_wh=station.params.capacity_wh,
            ac_on=station.ac_on,
            dc_on=station.dc_on,
            inside_c=self.box.inside_c,
            outside_c=self.outside_c(),
            fan_profile=self.fans.profile,
            fan_duty_pct=self.fans.duty_pct(fans_on),
            machines={node: m.view(self.plugged(m)) for node, m in self.machines.items()},
        )
