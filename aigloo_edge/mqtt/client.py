"""aiomqtt's Client, made safe to reuse after a lost connection.

A Session keeps one client for its whole life, so that paho re-sends the QoS 1 messages still
in flight when a connection drops (a new client would forget them). aiomqtt 2.5 gets two things
wrong for a reused client whose connection was lost:

- its "connected" future stays completed, so the next `async with` returns at once, CONNACK or
  not: when that link dies too, the session believes it is connected and hangs in its first
  subscribe for the whole acknowledgement timeout;
- a connection dropped before its CONNACK is ignored, so the attempt waits out the whole CONNACK
  timeout instead of failing at once.

Both showed as 6-8 s returns after a partition that refused connections (the goal is 5 s).
`lost` gives the Session the future aiomqtt completes when a connection ends, so that it can
stop waiting for acknowledgements that will never come.
"""

from __future__ import annotations

import asyncio
from typing import Any, Self

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode


class ReusableClient(aiomqtt.Client):
    """An aiomqtt.Client whose every `async with` waits for, and only for, its own CONNACK."""

    @property
    def lost(self) -> asyncio.Future[None]:
        """Completes (with the cause, if any) when the current connection ends."""
        return self._disconnected

    async def __aenter__(self) -> Self:
        if self._connected.done():  # what aiomqtt does after a clean exit or a failed connect
            self._connected = asyncio.get_running_loop().create_future()
        return await super().__aenter__()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None = None,
    ) -> None:
        if not self._connected.done():  # lost while connecting: fail the attempt now
            why = f"connection lost before CONNACK ({reason_code})"
            self._connected.set_exception(aiomqtt.MqttError(why))
            return
        super()._on_disconnect(client, userdata, flags, reason_code, properties)
