"""The EcoFlow station over Bluetooth: find it, connect (one connection at a time), run the
session, hand readings to the sink; on loss hand a `Lost` and reconnect with capped, jittered
backoff. Also the station's `OutputSwitch` (AC and 12 V DC)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, fields

from aigloo_edge.errors import SensorError
from aigloo_edge.mqtt.backoff import Backoff
from aigloo_edge.sensors.ecoflow.crypto import EphemeralKey
from aigloo_edge.sensors.ecoflow.driver import StationConnection, Timeouts, aclose
from aigloo_edge.sensors.ecoflow.models import model_for
from aigloo_edge.sensors.ecoflow.session import AuthRefusedError, ClientSession
from aigloo_edge.sensors.link import Connector, Link, Scanner
from aigloo_edge.sensors.readings import Lost, OutputName, Sink, StationReading
from aigloo_edge.sensors.settings import EcoflowBleConfig

log = logging.getLogger(__name__)

MANUFACTURER_ID = 0xB5B5
SUPPORTED_ENCRYPT_TYPE = 7
_EXTRA = {"component": "ecoflow_ble"}


@dataclass
class SourceStats:
    connects: int = 0  # links opened
    reconnects: int = 0  # attempts after the first
    readings: int = 0
    crc_errors: int = 0  # outer frames that failed their CRC
    packet_errors: int = 0  # decrypted packets that failed their checks
    discarded_bytes: int = 0  # garbage, false prefixes, failed frames
    oversize_drops: int = 0  # notification chunks or buffers past the bound

    def add(self, other: SourceStats) -> SourceStats:
        return SourceStats(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


@dataclass(frozen=True, slots=True)
class AdvertInfo:
    serial: str
    encrypt_type: int | None  # 0 plain, 1 MD5(SN) keys, 7 ECDH; None when not advertised


def parse_advert(data: bytes) -> AdvertInfo | None:
    """The manufacturer data under 0xB5B5: [1..16] serial (ASCII), [22] bits 3-5 encrypt type."""
    if len(data) < 17:
        return None
    serial = data[1:17].decode("ascii", errors="replace").rstrip("\x00")
    encrypt_type = (data[22] & 0x38) >> 3 if len(data) > 22 else None
    return AdvertInfo(serial, encrypt_type)


class EcoflowBleSource:
    def __init__(
        self,
        config: EcoflowBleConfig,
        connector: Connector,
        scanner: Scanner | None,
        clock: Callable[[], float] = time.time,
        *,
        backoff: Backoff | None = None,
        timeouts: Timeouts | None = None,
        scan_timeout: float = 30.0,
        key_factory: Callable[[], EphemeralKey] = EphemeralKey.generate,
    ) -> None:
        if config.address is None and scanner is None:
            raise SensorError("EcoFlow BLE needs the station's address, or a scanner to find it")
        self.model = model_for(config.serial)
        self._config = config
        self._connector = connector
        self._scanner = scanner
        self._clock = clock
        self._backoff = backoff or Backoff(initial=1.0, maximum=config.reconnect_max)
        self._timeouts = timeouts or Timeouts(stale=config.stale_after)
        self._scan_timeout = scan_timeout
        self._key_factory = key_factory
        self._finished = SourceStats()
        self._session: ClientSession | None = None
        self._connection: StationConnection | None = None

    @property
    def stats(self) -> SourceStats:
        """Counters over every connection so far, the current one included."""
        return self._finished.add(_session_stats(self._session))

    async def run(self, sink: Sink) -> None:
        attempts = 0
        while True:
            if attempts:
                self._finished.reconnects += 1
            attempts += 1
            reason = await self._attempt(sink)
            log.warning("EcoFlow station %s: %s", self._config.serial, reason, extra=_EXTRA)
            await sink(Lost("station", reason, at=self._clock()))
            await asyncio.sleep(self._backoff.next_delay())

    async def set_output(self, output: OutputName, on: bool) -> None:
        connection = self._connection
        if connection is None or not connection.ready:
            raise SensorError(f"EcoFlow station {self._config.serial} is not connected over BLE")
        await connection.set_output(output, on)

    async def _attempt(self, sink: Sink) -> str:
        """One connection; returns why it ended. A refusal retrying cannot fix is raised."""
        try:
            link = await self._connector.connect(self._config.address or await self._find())
        except SensorError as exc:
            return str(exc)
        self._finished.connects += 1
        self._session = session = ClientSession(
            self._config.serial,
            self._config.user_id,
            self.model,
            key=self._key_factory(),
            capacity_wh=self._config.capacity_wh,
        )

        async def on_reading(reading: StationReading) -> None:
            self._finished.readings += 1
            self._backoff.reset()  # a working session: the next loss starts from short waits
            await sink(reading)

        self._connection = StationConnection(
            link, session, on_reading, clock=self._clock, timeouts=self._timeouts
        )
        try:
            await self._connection.run()
        except AuthRefusedError as exc:
            if exc.permanent:
                await sink(Lost("station", str(exc), at=self._clock()))
                raise
            return str(exc)
        except SensorError as exc:
            return str(exc)
        finally:
            self._connection = self._session = None
            self._finished = self._finished.add(_session_stats(session))
            await _close(link)

    async def _find(self) -> str:
        """Scan for the advert carrying our serial; SensorError if it is not heard in time."""
        assert self._scanner is not None  # checked in __init__ when there is no address
        adverts = self._scanner.advertisements()
        try:
            async with asyncio.timeout(self._scan_timeout):
                async for advert in adverts:
                    info = parse_advert(advert.manufacturer_data.get(MANUFACTURER_ID, b""))
                    if info is not None and info.serial == self._config.serial:
                        self._check_encryption(info)
                        return advert.address
        except TimeoutError:
            pass
        finally:
            await aclose(adverts)
        raise SensorError(
            f"EcoFlow station {self._config.serial} not heard within {self._scan_timeout:g} s"
            " (is it on, in range, and the EcoFlow app disconnected?)"
        )

    def _check_encryption(self, info: AdvertInfo) -> None:
        if info.encrypt_type not in (None, SUPPORTED_ENCRYPT_TYPE):
            log.warning(
                "EcoFlow station %s advertises encrypt type %s; only type 7 is implemented",
                info.serial,
                info.encrypt_type,
                extra=_EXTRA,
            )


def _session_stats(session: ClientSession | None) -> SourceStats:
    if session is None:
        return SourceStats()
    frames = session.reassembler.stats
    return SourceStats(
        crc_errors=frames.crc_errors,
        packet_errors=session.stats.packet_errors,
        discarded_bytes=frames.discarded_bytes,
        oversize_drops=frames.oversize_drops,
    )


async def _close(link: Link) -> None:
    try:
        await link.close()
    except SensorError as exc:
        log.debug("closing the EcoFlow link failed: %s", exc, extra=_EXTRA)
