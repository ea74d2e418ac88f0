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

from aigloo_edge.display import TemperatureUnit
from aigloo_edge.hass.settings import HassConfig
from aigloo_edge.mqtt.settings import MqttSettings, TlsSettings
from aigloo_edge.payloads import Id, Role
from aigloo_edge.plain.settings import PlainConfig
from aigloo_edge.rules.model import Duration
from aigloo_edge.sensors.settings import FansConfig, SensorsConfig
from aigloo_edge.topics import validate_base
from aigloo_edge.yamlfile import read_yaml, validate

ComponentName = Literal[
    "agent",
    "waker",
    "inference",
    "dispatcher",
    "gateway",
    "rules",
    "sensors",
    "fans",
    "twin",
    "hass",
    "plain",
]
SourceName = Literal["psutil", "powermetrics", "macmon"]
ALL_SOURCES: tuple[SourceName, ...] = ("psutil", "powermetrics", "macmon")
DEFAULT_COMPONENTS: tuple[ComponentName, ...] = ("agent",)
SECTIONED_COMPONENTS: tuple[ComponentName, ...] = (
    "hass",
    "plain",
    "waker",
    "inference",
    "dispatcher",
    "gateway",
    "rules",
    "sensors",
    "fans",
    "twin",
)
MacAddress = Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$")]
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
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
        return _relative(value, (info.context or {}).get("base_dir"))

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


class UpstreamConfig(Strict):
    """An OpenAI-compatible server the `openai` engine forwards to (Ollama, llama.cpp, ...)."""

    base_url: str = Field(pattern=r"^https?://", description="e.g. http://127.0.0.1:11434/v1")
    api_key_env: str | None = Field(
        default=None, description="name of the environment variable holding the upstream's key"
    )
    models: list[str] = Field(
        default_factory=list, description="models to serve; empty: ask the upstream's /models"
    )
    timeout_s: float = Field(default=600.0, gt=0)


class InferenceConfig(Strict):
    """The node's inference worker: its engine, models and queue."""

    engine: Literal["mlx", "openai"] = "mlx"
    models: dict[str, Path] = Field(
        default_factory=dict, description="model name → mlx-lm model directory"
    )
    demo_model: bool = Field(
        default=False, description="also serve the packaged SmolLM2-135M-Instruct demo model"
    )
    memory_budget_gb: float = Field(default=8.0, gt=0, le=4096)
    queue_size: int = Field(
        default=8, ge=0, le=1000, description="waiting requests, beyond running"
    )
    per_model_concurrency: int = Field(default=1, ge=1, le=64)
    upstream: UpstreamConfig | None = None

    @field_validator("models")
    @classmethod
    def _model_paths(cls, value: dict[str, Path], info: ValidationInfo) -> dict[str, Path]:
        base_dir = (info.context or {}).get("base_dir")
        return {name: _relative(path, base_dir) for name, path in value.items()}

    @model_validator(mode="after")
    def _engine_has_models(self) -> Self:
        if (self.engine == "openai") != (self.upstream is not None):
            raise ValueError("give an 'upstream' section exactly when engine is 'openai'")
        if self.engine == "mlx" and not self.models and not self.demo_model:
            raise ValueError("the mlx engine needs 'models' or 'demo_model: true'")
        return self


DispatcherInstance = Literal["dispatcher", "dispatcher-2", "dispatcher-3"]


class WakePolicyConfig(Strict):
    """When the dispatcher may wake a sleeping node for a request it alone can serve."""

    allowed: bool = True
    min_soc_pct: float = Field(
        default=40.0, ge=0, le=100, description="no wake below this battery charge..."
    )
    min_solar_w: float = Field(default=150.0, ge=0, description="...unless solar gives this much")
    timeout_s: float = Field(default=180.0, gt=0, le=3600)


class DispatcherConfig(Strict):
    """The power-aware router of `infer/request` to the workers."""

    instance: DispatcherInstance = Field(
        default="dispatcher", description="distinct per dispatcher when several share the load"
    )
    shared_group: str | None = Field(
        default="dispatch",
        pattern=r"^[a-z0-9_-]{1,64}$",
        description="MQTT shared-subscription group; null to subscribe plainly",
    )
    fallbacks: dict[str, str] = Field(
        default_factory=dict, description="model → smaller model to use when none can serve it"
    )
    wake: WakePolicyConfig = Field(default_factory=WakePolicyConfig)
    accept_timeout_s: float = Field(default=5.0, gt=0, le=600)
    request_timeout_s: float = Field(
        default=600.0, gt=0, description="when a request has no deadline"
    )
    max_deadline_s: float = Field(
        default=3600.0, gt=0, description="a request whose deadline is further away is refused"
    )


class GatewayConfig(Strict):
    """The OpenAI-compatible HTTP endpoint in front of the dispatcher."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    api_keys_file: Path | None = Field(
        default=None, description="one API key per line (mode 0600); none: no key needed"
    )
    request_timeout_s: float = Field(default=600.0, gt=0)
    default_max_tokens: int = Field(
        default=1024, ge=1, le=32_768, description="when a client sends no max_tokens"
    )

    @field_validator("api_keys_file")
    @classmethod
    def _keys_path(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else _relative(value, (info.context or {}).get("base_dir"))

    @model_validator(mode="after")
    def _keys_beyond_loopback(self) -> Self:
        if self.api_keys_file is None and self.host not in LOOPBACK_HOSTS:
            raise ValueError(
                f"a gateway on {self.host} is reachable from the network: give api_keys_file "
                "(or bind it to 127.0.0.1)"
            )
        return self


class RulesSafetyConfig(Strict):
    """Limits no rule file can bypass."""

    min_power_toggle: Duration = Field(
        default=600.0, description="a node's power changes at most this often (anti-flapping)"
    )
    breaker_max_fires: int = Field(
        default=6, ge=1, le=1000, description="a rule firing more often than this..."
    )
    breaker_window: Duration = Field(default=3600.0, description="...within this is disabled")
    reassert: Duration = Field(
        default=120.0, description="send again a state the device still contradicts after this"
    )
    startup_grace: Duration = Field(
        default=30.0, description="a signal not seen this long after start counts as stale"
    )
    settle: Duration = Field(
        default=3.0, description="no command this soon after start (retained state arriving)"
    )


class RulesConfig(Strict):
    """The rules engine: rule files, the machines and probes they talk about, its state."""

    dir: Path = Field(default=Path("../rules"), description="directory of rule files")
    state_file: Path = Field(
        default=Path("../.aigloo/rules/state.sqlite3"),
        description="timers, active rules and commands, kept across restarts",
    )
    nodes: list[Id] = Field(default_factory=lambda: ["studio", "mbp", "mini", "air"])
    probes: list[Id] = Field(default_factory=lambda: ["internal", "ambient", "exhaust"])
    dry_run: bool = Field(
        default=False, description="decide and report, but send no command (try rules safely)"
    )
    watch: bool = Field(default=True, description="reload rule files when they change")
    safety: RulesSafetyConfig = Field(default_factory=RulesSafetyConfig)

    @field_validator("dir", "state_file")
    @classmethod
    def _paths(cls, value: Path, info: ValidationInfo) -> Path:
        return _relative(value, (info.context or {}).get("base_dir"))


class TwinConfig(Strict):
    """The live digital twin: a scenario's rig, played in real time (or faster) over MQTT.

    It publishes what the sensor bridge and the agents of `nodes` would, and obeys the same
    commands (fans, station outputs, the played machines' sleep and wake), so the other
    components run unchanged against it. Run it with no `sensors` or `fans` component beside it:
    it is the station, the probes and the fans.
    """

    scenario: Path = Field(description="scenario file (scenarios/*.yaml)")
    speed: float = Field(
        default=1.0, gt=0, le=10_000, description="simulated seconds per second of wall time"
    )
    nodes: list[Id] = Field(
        default_factory=lambda: ["studio", "mbp", "air"],
        description="the machines it plays (their agents); the machine running it is real",
    )

    @field_validator("scenario")
    @classmethod
    def _scenario_path(cls, value: Path, info: ValidationInfo) -> Path:
        return _relative(value, (info.context or {}).get("base_dir"))

    @field_validator("nodes")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a node is listed twice")
        return value


class DisplayConfig(Strict):
    """How people read values on this machine (status, top, simulate); payloads stay SI."""

    temperature: TemperatureUnit = Field(
        default="F", description="°F (the rig's own figures) or °C, wherever a person reads one"
    )


def _relative(path: Path, base_dir: Path | None) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() or base_dir is None else base_dir / path


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
    inference: InferenceConfig | None = None
    dispatcher: DispatcherConfig | None = None
    gateway: GatewayConfig | None = None
    rules: RulesConfig | None = None
    sensors: SensorsConfig | None = None
    fans: FansConfig | None = None
    twin: TwinConfig | None = None
    hass: HassConfig | None = None
    plain: PlainConfig | None = None
    display: DisplayConfig = Field(default_factory=DisplayConfig)

    @model_validator(mode="after")
    def _sections_match_components(self) -> Self:
        for name in SECTIONED_COMPONENTS:
            if (name in self.components) != (getattr(self, name) is not None):
                raise ValueError(
                    f"a {name!r} section goes with {name!r} in components, and only then"
                )
        if "inference" in self.components and "agent" not in self.components:
            raise ValueError("'inference' runs inside the node agent: add 'agent' to components")
        if len(set(self.components)) != len(self.components):
            raise ValueError("a component is listed twice")
        if self.twin is not None:
            self._twin_fits(self.twin)
        return self

    def _twin_fits(self, twin: TwinConfig) -> None:
        """The twin is the station, the probes, the fans and its nodes: nothing else may be."""
        doubled = {"sensors", "fans"} & set(self.components)
        if doubled:
            raise ValueError(
                "the twin is the station, the probes and the fans: drop "
                f"{' and '.join(sorted(doubled))} from components, or the twin"
            )
        if "agent" in self.components and self.node in twin.nodes:
            raise ValueError(
                f"{self.node!r} runs its own agent here: the twin cannot also play it "
                "(remove it from twin.nodes)"
            )


def load_config(path: Path) -> AgentConfig:
    """Read and validate a machine config; raises ConfigError naming file:line and why."""
    document = read_yaml(path)
    context: dict[str, Any] = {"base_dir": path.resolve().parent}
    return validate(document, AgentConfig, context)


__all__ = [
    "AgentConfig",
    "BrokerConfig",
    "Deadbands",
    "DispatcherConfig",
    "DisplayConfig",
    "GatewayConfig",
    "InferenceConfig",
    "PowerConfig",
    "RulesConfig",
    "RulesSafetyConfig",
    "TelemetryConfig",
    "TwinConfig",
    "UpstreamConfig",
    "WakePolicyConfig",
    "WakeTarget",
    "WakerConfig",
    "load_config",
]
