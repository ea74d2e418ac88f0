"""The fans component: turns the fans to the profile asked on `fans/profile/set`.

The rules engine (or Home Assistant, or a phone) only asks for a profile; this component applies
it through a driver (`fan_drivers`) and publishes the state actually reached on `fans/profile`
(retained, re-published after reconnects). On start it applies the configured `initial`
profile. Profiles are applied one at a time by `run()`, never inside the message handler (an
MQTT driver waits for its board's report, which arrives through the same session); commands
that arrive while one is being applied are coalesced: only the latest is applied next.

A command with an `id` that was already applied (a QoS 1 redelivery) is not applied twice. A
driver failure is logged and reported on `bridge/<component>/rejected` (kind `handler_error`),
and `fans/profile` keeps saying what is really in effect, never the profile that failed.

The broker's `sensors` role may write only its own `bridge/sensors/#`: run this component on
that role's session (component `sensors`), shared with the sensor bridge when both run.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass
from typing import Final

from aigloo_edge.mqtt import Inbound, Session
from aigloo_edge.payloads import FanProfile, FanProfileCommand, FanProfileState
from aigloo_edge.sensors.fan_drivers import (
    FanDriver,
    FanDriverError,
    make_fan_driver,
)
from aigloo_edge.sensors.settings import FansConfig

log = logging.getLogger(__name__)

SEEN_COMMAND_IDS: Final = 64


@dataclass(frozen=True, slots=True)
class _Request:
    profile: FanProfile
    id: str | None
    why: str


class FanController:
    """Applies fan profiles through a driver and reports the state reached; see the module."""

    def __init__(
        self, session: Session, config: FansConfig, *, driver: FanDriver | None = None
    ) -> None:
        self.session = session
        self.config = config
        self.topics = session.topics
        self.driver = driver or make_fan_driver(config, session)
        self.state: FanProfileState | None = None
        self.failures = 0
        self._pending: _Request | None = None
        self._wake = asyncio.Event()
        self._seen_ids: collections.deque[str] = collections.deque(maxlen=SEEN_COMMAND_IDS)
        session.route_model(
            self.topics.fans_profile_set(), FanProfileCommand.parse, self._on_command
        )
        if self.driver.name == "dry-run":
            log.warning("fans driver dry-run: profiles are recorded, the fans are not turned")

    async def run(self) -> None:
        """Apply the initial profile, then each profile asked, until cancelled.

        Run it beside `session.run()`; it does not need the connection to start (a command
        driver turns the fans offline too; MQTT drivers wait for the connection).
        """
        if self._pending is None:
            self._submit(_Request(self.config.initial, None, "initial profile"))
        while True:
            await self._wake.wait()
            self._wake.clear()
            request, self._pending = self._pending, None
            if request is not None:
                await self._apply(request)

    async def _on_command(self, _: Inbound, command: FanProfileCommand) -> None:
        if command.id is not None:
            if command.id in self._seen_ids:
                log.info("fan command %s already handled", command.id)
                return
            self._seen_ids.append(command.id)
        self._submit(_Request(command.profile, command.id, "command"))

    def _submit(self, request: _Request) -> None:
        if self._pending is not None:
            log.info(
                "fan profile %s (%s) superseded by %s before it was applied",
                self._pending.profile,
                self._pending.why,
                request.profile,
            )
        self._pending = request
        self._wake.set()

    async def _apply(self, request: _Request) -> None:
        duty = self.config.duty[request.profile]
        try:
            reached = await self.driver.apply(request.profile, duty)
            state = FanProfileState(profile=request.profile, duty_pct=reached)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failures += 1
            if request.id is not None and request.id in self._seen_ids:
                self._seen_ids.remove(request.id)  # not applied: a retry may apply it
            reason = f"fans driver {self.driver.name} could not apply {request.profile}: {exc}"
            if isinstance(exc, FanDriverError):
                log.warning("%s", reason)
            else:
                log.exception("%s", reason)
            await self.session.reject(self.topics.fans_profile_set(), reason, "handler_error")
            return
        log.info("fans %s at %g %% (%s)", request.profile, reached, request.why)
        self.state = state
        await self.session.set_state(self.topics.fans_profile(), state)
