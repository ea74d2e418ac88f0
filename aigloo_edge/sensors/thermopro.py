"""ThermoPro thermometers (TP357, TP358, TP359, TP393, ...) read from their BLE adverts.

Pure core: `ThermoProDecoder` turns an `Advertisement` into a `ClimateReading` for the
configured probe through the thermopro-ble parser (one per device address: the parser keeps
the manufacturer data it saw last, which it needs because BlueZ reports every company id a
device ever advertised and ThermoPro encodes part of the temperature in that id), and
`StalenessTracker` reports a probe that went silent once. Thin shell: `ThermoProSource` reads
any `Scanner` and hands readings and losses to a sink.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass

from habluetooth import BluetoothServiceInfo
from sensor_state_data import DeviceKey, SensorValue
from thermopro_ble import ThermoProBluetoothDeviceData

from aigloo_edge.sensors.link import Advertisement, Scanner
from aigloo_edge.sensors.readings import ClimateReading, Lost, Sink
from aigloo_edge.sensors.settings import ThermoProConfig, ThermoProDevice

__all__ = [
    "NAME_PREFIXES",
    "DecodeCounts",
    "StalenessTracker",
    "ThermoProDecoder",
    "ThermoProSource",
]

log = logging.getLogger(__name__)

# Advertised-name prefixes of the models thermopro-ble decodes (for passive-scan filters).
NAME_PREFIXES = ("TP35", "TP39", "TP96", "TP97")
# Outside these a decoded value is garbage (a corrupt or foreign payload), not a reading.
TEMPERATURE_RANGE_C = (-60.0, 100.0)
HUMIDITY_RANGE_PCT = (0.0, 100.0)
# A legacy advert holds 31 bytes: a manufacturer entry longer than this is not a ThermoPro's.
MAX_PAYLOAD_BYTES = 27
_SOURCE = "aigloo"  # thermopro-ble keeps its last-seen manufacturer data per source name
_TEMPERATURE, _HUMIDITY, _BATTERY, _RSSI = "temperature", "humidity", "battery", "signal_strength"


@dataclass(slots=True)
class DecodeCounts:
    """What the decoder made of the adverts it was given."""

    readings: int = 0
    ignored: int = 0  # not a configured thermometer
    unsupported: int = 0  # a configured device, but not a model thermopro-ble knows
    undecoded: int = 0  # a ThermoPro advert with no fresh, plausible temperature in it


class _DeviceParser:
    """One thermopro-ble parser and the values it returned last (to tell fresh from stale).

    thermopro-ble's `SensorUpdate.entity_values` keeps every value it ever set; a value set by
    this advert is a new `SensorValue` object, one carried over is the same object as before.
    The parser only decodes manufacturer data that changed, so an advert repeating the data of
    the last decoded one exactly (BlueZ reports its cached data again) repeats that reading.
    """

    def __init__(self) -> None:
        self._parser = ThermoProBluetoothDeviceData()
        self._last: dict[DeviceKey, SensorValue] = {}
        self._decoded: tuple[dict[int, bytes], dict[str, float]] | None = None

    def update(self, advert: Advertisement) -> dict[str, float] | None:
        """The numeric values this advert carries, by key; None if the model is not supported."""
        if self._decoded is not None and advert.manufacturer_data == self._decoded[0]:
            values = {k: v for k, v in self._decoded[1].items() if k != _RSSI}
            return values if advert.rssi is None else {**values, _RSSI: float(advert.rssi)}
        update = self._parser.update(_service_info(advert))
        if not update.devices:
            return None
        fresh = {
            key.key: _number(value.native_value)
            for key, value in update.entity_values.items()
            if self._last.get(key) is not value
        }
        self._last = dict(update.entity_values)
        values = {key: value for key, value in fresh.items() if value is not None}
        if _TEMPERATURE in values:
            self._decoded = (dict(advert.manufacturer_data), values)
        return values


class ThermoProDecoder:
    """Adverts in, `ClimateReading`s out, for the configured thermometers only (pure)."""

    def __init__(self, devices: Sequence[ThermoProDevice]) -> None:
        self._by_address = {d.address.casefold(): d.probe for d in devices if d.address}
        self._by_name = {
            d.name.strip().casefold(): d.probe for d in devices if d.address is None and d.name
        }
        self.probes = tuple(dict.fromkeys(d.probe for d in devices))
        self.counts = DecodeCounts()
        self._parsers: dict[str, _DeviceParser] = {}

    def probe_for(self, advert: Advertisement) -> str | None:
        """The probe id of the configured device that sent `advert`: by address, else by name."""
        probe = self._by_address.get(advert.address.casefold())
        if probe is None and advert.name:
            probe = self._by_name.get(advert.name.strip().casefold())
        return probe

    def decode(self, advert: Advertisement) -> ClimateReading | None:
        """The reading in `advert`, or None (counted) for anything else; never raises."""
        probe = self.probe_for(advert)
        if probe is None:
            self.counts.ignored += 1
            return None
        if any(len(raw) > MAX_PAYLOAD_BYTES for raw in advert.manufacturer_data.values()):
            self.counts.undecoded += 1
            return None
        parser = self._parsers.setdefault(advert.address.casefold(), _DeviceParser())
        try:
            values = parser.update(advert)
        except Exception as exc:  # a library parsing bytes off the air: bad input is data
            log.debug("thermopro advert from %s not parsed: %r", advert.address, exc)
            self.counts.undecoded += 1
            return None
        if values is None:
            self.counts.unsupported += 1
            return None
        reading = _reading(probe, advert, values)
        if reading is None:
            self.counts.undecoded += 1
            return None
        self.counts.readings += 1
        return reading


class StalenessTracker:
    """A probe silent for `stale_after` is lost once; hearing it again re-arms it (pure)."""

    def __init__(self, probes: Iterable[str], stale_after: float, now: float) -> None:
        self._stale_after = stale_after
        self._last_heard = dict.fromkeys(probes, now)
        self._lost: set[str] = set()

    def heard(self, probe: str, at: float) -> None:
        self._last_heard[probe] = max(at, self._last_heard.get(probe, at))
        self._lost.discard(probe)

    def check(self, now: float) -> list[Lost]:
        """The probes that went silent since the last check, each reported once."""
        lost = []
        for probe, last in self._last_heard.items():
            silent = now - last
            if probe not in self._lost and silent >= self._stale_after:
                self._lost.add(probe)
                lost.append(Lost(probe, f"no ThermoPro advert for {silent:.0f} s", at=now))
        return lost


class ThermoProSource:
    """Read adverts from `scanner`, hand readings (and lost probes) to a sink."""

    def __init__(
        self,
        config: ThermoProConfig,
        scanner: Scanner,
        clock: Callable[[], float] = time.time,
        *,
        check_every: float = 1.0,
    ) -> None:
        self.decoder = ThermoProDecoder(config.devices)
        self._stale_after = config.stale_after
        self._scanner = scanner
        self._clock = clock
        self._check_every = check_every

    async def run(self, sink: Sink) -> None:
        """Until the scanner's adverts end; a scanner or sink error is raised as is.

        Staleness is checked every `check_every` seconds (one second by default).
        """
        tracker = StalenessTracker(self.decoder.probes, self._stale_after, self._clock())
        tasks = {
            asyncio.create_task(self._consume(tracker, sink)),
            asyncio.create_task(self._watch(tracker, sink)),
        }
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            task.result()  # the scanner's or the sink's error, as raised

    async def _consume(self, tracker: StalenessTracker, sink: Sink) -> None:
        adverts = self._scanner.advertisements()
        try:
            async for advert in adverts:
                reading = self.decoder.decode(advert)
                if reading is not None:
                    tracker.heard(reading.probe, self._clock())
                    await sink(reading)
        finally:
            await _close(adverts)

    async def _watch(self, tracker: StalenessTracker, sink: Sink) -> None:
        while True:
            await asyncio.sleep(self._check_every)
            for lost in tracker.check(self._clock()):
                log.info("thermopro probe %s stale: %s", lost.device, lost.reason)
                await sink(lost)


def _service_info(advert: Advertisement) -> BluetoothServiceInfo:
    return BluetoothServiceInfo(
        name=advert.name or advert.address,
        address=advert.address,
        rssi=advert.rssi if advert.rssi is not None else 0,
        manufacturer_data=dict(advert.manufacturer_data),
        service_data=dict(advert.service_data),
        service_uuids=list(advert.service_uuids),
        source=_SOURCE,
    )


def _reading(probe: str, advert: Advertisement, values: dict[str, float]) -> ClimateReading | None:
    temperature = values.get(_TEMPERATURE)
    humidity = values.get(_HUMIDITY)
    if temperature is None or not _within(temperature, TEMPERATURE_RANGE_C):
        return None
    if humidity is not None and not _within(humidity, HUMIDITY_RANGE_PCT):
        return None
    return ClimateReading(
        probe=probe,
        temperature_c=temperature,
        humidity_pct=humidity,
        battery_pct=values.get(_BATTERY),
        rssi_dbm=values.get(_RSSI) if advert.rssi is not None else None,
        at=advert.at,
        source="thermopro",
    )


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _within(value: float, bounds: tuple[float, float]) -> bool:
    low, high = bounds
    return low <= value <= high


async def _close(adverts: AsyncIterator[Advertisement]) -> None:
    aclose = getattr(adverts, "aclose", None)
    if aclose is not None:
        await aclose()
