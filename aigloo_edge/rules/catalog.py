"""What rules may read (signals) and drive (actuators), with their types and units.

Built-in signals mirror the topic contract: the name is the topic group and the payload field,
e.g. `power.battery.soc_pct` is `soc_pct` of `aigloo/power/battery`, `env.internal.temperature_f`
is the internal probe's temperature in °F. Nodes and probes come from the rules config, so a
typo in an id is an unknown signal at load, not a rule that silently never fires.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from aigloo_edge.payloads import ThermalPressure
from aigloo_edge.rules.units import (
    BOOL,
    CELSIUS,
    DBM,
    FAHRENHEIT,
    MINUTE,
    NUMBER,
    PERCENT,
    WATT,
    WATT_HOUR,
    NumberType,
    TextType,
    ValueType,
)

DEFAULT_NODES: Final = ("studio", "mbp", "mini", "air")
DEFAULT_PROBES: Final = ("internal", "ambient", "exhaust")
# How long a reading stays fresh when nothing newer arrives (None: until replaced).
STATION_STALE_S: Final = 120.0
PROBE_STALE_S: Final = 300.0
TELEMETRY_STALE_S: Final = 60.0

POWER_STATES: Final = ("awake", "sleeping", "waking", "unreachable")
FAN_PROFILES: Final = ("off", "quiet", "normal", "max")
THERMAL_PRESSURES: Final[tuple[ThermalPressure, ...]] = (
    "nominal",
    "moderate",
    "heavy",
    "trapping",
    "sleeping",
    "unknown",
)
NODE_POWER_TARGETS: Final = ("awake", "asleep")


@dataclass(frozen=True, slots=True)
class SignalSpec:
    name: str
    type: ValueType
    stale_after: float | None
    description: str


def _number(name: str, unit: NumberType, stale: float | None, what: str) -> SignalSpec:
    return SignalSpec(name, unit, stale, what)


def station_signals() -> list[SignalSpec]:
    s = STATION_STALE_S
    return [
        _number("power.battery.soc_pct", NumberType(PERCENT), s, "station charge"),
        _number("power.battery.watts_in", NumberType(WATT), s, "station input (all sources)"),
        _number("power.battery.watts_out", NumberType(WATT), s, "station output"),
        _number("power.battery.remaining_min", NumberType(MINUTE), s, "time to empty or full"),
        _number("power.battery.capacity_wh", NumberType(WATT_HOUR), s, "station capacity"),
        SignalSpec("power.battery.outputs.ac", BOOL, s, "AC output on"),
        SignalSpec("power.battery.outputs.dc", BOOL, s, "12 V DC output on"),
        SignalSpec("power.battery.outputs.usb", BOOL, s, "USB outputs on"),
        _number("power.solar.watts", NumberType(WATT), s, "solar input"),
    ]


def probe_signals(probe: str) -> list[SignalSpec]:
    s, base = PROBE_STALE_S, f"env.{probe}"
    return [
        _number(f"{base}.temperature_c", NumberType(CELSIUS), s, f"{probe} temperature"),
        _number(f"{base}.temperature_f", NumberType(FAHRENHEIT), s, f"{probe} temperature"),
        _number(f"{base}.humidity_pct", NumberType(PERCENT), s, f"{probe} relative humidity"),
        _number(f"{base}.battery_pct", NumberType(PERCENT), s, f"{probe} sensor battery"),
        _number(f"{base}.rssi_dbm", NumberType(DBM), s, f"{probe} radio signal"),
    ]


def node_signals(node: str) -> list[SignalSpec]:
    t, base = TELEMETRY_STALE_S, f"nodes.{node}"
    return [
        SignalSpec(f"{base}.online", BOOL, None, f"{node}'s agent is connected"),
        SignalSpec(f"{base}.power", TextType(POWER_STATES), None, f"{node}'s power state"),
        _number(f"{base}.cpu_pct", NumberType(PERCENT), t, "CPU use"),
        _number(f"{base}.gpu_pct", NumberType(PERCENT), t, "GPU use"),
        _number(f"{base}.memory_pct", NumberType(PERCENT), t, "memory use"),
        _number(f"{base}.power_w", NumberType(WATT), t, "power draw (system, else package)"),
        _number(f"{base}.temperature_c", NumberType(CELSIUS), t, "hottest sensor"),
        _number(f"{base}.temperature_f", NumberType(FAHRENHEIT), t, "hottest sensor"),
        SignalSpec(f"{base}.thermal_pressure", TextType(THERMAL_PRESSURES), t, "macOS thermal"),
        _number(f"{base}.infer_queue", NumberType(NUMBER), t, "inference jobs queued+running"),
        _number(f"{base}.battery_pct", NumberType(PERCENT), t, "its own battery (laptops)"),
        SignalSpec(f"{base}.plugged", BOOL, t, "on external power (laptops)"),
    ]


def fan_signals() -> list[SignalSpec]:
    return [
        SignalSpec("fans.profile", TextType(FAN_PROFILES), None, "fan profile in effect"),
        _number("fans.duty_pct", NumberType(PERCENT), None, "fan duty"),
    ]


def builtin_signals(nodes: Iterable[str], probes: Iterable[str]) -> dict[str, SignalSpec]:
    specs = [*station_signals(), *fan_signals()]
    for probe in probes:
        specs += probe_signals(probe)
    for node in nodes:
        specs += node_signals(node)
    return {spec.name: spec for spec in specs}


def rule_signal(rule_id: str) -> str:
    """The signal that is true while a rule is active (rules may depend on rules)."""
    return f"rules.{rule_id.replace('-', '_')}.active"


# --- actuators ------------------------------------------------------------------------------

ActuatorKind = Literal["fans", "node_power", "output", "infer_allowed", "infer_wake"]


@dataclass(frozen=True, slots=True)
class ActuatorSpec:
    name: str
    kind: ActuatorKind
    type: ValueType
    target: str  # the node or output it drives; empty for the fans
    description: str


def builtin_actuators(nodes: Iterable[str]) -> dict[str, ActuatorSpec]:
    specs = [
        ActuatorSpec("fans.profile", "fans", TextType(FAN_PROFILES), "", "fan profile"),
        ActuatorSpec("power.ac", "output", BOOL, "ac", "station AC output on/off"),
        ActuatorSpec("power.dc", "output", BOOL, "dc", "station 12 V DC output on/off"),
    ]
    for node in nodes:
        specs += [
            ActuatorSpec(
                f"{node}.power", "node_power", TextType(NODE_POWER_TARGETS), node, "awake/asleep"
            ),
            ActuatorSpec(
                f"inference.{node}_allowed", "infer_allowed", BOOL, node, "dispatcher may use it"
            ),
            ActuatorSpec(
                f"inference.{node}_wake", "infer_wake", BOOL, node, "dispatcher may wake it"
            ),
        ]
    return {spec.name: spec for spec in specs}
