"""Actuators for resilience tests that count exactly what they carried out, per command id."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

from aigloo_edge.mqtt import Inbound, Session
from aigloo_edge.payloads import OutputCommand
from aigloo_edge.sensors.readings import OutputName


@dataclass
class RecordingSwitch:
    """An OutputSwitch that records every switching with the id of the command being handled.

    `watch(session, topic_filter)` must be called before the SensorBridge is built on that
    session: its route then runs first for each message and notes the command's id, which the
    bridge's `set_output` call that follows is recorded under.
    """

    applied: collections.Counter[str] = field(default_factory=collections.Counter)
    received: collections.Counter[str] = field(default_factory=collections.Counter)
    switched: list[tuple[OutputName, bool]] = field(default_factory=list)
    _current: str | None = None

    def watch(self, session: Session, topic_filter: str) -> None:
        session.route(topic_filter, self._note)

    async def _note(self, message: Inbound) -> None:
        command_id = OutputCommand.parse(message.payload).id
        self._current = command_id
        if command_id is not None:
            self.received[command_id] += 1

    async def set_output(self, output: OutputName, on: bool) -> None:
        self.switched.append((output, on))
        if self._current is not None:
            self.applied[self._current] += 1

    @property
    def duplicates_delivered(self) -> int:
        """Deliveries of an id beyond its first (redeliveries and the publisher's re-sends)."""
        return sum(count - 1 for count in self.received.values())
