"""EcoFlow BLE source against the station emulator (tests/support/ecoflow_station.py), which
speaks the device side of the protocol over an in-memory Link: readings equal the station's
values, a wrong user id is a clear SensorError, a dropped link gives Lost and a reconnect with
backoff, AC/DC switching is confirmed by the next status, and faults (bad CRCs, garbage,
oversize chunks, silence) are counted or reported without crashing or re-sending old data."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from aigloo_edge.errors import SensorError
from aigloo_edge.mqtt.backoff import Backoff
from aigloo_edge.sensors.ecoflow import AuthRefusedError, EcoflowBleSource, Timeouts
from aigloo_edge.sensors.ecoflow.frames import FRAME_PROTOCOL, encode_frame
from aigloo_edge.sensors.ecoflow.models import DELTA_2
from aigloo_edge.sensors.link import Advertisement
from aigloo_edge.sensors.readings import Lost, Reading, StationReading
from aigloo_edge.sensors.settings import EcoflowBleConfig
from tests.support.ecoflow_station import EmulatedScanner, EmulatedStation

USER_ID = "1234567890"
FAST = Timeouts(handshake=1.0, resend=0.1, stale=0.3, command=0.4)
WAIT = 3.0
FIELDS = ("soc_pct", "watts_in", "watts_out", "solar_w", "remaining_min", "ac", "dc", "usb")


class Clock:
    """Wall time that moves on by one second per call, so every stamp is distinct."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


class RecordingBackoff(Backoff):
    def __init__(self) -> None:
        super().__init__(initial=0.01, maximum=0.04, rng=random.Random(7))
        self.delays: list[float] = []

    def next_delay(self) -> float:
        delay = super().next_delay()
        self.delays.append(delay)
        return delay


class Sink:
    """Collects what the source hands on and lets a test wait for a condition."""

    def __init__(self) -> None:
        self.items: list[Reading] = []
        self._changed = asyncio.Condition()

    async def __call__(self, reading: Reading) -> None:
        async with self._changed:
            self.items.append(reading)
            self._changed.notify_all()

    @property
    def readings(self) -> list[StationReading]:
        return [item for item in self.items if isinstance(item, StationReading)]

    @property
    def lost(self) -> list[Lost]:
        return [item for item in self.items if isinstance(item, Lost)]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = WAIT) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    def state(self, since: int = 0) -> dict[str, Any]:
        """The readings from `since` on, merged field by field as the publisher does."""
        values: dict[str, Any] = {}
        for reading in self.readings[since:]:
            values |= {f: getattr(reading, f) for f in FIELDS if getattr(reading, f) is not None}
        return values


def make_source(
    station: EmulatedStation,
    *,
    address: bool = True,
    scanner: EmulatedScanner | None = None,
    backoff: Backoff | None = None,
    user_id: str = USER_ID,
    scan_timeout: float = 1.0,
) -> EcoflowBleSource:
    config = EcoflowBleConfig(
        serial=station.serial,
        user_id=user_id,
        address=station.address if address else None,
        capacity_wh=768.0,
    )
    return EcoflowBleSource(
        config,
        station,
        scanner,
        Clock(),
        backoff=backoff or RecordingBackoff(),
        timeouts=FAST,
        scan_timeout=scan_timeout,
    )


@asynccontextmanager
async def running(source: EcoflowBleSource, sink: Sink) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(source.run(sink))
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def complete(sink: Sink, since: int = 0) -> Callable[[], bool]:
    return lambda: {"soc_pct", "solar_w", "remaining_min", "ac", "dc"} <= set(sink.state(since))


async def test_full_session_readings_equal_the_station_values() -> None:
    """Handshake, auth and heartbeats split into 20-byte notifications give readings equal to
    the emulator's values (RIVER 2: SoC from the BMS, AC and 12 V from the MPPT, no USB)."""
    station = EmulatedStation(chunk_size=20)
    source, sink = make_source(station), Sink()
    async with running(source, sink):
        await sink.wait_for(complete(sink))
    assert sink.state() == {
        "soc_pct": 81.5,
        "watts_in": 120.0,
        "watts_out": 35.0,
        "solar_w": 96.0,
        "remaining_min": 95.0,  # charging (120 W in > 35 W out): minutes to full
        "ac": False,
        "dc": False,
    }
    assert {(r.source, r.capacity_wh) for r in sink.readings} == {("ecoflow_ble", 768.0)}
    assert sink.lost == []
    assert station.log.auth_codes == [0]
    assert all(link.client_frame_errors == 0 for link in station.links)
    assert source.stats.readings == len(sink.readings)


async def test_delta2_payload_xor_and_its_own_fields() -> None:
    """A DELTA 2 scrambles payloads with seq[0]; readings still equal its values, with the
    SoC from the EMS, AC from the inverter, and USB and 12 V from the PD."""
    station = EmulatedStation(serial="R331ZEB4TEST0002", model=DELTA_2)
    station.values.usb, station.values.watts_in = True, 0
    source, sink = make_source(station), Sink()
    async with running(source, sink):
        await sink.wait_for(lambda: complete(sink)() and "usb" in sink.state())
    state = sink.state()
    assert (state["soc_pct"], state["usb"], state["watts_in"]) == (81.5, True, 0.0)
    assert state["remaining_min"] == 410.0  # discharging: minutes to empty


async def test_wrong_user_id_is_a_clear_sensor_error() -> None:
    """The station answers code 06; the source hands on Lost and stops with an
    AuthRefusedError that names the cause and never shows the user id."""
    station = EmulatedStation()
    source, sink = make_source(station, user_id="999999999"), Sink()
    with pytest.raises(AuthRefusedError, match="wrong user id") as caught:
        await asyncio.wait_for(source.run(sink), WAIT)
    assert isinstance(caught.value, SensorError)
    assert "999999999" not in str(caught.value)
    assert station.log.auth_codes == [0x06]
    assert [lost.device for lost in sink.lost] == ["station"]
    assert sink.readings == []


async def test_a_transient_auth_refusal_is_retried() -> None:
    """Code 01 (general error) is not permanent: Lost, backoff, and the next attempt works."""
    station = EmulatedStation()
    station.faults.auth_code = 0x01
    source, sink = make_source(station), Sink()
    async with running(source, sink):
        await sink.wait_for(complete(sink))
    assert "general error" in sink.lost[0].reason
    assert station.log.auth_codes == [0x01, 0x00]


async def test_link_dropped_mid_handshake_gives_lost_then_reconnects() -> None:
    """The station disconnects at our second write (the key-info request): Lost("station"),
    a jittered backoff wait, a new link, and readings again."""
    station = EmulatedStation()
    station.faults.drop_at_write = 2
    backoff = RecordingBackoff()
    source, sink = make_source(station, backoff=backoff), Sink()
    async with running(source, sink):
        await sink.wait_for(complete(sink))
    assert len(sink.lost) == 1
    assert sink.lost[0].device == "station"
    assert "disconnected" in sink.lost[0].reason
    assert sink.items.index(sink.lost[0]) < sink.items.index(sink.readings[0])
    assert len(backoff.delays) == 1
    assert 0.005 <= backoff.delays[0] <= 0.01
    assert backoff.attempts == 0  # reset by the working session
    assert (source.stats.connects, source.stats.reconnects) == (2, 1)
    assert [link.closed for link in station.links] == [True, True]  # closed on cancel too


async def test_reconnect_waits_grow_and_stay_capped() -> None:
    """Connects that keep failing wait longer each time, up to the cap, each with jitter."""
    station = EmulatedStation()
    station.faults.refuse_connects = 5
    backoff = RecordingBackoff()
    source, sink = make_source(station, backoff=backoff), Sink()
    async with running(source, sink):
        await sink.wait_for(complete(sink))
    caps = [min(0.04, 0.01 * 2**n) for n in range(5)]
    assert len(backoff.delays) == 5
    assert all(cap / 2 <= delay <= cap for delay, cap in zip(backoff.delays, caps, strict=True))
    assert len(sink.lost) == 5
    assert "device not found" in sink.lost[0].reason


async def test_lost_key_exchange_write_is_resent() -> None:
    """If our public key is lost on the air, it is sent again and the session comes up."""
    station = EmulatedStation()
    station.faults.ignore_writes = 1
    source, sink = make_source(station), Sink()
    async with running(source, sink):
        await sink.wait_for(complete(sink))
    assert sink.lost == []


async def test_set_output_switches_ac_and_dc_and_the_next_reading_shows_it() -> None:
    """set_output returns once a status shows the new state; the station's state changed and
    the readings after the call show it."""
    station = EmulatedStation()
    source, sink = make_source(station), Sink()
    async with running(source, sink):
        await sink.wait_for(complete(sink))
        await source.set_output("ac", True)
        assert station.values.ac is True
        mark = len(sink.readings)
        await source.set_output("dc", True)
        assert station.values.dc is True
        await sink.wait_for(lambda: sink.state(mark).get("dc") is True)
        assert sink.state(mark)["ac"] is True
        await source.set_output("ac", False)
        assert station.values.ac is False
    assert station.log.commands == [("ac", True), ("dc", True), ("ac", False)]


async def test_set_output_unconfirmed_within_the_timeout_is_a_sensor_error() -> None:
    """A station that ignores the command: SensorError saying which state was not shown."""
    station = EmulatedStation()
    station.faults.ignore_commands = True
    source, sink = make_source(station), Sink()
    async with running(source, sink):
        await sink.wait_for(complete(sink))
        with pytest.raises(SensorError, match="did not show ac on"):
            await source.set_output("ac", True)
    assert station.values.ac is False


async def test_set_output_without_a_connection_is_a_sensor_error() -> None:
    """Before the session is up there is nothing to switch: SensorError at once."""
    source = make_source(EmulatedStation())
    with pytest.raises(SensorError, match="not connected"):
        await source.set_output("dc", True)


async def test_corrupt_crcs_are_counted_and_the_session_goes_on() -> None:
    """Status frames with a bad CRC are dropped and counted; readings keep coming."""
    station = EmulatedStation()
    source, sink = make_source(station), Sink()
    async with running(source, sink):
        await sink.wait_for(complete(sink))
        station.faults.corrupt_status = 4
        mark = len(sink.readings)
        await sink.wait_for(lambda: station.faults.corrupt_status == 0)
        await sink.wait_for(complete(sink, mark))
    assert source.stats.crc_errors == 4
    assert sink.lost == []


async def test_garbage_and_oversize_notifications_never_crash_the_session() -> None:
    """Random bytes, a false frame start, an undecryptable frame and a chunk past the buffer
    bound are dropped (and counted); the session stays up and readings go on."""
    station = EmulatedStation()
    source, sink = make_source(station), Sink()
    async with running(source, sink):
        await sink.wait_for(complete(sink))
        link = station.link
        assert link is not None
        rng = random.Random(3)
        link.inject(bytes(rng.randrange(256) for _ in range(300)))
        link.inject(b"\x5a\x5a\x10\x01\x40\x00" + bytes(10))
        link.inject(encode_frame(FRAME_PROTOCOL, bytes(rng.randrange(256) for _ in range(48))))
        link.inject(bytes(10_000), chunked=False)
        mark = len(sink.readings)
        await sink.wait_for(complete(sink, mark))
    stats = source.stats
    assert stats.oversize_drops == 1
    assert stats.discarded_bytes > 0
    assert stats.packet_errors >= 1
    assert sink.lost == []


async def test_silence_gives_lost_and_no_stale_reading_is_sent_as_fresh() -> None:
    """When the status stops, Lost follows after the stale limit, the link is renewed, and
    no reading is handed on until the station speaks again; every reading is new."""
    station = EmulatedStation()
    source, sink = make_source(station), Sink()
    async with running(source, sink):
        await sink.wait_for(complete(sink))
        station.faults.paused = True
        await sink.wait_for(lambda: len(sink.lost) >= 2)
        quiet = sink.items[sink.items.index(sink.lost[0]) :]
        assert all(isinstance(item, Lost) for item in quiet[1:])
        assert "no status" in sink.lost[0].reason
        station.faults.paused = False
        mark = len(sink.readings)
        await sink.wait_for(complete(sink, mark))
    stamps = [reading.at for reading in sink.readings]
    assert stamps == sorted(set(stamps))  # never the same reading twice
    assert len(station.links) >= 3


async def test_scanner_finds_the_station_by_the_serial_in_its_advert() -> None:
    """Without an address, the station is found by the serial in its 0xB5B5 manufacturer
    data; other adverts (another company, another station) are passed over."""
    station = EmulatedStation()
    other = EmulatedStation(serial="R621ZEB4OTHER999", address="AA:BB:CC:DD:EE:99")
    noise = Advertisement(address="11:22:33:44:55:66", name="TP357", rssi=-70)
    scanner = EmulatedScanner([noise, other.advertisement(), station.advertisement()])
    source, sink = make_source(station, address=False, scanner=scanner), Sink()
    async with running(source, sink):
        await sink.wait_for(complete(sink))
    assert sink.lost == []


async def test_a_station_not_heard_while_scanning_gives_lost() -> None:
    """A scan that never hears the serial ends in Lost naming the serial, then retries."""
    station = EmulatedStation()
    scanner = EmulatedScanner([EmulatedStation(serial="R621ZEB4OTHER999").advertisement()])
    source = make_source(station, address=False, scanner=scanner, scan_timeout=0.05)
    sink = Sink()
    async with running(source, sink):
        await sink.wait_for(lambda: len(sink.lost) >= 2)
    assert station.serial in sink.lost[0].reason
    assert "not heard" in sink.lost[0].reason


def test_a_source_needs_an_address_or_a_scanner() -> None:
    """No address and no scanner: a SensorError at construction, not a silent idle loop."""
    station = EmulatedStation()
    config = EcoflowBleConfig(serial=station.serial, user_id=USER_ID)
    with pytest.raises(SensorError, match="address"):
        EcoflowBleSource(config, station, None)
