"""MQTT messages → signal readings: the one place that knows which payload field is which signal.

Payloads are validated with the contract's wire models first, so a malformed message raises
PayloadError (the session logs, counts and reports it) and never counts as a fresh reading.
A reading of `None` means the source says the signal is stale (a probe flagged stale, a node
gone offline, a retained state cleared).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aigloo_edge.errors import PayloadError
from aigloo_edge.payloads import (
    Battery,
    Climate,
    FanProfileState,
    NodeTelemetry,
    PowerState,
    Solar,
    parse_availability,
)
from aigloo_edge.rules.catalog import SignalSpec, node_signals, probe_signals
from aigloo_edge.rules.signal_defs import CustomSignal
from aigloo_edge.rules.units import (
    BoolType,
    NumberType,
    TextType,
    Value,
    celsius_to_fahrenheit,
)
from aigloo_edge.topics import Topics

Reading = tuple[str, Value | None]


class Readings:
    """Turns messages on the topics rules care about into signal readings."""

    def __init__(
        self,
        topics: Topics,
        signals: Mapping[str, SignalSpec],
        custom: Mapping[str, CustomSignal],
    ) -> None:
        self.topics = topics
        self.signals = signals
        self._custom_by_topic: dict[str, list[CustomSignal]] = {}
        for signal in custom.values():
            self._custom_by_topic.setdefault(signal.topic, []).append(signal)
        self._produced: float | None = None
        self._probe_names: dict[str, list[str]] = {}  # configured probes only: bounded
        self._by_spec: dict[str, Callable[[dict[str, str], bytes], list[Reading]]] = {
            "battery": self._battery,
            "solar": self._solar,
            "env_climate": self._climate,
            "node_availability": self._availability,
            "node_power": self._node_power,
            "node_telemetry": self._telemetry,
            "fans_profile": self._fans,
        }

    def filters(self) -> list[str]:
        """The subscriptions that feed every signal."""
        builtin = [self.topics.filter(name) for name in self._by_spec]
        return [*builtin, *self._custom_by_topic]

    def extract(self, topic: str, payload: bytes) -> tuple[list[Reading], float | None]:
        """The readings in one message, and when its payload says it was produced (`ts`)."""
        self._produced = None
        readings: list[Reading] = []
        match = self.topics.match(topic)
        if match is not None and (read := self._by_spec.get(match.spec.name)) is not None:
            readings += read(match.params, payload)
        for signal in self._custom_by_topic.get(topic, ()):
            readings.append((signal.name, None if not payload else _custom_value(signal, payload)))
        return [(name, value) for name, value in readings if name in self.signals], self._produced

    # --- the contract's topics -------------------------------------------------------------

    def _battery(self, _: dict[str, str], payload: bytes) -> list[Reading]:
        names = ("soc_pct", "watts_in", "watts_out", "remaining_min", "capacity_wh")
        if not payload:
            return [(f"power.battery.{n}", None) for n in names]
        battery = Battery.from_json(payload)
        self._produced = battery.ts
        readings: list[Reading] = [
            (f"power.battery.{name}", getattr(battery, name)) for name in names
        ]
        for output in ("ac", "dc", "usb"):
            readings.append((f"power.battery.outputs.{output}", getattr(battery.outputs, output)))
        return [(name, value) for name, value in readings if value is not None]

    def _solar(self, _: dict[str, str], payload: bytes) -> list[Reading]:
        if not payload:
            return [("power.solar.watts", None)]
        solar = Solar.from_json(payload)
        self._produced = solar.ts
        return [("power.solar.watts", solar.watts)]

    def _climate(self, params: dict[str, str], payload: bytes) -> list[Reading]:
        names = self._names_of_probe(params["probe"])
        if not payload:
            return [(name, None) for name in names]
        climate = Climate.from_json(payload)
        self._produced = climate.ts
        if climate.stale:
            return [(name, None) for name in names]
        values: list[float | None] = [
            climate.temperature_c,
            celsius_to_fahrenheit(climate.temperature_c),
            climate.humidity_pct,
            climate.battery_pct,
            climate.rssi_dbm,
        ]
        return [
            (name, value) for name, value in zip(names, values, strict=True) if value is not None
        ]

    def _names_of_probe(self, probe: str) -> list[str]:
        """The probe's signal names, in `probe_signals` order (built once per configured probe:
        the catalog makes every spec anew, and this runs per message)."""
        names = self._probe_names.get(probe)
        if names is None:
            names = [spec.name for spec in probe_signals(probe)]
            if any(name in self.signals for name in names):
                self._probe_names[probe] = names
        return names

    def _availability(self, params: dict[str, str], payload: bytes) -> list[Reading]:
        node = params["node"]
        online = parse_availability(payload) is True  # empty (cleared): not online either
        readings: list[Reading] = [(f"nodes.{node}.online", online)]
        if not online:  # what it said last no longer holds
            telemetry = [s.name for s in node_signals(node) if s.stale_after is not None]
            readings += [(name, None) for name in telemetry]
        return readings

    def _node_power(self, params: dict[str, str], payload: bytes) -> list[Reading]:
        state = PowerState.from_json(payload).state if payload else None
        return [(f"nodes.{params['node']}.power", state)]

    def _telemetry(self, params: dict[str, str], payload: bytes) -> list[Reading]:
        base = f"nodes.{params['node']}"
        if not payload:
            return []  # an expired retained message: staleness takes care of it
        t = NodeTelemetry.from_json(payload)
        self._produced = t.ts
        hottest = max(t.temperatures_c.values(), default=None)
        power = t.power.system_w or t.power.package_w if t.power else None
        values: dict[str, Value | None] = {
            "cpu_pct": t.cpu_pct,
            "gpu_pct": t.gpu_pct,
            "memory_pct": t.memory_pct,
            "power_w": power,
            "temperature_c": hottest,
            "temperature_f": None if hottest is None else celsius_to_fahrenheit(hottest),
            "thermal_pressure": t.thermal_pressure,
            "infer_queue": None if t.infer_queue is None else float(t.infer_queue),
            "battery_pct": t.battery.soc_pct if t.battery else None,
            "plugged": t.battery.plugged if t.battery else None,
        }
        return [(f"{base}.{name}", value) for name, value in values.items() if value is not None]

    def _fans(self, _: dict[str, str], payload: bytes) -> list[Reading]:
        if not payload:
            return [("fans.profile", None), ("fans.duty_pct", None)]
        state = FanProfileState.from_json(payload)
        return [("fans.profile", state.profile), ("fans.duty_pct", state.duty_pct)]


def _custom_value(signal: CustomSignal, payload: bytes) -> Value:
    try:
        data: Any = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise PayloadError(f"{signal.name}: payload is not JSON") from exc
    value = _at_path(data, signal.path, signal.name)
    return _typed(signal, value)


def _at_path(data: Any, path: Sequence[str], name: str) -> Any:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            raise PayloadError(f"{name}: no {'.'.join(path)!r} in the payload")
        data = data[part]
    return data


def _typed(signal: CustomSignal, value: Any) -> Value:
    kind = signal.type
    if isinstance(kind, NumberType):
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise PayloadError(f"{signal.name}: expected a number, got {type(value).__name__}")
        if abs(value) > 1e12:
            raise PayloadError(f"{signal.name}: number out of range")
        return float(value)
    if isinstance(kind, BoolType):
        if not isinstance(value, bool):
            raise PayloadError(f"{signal.name}: expected true/false, got {type(value).__name__}")
        return value
    assert isinstance(kind, TextType)
    if not isinstance(value, str) or value not in kind.choices:
        raise PayloadError(f"{signal.name}: expected one of {', '.join(kind.choices)}")
    return value
