"""The thin async shell around ClientSession: one Link's notifications in, writes out,
readings handed on, timeouts enforced (handshake, station gone quiet, command unconfirmed)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import NoReturn

from aigloo_edge.errors import SensorError
from aigloo_edge.sensors.ecoflow.session import Authenticated, ClientSession, Phase
from aigloo_edge.sensors.link import Link
from aigloo_edge.sensors.readings import OutputName, StationReading

log = logging.getLogger(__name__)

WRITE_CHARACTERISTIC = "00000002-0000-1000-8000-00805f9b34fb"
NOTIFY_CHARACTERISTIC = "00000003-0000-1000-8000-00805f9b34fb"
_EXTRA = {"component": "ecoflow_ble"}

ReadingCallback = Callable[[StationReading], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Timeouts:
    handshake: float = 20.0  # connected -> authenticated
    resend: float = 3.0  # repeat our public key while the station has not answered
    stale: float = 60.0  # no status this long once authenticated: the link is dropped
    command: float = 10.0  # a status must show a switched output within this


class LinkLostError(SensorError):
    """The link ended or the station went quiet; the message says which."""


class StationConnection:
    def __init__(
        self,
        link: Link,
        session: ClientSession,
        on_reading: ReadingCallback,
        *,
        clock: Callable[[], float],
        timeouts: Timeouts,
    ) -> None:
        self._link = link
        self._session = session
        self._on_reading = on_reading
        self._clock = clock
        self._timeouts = timeouts
        self._outputs: dict[OutputName, tuple[int, bool]] = {}  # reports seen, last state
        self._changed = asyncio.Condition()
        self._closed: str | None = None
        self._deadline = 0.0  # handshake deadline, then stale deadline (loop time)
        self._resend_at = 0.0

    @property
    def ready(self) -> bool:
        return self._session.ready and self._closed is None

    async def run(self) -> NoReturn:
        """Handshake, then hand on readings until the link ends; always raises SensorError."""
        notifications = aiter(self._link.notifications(NOTIFY_CHARACTERISTIC))
        pending = asyncio.ensure_future(_next(notifications))
        try:
            await asyncio.sleep(0)  # let the subscription start before our first write
            now = asyncio.get_running_loop().time()
            # Resending is due at once: the first "resend" is the first send of our key.
            self._deadline, self._resend_at = now + self._timeouts.handshake, now
            while True:
                done, _ = await asyncio.wait({pending}, timeout=self._quiet_for())
                if not done:
                    await self._on_quiet()
                    continue
                chunk = pending.result()
                if chunk is None:
                    serial = self._session.serial
                    raise LinkLostError(f"EcoFlow station {serial} closed the BLE link")
                pending = asyncio.ensure_future(_next(notifications))
                await self._on_chunk(chunk)
        except SensorError as exc:
            self._closed = str(exc)
            raise
        finally:
            self._closed = self._closed or "the connection was closed"
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
            await aclose(notifications)
            async with self._changed:
                self._changed.notify_all()

    async def set_output(self, output: OutputName, on: bool) -> None:
        """Switch `output`; returns once a status shows the new state, else SensorError."""
        if not self.ready:
            raise SensorError(f"EcoFlow station {self._session.serial} is not connected")
        seen_before = self._outputs.get(output, (0, on))[0]
        await self._write(self._session.command(output, on))

        def confirmed() -> bool:
            seen, state = self._outputs.get(output, (0, not on))
            return seen > seen_before and state == on

        wanted = f"{output} {'on' if on else 'off'}"
        try:
            async with asyncio.timeout(self._timeouts.command), self._changed:
                await self._changed.wait_for(lambda: confirmed() or self._closed is not None)
        except TimeoutError:
            limit = self._timeouts.command
            raise SensorError(f"the station did not show {wanted} within {limit:g} s") from None
        if not confirmed():
            raise SensorError(f"the link dropped before {wanted} was confirmed: {self._closed}")

    def _quiet_for(self) -> float:
        deadline = self._deadline
        if self._session.phase is Phase.KEY_EXCHANGE:
            deadline = min(deadline, self._resend_at)
        return max(0.0, deadline - asyncio.get_running_loop().time())

    async def _on_quiet(self) -> None:
        now = asyncio.get_running_loop().time()
        serial = self._session.serial
        if now >= self._deadline:
            if self._session.ready:
                limit = self._timeouts.stale
                raise LinkLostError(f"no status from EcoFlow station {serial} for {limit:g} s")
            phase = self._session.phase.value
            raise SensorError(f"EcoFlow station {serial}: handshake timed out ({phase})")
        if self._session.phase is Phase.KEY_EXCHANGE and now >= self._resend_at:
            self._resend_at = now + self._timeouts.resend
            await self._write(self._session.start())

    async def _on_chunk(self, chunk: bytes) -> None:
        step = self._session.receive(chunk, self._clock())
        for frame in step.writes:
            await self._write(frame)
        for event in step.events:
            self._deadline = asyncio.get_running_loop().time() + self._timeouts.stale
            if isinstance(event, Authenticated):
                log.info("EcoFlow station %s authenticated", self._session.serial, extra=_EXTRA)
                continue
            await self._record(event.reading)
            await self._on_reading(event.reading)

    async def _record(self, reading: StationReading) -> None:
        states: dict[OutputName, bool | None] = {"ac": reading.ac, "dc": reading.dc}
        changed = False
        for output, state in states.items():
            if state is not None:
                self._outputs[output] = (self._outputs.get(output, (0, state))[0] + 1, state)
                changed = True
        if changed:
            async with self._changed:
                self._changed.notify_all()

    async def _write(self, frame: bytes) -> None:
        await self._link.write(WRITE_CHARACTERISTIC, frame)


async def _next(notifications: AsyncIterator[bytes]) -> bytes | None:
    try:
        return await anext(notifications)
    except StopAsyncIteration:
        return None


async def aclose(iterator: AsyncIterator[object]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()
