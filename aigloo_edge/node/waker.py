"""The waker (on the Mini): wakes sleeping peers with Wake-on-LAN and reports how it went.

On `wake` for a target that is offline: send the magic packet, publish `waking`, then `awake`
once the target's agent comes online, or `unreachable` (with the reason) after the timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import wakeonlan

from aigloo_edge.config import WakerConfig, WakeTarget
from aigloo_edge.mqtt import Inbound, Session
from aigloo_edge.payloads import (
    PowerCommand,
    PowerState,
    PowerStateValue,
    parse_availability,
)

log = logging.getLogger(__name__)
SendPacket = Callable[[WakeTarget], None]


def send_magic_packet(target: WakeTarget) -> None:
    """Broadcast the Wake-on-LAN magic packet (6 bytes of 0xFF, then the MAC 16 times) over UDP."""
    wakeonlan.wake(target.mac, host=target.broadcast, port=target.port)


class Waker:
    """Carries out `wake` for the configured targets, through the node's session."""

    def __init__(
        self, session: Session, config: WakerConfig, send: SendPacket = send_magic_packet
    ) -> None:
        self.session = session
        self.topics = session.topics
        self.targets = config.targets
        self._send = send
        self._online: dict[str, asyncio.Event] = {node: asyncio.Event() for node in self.targets}
        self._pending: dict[str, asyncio.Task[None]] = {}
        session.route(self.topics.filter("node_power_set"), self._on_command)
        session.route(self.topics.filter("node_availability"), self._on_availability)

    async def _on_availability(self, message: Inbound) -> None:
        node = self._target_of(message.topic)
        if node is None:
            return
        if parse_availability(message.payload):
            self._online[node].set()
        else:
            self._online[node].clear()

    async def _on_command(self, message: Inbound) -> None:
        node = self._target_of(message.topic)
        if node is None:
            return  # not a machine this waker is configured for
        command = PowerCommand.parse(message.payload)
        if command.state != "wake" or self._online[node].is_set():
            return  # the node itself handles sleep, and wake while it is up
        if node in self._pending and not self._pending[node].done():
            log.info("wake of %s already in progress", node, extra={"node": node})
            return
        self._pending[node] = asyncio.create_task(self._wake(node, self.targets[node]))

    async def _wake(self, node: str, target: WakeTarget) -> None:
        try:
            await asyncio.to_thread(self._send, target)
        except OSError as exc:
            await self._report(node, "unreachable", f"magic packet not sent: {exc.strerror}")
            return
        await self._report(node, "waking", f"magic packet sent to {target.mac}")
        try:
            async with asyncio.timeout(target.timeout_s):
                await self._online[node].wait()
        except TimeoutError:
            reason = f"not online {target.timeout_s:g}s after the magic packet to {target.mac}"
            await self._report(node, "unreachable", reason)
            return
        await self._report(node, "awake", "online after Wake-on-LAN")

    async def _report(self, node: str, state: PowerStateValue, reason: str) -> None:
        level = logging.WARNING if state == "unreachable" else logging.INFO
        log.log(level, "%s %s: %s", node, state, reason, extra={"node": node})
        # Plain retained publish, not set_state: the target owns its power state once it is up.
        await self.session.publish(
            self.topics.node_power(node), PowerState(state=state, reason=reason), retain=True
        )

    def _target_of(self, topic: str) -> str | None:
        match = self.topics.match(topic)
        node = match.params.get("node") if match else None
        return node if node in self.targets else None
