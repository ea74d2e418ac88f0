"""Fan drivers: what actually turns the fans when the fans component applies a profile.

A driver takes a profile and the duty % configured for it, acts, and returns the duty really
reached (what the board says, or what the driver knows it set); it raises FanDriverError with
the reason when it could not. `make_fan_driver` builds the one a `fans:` section names.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Final, Protocol, runtime_checkable

from aigloo_edge.errors import NotConnectedError, PayloadError, SensorError
from aigloo_edge.mqtt import Inbound, Session
from aigloo_edge.payloads import FanProfile, OutputCommand
from aigloo_edge.sensors.settings import FanMqttDriver, FansConfig

log = logging.getLogger(__name__)

MQTT_CONFIRM_TIMEOUT_S: Final = 5.0
COMMAND_TIMEOUT_S: Final = 10.0
DC_ON_DUTY: Final = 100.0  # fans on a switched 12 V output run at full speed
REASON_MAX: Final = 300


class FanDriverError(SensorError):
    """A fan driver could not apply a profile (board silent, command failed, no connection)."""


class FanDriver(Protocol):
    """Turns the fans. `apply` returns the duty % reached; raises FanDriverError if it failed."""

    name: str

    async def apply(self, profile: FanProfile, duty_pct: float) -> float: ...


@runtime_checkable
class ReportsFanState(Protocol):
    """A driver that also knows what the fans are doing (the last duty % the device said)."""

    def state(self) -> float | None:
        """The last duty % reported or set, None while unknown."""
        ...


@dataclass
class DryRunFanDriver:
    """Records each profile and reports its configured duty: for trying rules, the twin, tests."""

    name: str = "dry-run"
    applied: list[tuple[FanProfile, float]] = field(default_factory=list)

    async def apply(self, profile: FanProfile, duty_pct: float) -> float:
        self.applied.append((profile, duty_pct))
        log.info("dry-run fans driver: would run the fans %s at %g %%", profile, duty_pct)
        return duty_pct

    def state(self) -> float | None:
        return self.applied[-1][1] if self.applied else None


class MqttFanDriver:
    """A fan controller board that speaks MQTT (ESPHome, Tasmota).

    Each profile publishes `payload` rendered (`{duty}`, `{profile}`, `{on}` = ON/OFF) to
    `command_topic`. With a `state_topic`, the board's own report (a plain number, or the number
    at `state_path` in its JSON, dotted: `fan.speed`, `fans.0.duty`) confirms it: the duty
    reached is what the board says, and no report within the confirmation timeout is an error.
    Without one, the duty asked is taken as reached once the broker has the command.

    The fans run as the broker's `sensors` role, which may use only topics under
    `<base>/fans/driver/…`: configure the ESPHome/Tasmota board to command and report there
    (e.g. `aigloo/fans/driver/speed/set` and `aigloo/fans/driver/speed`).
    """

    name = "mqtt"

    def __init__(
        self,
        session: Session,
        settings: FanMqttDriver,
        *,
        confirm_timeout_s: float = MQTT_CONFIRM_TIMEOUT_S,
    ) -> None:
        self.session = session
        self.settings = settings
        self.confirm_timeout_s = confirm_timeout_s
        self._reported: float | None = None
        self._waiter: asyncio.Future[float] | None = None
        allowed = session.topics.tree("fans", "driver")[:-1]  # `<base>/fans/driver/`
        for topic in (settings.command_topic, settings.state_topic):
            if topic is not None and not topic.startswith(allowed):
                log.warning(
                    "fans mqtt topic %s is outside %s…: the sensors role may not use it",
                    topic,
                    allowed,
                )
        if settings.state_topic is not None:
            session.route(settings.state_topic, self._on_state)

    def render(self, profile: FanProfile, duty_pct: float) -> str:
        """The command payload: the template with `{duty}`, `{profile}` and `{on}` filled in."""
        values = {"duty": f"{duty_pct:g}", "profile": profile, "on": _on_off(profile)}
        text = self.settings.payload
        for key, value in values.items():
            text = text.replace("{" + key + "}", value)
        return text

    async def apply(self, profile: FanProfile, duty_pct: float) -> float:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[float] | None = None
        await self.session.wait_connected()
        if self.settings.state_topic is not None:
            waiter = self._waiter = loop.create_future()
        try:
            try:
                await self.session.publish(
                    self.settings.command_topic, self.render(profile, duty_pct)
                )
            except NotConnectedError as exc:
                raise FanDriverError(str(exc)) from exc
            if waiter is None:
                return duty_pct
            try:
                async with asyncio.timeout(self.confirm_timeout_s):
                    return await waiter
            except TimeoutError:
                raise FanDriverError(
                    f"the board did not confirm on {self.settings.state_topic} "
                    f"within {self.confirm_timeout_s:g} s"
                ) from None
        finally:
            if self._waiter is waiter:
                self._waiter = None

    def state(self) -> float | None:
        return self._reported

    async def _on_state(self, message: Inbound) -> None:
        duty = parse_duty(message.payload, self.settings.state_path)
        self._reported = duty
        # A retained report was there before our command: only a live one confirms it.
        waiter = self._waiter
        if not message.retain and waiter is not None and not waiter.done():
            waiter.set_result(duty)


class EcoflowDcFanDriver:
    """Fans on the power station's 12 V (DC) output: `off` switches it off, any other profile on.

    It publishes an OutputCommand on `power/dc/set`, which the sensor bridge carries out; the
    fans then run at full speed (100 %) or stop (0 %), whatever duty the profile names.
    """

    name = "ecoflow-dc"

    def __init__(self, session: Session) -> None:
        self.session = session
        self._reported: float | None = None

    async def apply(self, profile: FanProfile, duty_pct: float) -> float:
        on = profile != "off"
        command = OutputCommand(state="on" if on else "off", id=f"fans-{uuid.uuid4().hex[:12]}")
        await self.session.wait_connected()
        try:
            await self.session.publish(self.session.topics.power_output_set("dc"), command)
        except NotConnectedError as exc:
            raise FanDriverError(str(exc)) from exc
        self._reported = DC_ON_DUTY if on else 0.0
        return self._reported

    def state(self) -> float | None:
        return self._reported


@dataclass
class CommandFanDriver:
    """Runs the command line configured for the profile (no shell), within 10 s."""

    commands: dict[FanProfile, list[str]]
    timeout_s: float = COMMAND_TIMEOUT_S
    name: str = "command"

    async def apply(self, profile: FanProfile, duty_pct: float) -> float:
        argv = self.commands.get(profile)
        if not argv:
            raise FanDriverError(f"no command configured for profile {profile}")
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise FanDriverError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
        began = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout_s):
                _, stderr = await process.communicate()
        except TimeoutError:
            await _kill(process)
            raise FanDriverError(
                f"{argv[0]} did not finish within {self.timeout_s:g} s; killed"
            ) from None
        except asyncio.CancelledError:
            await _kill(process)
            raise
        if process.returncode != 0:
            lines = stderr.decode(errors="replace").strip().splitlines()
            last = lines[-1].strip() if lines else "(no error output)"
            raise FanDriverError(f"{argv[0]} exited {process.returncode}: {last}"[:REASON_MAX])
        log.debug("fans %s: %s took %.2f s", profile, argv[0], time.monotonic() - began)
        return duty_pct


def make_fan_driver(config: FansConfig, session: Session) -> FanDriver:
    """The driver a `fans:` section names (the config model guarantees its settings)."""
    if config.driver == "mqtt":
        assert config.mqtt is not None
        return MqttFanDriver(session, config.mqtt)
    if config.driver == "ecoflow-dc":
        return EcoflowDcFanDriver(session)
    if config.driver == "command":
        assert config.commands is not None
        return CommandFanDriver({p: list(argv) for p, argv in config.commands.items()})
    return DryRunFanDriver()


def parse_duty(raw: bytes, path: str = "") -> float:
    """A board's state as a duty %: a plain number, or the number at the dotted JSON `path`."""
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise PayloadError("fan state is not UTF-8 text") from exc
    value: object = text
    if path:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PayloadError(f"fan state is not JSON: {exc.msg}") from exc
        except (ValueError, RecursionError) as exc:  # a huge int literal, too deep a nesting
            raise PayloadError("fan state is not JSON this reader can take") from exc
        for key in path.removeprefix("$.").split("."):
            value = _step(value, key, path)
    duty = _number(value)
    if duty is None:
        where = f"at {path!r}" if path else "payload"
        raise PayloadError(f"fan state {where} is not a number")
    if not 0 <= duty <= 100:
        raise PayloadError(f"fan state {duty:g} is not a duty % (0 to 100)")
    return duty


def _step(value: object, key: str, path: str) -> object:
    if isinstance(value, dict) and key in value:
        return value[key]
    if isinstance(value, list) and key.isdigit() and int(key) < len(value):
        return value[int(key)]
    raise PayloadError(f"fan state has no {key!r} (path {path!r})")


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _on_off(profile: FanProfile) -> str:
    return "OFF" if profile == "off" else "ON"


async def _kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    with contextlib.suppress(Exception):
        await process.wait()
