"""Scenario files (`scenarios/*.yaml`): the rig's physical parameters and one day's plan.

Strict like every config: unknown keys, bad values and physically impossible ones (a negative
capacity, an efficiency above 1, a fan that makes power) are errors naming `file:line`, the
field and the reason. Every number under `station`, `solar`, `machines`, `fans` and `box` must
say where it comes from, either next to it

    capacity_wh: {value: 768, source: "EcoFlow RIVER 2 Pro spec sheet"}

or in a `sources:` map of its section (a key may name a whole sub-section, `profiles`, or a
dotted path, `profiles.max`):

    station:
      capacity_wh: 768
      sources:
        capacity_wh: EcoFlow RIVER 2 Pro spec sheet

Clock times (`"10:00"`, `"10:00-12:30"`) are local times in the UTC offset of `start`.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Self, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from aigloo_edge.errors import ConfigError
from aigloo_edge.payloads import FanProfile, Id
from aigloo_edge.rules.model import parse_duration
from aigloo_edge.twin.sources import Collected, check_covered, check_declared, strip
from aigloo_edge.yamlfile import YamlDocument, describe_errors, parse_yaml, read_yaml

PARAMETER_SECTIONS: Final = ("station", "solar", "machines", "fans", "box")
DAY_S: Final = 86400.0
FAN_PROFILES: Final[tuple[FanProfile, ...]] = ("off", "quiet", "normal", "max")
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
ABSOLUTE_ZERO_C: Final = -273.15


# --- value types with the physical reason when they are impossible ------------------------------


def _efficiency(value: float) -> float:
    if value > 1:
        raise ValueError(f"an efficiency is a fraction up to 1; {value:g} would create energy")
    if value <= 0:
        raise ValueError(f"an efficiency is a fraction above 0; {value:g} would pass no energy")
    return value


def _fraction(value: float) -> float:
    if not 0 <= value <= 1:
        raise ValueError(f"a fraction from 0 to 1, not {value:g}")
    return value


def _watts(value: float) -> float:
    if value < 0:
        raise ValueError(f"a power cannot be negative ({value:g} W): nothing here makes power")
    return value


def _capacity(value: float) -> float:
    if value <= 0:
        raise ValueError(f"a battery holds more than 0 Wh, not {value:g}")
    return value


def _percent(value: float) -> float:
    if not 0 <= value <= 100:
        raise ValueError(f"a percentage from 0 to 100, not {value:g}")
    return value


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError(f"must be more than 0, not {value:g}")
    return value


def _non_negative(value: float) -> float:
    if value < 0:
        raise ValueError(f"cannot be negative ({value:g})")
    return value


def _celsius(value: float) -> float:
    if value < ABSOLUTE_ZERO_C:
        raise ValueError(f"{value:g} °C is below absolute zero")
    if value > 100:
        raise ValueError(f"{value:g} °C: water would boil; write the temperature in °C")
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("a finite number, please")
    return value


def parse_clock(value: object) -> float:
    """Seconds after local midnight from `"HH:MM"`."""
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(  # noqa: TRY004 - pydantic wants ValueError
            f"put the time in quotes, e.g. '10:00' (YAML reads an unquoted 10:00 as the "
            f"number {value})"
        )
    if not isinstance(value, str) or not (found := _CLOCK.match(value.strip())):
        raise ValueError(f"a time of day is written 'HH:MM', e.g. '09:30', not {value!r}")
    return int(found.group(1)) * 3600.0 + int(found.group(2)) * 60.0


def parse_range(value: object) -> tuple[float, float]:
    """`"always"` or `"HH:MM-HH:MM"` (may run past midnight) as seconds after midnight."""
    if isinstance(value, str) and value.strip() == "always":
        return (0.0, DAY_S)
    if not isinstance(value, str) or value.count("-") != 1:
        raise ValueError(
            f"a period is 'always' or 'HH:MM-HH:MM' in quotes, e.g. '10:00-12:30', not {value!r}"
        )
    start, end = (parse_clock(part) for part in value.split("-"))
    if start == end:
        raise ValueError(f"the period {value!r} is empty (write 'always' for all day)")
    return (start, end)


def _duration(value: object) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError("a duration longer than 0")
    return seconds


Float = Annotated[float, AfterValidator(_finite)]
Efficiency = Annotated[Float, AfterValidator(_efficiency)]
Fraction = Annotated[Float, AfterValidator(_fraction)]
Watts = Annotated[Float, AfterValidator(_watts)]
Capacity = Annotated[Float, AfterValidator(_capacity)]
Percent = Annotated[Float, AfterValidator(_percent)]
Positive = Annotated[Float, AfterValidator(_positive)]
NonNegative = Annotated[Float, AfterValidator(_non_negative)]
Celsius = Annotated[Float, AfterValidator(_celsius)]
Clock = Annotated[float, BeforeValidator(parse_clock)]
Period = Annotated[tuple[float, float], BeforeValidator(parse_range)]
Seconds = Annotated[float, BeforeValidator(_duration)]
Outlet = Literal["ac", "usb", "dc", "none"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- the sections ------------------------------------------------------------------------------


class StationParams(_Strict):
    """The power station: its battery, its converters and its solar input."""

    capacity_wh: Capacity
    initial_soc_pct: Percent
    charge_efficiency: Efficiency = Field(description="solar input → stored energy")
    discharge_efficiency: Efficiency = Field(description="stored energy → the station's DC bus")
    inverter_efficiency: Efficiency = Field(description="DC bus → AC outlets")
    inverter_idle_w: Watts = Field(description="the inverter's own draw while AC is on")
    dc_efficiency: Efficiency = Field(description="DC bus → 12 V and USB-C outlets")
    solar_input_max_w: Watts = Field(description="the most the solar input takes (MPPT limit)")


class CloudStep(_Strict):
    """From `at` (local clock) on, this fraction of clear-sky sunlight gets through."""

    at: Clock
    factor: Fraction


def _latitude(value: float) -> float:
    if not -90 <= value <= 90:
        raise ValueError(f"a latitude is from -90 (south pole) to 90 (north pole), not {value:g}")
    return value


def _longitude(value: float) -> float:
    if not -180 <= value <= 180:
        raise ValueError(f"a longitude is from -180 to 180 (east positive), not {value:g}")
    return value


def _cloud(value: object) -> object:
    """One number for the whole day becomes one step at midnight."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [{"at": "00:00", "factor": _fraction(float(value))}]
    return value


class SolarParams(_Strict):
    latitude: Annotated[Float, AfterValidator(_latitude)]
    longitude: Annotated[Float, AfterValidator(_longitude)]
    panel_peak_w: Watts = Field(description="the panel's rated power at 1000 W/m²")
    derate: Fraction = Field(description="wiring, soiling, heat and MPPT losses (PVWatts)")
    cloud: Annotated[list[CloudStep], BeforeValidator(_cloud)] = Field(
        default_factory=lambda: [CloudStep(at=0.0, factor=1.0)],
        description="a fraction of clear sky all day, or steps through the day",
    )

    @field_validator("cloud")
    @classmethod
    def _steps(cls, value: list[CloudStep]) -> list[CloudStep]:
        if not value:
            raise ValueError("give at least one step, or one number for the whole day")
        times = [step.at for step in value]
        if times != sorted(times) or len(set(times)) != len(times):
            raise ValueError("cloud steps go in time order, one per time")
        return value


class MachineParams(_Strict):
    """One Mac: wall power by state, how hot its cores run, and a laptop's own battery."""

    outlet: Outlet = Field(description="the station outlet it hangs on ('none': unplugged)")
    in_box: bool = Field(description="inside the cooler (its heat goes into the box)")
    sleep_w: Watts
    idle_w: Watts
    inference_w: Watts
    max_w: Watts
    core_k_per_w: NonNegative = Field(description="hottest core above the air it breathes, K/W")
    core_tau_s: Positive = Field(description="how fast its cores follow the load, s")
    battery_wh: Capacity | None = None
    battery_pct: Percent | None = None
    charge_w: Watts | None = None
    charge_efficiency: Efficiency | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.sleep_w <= self.idle_w <= self.inference_w <= self.max_w:
            raise ValueError(
                f"powers must rise sleep_w <= idle_w <= inference_w <= max_w, not "
                f"{self.sleep_w:g} / {self.idle_w:g} / {self.inference_w:g} / {self.max_w:g} W"
            )
        battery = (self.battery_wh, self.battery_pct, self.charge_w, self.charge_efficiency)
        if any(v is None for v in battery) and any(v is not None for v in battery):
            raise ValueError(
                "a laptop's battery needs all of battery_wh, battery_pct, charge_w and "
                "charge_efficiency (a desktop none of them)"
            )
        if self.outlet == "none" and self.battery_wh is None:
            raise ValueError("a machine with outlet 'none' needs its own battery to run")
        return self

    @property
    def has_battery(self) -> bool:
        return self.battery_wh is not None


class FanProfileParams(_Strict):
    watts: Watts = Field(description="all six fans together")
    airflow_m3h: NonNegative = Field(description="air through the box, m³/h")


class FansParams(_Strict):
    initial: FanProfile = "normal"
    profiles: dict[FanProfile, FanProfileParams]

    @field_validator("profiles")
    @classmethod
    def _all_profiles(
        cls, value: dict[FanProfile, FanProfileParams]
    ) -> dict[FanProfile, FanProfileParams]:
        missing = [p for p in FAN_PROFILES if p not in value]
        if missing:
            raise ValueError(f"give every profile: off, quiet, normal, max (missing {missing})")
        return value


class OutsideParams(_Strict):
    """The air around the box: one temperature, or a daily curve (coolest 12 h from warmest)."""

    constant_c: Celsius | None = None
    min_c: Celsius | None = None
    max_c: Celsius | None = None
    warmest: Clock | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        curve = (self.min_c, self.max_c, self.warmest)
        if self.constant_c is not None:
            if any(v is not None for v in curve):
                raise ValueError("give constant_c, or min_c, max_c and warmest, not both")
            return self
        if any(v is None for v in curve):
            raise ValueError("give constant_c, or all of min_c, max_c and warmest")
        assert self.min_c is not None
        assert self.max_c is not None
        if self.min_c > self.max_c:
            raise ValueError(f"min_c ({self.min_c:g}) is above max_c ({self.max_c:g})")
        return self


class BoxParams(_Strict):
    """The cooler as one lumped thermal mass, with walls and the fans' airflow."""

    lid: Literal["closed", "open"]
    thermal_mass_j_per_k: Positive
    wall_w_per_k_closed: NonNegative
    wall_w_per_k_open: NonNegative
    initial_c: Celsius | None = Field(default=None, description="none: the outside temperature")
    outside: OutsideParams


class Scenario(_Strict):
    """One scenario file: the rig's parameters, the load plan, the start and the duration."""

    name: Id
    description: str | None = None
    start: dt.datetime = Field(description="ISO 8601 with its UTC offset")
    duration: Seconds
    station: StationParams
    solar: SolarParams
    machines: dict[Id, MachineParams] = Field(min_length=1)
    load: dict[Id, list[Period]] = Field(
        default_factory=dict, description="when each machine runs inference (local clock)"
    )
    fans: FansParams
    box: BoxParams
    sources: dict[str, str] = Field(
        default_factory=dict, description="filled by the loader: each parameter's source"
    )

    @field_validator("start")
    @classmethod
    def _aware(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                "give the start with its UTC offset, e.g. 2025-06-21T08:00:00-06:00 "
                "(the clock of the schedules and the sun)"
            )
        return value

    @property
    def start_ts(self) -> float:
        return self.start.timestamp()

    @property
    def utc_offset_s(self) -> float:
        offset = self.start.utcoffset()
        assert offset is not None  # checked by the validator
        return offset.total_seconds()


# --- loading -----------------------------------------------------------------------------------


def load_scenario(path: Path) -> Scenario:
    """A scenario file, checked; ConfigError lists every problem as `file:line: field: reason`."""
    return _load(read_yaml(path))


def parse_scenario(text: str, path: Path = Path("<scenario>")) -> Scenario:
    return _load(parse_yaml(text, path))


def _load(document: YamlDocument) -> Scenario:
    if not isinstance(document.data, dict):
        raise ConfigError(
            f"{document.path}:1: a scenario is a mapping of settings (name, start, station, ...)"
        )
    collected = Collected(document)
    data = strip(document.data, (), collected)
    assert isinstance(data, dict)
    check_declared(data, collected)
    check_covered(data, PARAMETER_SECTIONS, collected)
    _check_load(data, collected)
    data["sources"] = {".".join(map(str, path)): note for path, note in collected.notes.items()}
    scenario: Scenario | None = None
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        for line in describe_errors(document, exc, explain=_explain).splitlines():
            collected.problems.append((_line_of(line, document), line))
    if collected.problems:
        ordered = sorted(collected.problems, key=lambda item: item[0])
        raise ConfigError("\n".join(dict.fromkeys(text for _, text in ordered)))
    assert scenario is not None
    return scenario


def _line_of(message: str, document: YamlDocument) -> int:
    rest = message.removeprefix(f"{document.path}:")
    head = rest.split(":", 1)[0]
    return int(head) if head.isdigit() else 1


def _check_load(data: dict[str, Any], out: Collected) -> None:
    """The load plan names machines of the scenario."""
    load, machines = data.get("load"), data.get("machines")
    if not isinstance(load, dict) or not isinstance(machines, dict):
        return
    for node in load:
        if node not in machines:
            close = difflib.get_close_matches(str(node), [str(m) for m in machines], n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            known = ", ".join(map(str, machines))
            out.problem(("load", str(node)), f"no such machine ({hint}machines: {known})")


def _explain(error: ErrorDetails) -> str | None:
    if error["type"] == "literal_error" and False in error["loc"]:
        return "write 'off' in quotes (YAML reads a bare off as false)"
    if error["type"] != "extra_forbidden":
        return None
    model = _model_at(Scenario, tuple(error["loc"])[:-1])
    if model is None:
        return None
    known = list(model.model_fields)
    close = difflib.get_close_matches(str(error["loc"][-1]), known, n=1)
    if close:
        return f"unknown setting (did you mean {close[0]!r}?)"
    return f"unknown setting (settings here: {', '.join(known)})"


def _model_at(model: type[BaseModel], location: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model that holds the fields at `location` below `model`."""
    annotation: Any = model
    for part in location:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            info = annotation.model_fields.get(str(part))
            if info is None:
                return None
            annotation = info.annotation
        elif get_origin(annotation) in (dict, list, Mapping):
            annotation = get_args(annotation)[-1]
        else:
            return None
    annotation = _unwrap(annotation)
    is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
    return annotation if is_model else None


def _unwrap(annotation: Any) -> Any:
    """`X | None` and `list[X] | X` → the model among them (or the annotation itself)."""
    for arg in get_args(annotation) if get_origin(annotation) not in (dict, list) else ():
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
        if get_origin(arg) is list:
            return arg
    return annotation
