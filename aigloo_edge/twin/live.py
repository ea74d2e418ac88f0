"""The `twin` component: the rig's physics played live over MQTT, in real time or faster.

It publishes exactly what the real sensor bridge and node agents would, and obeys the same
commands, so every other component (rules, dispatcher, Home Assistant, dashboards) runs
unchanged against it:

* as the `sensors` user (component `sensors`, like the bridge): `power/battery` and
  `power/solar` (`source: twin`), `env/internal/climate` (inside the box) and
  `env/ambient/climate` (outside), through the bridge's own `Publisher` (its deadbands and
  heartbeat), and `fans/profile`. It obeys `fans/profile/set`, `power/ac/set`, `power/dc/set`
  and `nodes/<id>/power/set` for the machines it plays (the `sensors` user reads everything).
* as each played machine (`PlayedMachine`): availability, `info`, `telemetry`, `power`.

`sleep` → `power: sleeping`, then the machine's session ends (availability `offline`).
`wake` of a sleeping machine → `waking`, then after `WAKE_S` simulated seconds (divided by the
speed) its agent is online with `power: awake`; with no power (its outlet off) → `unreachable`.
Switching AC off leaves the Macs on AC without power: their sessions end; a laptop on AC goes
on with its own battery. When power returns, the Macs start again (`POWER_ON_S` later).

A driver steps the physics every `tick_s` of wall time by the wall time passed times `speed`;
payloads carry the wall clock's `ts` (the rules engine judges freshness by it); only the sun,
the outside air and the load plan follow the scenario's clock.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Final, Literal

from aigloo_edge.config import AgentConfig, TwinConfig
from aigloo_edge.errors import ConfigError, PayloadError
from aigloo_edge.mqtt import Inbound, Session
from aigloo_edge.payloads import (
    FanProfileCommand,
    FanProfileState,
    OutputCommand,
    PowerCommand,
)
from aigloo_edge.sensors.publisher import Publisher
from aigloo_edge.sensors.readings import ClimateReading, StationReading
from aigloo_edge.sensors.settings import Deadbands, SensorsConfig
from aigloo_edge.twin.interface import TwinModel, TwinView
from aigloo_edge.twin.live_machine import PlayedMachine
from aigloo_edge.twin.model import Twin
from aigloo_edge.twin.readings import INSIDE_PROBE, OUTSIDE_PROBE
from aigloo_edge.twin.scenario import load_scenario

log = logging.getLogger(__name__)

TICK_S: Final = 0.5  # wall seconds between steps of the physics
MAX_STEP_TICKS: Final = 10  # a stalled loop catches up at most this many ticks at once
WAKE_S: Final = 10.0  # simulated seconds from a wake command to its agent online
POWER_ON_S: Final = 40.0  # ... and from power restored (a cold start)
SEEN_COMMAND_IDS: Final = 256
HEARTBEAT_S: Final = SensorsConfig.model_fields["heartbeat"].default


def open_model(scenario: Path) -> TwinModel:
    """The physics of one scenario file (ConfigError naming file:line if it is wrong)."""
    return Twin(load_scenario(scenario))


class LiveTwin:
    """The twin component of `config` (its `twin` section); see the module docstring."""

    def __init__(
        self,
        config: AgentConfig,
        model: TwinModel | None = None,
        *,
        tick_s: float = TICK_S,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if config.twin is None:
            raise ConfigError("the twin component needs a 'twin' section")
        self.config: TwinConfig = config.twin
        self.model = model if model is not None else open_model(self.config.scenario)
        self.speed = self.config.speed
        self.tick_s = tick_s
        self._clock, self._wall = clock, wall
        view = self.model.view()
        _check_nodes(self.config, view)
        self.session = Session(config.broker.settings_for("sensors"), component="sensors")
        self.topics = self.session.topics
        self.publisher = Publisher(
            self.session, Deadbands(), HEARTBEAT_S, capacity_wh=view.capacity_wh, clock=wall
        )
        self.machines = {
            node: PlayedMachine(
                node, config.broker.settings_for(node), config.telemetry, self._spawn, clock=clock
            )
            for node in self.config.nodes
        }
        self._lock = asyncio.Lock()  # one change of the twin at a time (driver, commands)
        self._group: asyncio.TaskGroup | None = None
        self._fans: FanProfileState | None = None
        self._seen_ids: collections.deque[str] = collections.deque(maxlen=SEEN_COMMAND_IDS)
        t = self.topics
        self.session.route_model(t.fans_profile_set(), FanProfileCommand.parse, self._on_fans)
        self.session.route(t.filter("power_output_set"), self._on_output)
        self.session.route(t.filter("node_power_set"), self._on_power)

    async def run(self) -> None:
        """Play the twin until cancelled; every played machine says `offline` on the way out."""
        async with asyncio.TaskGroup() as group:
            self._group = group
            group.create_task(self.session.run())
            group.create_task(self._drive())

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Machines' sessions and boots run in the component's group (stopped with it)."""
        if self._group is None:
            coroutine.close()
            raise RuntimeError("the twin is not running")
        return self._group.create_task(coroutine)

    # --- the driver ------------------------------------------------------------------------

    async def _drive(self) -> None:
        async with self._lock:
            self._start_machines(self.model.view())
            await self._publish_all()
        last = self._clock()
        while True:
            await asyncio.sleep(self.tick_s)
            now = self._clock()
            elapsed, last = min(now - last, MAX_STEP_TICKS * self.tick_s), now
            try:
                async with self._lock:
                    self.model.step(elapsed * self.speed)
                    await self._publish_all()
            except Exception:
                log.exception("twin step failed")

    def _start_machines(self, view: TwinView) -> None:
        for node, machine in self.machines.items():
            if view.machines[node].power == "awake":
                machine.start(f"awake at the start of scenario {self._scenario_name()}")
            else:
                reason = f"asleep at the start of scenario {self._scenario_name()}"
                self._spawn(machine.report("sleeping", reason))

    async def _publish_all(self) -> None:
        view = self.model.view()
        await self._follow_power(view)
        await self._publish_sensors(view)
        at = self._wall()
        for node, machine in self.machines.items():
            await machine.publish_telemetry(view.machines[node], at)

    async def _follow_power(self, view: TwinView) -> None:
        """Machines that lost power go dark; machines whose power came back start again."""
        for node, machine in self.machines.items():
            awake = view.machines[node].power == "awake"
            if machine.phase != "down" and not awake:
                await machine.stop("no power: its outlet on the station is off")
            elif machine.phase == "down" and awake:
                machine.boot("power restored: starting up", POWER_ON_S / self.speed)

    async def _publish_sensors(self, view: TwinView) -> None:
        at = self._wall()
        # The twin's station reading is whole: nothing may be merged from an earlier one (no
        # `remaining_min` means neither charging nor discharging, not "as before").
        self.publisher.station = StationReading()
        await self.publisher.put(
            StationReading(
                soc_pct=round(_clamp_pct(view.soc_pct), 2),
                watts_in=_watts(view.watts_in),
                watts_out=_watts(view.watts_out),
                solar_w=_watts(view.solar_w),
                remaining_min=None if view.remaining_min is None else round(view.remaining_min, 1),
                capacity_wh=view.capacity_wh,
                ac=view.ac_on,
                dc=view.dc_on,
                at=at,
                source="twin",
            )
        )
        for probe, celsius in ((INSIDE_PROBE, view.inside_c), (OUTSIDE_PROBE, view.outside_c)):
            await self.publisher.put(
                ClimateReading(probe=probe, temperature_c=round(celsius, 2), at=at, source="twin")
            )
        fans = FanProfileState(
            profile=view.fan_profile, duty_pct=_clamp_pct(view.fan_duty_pct), ts=at
        )
        if self._fans is None or (fans.profile, fans.duty_pct) != (
            self._fans.profile,
            self._fans.duty_pct,
        ):
            self._fans = fans
            await self.session.set_state(self.topics.fans_profile(), fans)

    # --- commands --------------------------------------------------------------------------

    def _first_time(self, command_id: str | None) -> bool:
        """False for a command id seen before (a QoS 1 redelivery: carried out already)."""
        if command_id is None:
            return True
        if command_id in self._seen_ids:
            return False
        self._seen_ids.append(command_id)
        return True

    async def _on_fans(self, _: Inbound, command: FanProfileCommand) -> None:
        if not self._first_time(command.id):
            return
        async with self._lock:
            self.model.set_fans(command.profile)
            log.info("fans %s", command.profile)
            self._fans = None  # the state reached goes out after every command, as the fans say
            await self._publish_sensors(self.model.view())

    async def _on_output(self, message: Inbound) -> None:
        match = self.topics.match(message.topic)
        output = _output_name(match.params.get("output") if match else None)
        command = OutputCommand.parse(message.payload)
        if not self._first_time(command.id):
            return
        async with self._lock:
            self.model.set_output(output, command.state == "on")
            log.info("station %s output %s", output, command.state)
            await self._publish_all()

    async def _on_power(self, message: Inbound) -> None:
        match = self.topics.match(message.topic)
        machine = self.machines.get(match.params.get("node", "") if match else "")
        if machine is None:
            return  # not a machine the twin plays
        command = PowerCommand.parse(message.payload)
        if not self._first_time(command.id):
            return
        async with self._lock:
            if command.state == "sleep":
                await self._sleep(machine, command.force)
            else:
                await self._wake(machine)

    async def _sleep(self, machine: PlayedMachine, force: bool) -> None:
        if machine.phase != "up":
            # Its agent is not online to hear it, as with a real Mac.
            log.info("sleep for %s ignored: it is %s", machine.node, machine.phase)
            return
        self.model.set_power(machine.node, "sleeping")
        await machine.sleep("sleep forced" if force else "sleep command (no jobs to drain)")

    async def _wake(self, machine: PlayedMachine) -> None:
        if machine.phase == "up":
            await machine.say_awake("wake command: already awake")
            return
        if machine.phase == "booting":
            log.info("wake of %s already in progress", machine.node)
            return
        self.model.set_power(machine.node, "awake")
        if self.model.view().machines[machine.node].power == "awake":
            machine.boot("wake command", WAKE_S / self.speed)
        else:
            reason = "no power: its outlet on the station is off"
            self._spawn(machine.report("unreachable", reason))

    def _scenario_name(self) -> str:
        return self.config.scenario.stem


def _check_nodes(config: TwinConfig, view: TwinView) -> None:
    unknown = [node for node in config.nodes if node not in view.machines]
    if unknown:
        raise ConfigError(
            f"twin.nodes: {', '.join(unknown)} not among the machines of scenario "
            f"{config.scenario} ({', '.join(view.machines)})"
        )


def _output_name(name: str | None) -> Literal["ac", "dc"]:
    if name == "ac":
        return "ac"
    if name == "dc":
        return "dc"
    raise PayloadError(f"no station output {name!r}: use ac or dc")


def _watts(value: float) -> float:
    return round(max(0.0, value), 1)


def _clamp_pct(value: float) -> float:
    return min(100.0, max(0.0, value))
