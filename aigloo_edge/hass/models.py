"""Typed Home Assistant MQTT device-discovery payloads (Home Assistant 2024.12 and later).

One retained message per device on `<prefix>/device/<object_id>/config` carries the device
(`dev`), the origin (`o`) and the device's components (`cmps`), each with its platform (`p`).
We build these ourselves, so the models are strict: an unknown field is a bug here, not input
to tolerate. `DeviceConfig.to_json` writes HA's documented abbreviations and leaves out options
that are not set, so HA applies its own defaults. Only the options we use are modelled; add one
with its documented abbreviation (https://www.home-assistant.io/integrations/mqtt/) when needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

AvailabilityMode = Literal["all", "any", "latest"]
EntityCategory = Literal["config", "diagnostic"]
StateClass = Literal["measurement", "total", "total_increasing"]
SensorDeviceClass = Literal[
    "battery",
    "duration",
    "energy_storage",
    "enum",
    "humidity",
    "power",
    "signal_strength",
    "temperature",
]
BinarySensorDeviceClass = Literal["connectivity", "problem", "running"]
SwitchDeviceClass = Literal["outlet", "switch"]
ButtonDeviceClass = Literal["identify", "restart", "update"]
Platform = Literal["binary_sensor", "button", "select", "sensor", "switch"]
PLATFORMS: Final[frozenset[str]] = frozenset(get_args(Platform))
# HA's discovery ids (object ids, component keys) use this character class.
ComponentKey = Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]+$")]


class HassModel(BaseModel):
    """Base of the discovery models: strict, immutable, built by name, dumped by alias."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Availability(HassModel):
    """One availability topic: a component's retained `online`/`offline` with its last will."""

    topic: str = Field(serialization_alias="t")
    payload_available: str = Field(default="online", serialization_alias="pl_avail")
    payload_not_available: str = Field(default="offline", serialization_alias="pl_not_avail")


class Device(HassModel):
    """The device-registry entry every component of the message belongs to."""

    identifiers: list[str] = Field(min_length=1, serialization_alias="ids")
    name: str
    manufacturer: str | None = Field(default=None, serialization_alias="mf")
    model: str | None = Field(default=None, serialization_alias="mdl")
    sw_version: str | None = Field(default=None, serialization_alias="sw")
    hw_version: str | None = Field(default=None, serialization_alias="hw")
    via_device: str | None = None  # HA documents no abbreviation for it


class Origin(HassModel):
    """The application that publishes the discovery message (required for device discovery)."""

    name: str
    sw_version: str | None = Field(default=None, serialization_alias="sw")
    support_url: str | None = Field(default=None, serialization_alias="url")


class Entity(HassModel):
    """Options every entity platform shares."""

    unique_id: str = Field(serialization_alias="uniq_id")
    name: str
    icon: str | None = Field(default=None, serialization_alias="ic")
    entity_category: EntityCategory | None = Field(default=None, serialization_alias="ent_cat")
    enabled_by_default: bool | None = Field(default=None, serialization_alias="en")
    availability: list[Availability] | None = Field(default=None, serialization_alias="avty")
    availability_mode: AvailabilityMode | None = Field(
        default=None, serialization_alias="avty_mode"
    )
    json_attributes_topic: str | None = Field(default=None, serialization_alias="json_attr_t")
    qos: Literal[0, 1, 2] | None = None


class Sensor(Entity):
    platform: Literal["sensor"] = Field(default="sensor", serialization_alias="p")
    state_topic: str = Field(serialization_alias="stat_t")
    value_template: str | None = Field(default=None, serialization_alias="val_tpl")
    device_class: SensorDeviceClass | None = Field(default=None, serialization_alias="dev_cla")
    state_class: StateClass | None = Field(default=None, serialization_alias="stat_cla")
    unit_of_measurement: str | None = Field(default=None, serialization_alias="unit_of_meas")
    suggested_display_precision: int | None = Field(
        default=None, ge=0, serialization_alias="sug_dsp_prc"
    )
    options: list[str] | None = Field(default=None, min_length=1, serialization_alias="ops")
    expire_after: int | None = Field(default=None, ge=1, serialization_alias="exp_aft")


class BinarySensor(Entity):
    platform: Literal["binary_sensor"] = Field(default="binary_sensor", serialization_alias="p")
    state_topic: str = Field(serialization_alias="stat_t")
    value_template: str | None = Field(default=None, serialization_alias="val_tpl")
    device_class: BinarySensorDeviceClass | None = Field(
        default=None, serialization_alias="dev_cla"
    )
    payload_on: str | None = Field(default=None, serialization_alias="pl_on")
    payload_off: str | None = Field(default=None, serialization_alias="pl_off")
    expire_after: int | None = Field(default=None, ge=1, serialization_alias="exp_aft")


class Switch(Entity):
    platform: Literal["switch"] = Field(default="switch", serialization_alias="p")
    command_topic: str = Field(serialization_alias="cmd_t")
    state_topic: str = Field(serialization_alias="stat_t")
    value_template: str = Field(serialization_alias="val_tpl")
    payload_on: str = Field(serialization_alias="pl_on")
    payload_off: str = Field(serialization_alias="pl_off")
    state_on: str = Field(serialization_alias="stat_on")
    state_off: str = Field(serialization_alias="stat_off")
    # The state comes back on a retained topic, so HA shows what really happened.
    optimistic: bool = Field(default=False, serialization_alias="opt")
    device_class: SwitchDeviceClass | None = Field(default=None, serialization_alias="dev_cla")


class Select(Entity):
    platform: Literal["select"] = Field(default="select", serialization_alias="p")
    command_topic: str = Field(serialization_alias="cmd_t")
    state_topic: str = Field(serialization_alias="stat_t")
    value_template: str = Field(serialization_alias="val_tpl")
    options: list[str] = Field(min_length=1, serialization_alias="ops")
    optimistic: bool = Field(default=False, serialization_alias="opt")


class Button(Entity):
    platform: Literal["button"] = Field(default="button", serialization_alias="p")
    command_topic: str = Field(serialization_alias="cmd_t")
    payload_press: str = Field(serialization_alias="pl_prs")
    device_class: ButtonDeviceClass | None = Field(default=None, serialization_alias="dev_cla")


class RemovedComponent(HassModel):
    """A component HA must drop: only its platform, as HA documents for one-component removal."""

    platform: Platform = Field(serialization_alias="p")


Component = Sensor | BinarySensor | Switch | Select | Button


class DeviceConfig(HassModel):
    """The whole device-discovery message: device, origin and components by key."""

    device: Device = Field(serialization_alias="dev")
    origin: Origin = Field(serialization_alias="o")
    components: Mapping[ComponentKey, Component | RemovedComponent] = Field(
        serialization_alias="cmps"
    )

    def to_json(self) -> bytes:
        """The retained payload: abbreviated keys, unset options left out."""
        return self.model_dump_json(by_alias=True, exclude_none=True).encode()
