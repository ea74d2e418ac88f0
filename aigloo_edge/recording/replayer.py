"""`aigloo replay`: re-publish a recording at its own pace (or faster), optionally elsewhere.

Each message goes out with its recorded payload bytes, QoS, retain flag and expiry, so replaying
a recording restores the retained state it saw. `BaseMove` moves the recording's base topic (a
sandbox base leaves the live rig untouched; topics outside the recorded base are then skipped).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from paho.mqtt.client import topic_matches_sub

from aigloo_edge.errors import ConfigError
from aigloo_edge.mqtt import MqttSettings, Session
from aigloo_edge.recording.jsonl import BadLine, Recorded, read_recordings
from aigloo_edge.runtime import cancel_and_wait
from aigloo_edge.topics import validate_base

log = logging.getLogger(__name__)

CONNECT_S: Final = 10.0


@dataclass(frozen=True, slots=True)
class BaseMove:
    """Publish what was recorded under base `old` under base `new` instead."""

    old: str
    new: str

    def __post_init__(self) -> None:
        validate_base(self.old, what="recorded base topic")
        validate_base(self.new)

    def topic(self, recorded: str) -> str | None:
        """The topic to publish `recorded` on, or None if it is outside the recorded base."""
        if recorded == self.old or recorded.startswith(f"{self.old}/"):
            return self.new + recorded[len(self.old) :]
        return None


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    speed: float | None = 1.0  # 1: the recorded pace, 10: ten times faster, None: no waiting
    topic_filters: tuple[str, ...] = ()  # MQTT filters on the recorded topics; () means all
    move: BaseMove | None = None


@dataclass
class ReplayReport:
    published: int = 0
    filtered: int = 0  # not matching the plan's topic filters
    outside_base: int = 0
    bad_lines: list[str] = field(default_factory=list)
    backwards: int = 0  # messages recorded before the one published just before them
    first_t: float | None = None  # the earliest and latest recorded times published
    last_t: float | None = None
    previous_t: float | None = None
    wall_s: float = 0.0

    @property
    def skipped(self) -> int:
        return self.filtered + self.outside_base + len(self.bad_lines)

    @property
    def recorded_s(self) -> float:
        if self.first_t is None or self.last_t is None:
            return 0.0
        return self.last_t - self.first_t

    def count_published(self, t: float) -> None:
        if self.previous_t is not None and t < self.previous_t:
            self.backwards += 1
        self.first_t = t if self.first_t is None else min(self.first_t, t)
        self.last_t = t if self.last_t is None else max(self.last_t, t)
        self.previous_t = t
        self.published += 1


class Pacer:
    """Waits until each message's moment: its recorded offset from the first, over `speed`.

    Deadlines count from the first message, so time spent publishing never adds up as drift.
    """

    def __init__(
        self,
        speed: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if speed is not None and speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._clock = clock
        self._sleep = sleep
        self._origin: tuple[float, float] | None = None  # (recorded t, clock) of the first

    async def wait_until(self, t: float) -> None:
        if self.speed is None:
            return
        if self._origin is None:
            self._origin = (t, self._clock())
            return
        recorded_start, wall_start = self._origin
        delay = wall_start + (t - recorded_start) / self.speed - self._clock()
        if delay > 0:
            await self._sleep(delay)


async def replay_files(
    settings: MqttSettings,
    paths: Sequence[Path],
    plan: ReplayPlan,
    report: ReplayReport | None = None,
) -> ReplayReport:
    """Replay several recordings as one, in the order given (oldest first)."""
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise ConfigError(f"no such recording: {', '.join(missing)}")
    return await replay_recording(settings, read_recordings(paths), plan, report)


async def replay_recording(
    settings: MqttSettings,
    messages: Iterable[Recorded | BadLine],
    plan: ReplayPlan,
    report: ReplayReport | None = None,
) -> ReplayReport:
    """Publish `messages` as `plan` says; `report` (if given) is filled in as it goes, so a
    cancelled replay still tells how far it got."""
    report = report if report is not None else ReplayReport()
    session = Session(_session_settings(settings, plan), component=f"replay-{uuid.uuid4().hex[:8]}")
    running = asyncio.create_task(session.run())
    try:
        await session.wait_connected(CONNECT_S)
        started = time.monotonic()
        try:
            await _publish_all(session, messages, plan, report)
        finally:
            report.wall_s = time.monotonic() - started
    finally:
        await cancel_and_wait(running)
    return report


def _session_settings(settings: MqttSettings, plan: ReplayPlan) -> MqttSettings:
    """The replayer's own availability and health go where it publishes (the sandbox)."""
    if plan.move is None:
        return settings
    return settings.model_copy(update={"base_topic": plan.move.new})


async def _publish_all(
    session: Session,
    messages: Iterable[Recorded | BadLine],
    plan: ReplayPlan,
    report: ReplayReport,
) -> None:
    pacer = Pacer(plan.speed)
    for item in messages:
        destination = _destination(item, plan, report)
        if destination is None:
            continue
        message, topic = destination
        await pacer.wait_until(message.t)
        await session.publish(
            topic,
            message.payload,
            qos=message.qos,
            retain=message.retain,
            expiry_s=message.expiry_s,
        )
        report.count_published(message.t)


def _destination(
    item: Recorded | BadLine, plan: ReplayPlan, report: ReplayReport
) -> tuple[Recorded, str] | None:
    """The message and the topic to publish it on, or None (counted) when it is skipped."""
    if isinstance(item, BadLine):
        log.warning("skipped %s", item.describe())
        report.bad_lines.append(item.describe())
        return None
    if plan.topic_filters and not any(topic_matches_sub(f, item.topic) for f in plan.topic_filters):
        report.filtered += 1
        return None
    topic = item.topic if plan.move is None else plan.move.topic(item.topic)
    if topic is None:
        report.outside_base += 1
        return None
    return item, topic


def summary_lines(report: ReplayReport) -> list[str]:
    """What a replay did, for people: published, skipped (and why), how long."""
    messages = "message" if report.published == 1 else "messages"
    lines = [
        f"published {report.published} {messages} in {report.wall_s:.1f} s "
        f"(recorded over {report.recorded_s:.1f} s); skipped {report.skipped}"
    ]
    reasons = {
        "bad lines": len(report.bad_lines),
        "not matching --topic": report.filtered,
        "outside the recorded base": report.outside_base,
    }
    if report.skipped:
        lines[0] += ": " + ", ".join(f"{n} {why}" for why, n in reasons.items() if n)
    if report.backwards:
        lines.append(
            f"{report.backwards} messages were recorded before the one replayed before them: "
            "give rotated files oldest first (FILE.2 FILE.1 FILE)"
        )
    return lines
