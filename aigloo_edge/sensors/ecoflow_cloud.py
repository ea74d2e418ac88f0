"""The power station through EcoFlow's IoT open API (online): signed HTTP for the MQTT
certificate, then EcoFlow's broker for telemetry (`quota`) and output commands (`set`).

Facts about the API are in docs/ecoflow-ble-protocol.md §10. In short: every HTTP request carries
`accessKey`, `nonce`, `timestamp` and `sign` headers, where `sign` is the hex HMAC-SHA256 (key:
the secret key) of the request's flattened, ASCII-sorted parameters followed by
`accessKey=…&nonce=…&timestamp=…`. `GET /iot-open/sign/certification` answers the MQTT host,
port and an account/password; telemetry arrives on `/open/<account>/<sn>/quota`, commands go to
`…/set` and are answered on `…/set_reply`.

The keys are read from the environment variables the config names, and are never logged or put
in an error message; neither is the MQTT password EcoFlow hands out.

The MQTT link is a plain aiomqtt client rather than our `Session`: EcoFlow's broker is not ours,
so no birth/will, health or rejection reports may be published on it, and EcoFlow allows only a
few distinct client ids per account per day, so the id is fixed. Its connection settings are
still an `MqttSettings` (TLS, protocol, keepalive, reconnect timing).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import math
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar

import aiomqtt
import httpx
from pydantic import SecretStr

from aigloo_edge.errors import PayloadError, SensorError
from aigloo_edge.mqtt.backoff import Backoff
from aigloo_edge.mqtt.settings import MqttSettings, TlsSettings
from aigloo_edge.payloads import json_kind
from aigloo_edge.runtime import cancel_and_wait
from aigloo_edge.sensors.readings import Lost, OutputName, Sink, StationReading
from aigloo_edge.sensors.settings import EcoflowCloudConfig

log = logging.getLogger(__name__)

T = TypeVar("T")

CERTIFICATE_PATH: Final = "/iot-open/sign/certification"
HTTP_TIMEOUT_S: Final = 15.0
CONFIRM_TIMEOUT_S: Final = 10.0
ACK_TIMEOUT_S: Final = 10.0
READY_TIMEOUT_S: Final = 10.0
STATION: Final = "station"
SOURCE: Final = "ecoflow_cloud"
IDLE_REMAINING_MIN: Final = 5999  # what the station reports when there is no estimate
MAX_WATTS: Final = 100_000.0
ERROR_HINTS: Final = {"8521": "check the access and secret keys, and the clock"}

# The cloud connection unless the caller gives its own: TLS with the system's CAs (EcoFlow's
# broker listens on 8883, `mqtts`), MQTT 3.1.1 as the third-party clients use, and reconnects
# that back off to a minute so an outage does not hammer EcoFlow.
CLOUD_MQTT: Final = MqttSettings(
    protocol="3.1.1",
    tls=TlsSettings(),
    keepalive=60,
    reconnect_initial_s=1.0,
    reconnect_max_s=60.0,
)

# --- request signing (pure) -------------------------------------------------------------------


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested objects become `a.b`, arrays `a[0]` (and `a[0].b`); values become text."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        _flatten_into(flat, name, value)
    return flat


def _flatten_into(flat: dict[str, str], name: str, value: Any) -> None:
    if isinstance(value, Mapping):
        flat.update(flatten_params(value, name))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _flatten_into(flat, f"{name}[{index}]", item)
    else:
        flat[name] = _text(value)


def _text(value: Any) -> str:
    """A value as JavaScript's template strings write it (the reference clients are JS)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def canonical_string(
    params: Mapping[str, Any] | None, access_key: str, nonce: str, timestamp: str
) -> str:
    """The text that is signed: sorted `k=v` pairs, then accessKey, nonce and timestamp."""
    flat = flatten_params(params or {})
    pairs = [f"{key}={flat[key]}" for key in sorted(flat)]
    pairs += [f"accessKey={access_key}", f"nonce={nonce}", f"timestamp={timestamp}"]
    return "&".join(pairs)


def hmac_sha256_hex(message: str, secret_key: str) -> str:
    return hmac.new(secret_key.encode(), message.encode(), hashlib.sha256).hexdigest()


def signed_headers(
    access_key: str,
    secret_key: str,
    params: Mapping[str, Any] | None = None,
    *,
    nonce: str | None = None,
    timestamp: str | None = None,
) -> dict[str, str]:
    """The four auth headers of one request; a fresh nonce and the current time by default."""
    nonce = nonce if nonce is not None else str(100_000 + secrets.randbelow(900_000))
    timestamp = timestamp if timestamp is not None else str(int(time.time() * 1000))
    sign = hmac_sha256_hex(canonical_string(params, access_key, nonce, timestamp), secret_key)
    return {"accessKey": access_key, "nonce": nonce, "timestamp": timestamp, "sign": sign}


# --- the MQTT certificate ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CloudCredentials:
    """What `/iot-open/sign/certification` answers: where and as whom to connect."""

    host: str
    port: int
    account: str
    password: str = field(repr=False)
    protocol: str = "mqtts"

    def topic(self, serial: str, kind: Literal["quota", "set", "set_reply", "status"]) -> str:
        return f"/open/{self.account}/{serial}/{kind}"


async def request_certificate(
    api_url: str, access_key: str, secret_key: str, http: httpx.AsyncClient
) -> CloudCredentials:
    """Ask EcoFlow for the MQTT credentials; SensorError (without the keys) if refused."""
    url = api_url.rstrip("/") + CERTIFICATE_PATH
    log.info("requesting the EcoFlow MQTT certificate from %s", api_url)
    try:
        response = await http.get(url, headers=signed_headers(access_key, secret_key))
    except httpx.HTTPError as exc:
        raise SensorError(f"cannot reach {api_url}: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise SensorError(
            f"EcoFlow certificate request failed: HTTP {response.status_code}"
            f" {response.reason_phrase}".rstrip()
        )
    try:
        body = response.json()
    except ValueError:
        raise SensorError("EcoFlow certificate response is not JSON") from None
    if not isinstance(body, dict):
        raise SensorError("EcoFlow certificate response is not a JSON object")
    code = str(body.get("code"))
    if code != "0":
        message = str(body.get("message") or "no message")[:200]
        hint = f" ({ERROR_HINTS[code]})" if code in ERROR_HINTS else ""
        raise SensorError(f"EcoFlow refused the certificate request: code {code}: {message}{hint}")
    return _credentials(body.get("data"))


def _credentials(data: object) -> CloudCredentials:
    if not isinstance(data, dict):
        raise SensorError("EcoFlow certificate response has no 'data' object")
    values: dict[str, str] = {}
    for key in ("url", "port", "certificateAccount", "certificatePassword"):
        value = data.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value:
            raise SensorError(f"EcoFlow certificate response lacks {key!r}")
        values[key] = value
    port = int(values["port"]) if values["port"].isdigit() else 0
    if not 1 <= port <= 65535:
        raise SensorError("EcoFlow certificate response has no valid 'port'")
    protocol = data.get("protocol")
    return CloudCredentials(
        host=values["url"],
        port=port,
        account=values["certificateAccount"],
        password=values["certificatePassword"],
        protocol=protocol if isinstance(protocol, str) else "mqtts",
    )


# --- quota messages → readings (pure) ---------------------------------------------------------

# Each quota message names its module; the flat keys (also `/device/quota/all`'s) are prefixed.
TYPE_PREFIXES: Final = {
    "pdStatus": "pd",
    "mpptStatus": "mppt",
    "emsStatus": "bms_emsStatus",
    "bmsStatus": "bms_bmsStatus",
    "invStatus": "inv",
}
SOC_KEYS: Final = (
    "bms_emsStatus.f32LcdShowSoc",
    "bms_emsStatus.lcdShowSoc",
    "bms_bmsStatus.f32ShowSoc",
    "bms_bmsStatus.soc",
    "pd.soc",
)
AC_KEYS: Final = ("mppt.cfgAcEnabled", "inv.cfgAcEnabled")
DC_KEYS: Final = ("pd.carState", "mppt.carState")
CHG_TYPE_CAR: Final = 2  # mppt.cfgChgType: 0 auto, 1 solar, 2 car


def flatten_quota(message: Mapping[str, Any]) -> dict[str, Any]:
    """A quota message's `params` under the flat keys (`pd.soc`, `mppt.inWatts`, ...).

    A message with a `typeCode` has plain keys (`soc`), prefixed here by its module; one
    without (the `/device/quota/all` shape) has the dotted keys already.
    """
    type_code = message.get("typeCode")
    if type_code is not None and not isinstance(type_code, str):
        raise PayloadError("typeCode: expected text")
    params = message.get("params", message.get("param"))
    if params is None:
        raise PayloadError("quota message has no params")
    if not isinstance(params, Mapping):
        raise PayloadError("params: expected an object")
    prefix = f"{TYPE_PREFIXES.get(type_code, type_code)}." if type_code else ""
    return {f"{prefix}{key}": value for key, value in params.items()}


def quota_to_reading(
    payload: bytes | str | Mapping[str, Any],
    *,
    at: float,
    capacity_wh: float | None = None,
) -> StationReading:
    """One quota message as a StationReading: a key it lacks is None, a bad one rejects it all.

    Raises PayloadError naming the key and what is wrong (a wrong type, not finite, out of
    range); the value itself is not echoed.
    """
    message = _json_object(payload) if not isinstance(payload, Mapping) else payload
    flat = flatten_quota(message)
    socs = [_number(flat, key, 0, 100) for key in SOC_KEYS]
    acs = [_flag(flat, key) for key in AC_KEYS]
    dcs = [_flag(flat, key) for key in DC_KEYS]
    return StationReading(
        soc_pct=_first(socs),
        watts_in=_number(flat, "pd.wattsInSum", 0, MAX_WATTS),
        watts_out=_number(flat, "pd.wattsOutSum", 0, MAX_WATTS),
        solar_w=_solar(flat),
        remaining_min=_remaining(flat),
        capacity_wh=capacity_wh,
        ac=_first(acs),
        dc=_first(dcs),
        usb=None,  # no USB state key is known for RIVER 2 Pro (see the doc's open points)
        at=at,
        source=SOURCE,
    )


def has_values(reading: StationReading) -> bool:
    """Whether a reading carries anything about the station (not only capacity and time)."""
    values = (reading.soc_pct, reading.watts_in, reading.watts_out, reading.solar_w)
    states = (reading.remaining_min, reading.ac, reading.dc, reading.usb)
    return any(value is not None for value in values + states)


def _json_object(payload: bytes | str) -> Mapping[str, Any]:
    try:
        data = json.loads(payload)
    except ValueError:  # also UnicodeDecodeError
        raise PayloadError("payload is not JSON") from None
    if not isinstance(data, dict):
        raise PayloadError("payload is not a JSON object")
    return data


def _first(values: list[T | None]) -> T | None:
    return next((value for value in values if value is not None), None)


def _number(flat: Mapping[str, Any], key: str, low: float, high: float) -> float | None:
    if key not in flat:
        return None
    value = flat[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError(f"{key}: expected a number, got {json_kind(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise PayloadError(f"{key}: number out of range") from None
    if not math.isfinite(number):
        raise PayloadError(f"{key}: not a finite number")
    if not low <= number <= high:
        raise PayloadError(f"{key}: out of range ({low:g} to {high:g})")
    return number


def _flag(flat: Mapping[str, Any], key: str) -> bool | None:
    if key not in flat:
        return None
    value = flat[key]
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return value == 1
    raise PayloadError(f"{key}: expected 0 or 1, got {json_kind(value)}")


def _solar(flat: Mapping[str, Any]) -> float | None:
    watts = _number(flat, "mppt.inWatts", 0, MAX_WATTS)
    charge_type = _number(flat, "mppt.cfgChgType", 0, 255)
    if watts is not None and charge_type == CHG_TYPE_CAR:
        return 0.0  # the XT60 input is set to the car charger: no solar
    return watts


def _remaining(flat: Mapping[str, Any]) -> float | None:
    """Minutes to full or empty: pd.remainTime (signed by direction) or the EMS pair."""
    pd = _number(flat, "pd.remainTime", -1e6, 1e6)
    charging = _number(flat, "bms_emsStatus.chgRemainTime", 0, 1e6)
    discharging = _number(flat, "bms_emsStatus.dsgRemainTime", 0, 1e6)
    state = _number(flat, "bms_emsStatus.chgState", 0, 255)  # 0 idle, 1 charging, 2 discharging
    if pd is not None:
        return _estimate(abs(pd))
    if state == 1:
        return _estimate(charging)
    if state == 2:
        return _estimate(discharging)
    known = [m for m in (_estimate(charging), _estimate(discharging)) if m is not None]
    return known[0] if len(known) == 1 else None


def _estimate(minutes: float | None) -> float | None:
    return None if minutes is None or minutes >= IDLE_REMAINING_MIN else minutes


# --- set commands (pure) ----------------------------------------------------------------------

MPPT_MODULE: Final = 5
UNCHANGED_U8: Final = 255  # acOutCfg: leave X-Boost / frequency as they are
UNCHANGED_VOLTAGE: Final = -1
COMMAND_FROM: Final = "aigloo-edge"
# set_reply codes the developer docs name ("0" is success).
REPLY_CODES: Final = {"-1": "the device does not belong to this account", "-2": "device offline"}


def set_command(serial: str, output: OutputName, on: bool, message_id: int) -> dict[str, Any]:
    """The `set` message switching `output` (RIVER 2 / 2 Pro / DELTA 2: MPPT module 5).

    The common fields are the developer docs' (`id` as text, echoed by the reply; `version`
    "1.0"; `from`); `sn`, `moduleType` and `params` follow the docs-style DELTA 2 examples.
    AC leaves X-Boost, voltage and frequency unchanged (255 / -1 / 255, as hassio-ecoflow-cloud
    sends them); 12 V DC is the car output, `mpptCar`.
    """
    params: dict[str, int]
    if output == "ac":
        operate = "acOutCfg"
        params = {
            "enabled": int(on),
            "xboost": UNCHANGED_U8,
            "out_voltage": UNCHANGED_VOLTAGE,
            "out_freq": UNCHANGED_U8,
        }
    else:
        operate = "mpptCar"
        params = {"enabled": int(on)}
    return {
        "id": str(message_id),
        "version": "1.0",
        "from": COMMAND_FROM,
        "sn": serial,
        "moduleType": MPPT_MODULE,
        "operateType": operate,
        "params": params,
    }


def parse_set_reply(payload: bytes) -> tuple[int, str | None]:
    """The id a `set_reply` answers, and None if accepted or EcoFlow's reason if refused."""
    reply = _json_object(payload)
    raw_id = reply.get("id")
    if isinstance(raw_id, str) and raw_id.isdigit():
        raw_id = int(raw_id)
    if isinstance(raw_id, bool) or not isinstance(raw_id, int):
        raise PayloadError("set_reply: no numeric id")
    code = reply.get("code", "0")
    if str(code) == "0":
        return raw_id, None
    message = str(reply.get("message") or REPLY_CODES.get(str(code), "no message"))[:200]
    return raw_id, f"code {code}: {message}"


# --- the source -------------------------------------------------------------------------------


@dataclass
class _Pending:
    output: OutputName
    on: bool
    done: asyncio.Future[None]


class EcoflowCloudSource:
    """Readings from the station through EcoFlow's cloud, and its outputs switched there.

    `mqtt_settings_override` replaces CLOUD_MQTT (TLS, protocol, keepalive, reconnect timing);
    the host, port and credentials always come from the certificate. Tests pass plain TCP for
    a local Mosquitto standing in for EcoFlow's broker.
    """

    def __init__(
        self,
        config: EcoflowCloudConfig,
        clock: Callable[[], float] = time.time,
        http: httpx.AsyncClient | None = None,
        mqtt_settings_override: MqttSettings | None = None,
        *,
        confirm_timeout: float = CONFIRM_TIMEOUT_S,
        client_id: str | None = None,
    ) -> None:
        self.config = config
        self._clock = clock
        self._http = http
        self._mqtt = mqtt_settings_override or CLOUD_MQTT
        self.confirm_timeout = confirm_timeout
        self.client_id = client_id or f"aigloo-edge-{config.serial}"
        self._client: aiomqtt.Client | None = None
        self._credentials: CloudCredentials | None = None
        self._connected = asyncio.Event()
        self._pending: dict[int, _Pending] = {}
        self._last_quota = 0.0
        self._lost = False

    # --- public API ----------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, timeout: float | None = READY_TIMEOUT_S) -> None:
        """Until connected and subscribed to the station's topics; SensorError on timeout."""
        try:
            async with asyncio.timeout(timeout):
                await self._connected.wait()
        except TimeoutError:
            raise SensorError(f"not connected to the EcoFlow cloud after {timeout}s") from None

    async def run(self, sink: Sink) -> None:
        """Stay connected until cancelled, handing readings (and Lost) to `sink`."""
        access_key, secret_key = self._keys()
        async with contextlib.AsyncExitStack() as stack:
            http = self._http
            if http is None:
                http = await stack.enter_async_context(httpx.AsyncClient(timeout=HTTP_TIMEOUT_S))
            backoff = Backoff(self._mqtt.reconnect_initial_s, self._mqtt.reconnect_max_s)
            while True:
                try:
                    if self._credentials is None:
                        self._credentials = await request_certificate(
                            self.config.api_url, access_key, secret_key, http
                        )
                    await self._serve(self._credentials, sink, backoff)
                    reason = "the EcoFlow cloud connection closed"
                except SensorError as exc:
                    reason = str(exc)
                except aiomqtt.MqttError as exc:
                    reason = f"EcoFlow cloud connection lost: {exc}"
                log.warning("%s; reconnecting", reason)
                await self._report_lost(sink, reason)
                await asyncio.sleep(backoff.next_delay())

    async def set_output(self, output: OutputName, on: bool) -> None:
        """Publish the set command; return once a set_reply or a quota confirms it.

        Raises SensorError if not connected, if EcoFlow refuses, or if nothing confirms it
        within `confirm_timeout`.
        """
        client = self._client
        if client is None or not self.is_connected or self._credentials is None:
            raise SensorError("not connected to the EcoFlow cloud")
        state = "on" if on else "off"
        message_id = self._new_id()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = _Pending(output, on, done)
        command = set_command(self.config.serial, output, on, message_id)
        topic = self._credentials.topic(self.config.serial, "set")
        try:
            try:
                await _acked(client.publish(topic, json.dumps(command), qos=1, timeout=math.inf))
            except aiomqtt.MqttError as exc:
                raise SensorError(f"could not send {output} {state} to EcoFlow: {exc}") from exc
            try:
                async with asyncio.timeout(self.confirm_timeout):
                    await done
            except TimeoutError:
                raise SensorError(
                    f"EcoFlow did not confirm {output} {state} within {self.confirm_timeout:g}s"
                ) from None
        finally:
            self._pending.pop(message_id, None)

    # --- connection ----------------------------------------------------------------------

    def _keys(self) -> tuple[str, str]:
        names = (self.config.access_key_env, self.config.secret_key_env)
        values = [os.environ.get(name, "") for name in names]
        missing = [name for name, value in zip(names, values, strict=True) if not value]
        if missing:
            raise SensorError(
                "EcoFlow cloud: set the environment variable"
                f"{'s' if len(missing) > 1 else ''} {' and '.join(missing)}"
                " to the keys from the EcoFlow developer portal"
            )
        return values[0], values[1]

    def connection_settings(self, creds: CloudCredentials) -> MqttSettings:
        """The base settings with the certificate's address and account. TLS stays whatever
        the base says: a certificate answering `protocol: mqtt` never turns TLS off."""
        return self._mqtt.model_copy(
            update={
                "host": creds.host,
                "port": creds.port,
                "username": creds.account,
                "password": SecretStr(creds.password),
                "credentials_file": None,
            }
        )

    def _new_client(self, settings: MqttSettings) -> aiomqtt.Client:
        v5 = settings.protocol == "5"
        return aiomqtt.Client(
            settings.host,
            settings.port,
            username=settings.username,
            password=settings.resolved_password(),
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            clean_session=None if v5 else True,
            transport=settings.transport,
            websocket_path=settings.websocket_path if settings.transport == "websockets" else None,
            keepalive=settings.keepalive,
            tls_context=settings.tls.context() if settings.tls else None,
            timeout=ACK_TIMEOUT_S,
        )

    async def _serve(self, creds: CloudCredentials, sink: Sink, backoff: Backoff) -> None:
        settings = self.connection_settings(creds)
        topics: dict[str, str] = {kind: creds.topic(self.config.serial, kind) for kind in _KINDS}
        client = self._new_client(settings)
        subscribed = False
        try:
            async with client:
                await _acked(client.subscribe([(t, 1) for t in topics.values()], timeout=math.inf))
                subscribed = True
                log.info("connected to the EcoFlow cloud broker %s:%s", creds.host, creds.port)
                backoff.reset()
                self._client = client
                self._last_quota = self._clock()
                self._connected.set()
                watchdog = asyncio.create_task(self._watch(sink))
                try:
                    async for message in client.messages:
                        await self._dispatch(topics, message, sink)
                finally:
                    await cancel_and_wait(watchdog)
        except aiomqtt.MqttError:
            if not subscribed:
                self._credentials = None  # refused or unreachable: ask for a fresh certificate
            raise
        finally:
            self._connected.clear()
            self._client = None
            for pending in self._pending.values():
                if not pending.done.done():
                    pending.done.set_exception(SensorError("EcoFlow cloud connection lost"))

    async def _watch(self, sink: Sink) -> None:
        """Report the station lost when quota messages stop for `stale_after`."""
        stale_after = self.config.stale_after
        interval = max(0.05, min(stale_after / 4, 5.0))
        while True:
            await asyncio.sleep(interval)
            if self._clock() - self._last_quota >= stale_after:
                await self._report_lost(
                    sink, f"no quota message from the EcoFlow cloud for {stale_after:g}s"
                )

    async def _report_lost(self, sink: Sink, reason: str) -> None:
        if not self._lost:
            self._lost = True
            await sink(Lost(STATION, reason, at=self._clock()))

    # --- inbound -------------------------------------------------------------------------

    async def _dispatch(
        self, topics: Mapping[str, str], message: aiomqtt.Message, sink: Sink
    ) -> None:
        topic = message.topic.value
        payload = _payload_bytes(message.payload)
        try:
            if topic == topics["quota"]:
                await self._on_quota(payload, sink)
            elif topic == topics["set_reply"]:
                self._on_set_reply(payload)
            elif topic == topics["status"]:
                await self._on_status(payload, sink)
        except PayloadError as exc:
            log.warning("EcoFlow %s message rejected: %s", topic.rsplit("/", 1)[-1], exc)

    async def _on_quota(self, payload: bytes, sink: Sink) -> None:
        reading = quota_to_reading(payload, at=self._clock(), capacity_wh=self.config.capacity_wh)
        self._last_quota = self._clock()
        for pending in list(self._pending.values()):
            state = reading.ac if pending.output == "ac" else reading.dc
            if state is not None and state == pending.on and not pending.done.done():
                pending.done.set_result(None)
        if has_values(reading):
            self._lost = False
            await sink(reading)

    def _on_set_reply(self, payload: bytes) -> None:
        message_id, refused = parse_set_reply(payload)
        pending = self._pending.get(message_id)
        if pending is None or pending.done.done():
            return  # an answer to someone else's command (the app), or one already settled
        if refused is None:
            pending.done.set_result(None)
        else:
            state = "on" if pending.on else "off"
            pending.done.set_exception(
                SensorError(f"EcoFlow refused {pending.output} {state}: {refused}")
            )

    async def _on_status(self, payload: bytes, sink: Sink) -> None:
        params = _json_object(payload).get("params")
        status = params.get("status") if isinstance(params, dict) else None
        if status == 0:
            await self._report_lost(sink, "EcoFlow reports the station offline")

    def _new_id(self) -> int:
        while True:
            message_id = 100_000_000 + secrets.randbelow(900_000_000)
            if message_id not in self._pending:
                return message_id


_KINDS: Final[tuple[Literal["quota", "set_reply", "status"], ...]] = (
    "quota",
    "set_reply",
    "status",
)


def _payload_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return str(payload or "").encode()


async def _acked(operation: Awaitable[T]) -> T:
    """Bound a broker acknowledgement with asyncio.timeout (see Session's `_acked`)."""
    try:
        async with asyncio.timeout(ACK_TIMEOUT_S):
            return await operation
    except TimeoutError:
        raise aiomqtt.MqttError("no acknowledgement from the broker in time") from None
