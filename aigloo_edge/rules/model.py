"""The rule-file format (`rules/*.yaml`): strict models, as a person writes them.

Expressions stay text here; `loader` compiles and type-checks them against the signal catalog.
"""

from __future__ import annotations

import re
from typing import Annotated, Final, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from aigloo_edge.payloads import Id

_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|min|m|h|d)?")
_DURATION_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
DURATION_HINT: Final = "write e.g. 30s, 2m, 1h30m (or a number of seconds)"


def parse_duration(value: object) -> float:
    """Seconds from `10s`, `2m`, `1h30m`, `1.5h` or a plain number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {DURATION_HINT}")  # noqa: TRY004 - pydantic wants ValueError
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"not a duration: {DURATION_HINT}")  # noqa: TRY004 - as above
    text = value.strip()
    if text.startswith("-"):
        raise ValueError(f"a duration cannot be negative ({value!r})")
    total, position = 0.0, 0
    while position < len(text):
        found = _DURATION_PART.match(text, position)
        if found is None or (found.group(2) is None and found.end() < len(text)):
            raise ValueError(f"bad duration {value!r}: {DURATION_HINT}")
        total += float(found.group(1)) * _DURATION_UNITS[found.group(2) or "s"]
        position = found.end()
        while position < len(text) and text[position] == " ":
            position += 1
    if not text:
        raise ValueError(f"empty duration: {DURATION_HINT}")
    return total


Duration = Annotated[float, BeforeValidator(parse_duration)]
ActuatorValue = bool | str
StaleAction = Literal["active", "inactive", "hold"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SignalDef(_Strict):
    """A named value read from any topic, beyond the built-in signals.

    Without `topic`, the entry only changes a built-in signal's `stale_after`.
    """

    topic: str | None = Field(default=None, min_length=1, max_length=512)
    path: str = Field(default="", description="dotted JSON path; empty: the whole payload")
    type: Literal["number", "bool", "text"] = "number"
    unit: str = Field(default="", description="°C, °F, %, W, Wh, s, min, ... or empty")
    choices: list[str] | None = Field(default=None, min_length=1)
    stale_after: Duration | None = None
    description: str | None = None


class RuleDef(_Strict):
    """One rule: while `when` holds (for `for`), ask the actuators in `set` for these states."""

    id: Id
    description: str | None = None
    when: str = Field(min_length=1)
    for_: Duration = Field(default=0.0, alias="for")
    until: str | None = Field(default=None, min_length=1)
    set: dict[str, ActuatorValue] = Field(min_length=1)
    priority: int = Field(default=0, ge=-1000, le=1000)
    cooldown: Duration = 0.0
    enabled: bool = True
    on_stale: StaleAction = "inactive"


class RuleFile(_Strict):
    """One file under `rules/`: its signals, default actuator states and rules."""

    signals: dict[str, SignalDef] = Field(default_factory=dict)
    defaults: dict[str, ActuatorValue] = Field(default_factory=dict)
    rules: list[RuleDef] = Field(default_factory=list)
