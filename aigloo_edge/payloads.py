"""Wire models for every JSON payload in the topic contract.

Network payloads are tolerant (unknown keys are ignored, so newer senders do not break older
readers) but strict on types and ranges (no string-to-number coercion, no NaN/inf). Every JSON
payload carries `v` (schema version) and `ts` (Unix seconds). Units are SI: °C, W, Wh, %, bytes.
Commands also accept a plain value (`sleep`) as well as JSON (`{"state": "sleep"}`).
"""

from __future__ import annotations

import functools
import json
import time
from typing import Annotated, ClassVar, Final, Literal, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from aigloo_edge.errors import PayloadError

SCHEMA_VERSION: Final = 1

# 2100-01-01: a later time is almost surely milliseconds (or microseconds) sent as seconds.
LATEST_UNIX_S: Final = 4_102_444_800.0


def _seconds_not_millis(value: float) -> float:
    if value > LATEST_UNIX_S:
        raise ValueError("after the year 2100: Unix seconds expected, not milliseconds")
    return value


UnixSeconds = Annotated[float, Field(ge=0), AfterValidator(_seconds_not_millis)]
Pct = Annotated[float, Field(ge=0, le=100)]
Watts = Annotated[float, Field(ge=0, le=100_000)]
Celsius = Annotated[float, Field(ge=-80, le=250)]
Seconds = Annotated[float, Field(ge=0)]
Bytes = Annotated[int, Field(ge=0)]
Id = Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,64}$")]
RequestId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]

AVAILABILITY_ONLINE: Final = "online"
AVAILABILITY_OFFLINE: Final = "offline"
Availability = Literal["online", "offline"]


def now() -> float:
    """Wall-clock Unix seconds, the `ts` of every payload."""
    return time.time()


class Wire(BaseModel):
    """Base of every wire model: tolerant of extra keys, strict on types, no NaN/inf.

    Schemas are built on first use (`defer_build`), so a process builds only the models it
    uses: the node agent stays light.
    """

    model_config = ConfigDict(
        extra="ignore", strict=True, allow_inf_nan=False, frozen=True, defer_build=True
    )


class Payload(Wire):
    """Base of every JSON payload: version and timestamp."""

    v: int = Field(default=SCHEMA_VERSION, ge=1, description="payload schema version")
    ts: UnixSeconds = Field(default_factory=now, description="Unix seconds when produced")

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Self:
        """Parse and validate; every failure is a PayloadError with a readable reason."""
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            raise PayloadError(describe_validation_error(exc)) from exc


def parse_availability(payload: bytes) -> bool | None:
    """`online` → True, `offline` → False, empty (a cleared retained message) → None; anything
    else is a PayloadError, never read as either."""
    if not payload:
        return None
    if payload == AVAILABILITY_ONLINE.encode():
        return True
    if payload == AVAILABILITY_OFFLINE.encode():
        return False
    shown = payload[:20].decode("utf-8", errors="replace")
    raise PayloadError(f"availability must be online or offline, not {shown!r}")


def json_kind(value: object) -> str:
    """What a JSON value is, for a message that must not echo the value itself."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, `field: reason`, without echoing the offending input."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "payload"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


# --- nodes ---------------------------------------------------------------------------------

Role = Literal["studio", "mbp", "mini", "air", "other"]
ThermalPressure = Literal["nominal", "moderate", "heavy", "trapping", "sleeping", "unknown"]


class NodeInfo(Payload):
    """Retained description of a node; republished whenever it changes."""

    node: Id
    role: Role
    hostname: str
    hardware: str = Field(description="model and chip, e.g. 'Mac Studio (M3 Ultra)'")
    os: str
    os_version: str
    version: str = Field(description="aigloo-edge version the agent runs")
    cpu_cores: int = Field(ge=1)
    memory_bytes: Bytes
    components: list[str] = Field(default_factory=list)
    models: list[str] = Field(default_factory=list, description="inference models served")


class DiskUsage(Wire):
    mount: str
    used_bytes: Bytes
    total_bytes: Bytes
    used_pct: Pct


class NodeBattery(Wire):
    soc_pct: Pct
    plugged: bool
    remaining_s: Seconds | None = None


class NodePower(Wire):
    """Apple-silicon power rails in watts (powermetrics or macmon), any of which may be absent."""

    cpu_w: Watts | None = None
    gpu_w: Watts | None = None
    ane_w: Watts | None = None
    package_w: Watts | None = None
    system_w: Watts | None = None


class NodeTelemetry(Payload):
    """Periodic node readings; retained with a message expiry of about three intervals."""

    node: Id
    cpu_pct: Pct
    cpu_per_core_pct: list[Pct] = Field(default_factory=list)
    load_avg: tuple[float, float, float] | None = None
    memory_used_bytes: Bytes
    memory_available_bytes: Bytes
    memory_pct: Pct
    swap_used_bytes: Bytes | None = None
    disks: list[DiskUsage] = Field(default_factory=list)
    net_rx_bps: float | None = Field(default=None, ge=0)
    net_tx_bps: float | None = Field(default=None, ge=0)
    battery: NodeBattery | None = None
    temperatures_c: dict[str, Celsius] = Field(default_factory=dict)
    fans_rpm: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)
    power: NodePower | None = None
    gpu_pct: Pct | None = None
    thermal_pressure: ThermalPressure | None = None
    uptime_s: Seconds | None = None
    process_count: int | None = Field(default=None, ge=0)
    infer_queue: int | None = Field(default=None, ge=0)
    infer_tokens_per_s: float | None = Field(
        default=None, ge=0, description="tokens generated per second since the last telemetry"
    )


PowerStateValue = Literal["awake", "sleeping", "waking", "unreachable"]


class PowerState(Payload):
    state: PowerStateValue
    reason: str | None = None


# --- commands (plain value or JSON) ---------------------------------------------------------

CommandT = TypeVar("CommandT", bound="Command")


class Command(Payload):
    """A command: accepts a bare value for its `plain_field` or a JSON object.

    A request id, when given, lets actuators stay idempotent across redeliveries.
    """

    plain_field: ClassVar[str]
    id: RequestId | None = None

    @classmethod
    def parse(cls, raw: bytes | str) -> Self:
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError as exc:
            raise PayloadError("payload is not UTF-8 text") from exc
        stripped = text.strip()
        if stripped.startswith("{"):
            return cls.from_json(stripped)
        try:
            return cls.model_validate({cls.plain_field: stripped.strip('"')})
        except ValidationError as exc:
            raise PayloadError(describe_validation_error(exc)) from exc


class PowerCommand(Command):
    """`sleep` drains running jobs first unless `force`; `wake` is carried out by the waker."""

    plain_field: ClassVar[str] = "state"
    state: Literal["sleep", "wake"]
    force: bool = False


class OutputCommand(Command):
    plain_field: ClassVar[str] = "state"
    state: Literal["on", "off"]


FanProfile = Literal["off", "quiet", "normal", "max"]


class FanProfileCommand(Command):
    plain_field: ClassVar[str] = "profile"
    profile: FanProfile


class RuleCommand(Command):
    plain_field: ClassVar[str] = "action"
    action: Literal["enable", "disable"]


# --- inference ------------------------------------------------------------------------------


class ChatMessage(Wire):
    role: Literal["system", "user", "assistant", "tool"]
    content: str = Field(max_length=200_000)


class InferRequest(Payload):
    """A request to a worker or to the cluster. Exactly one of `messages`, `prompt` is set."""

    id: RequestId
    client: Id = "anon"
    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessage] | None = Field(default=None, min_length=1)
    prompt: str | None = Field(default=None, max_length=200_000)
    max_tokens: int = Field(default=256, ge=1, le=32_768)
    temperature: float = Field(default=0.0, ge=0, le=5)
    top_p: float = Field(default=1.0, gt=0, le=1)
    stream: bool = True
    deadline: UnixSeconds | None = Field(default=None, description="Unix seconds")
    reply_to: str | None = Field(
        default=None,
        max_length=512,
        description="reply topic; default `<base>/infer/reply/<client>/<id>` "
        "(an MQTT v5 response topic on the request takes precedence)",
    )
    node: Id | None = Field(default=None, description="run on this node only (the dispatcher)")

    @model_validator(mode="after")
    def _one_input(self) -> Self:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give exactly one of 'messages' or 'prompt'")
        return self


class InferAccepted(Payload):
    """A worker took the request: it is queued or running there."""

    type: Literal["accepted"] = "accepted"
    id: RequestId
    node: Id
    model: str
    queued: int = Field(ge=0, description="requests that must finish before this one starts")


class InferChunk(Payload):
    type: Literal["chunk"] = "chunk"
    id: RequestId
    seq: int = Field(ge=0)
    text: str


InferErrorCode = Literal[
    "bad_request",
    "unknown_model",
    "context_length",
    "duplicate_id",
    "busy",
    "deadline",
    "cancelled",
    "no_worker",
    "node_asleep_power_saving",
    "worker_lost",
    "engine",
    "internal",
]


class InferError(Wire):
    code: InferErrorCode
    message: str


class InferFinal(Payload):
    type: Literal["final"] = "final"
    id: RequestId
    seq: int = Field(ge=0, description="one past the last chunk's seq")
    ok: bool
    text: str = ""
    model: str | None = None
    node: Id | None = None
    finish_reason: Literal["stop", "length", "cancelled", "error"] | None = None
    prompt_tokens: int | None = Field(default=None, ge=0)
    completion_tokens: int | None = Field(default=None, ge=0)
    cached_tokens: int | None = Field(
        default=None, ge=0, description="prompt tokens reused from the worker's KV cache"
    )
    ttft_s: Seconds | None = None
    tokens_per_s: float | None = Field(default=None, ge=0)
    error: InferError | None = None


InferReplyMessage = InferAccepted | InferChunk | InferFinal
InferReply = Annotated[InferReplyMessage, Field(discriminator="type")]


@functools.cache
def infer_reply_adapter() -> TypeAdapter[InferReplyMessage]:
    """Parses one reply-stream message (accepted, chunk or final) by `type`, built on first use."""
    return TypeAdapter(InferReply)


def parse_infer_reply(raw: bytes | str) -> InferReplyMessage:
    try:
        return infer_reply_adapter().validate_json(raw)
    except ValidationError as exc:
        raise PayloadError(describe_validation_error(exc)) from exc


class InferCancel(Payload):
    id: RequestId


class InferPolicy(Payload):
    """Whether the dispatcher may use a node, and wake it; set by the rules engine or an admin."""

    allowed: bool = True
    wake: bool = True
    reason: str | None = None


# --- power station, environment, fans -------------------------------------------------------


class Outputs(Wire):
    ac: bool | None = None
    dc: bool | None = None
    usb: bool | None = None


class Battery(Payload):
    soc_pct: Pct
    watts_in: Watts
    watts_out: Watts
    remaining_min: float | None = Field(default=None, ge=0)
    capacity_wh: float | None = Field(default=None, gt=0)
    outputs: Outputs = Field(default_factory=Outputs)
    source: Literal["ecoflow_ble", "ecoflow_cloud", "mqtt_map", "twin"]


class Solar(Payload):
    watts: Watts
    source: str | None = None


class Climate(Payload):
    probe: Id
    temperature_c: Celsius
    humidity_pct: Pct | None = None
    battery_pct: Pct | None = None
    rssi_dbm: float | None = Field(default=None, ge=-150, le=20)
    stale: bool = False


class FanProfileState(Payload):
    profile: FanProfile
    duty_pct: Pct


# --- rules and bridge -----------------------------------------------------------------------

Scalar = float | bool | str | None


RulePhase = Literal["idle", "pending", "active", "cooldown", "disabled", "tripped"]


class RuleState(Payload):
    """Retained state of one rule: what it is doing and the values that decided it."""

    rule: Id
    enabled: bool
    active: bool
    phase: RulePhase = "idle"
    since: float | None = Field(default=None, description="when the phase began")
    last_fired: float | None = None
    until: float | None = Field(
        default=None, description="when a pending rule fires, or a cooldown ends"
    )
    why: str | None = None
    values: dict[str, Scalar] = Field(default_factory=dict)
    set: dict[str, Scalar] = Field(default_factory=dict, description="what it asks for")
    priority: int = 0
    source: str | None = Field(default=None, description="file:line of its definition")


RuleEventKind = Literal[
    "fired",
    "released",
    "tripped",
    "enabled",
    "disabled",
    "command",
    "held",
    "reasserted",
    "reloaded",
    "rejected",
]


class RuleEvent(Payload):
    """One decision of the rules engine: a rule firing or releasing, an actuator changing, ..."""

    kind: RuleEventKind
    rule: Id | None = None
    actuator: str | None = None
    value: Scalar = None
    why: str
    values: dict[str, Scalar] = Field(default_factory=dict)
    set: dict[str, Scalar] = Field(default_factory=dict)
    dry_run: bool = False


class BridgeRejected(Payload):
    """A rate-limited report of rejected input: the latest case and the counts behind it."""

    component: Id
    topic: str
    reason: str
    kind: Literal["invalid", "handler_error", "unknown_topic"]
    total: int = Field(ge=1, description="rejections since the component started")
    suppressed: int = Field(ge=0, description="rejections not reported one by one")


class BridgeHealth(Payload):
    component: Id
    version: str
    started: float
    received: int = Field(ge=0)
    rejected: int = Field(ge=0)
    reconnects: int = Field(ge=0)


# --- schema export --------------------------------------------------------------------------

SCHEMA_MODELS: Final[dict[str, type[BaseModel]]] = {
    "NodeInfo": NodeInfo,
    "NodeTelemetry": NodeTelemetry,
    "PowerState": PowerState,
    "PowerCommand": PowerCommand,
    "InferRequest": InferRequest,
    "InferChunk": InferChunk,
    "InferFinal": InferFinal,
    "InferCancel": InferCancel,
    "InferAccepted": InferAccepted,
    "InferPolicy": InferPolicy,
    "Battery": Battery,
    "Solar": Solar,
    "OutputCommand": OutputCommand,
    "Climate": Climate,
    "FanProfileState": FanProfileState,
    "FanProfileCommand": FanProfileCommand,
    "RuleState": RuleState,
    "RuleCommand": RuleCommand,
    "RuleEvent": RuleEvent,
    "BridgeHealth": BridgeHealth,
    "BridgeRejected": BridgeRejected,
}


def json_schemas() -> dict[str, str]:
    """File name → JSON Schema text for every wire model, for app developers."""
    files: dict[str, str] = {}
    for name, model in SCHEMA_MODELS.items():
        schema = model.model_json_schema(mode="validation")
        schema["$id"] = f"https://aigloo.invalid/schemas/v{SCHEMA_VERSION}/{name}.json"
        files[f"{name}.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    reply = infer_reply_adapter().json_schema(mode="validation")
    reply["title"] = "InferReply"
    files["InferReply.json"] = json.dumps(reply, indent=2, sort_keys=True) + "\n"
    return files
