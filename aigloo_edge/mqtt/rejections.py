"""Counting and rate-limiting reports of rejected input, so a flood cannot flood the bus."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

RejectKind = Literal["invalid", "handler_error", "unknown_topic"]


@dataclass(frozen=True, slots=True)
class Rejection:
    topic: str
    reason: str
    kind: RejectKind
    total: int
    suppressed: int


@dataclass
class RejectionLog:
    """Counts every rejection; lets at most one report per `interval` through.

    `record` returns a Rejection to report now (the first in a window) or None (counted as
    suppressed); `flush` returns a summary of what was suppressed once the window has passed.
    """

    interval: float = 5.0
    total: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    _window_start: float | None = None
    _suppressed: int = 0
    _latest: tuple[str, str, RejectKind] | None = None

    def record(self, topic: str, reason: str, kind: RejectKind, now: float) -> Rejection | None:
        self.total += 1
        self.by_kind[kind] += 1
        self._latest = (topic, reason, kind)
        if self._window_start is not None and now - self._window_start < self.interval:
            self._suppressed += 1
            return None
        self._window_start = now
        return Rejection(topic, reason, kind, self.total, 0)

    def flush(self, now: float) -> Rejection | None:
        if not self._suppressed or self._latest is None or self._window_start is None:
            return None
        if now - self._window_start < self.interval:
            return None
        topic, reason, kind = self._latest
        report = Rejection(topic, reason, kind, self.total, self._suppressed)
        self._suppressed = 0
        self._window_start = now
        return report
