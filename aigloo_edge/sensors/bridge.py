"""The `sensors` component: run the configured sources into one publisher, and carry out the
station's output commands (`power/<output>/set`) through the source that can switch them."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from aigloo_edge.errors import PayloadError, SensorError
from aigloo_edge.mqtt import Inbound, Session
from aigloo_edge.mqtt.backoff import Backoff
from aigloo_edge.payloads import OutputCommand
from aigloo_edge.sensors.publisher import Publisher
from aigloo_edge.sensors.readings import OutputName, OutputSwitch, Sink
from aigloo_edge.sensors.settings import SensorsConfig

log = logging.getLogger(__name__)
SEEN_COMMAND_IDS = 256
RESTART_INITIAL_S, RESTART_MAX_S = 1.0, 60.0


class Source(Protocol):
    async def run(self, sink: Sink) -> None: ...


class SensorBridge:
    def __init__(
        self,
        session: Session,
        config: SensorsConfig,
        sources: dict[str, Source],
        switch: OutputSwitch | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.session = session
        self.sources = sources
        self.switch = switch
        capacity = _capacity(config)
        self.publisher = Publisher(
            session, config.deadbands, config.heartbeat, capacity_wh=capacity, clock=clock
        )
        self._done_ids: collections.deque[str] = collections.deque(maxlen=SEEN_COMMAND_IDS)
        session.route(session.topics.filter("power_output_set"), self._on_output)

    async def run(self) -> None:
        runs: list[Coroutine[Any, Any, None]] = [self.publisher.run()]
        runs += [self._keep_running(name, source) for name, source in self.sources.items()]
        async with asyncio.TaskGroup() as group:
            for run in runs:
                group.create_task(run)

    async def _keep_running(self, name: str, source: Source) -> None:
        """A source that fails is logged and started again (with backoff); the others go on."""
        backoff = Backoff(RESTART_INITIAL_S, RESTART_MAX_S)
        while True:
            try:
                await source.run(self.publisher.put)
                log.warning("source %s stopped; starting it again", name)
            except Exception:
                log.exception("source %s failed; starting it again", name, extra={"source": name})
            await asyncio.sleep(backoff.next_delay())

    def _output_of(self, topic: str) -> OutputName:
        match = self.session.topics.match(topic)
        return _output_name(match.params.get("output") if match else None)

    async def _on_output(self, message: Inbound) -> None:
        command = OutputCommand.parse(message.payload)
        output = self._output_of(message.topic)
        if command.id is not None and command.id in self._done_ids:
            return  # a redelivered command: carried out already
        if self.switch is None:
            raise PayloadError("no station source here can switch outputs (mqtt_map reads only)")
        try:
            await self.switch.set_output(output, command.state == "on")
        except SensorError as exc:
            log.warning("%s %s not done: %s", output, command.state, exc)
            await self.session.reject(message.topic, str(exc), "handler_error")
            return
        if command.id is not None:
            self._done_ids.append(command.id)
        log.info("station %s output switched %s", output, command.state)


def _output_name(topic_output: str | None) -> OutputName:
    if topic_output == "ac":
        return "ac"
    if topic_output == "dc":
        return "dc"
    raise PayloadError(f"no station output {topic_output!r}: use ac or dc")


def _capacity(config: SensorsConfig) -> float | None:
    for section in (config.ecoflow_ble, config.ecoflow_cloud, config.mqtt_map):
        if section is not None and section.capacity_wh is not None:
            return section.capacity_wh
    return None
