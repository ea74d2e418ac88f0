"""The operator tools' connection: every message under the base topic into a RigState."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Final

from aigloo_edge.errors import NotConnectedError
from aigloo_edge.mqtt import Inbound, MqttSettings, Session
from aigloo_edge.ops.state import RigState
from aigloo_edge.runtime import cancel_and_wait

CONNECT_S: Final = 10.0
QUIET_S: Final = 0.4  # the retained burst after SUBACK is over once the broker goes quiet
SNAPSHOT_MAX_S: Final = 5.0

OnChange = Callable[[str, str], None]  # (contract row, topic)


def operator_session(settings: MqttSettings, tool: str) -> Session:
    """A short-lived client: no availability of its own, nothing left retained."""
    return Session(settings, component=f"{tool}-{uuid.uuid4().hex[:8]}", announce=False)


class Watcher:
    """Feeds a RigState from the broker and tells `on_change` what changed."""

    def __init__(self, session: Session, state: RigState, on_change: OnChange | None = None):
        self.session = session
        self.state = state
        self.on_change = on_change
        self.last_message = time.monotonic()
        session.route(session.topics.all(), self._received)

    async def _received(self, message: Inbound) -> None:
        self.last_message = time.monotonic()
        row = self.state.apply(message.topic, message.payload, time.time())
        if row is not None and self.on_change is not None:
            self.on_change(row, message.topic)

    async def connected(self) -> None:
        try:
            await self.session.wait_connected(CONNECT_S)
        except TimeoutError:
            s = self.session.settings
            raise NotConnectedError(
                f"no broker at {s.host}:{s.port} as {s.username!r} within {CONNECT_S:g} s"
            ) from None
        await self.session.sync_subscriptions()

    async def settled(self, quiet_s: float = QUIET_S, max_s: float = SNAPSHOT_MAX_S) -> None:
        """Wait until the retained messages have arrived: quiet for `quiet_s`, or `max_s`."""
        deadline = time.monotonic() + max_s
        self.last_message = time.monotonic()
        while time.monotonic() < deadline:
            quiet_for = time.monotonic() - self.last_message
            if quiet_for >= quiet_s:
                return
            await asyncio.sleep(quiet_s - quiet_for)


async def snapshot(settings: MqttSettings) -> RigState:
    """The rig as its retained messages describe it right now."""
    session = operator_session(settings, "status")
    watcher = Watcher(session, RigState(session.topics))
    running = asyncio.create_task(session.run())
    try:
        await watcher.connected()
        await watcher.settled()
    finally:
        await cancel_and_wait(running)
    return watcher.state
