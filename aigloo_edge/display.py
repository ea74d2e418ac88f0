"""How values read to a person: temperatures in the owner's unit, watts, ages.

Payloads stay SI (°C); only what a person reads is converted, here and nowhere else.
"""

from __future__ import annotations

from typing import Literal

from aigloo_edge.rules.units import CELSIUS, FAHRENHEIT, celsius_to_fahrenheit

TemperatureUnit = Literal["F", "C"]


def temperature_value(celsius: float, unit: TemperatureUnit) -> float:
    return celsius_to_fahrenheit(celsius) if unit == "F" else celsius


def temperature_to_celsius(value: float, unit: TemperatureUnit) -> float:
    """A temperature a person typed in their unit, as the °C payloads and models use."""
    return FAHRENHEIT.convert(value, CELSIUS) if unit == "F" else value


def temperature_delta(kelvins: float, unit: TemperatureUnit) -> float:
    return kelvins * 9 / 5 if unit == "F" else kelvins


def temperature(celsius: float | None, unit: TemperatureUnit, digits: int = 1) -> str:
    """`91.4 °F` or `33.0 °C`; `-` when unknown."""
    if celsius is None:
        return "-"
    return f"{temperature_value(celsius, unit):.{digits}f} °{unit}"


def watts(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} W"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} %"


def age(seconds: float | None) -> str:
    """`4 s`, `3 min`, `2 h` ago; `-` when never seen."""
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{max(seconds, 0):.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def minutes(value: float | None) -> str:
    """Remaining time: `2 h 05 min` or `45 min`."""
    if value is None:
        return "-"
    hours, rest = divmod(round(value), 60)
    return f"{hours} h {rest:02d} min" if hours else f"{rest} min"
