"""Deciding which plain values to publish: only changes, plus refreshes of expiring ones."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class _Sent:
    value: str | None
    at: float


class ChangeFilter:
    """What each plain topic last said, so the same value is not published twice.

    An expiring value (telemetry) is published again once `refresh_after_s` has passed, even
    unchanged: otherwise the broker would drop it while its source is still fresh.
    """

    def __init__(self) -> None:
        self._sent: dict[str, _Sent] = {}

    def due(self, topic: str, value: str | None, now: float, refresh_after_s: float | None) -> bool:
        """Whether `value` (None: a clear) must go out on `topic` now."""
        last = self._sent.get(topic)
        if last is None or last.value != value:
            return True
        return (
            value is not None and refresh_after_s is not None and now - last.at >= refresh_after_s
        )

    def sent(self, topic: str, value: str | None, now: float) -> None:
        self._sent[topic] = _Sent(value, now)

    def forget_all(self) -> None:
        """After a reconnect nothing is known about the broker: publish each value again."""
        self._sent.clear()
