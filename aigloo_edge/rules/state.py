"""The engine's memory: each rule's phase and timers, each actuator's last command.

Plain dataclasses that round-trip through JSON, so `store` can persist them and a restart
neither re-fires a rule nor forgets a pending timer, a cooldown or a command already sent.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal, Self

from aigloo_edge.rules.model import ActuatorValue

Phase = Literal["idle", "pending", "active", "cooldown"]


@dataclass(slots=True)
class RuleRuntime:
    phase: Phase = "idle"
    since: float | None = None  # when the phase began
    last_fired: float | None = None
    released_at: float | None = None
    enabled_override: bool | None = None  # set at run time over MQTT; None: as in the file
    tripped: bool = False  # disabled by the circuit breaker
    fires: list[float] = field(default_factory=list)  # recent activations, for the breaker
    why: str = ""
    values: dict[str, float | bool | str | None] = field(default_factory=dict)
    fingerprint: str = ""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Self:
        return cls(**_known_fields(cls, json.loads(text)))


@dataclass(slots=True)
class ActuatorRuntime:
    desired: ActuatorValue | None = None  # what the arbiter chose
    winner: str | None = None  # the rule that won, or "default"
    commanded: ActuatorValue | None = None  # what was last sent
    commanded_at: float | None = None
    last_toggle: float | None = None  # when a different state was last sent
    observed: ActuatorValue | None = None  # what the device reports, when it reports
    held_until: float | None = None  # anti-flapping: a change waits until then

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Self:
        data = _known_fields(cls, json.loads(text))
        data["observed"] = None  # the device reports afresh after a restart
        return cls(**data)


def _known_fields(cls: type[Any], data: object) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise TypeError("saved state is not an object")
    names = {f.name for f in dataclasses.fields(cls)}
    return {key: value for key, value in data.items() if key in names}


@dataclass(slots=True)
class Snapshot:
    rules: dict[str, RuleRuntime] = field(default_factory=dict)
    actuators: dict[str, ActuatorRuntime] = field(default_factory=dict)
