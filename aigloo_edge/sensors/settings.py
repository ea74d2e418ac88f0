"""Config of the sensor bridge and the fans (the `sensors:` and `fans:` sections of a machine).

Strict like every config model: an unknown key or a bad value names file:line and the reason.
Secrets are never in the file: the EcoFlow cloud keys come from environment variables named
here; the EcoFlow user id (an account number, not a password) is in the file, mode 0600.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aigloo_edge.payloads import FanProfile, Id
from aigloo_edge.rules.model import Duration

SERIAL_PATTERN = r"^[A-Z0-9]{8,32}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class ThermoProDevice(_Strict):
    """One ThermoPro thermometer and the probe id it reports as (`internal`, `ambient`, ...)."""

    probe: Id
    name: str | None = Field(default=None, description="advertised name, e.g. 'TP357 (2B54)'")
    address: str | None = Field(
        default=None, description="MAC on Linux, CoreBluetooth UUID on macOS"
    )

    @model_validator(mode="after")
    def _identified(self) -> Self:
        if self.name is None and self.address is None:
            raise ValueError("give the thermometer's 'name' or 'address' (or both)")
        return self


class ThermoProConfig(_Strict):
    devices: list[ThermoProDevice] = Field(min_length=1)
    stale_after: Duration = Field(
        default=300.0, description="no advert this long: the probe is reported stale"
    )


class EcoflowBleConfig(_Strict):
    """The station over Bluetooth (offline): one connection at a time, the station allows one."""

    serial: str = Field(pattern=SERIAL_PATTERN, description="e.g. R621ZEB4XXXXXXXX")
    user_id: str = Field(
        pattern=r"^[0-9]{4,32}$", description="the EcoFlow account's user id (see docs/sensors.md)"
    )
    address: str | None = Field(
        default=None, description="skip the scan: MAC (Linux) or CoreBluetooth UUID (macOS)"
    )
    capacity_wh: float = Field(default=768.0, gt=0)
    stale_after: Duration = Field(default=60.0, description="no status this long: stale")
    reconnect_max: Duration = Field(default=60.0, description="longest wait between attempts")


class EcoflowCloudConfig(_Strict):
    """The station through EcoFlow's IoT open API (online): keys from the developer portal."""

    serial: str = Field(pattern=SERIAL_PATTERN)
    access_key_env: str = Field(default="ECOFLOW_ACCESS_KEY", description="variable's name")
    secret_key_env: str = Field(default="ECOFLOW_SECRET_KEY", description="variable's name")
    api_url: str = Field(default="https://api.ecoflow.com", pattern=r"^https?://")
    capacity_wh: float = Field(default=768.0, gt=0)
    stale_after: Duration = Field(default=120.0)


class MappedValue(_Strict):
    """One value read from any topic: JSON path (empty: the payload is the value), scale."""

    topic: str = Field(min_length=1, max_length=512)
    path: str = ""
    scale: float = 1.0
    offset: float = 0.0


StationField = Literal[
    "soc_pct", "watts_in", "watts_out", "solar_w", "remaining_min", "ac", "dc", "usb"
]
ClimateField = Literal["temperature_c", "humidity_pct", "battery_pct"]


class MqttMapConfig(_Strict):
    """Readings other systems already publish (Home Assistant, a Victron shunt, ESPHome)."""

    station: dict[StationField, MappedValue] = Field(default_factory=dict)
    probes: dict[Id, dict[ClimateField, MappedValue]] = Field(default_factory=dict)
    capacity_wh: float | None = Field(default=None, gt=0)
    stale_after: Duration = Field(default=300.0)

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not self.station and not self.probes:
            raise ValueError("map at least one station or probe value")
        for probe, fields in self.probes.items():
            if "temperature_c" not in fields:
                raise ValueError(f"probe {probe!r} needs temperature_c")
        return self


class Deadbands(_Strict):
    """A reading is published when it moves this much (else at most every `heartbeat`)."""

    soc_pct: float = Field(default=1.0, ge=0)
    watts: float = Field(default=5.0, ge=0)
    temperature_c: float = Field(default=0.2, ge=0)
    humidity_pct: float = Field(default=1.0, ge=0)


class SensorsConfig(_Strict):
    """The bridge: which sources run, and how their readings are published."""

    thermopro: ThermoProConfig | None = None
    ecoflow_ble: EcoflowBleConfig | None = None
    ecoflow_cloud: EcoflowCloudConfig | None = None
    mqtt_map: MqttMapConfig | None = None
    deadbands: Deadbands = Field(default_factory=Deadbands)
    heartbeat: Duration = Field(
        default=30.0, description="publish an unchanged reading this often, to show it is fresh"
    )

    @model_validator(mode="after")
    def _one_station(self) -> Self:
        stations = [self.ecoflow_ble, self.ecoflow_cloud, self.mqtt_map and self.mqtt_map.station]
        if sum(1 for s in stations if s) > 1:
            raise ValueError("one station source at a time: ecoflow_ble, ecoflow_cloud or mqtt_map")
        if not any([self.thermopro, self.ecoflow_ble, self.ecoflow_cloud, self.mqtt_map]):
            raise ValueError("enable at least one source")
        return self


FanDriverName = Literal["mqtt", "ecoflow-dc", "command", "dry-run"]
DEFAULT_DUTY: dict[FanProfile, float] = {"off": 0.0, "quiet": 35.0, "normal": 60.0, "max": 100.0}


class FanMqttDriver(_Strict):
    """A fan controller that speaks MQTT (ESPHome, Tasmota)."""

    command_topic: str = Field(min_length=1)
    payload: str = Field(default="{duty}", description="template: {duty}, {profile}, {on}")
    state_topic: str | None = None
    state_path: str = Field(default="", description="JSON path of the duty % in its state")


class FansConfig(_Strict):
    """What turns the six fans, and the duty % of each profile."""

    driver: FanDriverName = "dry-run"
    duty: dict[FanProfile, float] = Field(default_factory=lambda: dict(DEFAULT_DUTY))
    mqtt: FanMqttDriver | None = None
    commands: dict[FanProfile, list[str]] | None = Field(
        default=None, description="driver command: the command line of each profile"
    )
    initial: FanProfile = Field(default="normal", description="profile applied at start")

    @model_validator(mode="after")
    def _driver_settings(self) -> Self:
        if (self.driver == "mqtt") != (self.mqtt is not None):
            raise ValueError("give an 'mqtt' section exactly when driver is 'mqtt'")
        if (self.driver == "command") != (self.commands is not None):
            raise ValueError("give 'commands' exactly when driver is 'command'")
        if set(self.duty) != {"off", "quiet", "normal", "max"}:
            raise ValueError("give the duty % of each profile: off, quiet, normal, max")
        if any(not 0 <= pct <= 100 for pct in self.duty.values()):
            raise ValueError("a duty is a percentage, 0 to 100")
        return self
