"""Units and value types of rule signals and expressions.

A number always carries a unit, so `env.internal.temperature_f > 90` and
`env.internal.temperature_c > 32 °C` mean what they say, and `soc_pct > watts` is refused at load.
A unit converts to its dimension's base unit as ``base = value * scale + offset``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Unit:
    """A unit of one dimension; `symbol` is how people write it."""

    symbol: str
    dimension: str
    scale: float = 1.0
    offset: float = 0.0

    def to_base(self, value: float) -> float:
        return value * self.scale + self.offset

    def from_base(self, value: float) -> float:
        return (value - self.offset) / self.scale

    def convert(self, value: float, to: Unit) -> float:
        """`value` in this unit, expressed in `to` (same dimension)."""
        if to is self:
            return value
        return to.from_base(self.to_base(value))

    def per_minute(self) -> Unit:
        """The unit of this quantity's rate of change per minute (a difference: no offset)."""
        return Unit(f"{self.symbol}/min", f"{self.dimension}/min", self.scale, 0.0)

    def __str__(self) -> str:
        return self.symbol or "a plain number"


NUMBER: Final = Unit("", "number")
CELSIUS: Final = Unit("°C", "temperature")
FAHRENHEIT: Final = Unit("°F", "temperature", 5 / 9, -32 * 5 / 9)
PERCENT: Final = Unit("%", "percent")
WATT: Final = Unit("W", "power")
KILOWATT: Final = Unit("kW", "power", 1000.0)
WATT_HOUR: Final = Unit("Wh", "energy")
KILOWATT_HOUR: Final = Unit("kWh", "energy", 1000.0)
SECOND: Final = Unit("s", "duration")
MINUTE: Final = Unit("min", "duration", 60.0)
HOUR: Final = Unit("h", "duration", 3600.0)
DBM: Final = Unit("dBm", "signal strength")
RPM: Final = Unit("rpm", "rotation")
BYTE: Final = Unit("B", "data")
BYTES_PER_S: Final = Unit("B/s", "data rate")

# What may follow a number literal in an expression (`90 °F`, `150W`, `5min`, `30 %`).
LITERAL_UNITS: Final[dict[str, Unit]] = {
    "°C": CELSIUS,
    "degC": CELSIUS,
    "C": CELSIUS,
    "°F": FAHRENHEIT,
    "degF": FAHRENHEIT,
    "F": FAHRENHEIT,
    "%": PERCENT,
    "W": WATT,
    "kW": KILOWATT,
    "Wh": WATT_HOUR,
    "kWh": KILOWATT_HOUR,
    "s": SECOND,
    "m": MINUTE,
    "min": MINUTE,
    "h": HOUR,
    "dBm": DBM,
    "rpm": RPM,
}


@dataclass(frozen=True, slots=True)
class NumberType:
    unit: Unit

    def __str__(self) -> str:
        return f"a number in {self.unit.symbol}" if self.unit.symbol else "a plain number"


@dataclass(frozen=True, slots=True)
class BoolType:
    def __str__(self) -> str:
        return "true/false"


@dataclass(frozen=True, slots=True)
class TextType:
    """A text value from a fixed set (a node's power state, the fan profile)."""

    choices: tuple[str, ...]

    def __str__(self) -> str:
        return f"one of {', '.join(self.choices)}"


ValueType = NumberType | BoolType | TextType
Value = float | bool | str
BOOL: Final = BoolType()


def celsius_to_fahrenheit(celsius: float) -> float:
    """°C as °F (payloads carry °C; rules and people may read °F)."""
    return CELSIUS.convert(celsius, FAHRENHEIT)
