"""Which fields of the JSON state topics become plain values, and how each one is written.

Pure, no I/O. `plain_values(topics, topic, payload)` turns one retained state message into the
plain-text values of its fields, keyed by their topics (`aigloo/power/battery/soc_pct` → `57`).
A field the payload lacks, or an empty (cleared) source, gives None: clear that topic. A payload
that does not validate raises PayloadError, as the wire models do.

Numbers are written plainly: no unit, no trailing `.0`, at most one decimal (minutes whole).
Booleans are `true`/`false`, except the station outputs: `on`/`off`, the very payloads of
their command topic, so one phone switch can use the same value for state and command.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Final

from aigloo_edge.payloads import (
    Battery,
    Climate,
    FanProfileState,
    NodePower,
    NodeTelemetry,
    PowerState,
    RuleState,
    Solar,
)
from aigloo_edge.plain.settings import ALL_GROUPS, PlainGroup
from aigloo_edge.rules.units import celsius_to_fahrenheit
from aigloo_edge.topics import Retain, Topics

FieldValues = dict[str, str | None]  # field → text; None: the payload does not say


@dataclass(frozen=True, slots=True)
class PlainSource:
    """One JSON state row of the contract (by its name in `topics.SPECS`) and its fields."""

    spec: str
    group: PlainGroup
    fields: tuple[str, ...]
    extract: Callable[[bytes], FieldValues]  # validates, then reads the fields


@dataclass(frozen=True, slots=True)
class PlainUpdate:
    """What one state message means for its plain topics."""

    values: dict[str, str | None]  # plain topic → text; None: clear it (empty retained)
    expiring: bool  # the source is retained with a message expiry (telemetry): so are these


# --- formatting ------------------------------------------------------------------------------


def plain_number(value: float, decimals: int = 1) -> str:
    """`57.0` → `57`, `21.34` → `21.3`, `-0.04` → `0`: what a gauge or a text tile can read."""
    rounded = round(value, decimals)
    if rounded == int(rounded):
        return str(int(rounded))
    return f"{rounded:.{decimals}f}".rstrip("0").rstrip(".")


def plain_bool(value: bool) -> str:
    return "true" if value else "false"


def plain_switch(value: bool | None) -> str | None:
    """A station output as its command payload (`on`/`off`); None when the station is silent."""
    if value is None:
        return None
    return "on" if value else "off"


def _optional(value: float | None, decimals: int = 1) -> str | None:
    return None if value is None else plain_number(value, decimals)


# --- one extractor per source ----------------------------------------------------------------


def _battery(raw: bytes) -> FieldValues:
    battery = Battery.from_json(raw)
    return {
        "soc_pct": plain_number(battery.soc_pct),
        "watts_in": plain_number(battery.watts_in),
        "watts_out": plain_number(battery.watts_out),
        "remaining_min": _optional(battery.remaining_min, decimals=0),
        "outputs_ac": plain_switch(battery.outputs.ac),
        "outputs_dc": plain_switch(battery.outputs.dc),
    }


def _solar(raw: bytes) -> FieldValues:
    return {"watts": plain_number(Solar.from_json(raw).watts)}


def _climate(raw: bytes) -> FieldValues:
    climate = Climate.from_json(raw)
    return {
        "temperature_c": plain_number(climate.temperature_c),
        # People read the box in °F (the rig's own figures); the one converted value.
        "temperature_f": plain_number(celsius_to_fahrenheit(climate.temperature_c)),
        "humidity_pct": _optional(climate.humidity_pct),
        "battery_pct": _optional(climate.battery_pct),
        "stale": plain_bool(climate.stale),
    }


def _fans(raw: bytes) -> FieldValues:
    fans = FanProfileState.from_json(raw)
    return {"profile": fans.profile, "duty_pct": plain_number(fans.duty_pct)}


def _telemetry(raw: bytes) -> FieldValues:
    telemetry = NodeTelemetry.from_json(raw)
    return {
        "cpu_pct": plain_number(telemetry.cpu_pct),
        "memory_pct": plain_number(telemetry.memory_pct),
        "power_w": _optional(_node_watts(telemetry.power)),
    }


def _node_watts(power: NodePower | None) -> float | None:
    """The machine's whole draw when known, else its SoC package's."""
    if power is None:
        return None
    return power.system_w if power.system_w is not None else power.package_w


def _node_power(raw: bytes) -> FieldValues:
    return {"state": PowerState.from_json(raw).state}


def _rule(raw: bytes) -> FieldValues:
    rule = RuleState.from_json(raw)
    return {
        "enabled": plain_bool(rule.enabled),
        "active": plain_bool(rule.active),
        "phase": rule.phase,
    }


SOURCES: Final[tuple[PlainSource, ...]] = (
    PlainSource(
        "battery",
        "battery",
        ("soc_pct", "watts_in", "watts_out", "remaining_min", "outputs_ac", "outputs_dc"),
        _battery,
    ),
    PlainSource("solar", "solar", ("watts",), _solar),
    PlainSource(
        "env_climate",
        "climate",
        ("temperature_c", "temperature_f", "humidity_pct", "battery_pct", "stale"),
        _climate,
    ),
    PlainSource("fans_profile", "fans", ("profile", "duty_pct"), _fans),
    PlainSource("node_telemetry", "telemetry", ("cpu_pct", "memory_pct", "power_w"), _telemetry),
    PlainSource("node_power", "node_power", ("state",), _node_power),
    PlainSource("rule_state", "rules", ("enabled", "active", "phase"), _rule),
)
SOURCE_BY_SPEC: Final = {source.spec: source for source in SOURCES}


# --- topics ----------------------------------------------------------------------------------


def _enabled(groups: Collection[PlainGroup]) -> list[PlainSource]:
    return [source for source in SOURCES if source.group in groups]


def source_filters(topics: Topics, groups: Collection[PlainGroup] = ALL_GROUPS) -> list[str]:
    """The subscription filters of the JSON state topics the enabled groups read."""
    return [topics.filter(source.spec) for source in _enabled(groups)]


def plain_value_filters(topics: Topics, groups: Collection[PlainGroup] = ALL_GROUPS) -> list[str]:
    """Every plain topic pattern, one per `<state filter>/<field>` (the `plain` role's grants)."""
    return [
        topics.plain_value(topics.filter(source.spec), field)
        for source in _enabled(groups)
        for field in source.fields
    ]


def plain_values(
    topics: Topics,
    topic: str,
    payload: bytes,
    groups: Collection[PlainGroup] = ALL_GROUPS,
) -> PlainUpdate | None:
    """The plain values one state message gives, or None if `topic` is not a mapped source.

    Raises PayloadError when the payload does not validate.
    """
    match = topics.match(topic)
    source = SOURCE_BY_SPEC.get(match.spec.name) if match is not None else None
    if match is None or source is None or source.group not in groups:
        return None
    # An empty retained payload is how state is cleared: clear what it said.
    found = source.extract(payload) if payload else {}
    return PlainUpdate(
        values={topics.plain_value(topic, field): found.get(field) for field in source.fields},
        expiring=match.spec.retain is Retain.EXPIRING,
    )
