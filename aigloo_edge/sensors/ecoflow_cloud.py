"""The power station through EcoFlow's IoT open API (online): signed HTTP for the MQTT
certificate (`ecoflow_api`), then EcoFlow's broker for telemetry (`quota`) and output commands
(`set`), mapped by `ecoflow_quota`.

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
import json
import logging
import math
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Final, Literal, TypeVar

import aiomqtt
import httpx
from pydantic import SecretStr

from aigloo_edge.errors import PayloadError, SensorError
from aigloo_edge.mqtt.backoff import Backoff
from aigloo_edge.mqtt.settings import MqttSettings, TlsSettings
from aigloo_edge.runtime import cancel_and_wait
from aigloo_edge.sensors.ecoflow_api import HTTP_TIMEOUT_S, CloudCredentials, request_certificate
from aigloo_edge.sensors.ecoflow_quota import (
    has_values,
    json_object,
    parse_set_reply,
    quota_to_reading,
    set_command,
)
from aigloo_edge.sensors.readings import Lost, OutputName, Sink
from aigloo_edge.sensors.settings import EcoflowCloudConfig

log = logging.getLogger(__name__)

T = TypeVar("T")

CONFIRM_TIMEOUT_S: Final = 10.0
ACK_TIMEOUT_S: Final = 10.0
READY_TIMEOUT_S: Final = 10.0
STATION: Final = "station"

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
        params = json_object(payload).get("params")
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
