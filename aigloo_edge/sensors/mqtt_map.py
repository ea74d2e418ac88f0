"""Readings other systems already publish (Home Assistant, a Victron shunt, ESPHome): any topic,
a JSON path into its payload, then `value * scale + offset`.

`MqttMapper` is the pure part: (topic, payload) → readings, with the reason for every value it
rejects (a missing path, a wrong type, NaN, a number out of the field's range); a rejected value
never becomes a reading. `MqttMapSource` registers one route per mapped topic on the bridge's own
`Session` (so it shares that connection), hands the readings to the sink, raises the problems as
a PayloadError (the session logs and reports them on `bridge/<component>/rejected`), and reports
a device `Lost` when none of its values arrived for `stale_after`.

Paths are dotted (`battery.soc`); a list is indexed by a number segment or brackets
(`cells.0.v`, `cells[0].v`). An empty path means the payload itself is the value, which may be
plain text (`23.5`, `ON`) as Home Assistant and ESPHome state topics publish it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from paho.mqtt.client import topic_matches_sub

from aigloo_edge.errors import ConfigError, PayloadError
from aigloo_edge.mqtt import Inbound, Route, Session
from aigloo_edge.payloads import json_kind
from aigloo_edge.sensors.readings import ClimateReading, Lost, Reading, Sink, StationReading
from aigloo_edge.sensors.settings import MappedValue, MqttMapConfig

log = logging.getLogger(__name__)

STATION: Final = "station"
SOURCE: Final = "mqtt_map"
MAX_WATTS: Final = 100_000.0
# The range of each numeric field, after scale and offset (the contract's limits).
RANGES: Final[Mapping[str, tuple[float, float]]] = {
    "soc_pct": (0.0, 100.0),
    "watts_in": (0.0, MAX_WATTS),
    "watts_out": (0.0, MAX_WATTS),
    "solar_w": (0.0, MAX_WATTS),
    "remaining_min": (0.0, 1_000_000.0),
    "temperature_c": (-80.0, 250.0),
    "humidity_pct": (0.0, 100.0),
    "battery_pct": (0.0, 100.0),
}
FLAGS: Final = frozenset({"ac", "dc", "usb"})
TRUE_TEXT: Final = frozenset({"on", "true", "1", "yes"})
FALSE_TEXT: Final = frozenset({"off", "false", "0", "no"})
_SEGMENT: Final = re.compile(r"^([^\[\]]+)((?:\[\d+\])*)$")
_INDEX: Final = re.compile(r"\[(\d+)\]")

PathPart = str | int
Value = float | bool


# --- paths and values (pure) ------------------------------------------------------------------


def parse_path(path: str) -> tuple[PathPart, ...]:
    """`a.b[0].c` → ("a", "b", 0, "c"); ConfigError for an empty or malformed segment."""
    if path == "":
        return ()
    parts: list[PathPart] = []
    for segment in path.split("."):
        found = _SEGMENT.match(segment)
        if found is None:
            raise ConfigError(f"bad JSON path {path!r}: write e.g. 'battery.soc' or 'cells[0].v'")
        parts.append(found.group(1))
        parts += [int(index) for index in _INDEX.findall(found.group(2))]
    return tuple(parts)


def value_at(data: Any, parts: tuple[PathPart, ...], path: str) -> Any:
    """The value at `parts`; PayloadError naming the path if it is not there."""
    for part in parts:
        if isinstance(data, dict) and str(part) in data:
            data = data[str(part)]
        elif isinstance(data, list) and _is_index(part) and int(part) < len(data):
            data = data[int(part)]
        else:
            raise PayloadError(f"no {path!r} in the payload")
    return data


def _is_index(part: PathPart) -> bool:
    return isinstance(part, int) or part.isdigit()


def decode_payload(payload: bytes) -> tuple[Any, bool]:
    """The payload as JSON (True) or, if it is not JSON, as stripped text (False)."""
    if not payload:
        raise PayloadError("empty payload")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("payload is not UTF-8 text") from None
    try:
        return json.loads(text), True
    except RecursionError:
        raise PayloadError("JSON nested too deeply") from None
    except ValueError:
        return text.strip(), False


def convert(value: Any, field_name: str, mapped: MappedValue) -> Value:
    """A raw value as the field's type: a flag as bool, a number scaled and range-checked."""
    if field_name in FLAGS:
        return _flag(value)
    number = _number(value) * mapped.scale + mapped.offset
    if not math.isfinite(number):
        raise PayloadError("not a finite number")
    low, high = RANGES[field_name]
    if not low <= number <= high:
        raise PayloadError(f"out of range ({low:g} to {high:g})")
    return number


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise PayloadError("expected a number, got true/false")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise PayloadError("expected a number, got text") from None
    if not isinstance(value, int | float):
        raise PayloadError(f"expected a number, got {json_kind(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise PayloadError("number out of range") from None
    if not math.isfinite(number):
        raise PayloadError("not a finite number")
    return number


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return value == 1
    if isinstance(value, str):
        text = value.strip().lower()
        if text in TRUE_TEXT:
            return True
        if text in FALSE_TEXT:
            return False
    raise PayloadError(f"expected on/off, true/false or 1/0, got {json_kind(value)}")


# --- the mapper (pure) ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Binding:
    """One configured value: which device and field it feeds, from where."""

    device: str  # "station" or a probe id
    field: str
    mapped: MappedValue
    path: tuple[PathPart, ...]


@dataclass(frozen=True, slots=True)
class MapResult:
    readings: tuple[Reading, ...] = ()
    problems: tuple[str, ...] = ()  # one line per rejected value: `device.field: reason`
    updated: tuple[str, ...] = ()  # devices that got at least one valid value


@dataclass
class MqttMapper:
    """MQTT messages → readings. It keeps each probe's last values, because a probe's
    temperature and humidity may come on different topics and a climate reading needs both
    (a probe gives no reading until its temperature has arrived)."""

    config: MqttMapConfig
    bindings: tuple[Binding, ...] = field(init=False)
    _probe_values: dict[str, dict[str, float]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        bindings = [
            Binding(STATION, name, mapped, parse_path(mapped.path))
            for name, mapped in self.config.station.items()
        ]
        for probe, values in self.config.probes.items():
            bindings += [
                Binding(probe, name, mapped, parse_path(mapped.path))
                for name, mapped in values.items()
            ]
        self.bindings = tuple(bindings)

    @property
    def topics(self) -> tuple[str, ...]:
        """Each distinct topic (or filter) to subscribe, in config order."""
        return tuple(dict.fromkeys(b.mapped.topic for b in self.bindings))

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(b.device for b in self.bindings))

    def topics_of(self, device: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(b.mapped.topic for b in self.bindings if b.device == device))

    def map(self, topic: str, payload: bytes, at: float) -> MapResult:
        """The readings one message gives, and why each value it could not use was rejected."""
        bindings = [b for b in self.bindings if topic_matches_sub(b.mapped.topic, topic)]
        if not bindings:
            return MapResult()
        try:
            data, is_json = decode_payload(payload)
        except PayloadError as exc:
            return MapResult(problems=(str(exc),))
        values: dict[str, dict[str, Value]] = {}
        problems: list[str] = []
        for binding in bindings:
            try:
                value = _binding_value(binding, data, is_json)
            except PayloadError as exc:
                problems.append(f"{binding.device}.{binding.field}: {exc}")
                continue
            values.setdefault(binding.device, {})[binding.field] = value
        readings: list[Reading] = []
        for device, fields in values.items():
            reading = self._reading(device, fields, at)
            if reading is not None:
                readings.append(reading)
        return MapResult(tuple(readings), tuple(problems), tuple(values))

    def _reading(self, device: str, fields: Mapping[str, Value], at: float) -> Reading | None:
        if device == STATION:
            return _station(fields, self.config.capacity_wh, at)
        known = self._probe_values.setdefault(device, {})
        known.update({name: float(value) for name, value in fields.items()})
        temperature = known.get("temperature_c")
        if temperature is None:
            return None
        return ClimateReading(
            probe=device,
            temperature_c=temperature,
            humidity_pct=known.get("humidity_pct"),
            battery_pct=known.get("battery_pct"),
            at=at,
            source=SOURCE,
        )


def _binding_value(binding: Binding, data: Any, is_json: bool) -> Value:
    if binding.path and not is_json:
        raise PayloadError("payload is not JSON")
    raw = value_at(data, binding.path, binding.mapped.path)
    return convert(raw, binding.field, binding.mapped)


def _station(fields: Mapping[str, Value], capacity_wh: float | None, at: float) -> StationReading:
    def number(name: str) -> float | None:
        value = fields.get(name)
        return None if value is None else float(value)

    def flag(name: str) -> bool | None:
        value = fields.get(name)
        return None if value is None else bool(value)

    return StationReading(
        soc_pct=number("soc_pct"),
        watts_in=number("watts_in"),
        watts_out=number("watts_out"),
        solar_w=number("solar_w"),
        remaining_min=number("remaining_min"),
        capacity_wh=capacity_wh,
        ac=flag("ac"),
        dc=flag("dc"),
        usb=flag("usb"),
        at=at,
        source=SOURCE,
    )


# --- the source -------------------------------------------------------------------------------


class MqttMapSource:
    """Mapped readings through the bridge's own Session (routes on it, no connection of its own).

    `run(sink)` adds the routes (subscribed now if the session is connected, else when it
    connects), watches for stale devices until cancelled, then removes its routes.
    """

    def __init__(
        self,
        config: MqttMapConfig,
        session: Session,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.session = session
        self.mapper = MqttMapper(config)
        self._clock = clock
        self._last: dict[str, float] = {}
        self._lost: set[str] = set()

    async def run(self, sink: Sink) -> None:
        started = self._clock()
        self._last = dict.fromkeys(self.mapper.devices, started)
        self._lost = set()

        async def on_message(message: Inbound) -> None:
            await self._on_message(message, sink)

        routes: list[Route] = [self.session.route(t, on_message) for t in self.mapper.topics]
        try:
            await self._watch(sink)
        finally:
            for route in routes:
                self.session.router.remove(route)

    async def _on_message(self, message: Inbound, sink: Sink) -> None:
        now = self._clock()
        result = self.mapper.map(message.topic, message.payload, now)
        for device in result.updated:
            self._last[device] = now
            self._lost.discard(device)
        for reading in result.readings:
            await sink(reading)
        if result.problems:
            raise PayloadError("; ".join(result.problems))

    async def _watch(self, sink: Sink) -> None:
        stale_after = self.config.stale_after
        interval = max(0.05, min(stale_after / 4, 5.0))
        while True:
            await asyncio.sleep(interval)
            now = self._clock()
            for device, last in self._last.items():
                if device in self._lost or now - last < stale_after:
                    continue
                self._lost.add(device)
                topics = ", ".join(self.mapper.topics_of(device))
                reason = f"no valid value on {topics} for {stale_after:g}s"
                await sink(Lost(device, reason, at=now))
