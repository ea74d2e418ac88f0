"""ThermoPro decoding through the real thermopro-ble library, on advert bytes recorded by the
upstream projects (tests/data/thermopro/adverts.json): probe mapping, garbage tolerance,
staleness, and the source delivering readings to a sink."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest

from aigloo_edge.errors import SensorError
from aigloo_edge.sensors.link import Advertisement
from aigloo_edge.sensors.readings import ClimateReading, Lost, Reading
from aigloo_edge.sensors.settings import ThermoProConfig, ThermoProDevice
from aigloo_edge.sensors.thermopro import StalenessTracker, ThermoProDecoder, ThermoProSource

DATA = json.loads((Path(__file__).parents[1] / "data" / "thermopro" / "adverts.json").read_text())
ADVERTS: list[dict[str, Any]] = DATA["adverts"]
T0 = 1_800_000_000.0


def advert(entry: dict[str, Any], *, at: float = T0, **changes: Any) -> Advertisement:
    """A recorded advert as our scanner would hand it over."""
    fields: dict[str, Any] = {
        "address": entry["address"],
        "name": entry["name"],
        "rssi": entry["rssi"],
        "manufacturer_data": {
            int(company): bytes.fromhex(raw) for company, raw in entry["manufacturer_data"].items()
        },
        "at": at,
    }
    fields.update(changes)
    return Advertisement(**fields)


def by_id(advert_id: str) -> dict[str, Any]:
    return next(entry for entry in ADVERTS if entry["id"] == advert_id)


def named(probe: str, entry: dict[str, Any]) -> ThermoProDevice:
    return ThermoProDevice(probe=probe, name=entry["name"])


def expected_reading(probe: str, expected: dict[str, float], at: float = T0) -> ClimateReading:
    return ClimateReading(
        probe=probe,
        temperature_c=expected["temperature_c"],
        humidity_pct=expected["humidity_pct"],
        battery_pct=expected["battery_pct"],
        rssi_dbm=expected["rssi_dbm"],
        at=at,
    )


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Sink:
    def __init__(self) -> None:
        self.seen: list[Reading] = []
        self._arrivals: asyncio.Queue[Reading] = asyncio.Queue()

    async def __call__(self, reading: Reading) -> None:
        self.seen.append(reading)
        self._arrivals.put_nowait(reading)

    async def next(self) -> Reading:
        return await asyncio.wait_for(self._arrivals.get(), timeout=2)


class ReplayScanner:
    """The radio, replaced: replays the given adverts, then whatever is fed, until `end()`."""

    def __init__(self, adverts: Iterable[Advertisement] = ()) -> None:
        self._queue: asyncio.Queue[Advertisement | None] = asyncio.Queue()
        for item in adverts:
            self._queue.put_nowait(item)

    def feed(self, item: Advertisement) -> None:
        self._queue.put_nowait(item)

    def end(self) -> None:
        self._queue.put_nowait(None)

    async def advertisements(self) -> AsyncIterator[Advertisement]:
        while (item := await self._queue.get()) is not None:
            yield item


@pytest.mark.parametrize("entry", ADVERTS, ids=[entry["id"] for entry in ADVERTS])
def test_each_recorded_advert_decodes_to_the_values_upstream_expects(entry: dict[str, Any]) -> None:
    """Every recorded advert (TP357, TP357S, TP393; MAC and macOS UUID addresses) gives one
    reading with the temperature, humidity, battery and RSSI thermopro-ble's tests expect."""
    decoder = ThermoProDecoder([named("internal", entry)])

    reading = decoder.decode(advert(entry))

    assert reading == expected_reading("internal", entry["expected"])
    assert decoder.counts.readings == 1


def test_bluez_cached_manufacturer_data_decodes_the_entry_that_changed() -> None:
    """BlueZ reports every company id a TP357S ever used; fed in order through one decoder,
    the recorded sequence gives no reading first (ambiguous), then the values upstream expects."""
    sequence = DATA["sequences"][0]
    decoder = ThermoProDecoder([ThermoProDevice(probe="ambient", address=sequence["address"])])

    readings = [
        decoder.decode(advert({**sequence, **step}, at=T0 + n))
        for n, step in enumerate(sequence["steps"])
    ]

    assert readings == [
        None if step["expected"] is None else expected_reading("ambient", step["expected"], T0 + n)
        for n, step in enumerate(sequence["steps"])
    ]


def test_an_advert_repeating_the_last_decoded_data_repeats_the_reading() -> None:
    """BlueZ re-reports unchanged cached data while the temperature holds: the same reading
    comes again (with the new RSSI), so a steady probe does not look silent."""
    sequence = DATA["sequences"][0]
    decoder = ThermoProDecoder([ThermoProDevice(probe="ambient", address=sequence["address"])])
    first, second = sequence["steps"][0], sequence["steps"][1]
    decoder.decode(advert({**sequence, **first}))
    decoder.decode(advert({**sequence, **second}))

    again = decoder.decode(advert({**sequence, **second}, rssi=-70, at=T0 + 9))

    assert again == expected_reading("ambient", {**second["expected"], "rssi_dbm": -70}, T0 + 9)


def test_probe_is_matched_by_address_whatever_its_case() -> None:
    """A device given by address (a MAC, or a CoreBluetooth UUID on macOS) matches its adverts
    regardless of letter case, whatever name they carry."""
    mac, uuid = by_id("tp393"), by_id("tp357_macos")
    decoder = ThermoProDecoder(
        [
            ThermoProDevice(probe="rack", address=mac["address"].upper()),
            ThermoProDevice(probe="intake", address=uuid["address"].lower()),
        ]
    )

    rack = decoder.decode(advert(mac))
    intake = decoder.decode(advert(uuid, name="TP357 (renamed)"))

    assert rack is not None
    assert rack.probe == "rack"
    assert intake is not None
    assert intake.probe == "intake"


def test_probe_is_matched_by_advertised_name_when_no_address_is_given() -> None:
    """Two thermometers told apart by their advertised names map to their own probes."""
    tp357, tp393 = by_id("tp357"), by_id("tp393")
    decoder = ThermoProDecoder([named("internal", tp357), named("ambient", tp393)])

    first = decoder.decode(advert(tp357))
    second = decoder.decode(advert(tp393, address="11:22:33:44:55:66"))

    assert first is not None
    assert first.probe == "internal"
    assert second is not None
    assert second.probe == "ambient"


def test_a_device_given_by_address_is_not_matched_by_name() -> None:
    """When the config gives an address, another device advertising the same name is ignored."""
    entry = by_id("tp357")
    decoder = ThermoProDecoder(
        [ThermoProDevice(probe="internal", name=entry["name"], address="AA:AA:AA:AA:AA:AA")]
    )

    assert decoder.decode(advert(entry)) is None
    assert decoder.counts.ignored == 1


def test_unknown_device_is_ignored_and_counted() -> None:
    """Adverts from devices not in the config (another brand, an unlisted ThermoPro) give no
    reading and are counted as ignored."""
    decoder = ThermoProDecoder([named("internal", by_id("tp393"))])

    assert decoder.decode(advert(DATA["not_thermopro"])) is None
    assert decoder.decode(advert(by_id("tp357"))) is None
    assert decoder.counts.ignored == 2
    assert decoder.counts.readings == 0


def test_configured_device_thermopro_ble_does_not_support_is_counted_unsupported() -> None:
    """A configured device whose adverts thermopro-ble does not recognise gives no reading."""
    other = DATA["not_thermopro"]
    decoder = ThermoProDecoder([ThermoProDevice(probe="internal", address=other["address"])])

    assert decoder.decode(advert(other)) is None
    assert decoder.counts.unsupported == 1


GARBAGE = {
    "no manufacturer data": {},
    "empty payload": {61890: b""},
    "truncated payload": {61890: b"\x00\x1d"},
    "invalid-reading marker": {65474: b"\xff\xff\x0b\x01"},
    "oversize payload": {61890: b"\x00\x1d\x02," + bytes(300)},
    "oversize garbage": {61890: b"\xab" * 250},
    "oversize random payload": {0x1234: random.Random(7).randbytes(1000)},
    "humidity over 100 %": {61890: b"\x00\xff\x02,"},
}


@pytest.mark.parametrize("data", GARBAGE.values(), ids=GARBAGE.keys())
def test_garbage_manufacturer_data_never_raises_and_is_counted(data: dict[int, bytes]) -> None:
    """Truncated, invalid, oversize or implausible payloads from a configured TP357 give no
    reading, raise nothing, are counted, and do not stop the next good advert decoding."""
    entry = by_id("tp357")
    decoder = ThermoProDecoder([named("internal", entry)])

    assert decoder.decode(advert(entry, manufacturer_data=data)) is None
    assert decoder.counts.undecoded == 1
    assert decoder.decode(advert(entry)) == expected_reading("internal", entry["expected"])


def test_silence_for_stale_after_gives_exactly_one_lost_then_rearms() -> None:
    """A probe not heard for stale_after is lost once (checked repeatedly); heard again, it can
    be lost again after another stale_after of silence."""
    tracker = StalenessTracker(["internal"], stale_after=300.0, now=T0)
    tracker.heard("internal", T0 + 10)

    assert tracker.check(T0 + 309) == []
    assert tracker.check(T0 + 310) == [Lost("internal", "no ThermoPro advert for 300 s", T0 + 310)]
    assert tracker.check(T0 + 311) == []
    assert tracker.check(T0 + 900) == []

    tracker.heard("internal", T0 + 1000)
    assert tracker.check(T0 + 1001) == []
    assert [lost.device for lost in tracker.check(T0 + 1300)] == ["internal"]


def test_a_probe_never_heard_is_lost_stale_after_from_start() -> None:
    """A configured probe that never reports is lost stale_after after tracking began."""
    tracker = StalenessTracker(["internal", "ambient"], stale_after=60.0, now=T0)
    tracker.heard("ambient", T0 + 30)

    assert [lost.device for lost in tracker.check(T0 + 60)] == ["internal"]


async def test_source_delivers_recorded_adverts_to_the_sink() -> None:
    """ThermoProSource.run over a scanner replaying the recorded adverts hands the sink one
    reading per configured thermometer's advert, in order, and returns when the adverts end."""
    tp357, tp393 = by_id("tp357"), by_id("tp393")
    config = ThermoProConfig(devices=[named("internal", tp357), named("ambient", tp393)])
    replay = [advert(tp357), advert(DATA["not_thermopro"]), advert(tp393, at=T0 + 1)]
    scanner = ReplayScanner(replay)
    scanner.end()
    source, sink = ThermoProSource(config, scanner, Clock()), Sink()

    await asyncio.wait_for(source.run(sink), timeout=2)

    assert sink.seen == [
        expected_reading("internal", tp357["expected"]),
        expected_reading("ambient", tp393["expected"], T0 + 1),
    ]
    assert source.decoder.counts.ignored == 1


async def test_source_reports_a_silent_probe_lost_once_then_readings_again() -> None:
    """With an injected clock, silence for stale_after gives the sink exactly one Lost; the
    next advert from that thermometer gives a reading again."""
    entry = by_id("tp357")
    config = ThermoProConfig(devices=[named("internal", entry)], stale_after=300.0)
    clock, sink, scanner = Clock(), Sink(), ReplayScanner([advert(entry)])
    source = ThermoProSource(config, scanner, clock, check_every=0.01)
    run = asyncio.create_task(source.run(sink))
    await sink.next()

    clock.now = T0 + 301
    await sink.next()
    await asyncio.sleep(0.05)  # several more checks: still one Lost
    scanner.feed(advert(entry, at=T0 + 302))
    await sink.next()
    scanner.end()
    await asyncio.wait_for(run, timeout=2)

    assert sink.seen == [
        expected_reading("internal", entry["expected"]),
        Lost("internal", "no ThermoPro advert for 301 s", T0 + 301),
        expected_reading("internal", entry["expected"], T0 + 302),
    ]


class DeadScanner:
    """A radio that cannot scan."""

    async def advertisements(self) -> AsyncIterator[Advertisement]:
        raise SensorError("BLE scanner could not start: No Bluetooth adapters found.")
        yield  # pragma: no cover - makes this an async generator


async def test_source_raises_the_scanner_error_as_is() -> None:
    """A scanner that fails makes run() raise its SensorError itself (not wrapped), so the
    caller can report it."""
    config = ThermoProConfig(devices=[named("internal", by_id("tp357"))])

    with pytest.raises(SensorError, match="No Bluetooth adapters"):
        await asyncio.wait_for(ThermoProSource(config, DeadScanner()).run(Sink()), timeout=2)
