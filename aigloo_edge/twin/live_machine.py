"""One Mac the live twin plays: its agent's session, `info`, `telemetry` and `power`.

While the machine is up, a Session as the machine's own broker user, with its last will on
`nodes/<id>/availability`, says what its real agent would: `info` (hardware marked "twin", no
models), `telemetry` from the twin's view at the agent's interval and deadbands, `power: awake`.
Asleep or without power the machine has no session at all, so its availability is `offline`
exactly as for a real Mac. A state the machine must report while its agent is down (`waking`,
`unreachable`; the Mini's waker says these for a real Mac) goes out through a short-lived
session as the same user, whose own availability is its bridge topic
(`bridge/<id>/availability`): the node roles may write nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final, Literal

from aigloo_edge import __version__
from aigloo_edge.config import TelemetryConfig
from aigloo_edge.errors import NotConnectedError
from aigloo_edge.mqtt import MqttSettings, Session
from aigloo_edge.node.telemetry import moved_fields
from aigloo_edge.payloads import (
    NodeBattery,
    NodeInfo,
    NodePower,
    NodeTelemetry,
    PowerState,
    PowerStateValue,
    Role,
)
from aigloo_edge.runtime import cancel_and_wait
from aigloo_edge.topics import Topics
from aigloo_edge.twin.interface import MachineView
from aigloo_edge.twin.readings import thermal_pressure

log = logging.getLogger(__name__)

Phase = Literal["up", "booting", "down"]
Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]
GIB: Final = 1024**3
REPORT_TIMEOUT_S: Final = 10.0
# Memory in use (an assumption, for the dashboards): macOS and the agent idle; a model loaded.
MEMORY_PCT: Final = {"idle": 20.0, "inference": 70.0}


@dataclass(frozen=True, slots=True)
class Hardware:
    name: str
    cpu_cores: int
    memory_gb: int


# The rig's Macs (the brief's table); cores are the base chips' (M3 Ultra 28, M1 Max 10, M4 10).
HARDWARE: Final = {
    "studio": Hardware("Mac Studio (M3 Ultra)", 28, 256),
    "mbp": Hardware("MacBook Pro (M1 Max)", 10, 64),
    "mini": Hardware("Mac mini (M4)", 10, 16),
    "air": Hardware("MacBook Air (M4)", 10, 16),
}
OTHER_MAC: Final = Hardware("Mac", 8, 16)
ROLES: Final[dict[str, Role]] = {"studio": "studio", "mbp": "mbp", "mini": "mini", "air": "air"}


def info_of(node: str, hardware: Hardware) -> NodeInfo:
    """What the machine's agent would say it is, marked as the twin's."""
    return NodeInfo(
        node=node,
        role=ROLES.get(node, "other"),
        hostname=f"{node}-twin",
        hardware=f"{hardware.name} — twin",
        os="macOS",
        os_version="twin",
        version=__version__,
        cpu_cores=hardware.cpu_cores,
        memory_bytes=hardware.memory_gb * GIB,
        components=["twin"],
        models=[],
    )


def telemetry_of(view: MachineView, hardware: Hardware, at: float) -> NodeTelemetry:
    """The machine's telemetry as its agent would publish it (at `at`, Unix seconds)."""
    total = hardware.memory_gb * GIB
    memory_pct = MEMORY_PCT[view.load]
    used = int(total * memory_pct / 100)
    battery = None
    if view.battery_pct is not None:
        battery = NodeBattery(soc_pct=_pct(view.battery_pct), plugged=bool(view.plugged))
    # The wall draw is the system's power while it hangs on the station; a laptop on its own
    # battery takes nothing from the station, and the view does not say what it uses then.
    on_station = view.plugged is not False
    return NodeTelemetry(
        node=view.node,
        cpu_pct=_pct(view.cpu_pct),
        memory_used_bytes=used,
        memory_available_bytes=total - used,
        memory_pct=memory_pct,
        battery=battery,
        temperatures_c={"core": round(view.core_c, 2)},
        power=NodePower(system_w=round(view.wall_w, 2)) if on_station else None,
        thermal_pressure=thermal_pressure(view.core_c),
        ts=at,
    )


def _pct(value: float) -> float:
    return round(min(100.0, max(0.0, value)), 2)


class PlayedMachine:
    """One played Mac's agent: up (a session), booting, or down (no session); see the module."""

    def __init__(
        self,
        node: str,
        settings: MqttSettings,
        telemetry: TelemetryConfig,
        spawn: Spawn,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node = node
        self.settings = settings
        self.topics = Topics(settings.base_topic)
        self.telemetry = telemetry
        self.hardware = HARDWARE.get(node, OTHER_MAC)
        self.phase: Phase = "down"
        self.session: Session | None = None
        self._spawn = spawn
        self._clock = clock
        self._task: asyncio.Task[None] | None = None  # the session's run, or the boot
        self._last: NodeTelemetry | None = None
        self._last_sent_at = -math.inf
        self._log = {"node": node}

    # --- up and down ---------------------------------------------------------------------

    def start(self, reason: str) -> None:
        """Its agent comes online now: availability, `info`, `power: awake` (`reason`)."""
        session = Session(
            self.settings,
            component=self.node,
            availability_topic=self.topics.node_availability(self.node),
        )

        async def hello() -> None:  # on every (re)connect, as the real agent does
            await session.set_state(
                self.topics.node_info(self.node), info_of(self.node, self.hardware)
            )
            await self._say(session, "awake", reason)

        session.on_connect(hello)
        self.session, self._last, self._last_sent_at = session, None, -math.inf
        self.phase = "up"
        self._task = self._spawn(session.run())
        log.info("%s up: %s", self.node, reason, extra=self._log)

    def boot(self, reason: str, delay_s: float) -> None:
        """Report `waking`, then start the agent after `delay_s` of wall time."""
        self.phase = "booting"
        self._task = self._spawn(self._boot(reason, delay_s))

    async def _boot(self, reason: str, delay_s: float) -> None:
        await self.report("waking", reason)
        await asyncio.sleep(delay_s)
        self.start(f"{reason}: booted")

    async def sleep(self, reason: str) -> None:
        """`power: sleeping`, then the session ends (availability `offline`)."""
        if self.session is not None:
            await self._say(self.session, "sleeping", reason)
        await self.stop(reason)

    async def stop(self, reason: str) -> None:
        """The machine goes dark: its session (or its boot) ends without a word of power."""
        task, self._task, self.session, self.phase = self._task, None, None, "down"
        if task is not None:
            log.info("%s down: %s", self.node, reason, extra=self._log)
            await cancel_and_wait(task)

    async def say_awake(self, reason: str) -> None:
        if self.session is not None:
            await self._say(self.session, "awake", reason)

    async def report(self, state: PowerStateValue, reason: str) -> None:
        """Say `state` on its power topic while its agent is down (see the module docstring)."""
        # A one-shot reporter, not the node's agent: it must leave no availability behind.
        reporter = Session(self.settings, component=self.node, announce=False)
        task = asyncio.create_task(reporter.run())
        try:
            payload = PowerState(state=state, reason=reason)
            await reporter.publish(
                self.topics.node_power(self.node), payload, retain=True, timeout=REPORT_TIMEOUT_S
            )
            log.info("%s %s: %s", self.node, state, reason, extra=self._log)
        except NotConnectedError as exc:
            log.warning("%s %s not reported: %s", self.node, state, exc, extra=self._log)
        finally:
            await cancel_and_wait(task)

    async def _say(self, session: Session, state: PowerStateValue, reason: str) -> None:
        await session.set_state(
            self.topics.node_power(self.node), PowerState(state=state, reason=reason)
        )

    # --- telemetry -----------------------------------------------------------------------

    async def publish_telemetry(self, view: MachineView, at: float) -> None:
        """Publish when the interval is up or a reading passed its deadband (as the agent)."""
        session = self.session
        if self.phase != "up" or session is None or not session.is_connected:
            return
        sample = telemetry_of(view, self.hardware, at)
        config = self.telemetry
        due = self._clock() - self._last_sent_at >= config.interval_s
        moved = self._last is None or moved_fields(self._last, sample, config.deadbands)
        if due or moved:
            topic = self.topics.node_telemetry(self.node)
            await session.set_state(topic, sample, expiry_s=config.expiry_s)
            self._last, self._last_sent_at = sample, self._clock()
