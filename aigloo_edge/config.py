"""Per-machine config (`agents/<machine>.yaml`): strict models and the loader.

Unknown keys and bad values are errors that name file:line, the field and the reason
(see `yamlfile`). Paths inside a config are relative to the config file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from aigloo_edge.mqtt.settings import MqttSettings, TlsSettings
from aigloo_edge.payloads import Id, Role
from aigloo_edge.topics import validate_base
from aigloo_edge.yamlfile import read_yaml, validate

ComponentName = Literal["agent", "waker"]
SourceName = Literal["psutil", "powermetrics", "macmon"]
ALL_SOURCES: tuple[SourceName, ...] = ("psutil", "powermetrics", "macmon")
DEFAULT_COMPONENTS: tuple[ComponentName, ...] = ("agent",)
MacAddress = Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$")]
IPv4 = Annotated[str, Field(pattern=r"^\d{1,3}(\.\d{1,3}){3}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class BrokerConfig(Strict):
    """Where this machine's components reach Mosquitto, and with which credentials file."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    transport: Literal["tcp", "websockets"] = "tcp"
    protocol: Literal["5", "3.1.1"] = "5"
    tls: TlsSettings | None = None
    credentials_file: Path = Field(description="written by `aigloo broker init`; mode 0600")
    base_topic: str = "aigloo"
    keepalive: int = Field(default=30, ge=5, le=120)

    @field_validator("credentials_file")
    @classmethod
    def _relative_to_config(cls, value: Path, info: ValidationInfo) -> Path:
        base_dir = (info.context or {}).get("base_dir")
        value = value.expanduser()
        return value if value.is_absolute() or base_dir is None else (base_dir / value)

    @field_validator("base_topic")
    @classmethod
    def _valid_base(cls, value: str) -> str:
        return validate_base(value)

    def settings_for(self, username: str) -> MqttSettings:
        return MqttSettings(
            host=self.host,
            port=self.port,
            transport=self.transport,
            protocol=self.protocol,
            tls=self.tls,
            username=username,
            credentials_file=self.credentials_file,
            base_topic=self.base_topic,
            keepalive=self.keepalive,
        )


class Deadbands(Strict):
    """Publish at once, before the interval is up, when a reading moves at least this much."""

    cpu_pct: float = Field(default=20.0, gt=0)
    memory_pct: float = Field(default=5.0, gt=0)
    disk_pct: float = Field(default=2.0, gt=0)
    power_w: float = Field(default=10.0, gt=0)
    temperature_c: float = Field(default=2.0, gt=0)
    battery_pct: float = Field(default=2.0, gt=0)


class TelemetryConfig(Strict):
    interval_s: float = Field(default=5.0, ge=0.5, le=3600)
    expiry_intervals: float = Field(default=3.0, ge=1.5, description="retained message expiry")
    mounts: list[str] = Field(default_factory=lambda: ["/"])
    deadbands: Deadbands = Field(default_factory=Deadbands)
    sources: list[SourceName] = Field(default_factory=lambda: list(ALL_SOURCES))
    powermetrics_command: list[str] = Field(
        default_factory=lambda: [
            "sudo",
            "-n",
            "powermetrics",
            "--samplers",
            "cpu_power,gpu_power,thermal",
            "-f",
            "plist",
            "-i",
            "{interval_ms}",
        ],
        min_length=1,
    )
    macmon_command: list[str] = Field(
        default_factory=lambda: ["macmon", "pipe", "-i", "{interval_ms}"], min_length=1
    )

    @property
    def expiry_s(self) -> float:
        return self.interval_s * self.expiry_intervals


class PowerConfig(Strict):
    """How this machine sleeps: `macos` (pmset), `linux` (systemd), `command`, `dry-run`."""

    driver: Literal["macos", "linux", "command", "dry-run"] = "dry-run"
    sleep_command: list[str] | None = Field(default=None, min_length=1)
    drain_timeout_s: float = Field(default=60.0, ge=0, le=3600)

    @model_validator(mode="after")
    def _command_needs_a_command(self) -> Self:
        if (self.driver == "command") != (self.sleep_command is not None):
            raise ValueError("give sleep_command exactly when driver is 'command'")
        return self


class WakeTarget(Strict):
    mac: MacAddress
    broadcast: IPv4 = "255.255.255.255"
    port: int = Field(default=9, ge=1, le=65535)
    timeout_s: float = Field(default=120.0, gt=0, le=3600)


class WakerConfig(Strict):
    """The peer that wakes sleeping nodes with Wake-on-LAN (the Mini)."""

    targets: dict[Id, WakeTarget] = Field(min_length=1)


class AgentConfig(Strict):
    """One machine's config: who it is, its broker, and the components it runs."""

    node: Id
    role: Role
    broker: BrokerConfig
    components: list[ComponentName] = Field(
        default_factory=lambda: list(DEFAULT_COMPONENTS), min_length=1
    )
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    power: PowerConfig = Field(default_factory=PowerConfig)
    waker: WakerConfig | None = None

    @model_validator(mode="after")
    def _sections_match_components(self) -> Self:
        if ("waker" in self.components) != (self.waker is not None):
            raise ValueError("a 'waker' section goes with 'waker' in components, and only then")
        if len(set(self.components)) != len(self.components):
            raise ValueError("a component is listed twice")
        return self


def load_config(path: Path) -> AgentConfig:
    """Read and validate a machine config; raises ConfigError naming file:line and why."""
    document = read_yaml(path)
    context: dict[str, Any] = {"base_dir": path.resolve().parent}
    return validate(document, AgentConfig, context)


__all__ = [
    "AgentConfig",
    "BrokerConfig",
    "Deadbands",
    "PowerConfig",
    "TelemetryConfig",
    "WakeTarget",
    "WakerConfig",
    "load_config",
]
