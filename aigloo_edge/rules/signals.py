"""The latest value of every signal, its freshness, and the short history `avg`/`rate` need.

Time is whatever the caller says it is (`now`), so replays and tests run faster than real time.
A signal is *fresh* while its last reading is younger than its `stale_after`; *stale* once older,
when its source says so (a probe flagged stale, a node offline), or when it never arrived within
the start-up grace; *unknown* before that grace ends (nothing is decided on it yet).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from aigloo_edge.rules.catalog import SignalSpec
from aigloo_edge.rules.expr import MissingSignal
from aigloo_edge.rules.units import Value

Freshness = Literal["fresh", "stale", "unknown"]


@dataclass(slots=True)
class _Slot:
    spec: SignalSpec | None
    value: Value | None = None
    at: float | None = None
    flagged_stale: bool = False
    keep_s: float = 0.0  # history kept for the longest avg/rate window on this signal
    history: deque[tuple[float, float]] = field(default_factory=deque)


class SignalStore:
    """Signal values by name; implements the expression `SignalReader`."""

    def __init__(
        self,
        specs: Mapping[str, SignalSpec],
        windows: Mapping[str, float],
        *,
        started: float,
        grace_s: float,
    ) -> None:
        self.now = started
        self.started = started
        self.grace_s = grace_s
        self._slots = {name: _Slot(spec) for name, spec in specs.items()}
        for name, seconds in windows.items():
            self._slot(name).keep_s = max(self._slot(name).keep_s, seconds)

    def _slot(self, name: str) -> _Slot:
        slot = self._slots.get(name)
        if slot is None:  # rule-activity signals are not in the catalog
            slot = self._slots[name] = _Slot(None)
        return slot

    # --- writing ---------------------------------------------------------------------------

    def update(self, name: str, value: Value, at: float) -> None:
        slot = self._slot(name)
        slot.value, slot.at, slot.flagged_stale = value, at, False
        if slot.keep_s and isinstance(value, int | float) and not isinstance(value, bool):
            slot.history.append((at, float(value)))
            self._trim(slot, at)

    def copy_into(self, other: SignalStore) -> None:
        """Carry the readings over to a store for a new rule set (hot reload)."""
        for name, slot in self._slots.items():
            if slot.at is None or slot.value is None:
                continue
            target = other._slot(name)
            target.value, target.at, target.flagged_stale = slot.value, slot.at, slot.flagged_stale
            if target.keep_s:
                target.history.extend(slot.history)

    def mark_stale(self, name: str) -> None:
        self._slot(name).flagged_stale = True

    def _trim(self, slot: _Slot, now: float) -> None:
        # Keep one sample older than the window: its value holds at the window's start.
        horizon = now - slot.keep_s
        while len(slot.history) > 1 and slot.history[1][0] <= horizon:
            slot.history.popleft()

    # --- reading (SignalReader) ------------------------------------------------------------

    def value(self, signal: str) -> Value:
        slot = self._slots.get(signal)
        if slot is None or slot.value is None or self._freshness(slot) != "fresh":
            raise MissingSignal(signal)
        return slot.value

    def history(self, signal: str, seconds: float) -> Sequence[tuple[float, float]]:
        slot = self._slots.get(signal)
        if slot is None or self._freshness(slot) != "fresh":
            return ()
        start = self.now - seconds
        samples = [sample for sample in slot.history if sample[0] <= self.now]
        older = [s for s in samples if s[0] < start]
        return [*older[-1:], *(s for s in samples if s[0] >= start)]

    def age(self, signal: str) -> float:
        slot = self._slots.get(signal)
        if slot is None or slot.at is None:
            raise MissingSignal(signal)
        return max(0.0, self.now - slot.at)

    # --- freshness -------------------------------------------------------------------------

    def freshness(self, signal: str) -> Freshness:
        slot = self._slots.get(signal)
        return "stale" if slot is None else self._freshness(slot)

    def _freshness(self, slot: _Slot) -> Freshness:
        if slot.at is None:
            return "unknown" if self.now < self.started + self.grace_s else "stale"
        if slot.flagged_stale:
            return "stale"
        stale_after = slot.spec.stale_after if slot.spec else None
        if stale_after is not None and self.now - slot.at >= stale_after:
            return "stale"
        return "fresh"

    def peek(self, signal: str) -> Value | None:
        """The value if fresh, else None: for reports, never raises."""
        try:
            return self.value(signal)
        except MissingSignal:
            return None

    def next_change(self, names: Iterable[str]) -> float | None:
        """The earliest time one of `names` turns stale or leaves its grace, if any."""
        times = [t for name in names if (t := self._turns_at(name)) is not None]
        return min(times, default=None)

    def _turns_at(self, name: str) -> float | None:
        slot = self._slots.get(name)
        if slot is None:
            return None
        if slot.at is None:
            end = self.started + self.grace_s
            return end if self.now < end else None
        stale_after = slot.spec.stale_after if slot.spec else None
        if stale_after is None or slot.flagged_stale:
            return None
        turns = slot.at + stale_after
        return turns if turns > self.now else None
