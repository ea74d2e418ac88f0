"""Level-based arbitration: per actuator, the highest-priority active rule's state, else default.

A command goes out only when the chosen state differs from what was last sent, so rules never
fight and nothing is fired twice. Limits rule authors cannot bypass live here too: a node's
power is not toggled again within `min_power_toggle_s` (the change waits, and goes out when
allowed), and a state the device still contradicts after `reassert_s` is sent again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aigloo_edge.rules.catalog import ActuatorSpec
from aigloo_edge.rules.loader import CompiledRule
from aigloo_edge.rules.model import ActuatorValue
from aigloo_edge.rules.state import ActuatorRuntime

DEFAULT = "default"


@dataclass(frozen=True, slots=True)
class SafetyLimits:
    min_power_toggle_s: float = 600.0
    breaker_max_fires: int = 6
    breaker_window_s: float = 3600.0
    reassert_s: float = 120.0
    startup_grace_s: float = 30.0
    settle_s: float = 3.0  # no command before the retained state has arrived


@dataclass(frozen=True, slots=True)
class Command:
    actuator: ActuatorSpec
    value: ActuatorValue
    rule: str | None  # the winning rule, None for a default
    why: str
    reassert: bool = False


@dataclass(frozen=True, slots=True)
class Hold:
    actuator: str
    value: ActuatorValue
    until: float
    why: str


def show(value: ActuatorValue | None) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return "nothing" if value is None else value


class Arbiter:
    def __init__(
        self,
        actuators: Mapping[str, ActuatorSpec],
        defaults: Mapping[str, ActuatorValue],
        limits: SafetyLimits,
        runtime: dict[str, ActuatorRuntime],
    ) -> None:
        self.actuators = actuators
        self.defaults = defaults
        self.limits = limits
        self.runtime = runtime

    def state(self, name: str) -> ActuatorRuntime:
        return self.runtime.setdefault(name, ActuatorRuntime())

    def choose(self, active: Iterable[CompiledRule]) -> dict[str, tuple[ActuatorValue, str]]:
        """Actuator → (state, winner) from the active rules, then the defaults."""
        best: dict[str, tuple[int, int, ActuatorValue, str]] = {}
        for rule in active:
            for name, value in rule.set.items():
                current = best.get(name)
                if current is None or (rule.priority, -rule.order) > current[:2]:
                    best[name] = (rule.priority, -rule.order, value, rule.id)
        chosen = {name: (value, DEFAULT) for name, value in self.defaults.items()}
        chosen.update({name: (entry[2], entry[3]) for name, entry in best.items()})
        return chosen

    def decide(
        self, chosen: Mapping[str, tuple[ActuatorValue, str]], now: float
    ) -> tuple[list[Command], list[Hold]]:
        """Commands for every chosen state not yet sent; held ones wait for the safety limit."""
        commands: list[Command] = []
        holds: list[Hold] = []
        for name, (value, winner) in chosen.items():
            runtime = self.state(name)
            runtime.desired, runtime.winner = value, winner
            if runtime.commanded == value:
                runtime.held_until = None
                continue
            hold_until = self._power_hold(name, runtime, now)
            if hold_until is not None:
                if runtime.held_until != hold_until:
                    why = (
                        f"power of a node toggles at most every {self.limits.min_power_toggle_s:g}s"
                    )
                    holds.append(Hold(name, value, hold_until, why))
                runtime.held_until = hold_until
                continue
            commands.append(self._send(name, value, winner, now))
        return commands, holds

    def _power_hold(self, name: str, runtime: ActuatorRuntime, now: float) -> float | None:
        if self.actuators[name].kind != "node_power" or runtime.last_toggle is None:
            return None
        allowed = runtime.last_toggle + self.limits.min_power_toggle_s
        return allowed if now < allowed else None

    def _send(
        self, name: str, value: ActuatorValue, winner: str, now: float, *, reassert: bool = False
    ) -> Command:
        runtime = self.state(name)
        if runtime.commanded is not None and runtime.commanded != value:
            runtime.last_toggle = now  # the first command sets a state, it toggles nothing
        runtime.commanded, runtime.commanded_at, runtime.held_until = value, now, None
        rule = None if winner == DEFAULT else winner
        why = f"{name} {show(value)}: " + (f"rule {winner}" if rule else "the default")
        return Command(self.actuators[name], value, rule, why, reassert)

    def observe(self, name: str, value: ActuatorValue | None) -> None:
        """What the device says its state is (fan profile, node power, station output)."""
        if name in self.actuators:
            self.state(name).observed = value

    def reassert(self, now: float, *, unconfirmed_before: float | None = None) -> list[Command]:
        """Send again what the device contradicts after `reassert_s`.

        With `unconfirmed_before` (a reconnect's time): also what no device has confirmed and
        was sent before it, so it may have been lost with the connection.
        """
        commands = []
        for name, runtime in self.runtime.items():
            if name not in self.actuators or runtime.commanded is None:
                continue
            if self.actuators[name].kind in ("infer_allowed", "infer_wake"):
                continue  # retained state the session republishes itself
            if runtime.observed == runtime.commanded:
                continue
            sent = runtime.commanded_at or 0.0
            if unconfirmed_before is not None:
                if sent >= unconfirmed_before:
                    continue
            elif runtime.observed is None or now - sent < self.limits.reassert_s:
                continue
            winner = runtime.winner or DEFAULT
            commands.append(self._send(name, runtime.commanded, winner, now, reassert=True))
        return commands

    def next_change(self) -> float | None:
        """When a held command may go, or a contradicted one is due to be sent again."""
        times = [r.held_until for r in self.runtime.values() if r.held_until is not None]
        for runtime in self.runtime.values():
            contradicted = runtime.observed is not None and runtime.observed != runtime.commanded
            if contradicted and runtime.commanded_at is not None:
                times.append(runtime.commanded_at + self.limits.reassert_s)
        return min(times, default=None)
