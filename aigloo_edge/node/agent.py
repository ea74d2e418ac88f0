"""The node agent: telemetry, info, availability and sleep for one machine."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from typing import Any

from aigloo_edge.config import AgentConfig
from aigloo_edge.mqtt import Inbound, Session
from aigloo_edge.node.collectors.psutil_source import PsutilSource
from aigloo_edge.node.collectors.sources import apple_sources
from aigloo_edge.node.info import build_info
from aigloo_edge.node.jobs import JobTracker
from aigloo_edge.node.power import PowerDriver, PowerError, make_driver
from aigloo_edge.node.telemetry import compose, merge_samples, moved_fields
from aigloo_edge.payloads import NodeTelemetry, PowerCommand, PowerState, PowerStateValue
from aigloo_edge.topics import Topics

log = logging.getLogger(__name__)
SEEN_COMMAND_IDS = 64


def node_session(config: AgentConfig) -> Session:
    """The machine's own session: its node user, availability on `nodes/<id>/availability`."""
    settings = config.broker.settings_for(config.node)
    availability = Topics(settings.base_topic).node_availability(config.node)
    return Session(settings, component=config.node, availability_topic=availability)


class NodeAgent:
    """Publishes telemetry and info, and carries out `sleep`/`wake` for this node."""

    def __init__(
        self,
        config: AgentConfig,
        session: Session,
        *,
        jobs: JobTracker | None = None,
        driver: PowerDriver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.session = session
        self.topics = session.topics
        self.node = config.node
        self.jobs = jobs or JobTracker()
        self.driver = driver or make_driver(config.power)
        self.models: list[str] = []
        self.last_telemetry: NodeTelemetry | None = None
        self._clock = clock
        self._psutil = PsutilSource(config.telemetry.mounts)
        self._apple = apple_sources(config.telemetry)
        self._seen_ids: collections.deque[str] = collections.deque(maxlen=SEEN_COMMAND_IDS)
        self._power_task: asyncio.Task[None] | None = None
        session.route_model(
            self.topics.node_power_set(self.node), PowerCommand.parse, self._on_power
        )
        session.on_connect(self._on_connect)
        if self.driver.name == "dry-run":
            log.warning(
                "power driver dry-run: sleep is recorded, not carried out",
                extra={"node": self.node},
            )

    async def run(self) -> None:
        """Collect and publish until cancelled (the session runs beside it)."""
        async with asyncio.TaskGroup() as group:
            for source in self._apple:
                group.create_task(source.run())
            group.create_task(self._telemetry_loop())

    # --- telemetry ---------------------------------------------------------------------------

    async def _telemetry_loop(self) -> None:
        """Sample every tick; publish when the interval is up or a reading passes its deadband."""
        telemetry = self.config.telemetry
        tick = min(telemetry.interval_s, 1.0)
        last_sent_at = float("-inf")
        while True:
            try:
                sample = await self.sample()
                due = self._clock() - last_sent_at >= telemetry.interval_s - tick / 2
                moved = self.last_telemetry is None or moved_fields(
                    self.last_telemetry, sample, telemetry.deadbands
                )
                if due or moved:
                    await self.session.set_state(
                        self.topics.node_telemetry(self.node), sample, expiry_s=telemetry.expiry_s
                    )
                    self.last_telemetry, last_sent_at = sample, self._clock()
            except Exception:
                log.exception("telemetry sample failed", extra={"node": self.node})
            await asyncio.sleep(tick)

    async def sample(self) -> NodeTelemetry:
        base: dict[str, Any] = await asyncio.to_thread(self._psutil.sample)
        base["infer_queue"] = self.jobs.running
        base["infer_tokens_per_s"] = round(self.jobs.tokens_per_s(), 2)
        apple = merge_samples([source.latest for source in self._apple])
        return compose(self.node, base, apple)

    # --- info and power ------------------------------------------------------------------------

    async def _on_connect(self) -> None:
        """Connected means awake: a node that slept comes back through here."""
        await self.publish_info()
        if self._power_task is None or self._power_task.done():
            self.jobs.resume()
            await self._set_power("awake", "agent connected")

    async def publish_info(self) -> None:
        """Re-publish `info` (e.g. when the models served change)."""
        info = await asyncio.to_thread(build_info, self.config, self.models)
        await self.session.set_state(self.topics.node_info(self.node), info)

    async def _on_power(self, _: Inbound, command: PowerCommand) -> None:
        if command.id is not None:
            if command.id in self._seen_ids:
                log.info("power command %s already handled", command.id, extra={"node": self.node})
                return
            self._seen_ids.append(command.id)
        if command.state == "wake":
            # A sleeping machine never hears this (its waker does); hearing it means awake.
            self.jobs.resume()
            await self._set_power("awake", "wake command: already awake")
            return
        if self._power_task is not None and not self._power_task.done():
            log.info("sleep already in progress", extra={"node": self.node})
            return
        self._power_task = asyncio.create_task(self._sleep(command.force))

    async def _sleep(self, force: bool) -> None:
        running = self.jobs.running
        if force:
            self.jobs.accepting = False
            reason = f"sleep forced with {running} jobs running"
        elif await self.jobs.drain(self.config.power.drain_timeout_s):
            reason = f"sleep after draining {running} jobs"
        else:
            reason = f"sleep: drain timed out with {self.jobs.running} jobs still running"
        await self._set_power("sleeping", reason)
        try:
            await self.driver.sleep()
        except PowerError as exc:
            log.warning("sleep failed: %s", exc, extra={"node": self.node})
            self.jobs.resume()
            await self._set_power("awake", f"sleep failed: {exc}")

    async def _set_power(self, state: PowerStateValue, reason: str) -> None:
        log.info("power %s: %s", state, reason, extra={"node": self.node})
        await self.session.set_state(
            self.topics.node_power(self.node), PowerState(state=state, reason=reason)
        )
