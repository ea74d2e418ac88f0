"""Sensor bridge benchmark: decoding ThermoPro adverts and EcoFlow heartbeats on one core, and the
bridge's added latency from a notification to its MQTT publish, on one private Mosquitto.

(a) and (b) run in this thread alone and are timed in its CPU time (CLOCK_THREAD_CPUTIME_ID):
per second of one core, unaffected by other processes taking the core away.

(a) ThermoPro decode: `ThermoProDecoder.decode` over the recorded adverts
(tests/data/thermopro/adverts.json: TP357, TP357 with the other company id, TP357S, TP393, TP357
with a macOS address), each configured as its own thermometer (an address of its own where two
recordings share one). The adverts are built beforehand; median of REPEATS timed runs of N calls;
every call must give a reading (the decoder's counts are checked), and a pass over every advert
checks the values against the ones put in.
  * changed data: each advert carries new values for its device: the temperature (tenths of a
    degree, 20.0-29.9 degC) in the company id's high byte and the payload's first byte, the
    humidity in the second, as TP35x/TP39x encode them; thermopro-ble parses every one.
  * repeated data: each advert repeats its device's last bytes exactly (BlueZ reporting its
    cached data again): the decoder's repeat path, which does not call the library.

(b) EcoFlow heartbeats: a RIVER 2 `ClientSession` authenticated against `Station` below (the
device side of the handshake as tests/support/ecoflow_station.py plays it, with the project's own
SECP160r1 ECDH, key table, AES and framing, but synchronous, so the benchmark decides when each
notification goes out), then fed the heartbeats that emulator builds (PD, EMS, BMS, MPPT, INV at
the documented struct offsets), values changed every round, encrypted with the session key,
framed, and cut into 20-byte notifications (the default ATT payload). Whole:
`ClientSession.receive` per notification, i.e. Reassembler -> AES decrypt -> packet decode
(CRC-8, CRC-16) -> StatusDecoder -> `StationReading`; every reading is checked against the values
put in (INV carries nothing a RIVER 2 reading uses: no reading, as in the bridge). Stages: each
step alone over the same heartbeats, and the three CRC checks the whole path makes (outer frame,
packet header, packet) alone. Median of REPEATS.

(c) Latency through Mosquitto: a fresh broker from the project's config (`init_broker`
credentials and ACL, the project's mosquitto.conf via `prepare()`, free loopback ports). The
bridge is `SensorBridge` on a `Session` as role `sensors`, as `aigloo run` builds it, with its
two BLE sources behind the project's own bleak adapters: `EcoflowBleSource` on a `BleakLink`
whose GATT client is the station emulator (it answers the handshake; each heartbeat reaches
bleak's notify callback as 20-byte chunks), and `ThermoProSource` reading a `DetectionQueue`
(each advert handed to bleak's detection callback as a `BLEDevice` and `AdvertisementData`).
A subscriber `Session` (role `admin`) in the same event loop notes the time each message
arrives. Every reading moves past its deadband, so each one is published.
  * EcoFlow: a PD heartbeat (new watts in and out) handed to the notify callback, until the
    subscriber receives `power/battery`.
  * ThermoPro: an advert (new temperature) handed to the detection callback, until the
    subscriber receives `env/<probe>/climate`.
  * Baselines, same run, same subscriber, same topics: the bridge's own `Session` publishing
    the payload the bridge published (already encoded, bytes) with `set_state`, and a raw paho
    client (bus.py's: MQTT v5, own network thread, TCP_NODELAY, role `admin`) publishing it at
    QoS 1, retained, for context.
Each sample waits until the previous one is fully done (the bridge's `Publisher.put` returned,
the session's or paho's PUBACK arrived), so none waits on another. LATENCY_N samples of each
path after WARMUP, the six paths alternating in blocks, so drift hits all alike.

Everything runs in this one process and event loop; Mosquitto is the only other process.

    .venv/bin/python benchmarks/sensors.py [--quick] [--write-docs]

`--write-docs` replaces the "## Sensor bridge (benchmarks/sensors.py)" section of
docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final, TypeVar

import paho.mqtt.client as paho
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.backends.service import BleakGATTService
from bus import connected
from common import (
    DocsSection,
    Samples,
    paho_client,
    parse_args,
    running_broker,
    start_run,
    within,
)

from aigloo_edge.mqtt import Inbound, Session
from aigloo_edge.mqtt.settings import Credentials
from aigloo_edge.payloads import Battery, Climate
from aigloo_edge.runtime import cancel_and_wait
from aigloo_edge.sensors.ble import BleakLink, DetectionQueue, NotifyCallback
from aigloo_edge.sensors.bridge import SensorBridge, Source
from aigloo_edge.sensors.ecoflow.crc import crc8, crc16
from aigloo_edge.sensors.ecoflow.crypto import (
    CipherKey,
    EphemeralKey,
    auth_payload,
    session_key,
    temporary_key,
)
from aigloo_edge.sensors.ecoflow.driver import NOTIFY_CHARACTERISTIC
from aigloo_edge.sensors.ecoflow.frames import (
    FRAME_COMMAND,
    FRAME_PROTOCOL,
    Packet,
    Reassembler,
    decode_packet,
    encode_frame,
    encode_packet,
)
from aigloo_edge.sensors.ecoflow.models import APP, IOT, RIVER_2, Model
from aigloo_edge.sensors.ecoflow.session import AUTH, AUTH_STATUS, ClientSession, StatusReceived
from aigloo_edge.sensors.ecoflow.source import EcoflowBleSource
from aigloo_edge.sensors.ecoflow.status import StatusDecoder, heartbeat_source
from aigloo_edge.sensors.link import Advertisement, Link
from aigloo_edge.sensors.readings import Reading, StationReading
from aigloo_edge.sensors.settings import (
    EcoflowBleConfig,
    SensorsConfig,
    ThermoProConfig,
    ThermoProDevice,
)
from aigloo_edge.sensors.thermopro import ThermoProDecoder, ThermoProSource
from tests.support.ecoflow_station import StationValues
from tests.support.ecoflow_station import heartbeats as station_heartbeats

log = logging.getLogger("benchmarks.sensors")
T = TypeVar("T")

ADVERTS_PATH: Final = (
    Path(__file__).resolve().parents[1] / "tests" / "data" / "thermopro" / "adverts.json"
)
AT: Final = 1_800_000_000.0  # the time adverts and heartbeats are stamped with in (a) and (b)
VALUE_ROUNDS: Final = 100  # (a), (b): distinct values per device before they repeat
SERIAL: Final = "R621BENCH0000001"  # a RIVER 2 by its prefix
USER_ID: Final = "1234567890"
STATION_ADDRESS: Final = "EC:F1:00:00:00:01"
CAPACITY_WH: Final = 768.0
CHUNK_BYTES: Final = 20  # one notification: the default ATT payload
KEY_SEED: Final = b"\x02\x01"  # the station's key-table seed: table position 32
STATION_RANDOM: Final = bytes(range(16))
LATENCY_PROBE: Final = "internal"
LATENCY_BLOCKS: Final = 10
STEP_TIMEOUT_S: Final = 5.0
READY_TIMEOUT_S: Final = 30.0
MEASUREMENT_TIMEOUT_S: Final = 600.0


@dataclass(frozen=True)
class Config:
    decode_calls: int  # (a): ThermoPro decode calls per timed run
    heartbeats: int  # (b): EcoFlow heartbeats per timed run
    repeats: int
    warmup: int  # (c): samples of each path before the measured ones
    latency_n: int


FULL: Final = Config(decode_calls=20_000, heartbeats=2_000, repeats=3, warmup=200, latency_n=2000)
QUICK: Final = Config(decode_calls=2_000, heartbeats=500, repeats=1, warmup=20, latency_n=200)


def cpu_ns() -> int:
    """CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID): (a) and (b) count one core's
    work, so time other processes take the core from us does not count."""
    return time.thread_time_ns()


def median_rate(count: int, seconds: Sequence[float]) -> float:
    """Items per second over the median of timed runs of `count` items."""
    return count / statistics.median(seconds)


# --- (a) ThermoPro adverts -------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """One recorded advert, as the thermometer of its own probe."""

    probe: str
    address: str
    name: str
    rssi: int
    company: int
    payload: bytes

    def device(self) -> ThermoProDevice:
        return ThermoProDevice(probe=self.probe, address=self.address)

    def data(self, tenths: int, humidity: int) -> dict[int, bytes]:
        """Its manufacturer data carrying `tenths` of a degC and `humidity` %: the temperature's
        low byte is the company id's high byte, its high byte the payload's first byte, the
        humidity its second (thermopro-ble reads company id LE + payload from byte 1)."""
        company = (self.company & 0x00FF) | ((tenths & 0xFF) << 8)
        return {company: bytes([(tenths >> 8) & 0xFF, humidity]) + self.payload[2:]}


def recorded_adverts() -> list[Recorded]:
    """Every recorded ThermoPro advert; a recording whose address an earlier one has gets one
    of its own."""
    entries: list[dict[str, Any]] = json.loads(ADVERTS_PATH.read_text())["adverts"]
    out: list[Recorded] = []
    for index, entry in enumerate(entries):
        ((company, raw),) = entry["manufacturer_data"].items()
        address = entry["address"]
        if any(r.address.casefold() == address.casefold() for r in out):
            address = f"a0:00:00:00:00:{index:02x}"
        probe = entry["id"].replace("_", "-")
        out.append(
            Recorded(probe, address, entry["name"], entry["rssi"], int(company), bytes.fromhex(raw))
        )
    return out


@dataclass(frozen=True)
class Expected:
    advert: Advertisement
    probe: str
    temperature_c: float
    humidity_pct: float


def tenths_of(round_: int) -> int:
    """20.0-29.9 degC: consecutive rounds differ by at least 0.1 degC (the wrap by 9.9)."""
    return 200 + round_ % VALUE_ROUNDS


def humidity_of(round_: int) -> int:
    return 30 + round_ % 40


def advert_of(rec: Recorded, round_: int) -> Expected:
    tenths, humidity = tenths_of(round_), humidity_of(round_)
    advert = Advertisement(
        address=rec.address,
        name=rec.name,
        rssi=rec.rssi,
        manufacturer_data=rec.data(tenths, humidity),
        at=AT,
    )
    return Expected(advert, rec.probe, tenths / 10, float(humidity))


def changed_adverts(recs: Sequence[Recorded]) -> list[Expected]:
    """VALUE_ROUNDS rounds of every device; each advert's bytes differ from its device's last
    (also from the last round to the first)."""
    return [advert_of(rec, r) for r in range(VALUE_ROUNDS) for rec in recs]


def repeated_adverts(recs: Sequence[Recorded]) -> list[Expected]:
    """One advert per device: cycled, each repeats its device's last bytes."""
    return [advert_of(rec, 41) for rec in recs]


def check_decoded(decoder: ThermoProDecoder, adverts: Sequence[Expected], rounds: int) -> None:
    """`rounds` passes over `adverts`: every one gives the reading put into it."""
    for expected in list(adverts) * rounds:
        reading = decoder.decode(expected.advert)
        if (
            reading is None
            or reading.probe != expected.probe
            or not math.isclose(reading.temperature_c, expected.temperature_c)
            or reading.humidity_pct != expected.humidity_pct
        ):
            raise RuntimeError(f"{expected.probe}: decoded {reading}, expected {expected}")


def time_decode(decoder: ThermoProDecoder, adverts: Sequence[Expected], calls: int) -> float:
    """Seconds for `calls` decodes cycling through `adverts`; all must give readings."""
    items = [expected.advert for expected in cycled(adverts, calls)]
    decode = decoder.decode
    before = decoder.counts.readings
    started = cpu_ns()
    for advert in items:
        decode(advert)
    elapsed = cpu_ns() - started
    if decoder.counts.readings - before != calls:
        raise RuntimeError(f"{calls} adverts gave {decoder.counts.readings - before} readings")
    return elapsed / 1e9


@dataclass
class Rate:
    name: str
    count: int
    seconds: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return median_rate(self.count, self.seconds)

    @property
    def us_each(self) -> float:
        return 1e6 / self.rate

    @property
    def rates(self) -> list[float]:
        return [self.count / s for s in self.seconds]


def measure_thermopro(cfg: Config) -> list[Rate]:
    recs = recorded_adverts()
    devices = [rec.device() for rec in recs]
    changed_pool, repeated_pool = changed_adverts(recs), repeated_adverts(recs)
    check_decoded(ThermoProDecoder(devices), changed_pool, 2)
    check_decoded(ThermoProDecoder(devices), repeated_pool, 3)
    changed = Rate(
        f"changed data ({len(recs)} devices, new values each advert: thermopro-ble parses it)",
        cfg.decode_calls,
    )
    repeated = Rate(
        "repeated data (each advert repeats its device's last bytes: the decoder's repeat path)",
        cfg.decode_calls,
    )
    decoder = ThermoProDecoder(devices)
    time_decode(decoder, changed_pool, len(changed_pool))  # warm-up
    for repeat in range(cfg.repeats):
        log.info("thermopro decode, repeat %d of %d", repeat + 1, cfg.repeats)
        changed.seconds.append(time_decode(decoder, changed_pool, cfg.decode_calls))
        repeated.seconds.append(time_decode(decoder, repeated_pool, cfg.decode_calls))
    return [changed, repeated]


# --- the EcoFlow station, played from its side -----------------------------------------------


def chunks(frame: bytes) -> list[bytes]:
    """A frame as the notifications that carry it."""
    return [frame[i : i + CHUNK_BYTES] for i in range(0, len(frame), CHUNK_BYTES)]


class Station:
    """The station's side of the encrypt-type-7 protocol, from the project's own crypto and
    framing: answers the client's handshake frames, then frames heartbeats on demand. (The test
    emulator's `EmulatedLink` does the same behind a `Link`, pushing status on a timer; here
    the bridge goes through bleak's `BleakLink`, and each heartbeat goes out when timed.)"""

    def __init__(self, model: Model, serial: str, user_id: str) -> None:
        self.model = model
        self.authenticated = False
        self.cipher: CipherKey | None = None
        self._key = EphemeralKey.generate()
        self._auth = auth_payload(user_id, serial)
        self._reassembler = Reassembler()
        self._temporary: CipherKey | None = None
        self._seq = 0

    def answer(self, written: bytes) -> list[bytes]:
        """The frames the station sends back for what the client wrote."""
        out: list[bytes] = []
        for frame in self._reassembler.feed(written):
            if frame.frame_type == FRAME_COMMAND:
                out += self._handshake(frame.payload)
            else:
                assert self.cipher is not None
                out += self._request(decode_packet(self.cipher.decrypt(frame.payload)))
        return out

    def _handshake(self, payload: bytes) -> list[bytes]:
        if payload[:2] == b"\x01\x00":  # the client's public key: ours, curve type 0
            self._temporary = temporary_key(self._key.shared_secret(payload[2:42]))
            return [encode_frame(FRAME_COMMAND, b"\x01\x00\x00" + self._key.public_bytes())]
        if payload == b"\x02" and self._temporary is not None:  # key info request
            self.cipher = session_key(STATION_RANDOM, KEY_SEED, self._temporary.iv)
            info = self._temporary.encrypt(STATION_RANDOM + KEY_SEED)
            return [encode_frame(FRAME_COMMAND, b"\x02" + info)]
        raise RuntimeError(f"station: unexpected handshake frame {payload.hex()}")

    def _request(self, packet: Packet) -> list[bytes]:
        command = (packet.cmd_set, packet.cmd_id)
        if command == AUTH_STATUS:
            return [self.frame(Packet(IOT, APP, *AUTH_STATUS))]
        if command == AUTH:
            verdict = b"\x00" if packet.payload == self._auth else b"\x06"
            self.authenticated = verdict == b"\x00"
            return [self.frame(Packet(IOT, APP, *AUTH, payload=verdict))]
        return []  # commands: the benchmark sends none

    def frame(self, packet: Packet) -> bytes:
        """`packet` as the station sends it: its own sequence number, encrypted, framed."""
        assert self.cipher is not None
        self._seq += 1
        packet = Packet(
            packet.src,
            packet.dst,
            packet.cmd_set,
            packet.cmd_id,
            packet.payload,
            version=self.model.packet_version,
            seq=self._seq.to_bytes(4, "little"),
        )
        plain = encode_packet(packet, xor=self.model.xor)
        return encode_frame(FRAME_PROTOCOL, self.cipher.encrypt(plain))


def values_of(round_: int) -> StationValues:
    """What the station reports in `round_`: every value changes from round to round (watts by
    at least the 5 W deadband), charging in some rounds and discharging in others."""
    return StationValues(
        soc_pct=50.0 + 0.5 * (round_ % 40),
        watts_in=100 + 10 * (round_ % 10),
        watts_out=150 + 10 * (round_ % 7),
        solar_w=80 + 10 * (round_ % 9),
        chg_remain_min=300 + round_,
        dsg_remain_min=600 + round_,
        ac=round_ % 2 == 0,
        dc=round_ % 3 == 0,
    )


def expected_reading(packet: Packet, values: StationValues) -> StationReading | None:
    """What a RIVER 2 client reads from `packet` carrying `values` (without `at`); None for INV,
    whose values a RIVER 2 takes from its MPPT heartbeat."""
    source = heartbeat_source(packet)
    if source == "pd":
        reading = StationReading(watts_in=values.watts_in, watts_out=values.watts_out)
    elif source == "ems":  # the PD heartbeat before it said whether the station charges
        charging = values.watts_in > values.watts_out
        minutes = values.chg_remain_min if charging else values.dsg_remain_min
        reading = StationReading(remaining_min=minutes)
    elif source == "bms":
        reading = StationReading(soc_pct=values.soc_pct)
    elif source == "mppt":
        solar = 0 if values.car_input else values.solar_w
        reading = StationReading(solar_w=solar, ac=values.ac, dc=values.dc)
    elif source == "inv":
        return None
    else:
        raise RuntimeError(f"not a heartbeat: {packet}")
    return StationReading(**{**_set_fields(reading), "capacity_wh": CAPACITY_WH})


def _set_fields(reading: StationReading) -> dict[str, Any]:
    return {f.name: getattr(reading, f.name) for f in fields(reading) if f.name != "at"}


@dataclass(frozen=True)
class Heartbeat:
    kind: str  # pd, ems, bms, mppt, inv
    frame: bytes
    chunks: list[bytes]
    reading: StationReading | None  # expected, `at` left out


def heartbeat_pool(station: Station, rounds: int) -> list[Heartbeat]:
    """`rounds` rounds of the emulator's heartbeats (PD, EMS, BMS, MPPT, INV), as the station
    sends them."""
    out = []
    for r in range(rounds):
        values = values_of(r)
        for packet in station_heartbeats(values):
            frame = station.frame(packet)
            kind = heartbeat_source(packet) or "?"
            out.append(Heartbeat(kind, frame, chunks(frame), expected_reading(packet, values)))
    return out


def authenticated_session(station: Station) -> ClientSession:
    """A client session through the handshake with `station`, all in memory."""
    session = ClientSession(SERIAL, USER_ID, RIVER_2, capacity_wh=CAPACITY_WH)
    outbox = [session.start()]
    while outbox and not session.ready:
        for reply in station.answer(outbox.pop(0)):
            for chunk in chunks(reply):
                outbox += session.receive(chunk, AT).writes
    if not session.ready or not station.authenticated:
        raise RuntimeError(f"the emulated handshake ended in phase {session.phase}")
    return session


# --- (b) EcoFlow heartbeats ------------------------------------------------------------------


def check_session(session: ClientSession, pool: Sequence[Heartbeat]) -> None:
    """Every heartbeat gives the reading put into it (or none, for INV)."""
    for beat in pool:
        events = [e for chunk in beat.chunks for e in session.receive(chunk, AT).events]
        got = [_set_fields(e.reading) for e in events if isinstance(e, StatusReceived)]
        want = [] if beat.reading is None else [_set_fields(beat.reading)]
        if got != want or len(events) != len(got):
            raise RuntimeError(f"heartbeat decoded to {events}, expected {want}")


def time_session(session: ClientSession, pool: Sequence[Heartbeat], count: int) -> float:
    """Seconds for `count` heartbeats, notification by notification, through the session."""
    beats = cycled(pool, count)
    want = sum(1 for beat in beats if beat.reading is not None)
    receive = session.receive
    events = 0
    started = cpu_ns()
    for beat in beats:
        for chunk in beat.chunks:
            events += len(receive(chunk, AT).events)
    elapsed = cpu_ns() - started
    if events != want:
        raise RuntimeError(f"{count} heartbeats gave {events} readings, expected {want}")
    return elapsed / 1e9


def cycled(items: Sequence[T], count: int) -> list[T]:
    """`count` items, going round `items`."""
    return list(itertools.islice(itertools.cycle(items), count))


def timed(work: Callable[[T], object], items: Sequence[T], count: int) -> float:
    """Seconds for `work` on `count` items, going round `items`."""
    batch = cycled(items, count)
    started = cpu_ns()
    for item in batch:
        work(item)
    return (cpu_ns() - started) / 1e9


@dataclass(frozen=True)
class Stage:
    name: str
    time: Callable[[int], float]  # seconds for this step alone over N heartbeats


def stages(pool: Sequence[Heartbeat], cipher: CipherKey, model: Model) -> list[Stage]:
    """Each step of the path alone, fed what the step before it produced for the same pool."""
    reassembler = Reassembler()
    ciphertexts = [f.payload for b in pool for c in b.chunks for f in reassembler.feed(c)]
    plaintexts = [cipher.decrypt(c) for c in ciphertexts]
    packets = [decode_packet(p, xor=model.xor) for p in plaintexts]
    if len(packets) != len(pool):
        raise RuntimeError(f"{len(pool)} heartbeats reassembled into {len(packets)} frames")
    # what the three CRC checks cover: the frame before its CRC, the packet header, the packet
    # before its CRC (a V2 packet: 16 header bytes, the payload, 2 CRC bytes)
    crc_inputs = [
        (b.frame[:-2], p[:4], p[: 16 + int.from_bytes(p[2:4], "little")])
        for b, p in zip(pool, plaintexts, strict=True)
    ]
    feed = Reassembler().feed
    decoder = StatusDecoder(model, CAPACITY_WH)

    def reassemble(beat: Heartbeat) -> None:
        for chunk in beat.chunks:
            feed(chunk)

    def check(inputs: tuple[bytes, bytes, bytes]) -> None:
        crc16(inputs[0])
        crc8(inputs[1])
        crc16(inputs[2])

    return [
        Stage(
            "Reassembler: 20-byte chunks -> frame (its CRC-16 included)",
            lambda n: timed(reassemble, pool, n),
        ),
        Stage(
            "AES-128-CBC decrypt (`CipherKey.decrypt`)",
            lambda n: timed(cipher.decrypt, ciphertexts, n),
        ),
        Stage(
            "`decode_packet` (its CRC-8 and CRC-16 included)",
            lambda n: timed(lambda p: decode_packet(p, xor=model.xor), plaintexts, n),
        ),
        Stage(
            "`StatusDecoder.decode` -> `StationReading`",
            lambda n: timed(lambda p: decoder.decode(p, AT), packets, n),
        ),
        Stage(
            "of those, the three CRC checks alone (fastcrc)",
            lambda n: timed(check, crc_inputs, n),
        ),
    ]


@dataclass
class EcoflowResults:
    whole: Rate
    pd: Rate  # PD heartbeats alone: the ones (c) sends
    stages: list[Rate]
    frame_bytes: dict[str, int]  # kind -> frame length on the wire


def measure_ecoflow(cfg: Config) -> EcoflowResults:
    station = Station(RIVER_2, SERIAL, USER_ID)
    session = authenticated_session(station)
    pool = heartbeat_pool(station, VALUE_ROUNDS)
    check_session(session, pool)
    assert station.cipher is not None
    parts = stages(pool, station.cipher, RIVER_2)
    whole = Rate(
        f"whole path: {CHUNK_BYTES}-byte notifications -> `StationReading` "
        "(`ClientSession.receive`)",
        cfg.heartbeats,
    )
    pd_pool = [beat for beat in pool if beat.kind == "pd"]
    pd = Rate(
        f"PD heartbeats alone ({len(pd_pool[0].frame)} B: the ones (c) sends)", cfg.heartbeats
    )
    steps = [Rate(stage.name, cfg.heartbeats) for stage in parts]
    time_session(session, pool, len(pool))  # warm-up
    for repeat in range(cfg.repeats):
        log.info("ecoflow decode, repeat %d of %d", repeat + 1, cfg.repeats)
        whole.seconds.append(time_session(session, pool, cfg.heartbeats))
        pd.seconds.append(time_session(session, pd_pool, cfg.heartbeats))
        for stage, rate in zip(parts, steps, strict=True):
            rate.seconds.append(stage.time(cfg.heartbeats))
    sizes = {beat.kind: len(beat.frame) for beat in pool}
    return EcoflowResults(whole, pd, steps, sizes)


# --- (c) the bridge on Mosquitto -------------------------------------------------------------


def notify_characteristic() -> BleakGATTCharacteristic:
    service = BleakGATTService(None, 10, "00000001-0000-1000-8000-00805f9b34fb")
    return BleakGATTCharacteristic(
        None, 12, NOTIFY_CHARACTERISTIC, ["notify"], lambda: CHUNK_BYTES, service
    )


class EmulatedGatt:
    """The station behind bleak's client interface (`GattClient`): what the bridge writes is
    answered by the emulator; frames reach bleak's notify callback in 20-byte chunks."""

    def __init__(self, station: Station) -> None:
        self.station = station
        self.is_connected = True
        self.authenticated = asyncio.Event()  # the station has accepted the bridge
        self._callback: NotifyCallback | None = None
        self._sender = notify_characteristic()

    async def write_gatt_char(
        self, char_specifier: str, data: bytes, response: bool | None = None
    ) -> None:
        for frame in self.station.answer(bytes(data)):
            self.notify(frame)
        if self.station.authenticated:
            self.authenticated.set()

    async def start_notify(self, char_specifier: str, callback: NotifyCallback) -> None:
        self._callback = callback

    async def stop_notify(self, char_specifier: str) -> None:
        self._callback = None

    async def disconnect(self) -> None:
        self.is_connected = False

    def notify(self, frame: bytes) -> None:
        if self._callback is None:
            raise RuntimeError("the bridge is not listening to the station's notifications")
        for chunk in chunks(frame):
            self._callback(self._sender, bytearray(chunk))


class EmulatedConnector:
    def __init__(self, gatt: EmulatedGatt) -> None:
        self.gatt = gatt

    async def connect(self, address: str) -> Link:
        return BleakLink(self.gatt, address)


class EmulatedScanner:
    """Adverts handed to bleak's detection callback, read through the project's queue."""

    def __init__(self) -> None:
        self.queue = DetectionQueue()

    async def advertisements(self) -> AsyncIterator[Advertisement]:
        async for advert in self.queue:
            yield advert


class Arrivals:
    """The next message the subscriber receives on a topic: when (perf_counter_ns, taken in the
    handler) and its payload."""

    def __init__(self) -> None:
        self.future: asyncio.Future[tuple[int, bytes]] | None = None

    def expect(self) -> asyncio.Future[tuple[int, bytes]]:
        self.future = asyncio.get_running_loop().create_future()
        return self.future

    async def deliver(self, message: Inbound) -> None:
        arrived = time.perf_counter_ns()
        if self.future is not None and not self.future.done():
            self.future.set_result((arrived, message.payload))


class Puts:
    """The bridge's sink (`Publisher.put`), counting the readings it has finished with."""

    def __init__(self, put: Callable[[Reading], Awaitable[None]]) -> None:
        self._put = put
        self.count = 0
        self._changed = asyncio.Event()

    async def __call__(self, reading: Reading) -> None:
        await self._put(reading)
        self.count += 1
        self._changed.set()

    async def wait_for(self, count: int) -> None:
        while self.count < count:
            self._changed.clear()
            await self._changed.wait()


async def arrival(what: str, arrivals: Arrivals, send: Awaitable[None]) -> tuple[float, bytes]:
    """Microseconds from starting `send` to the subscriber's receipt, and what it received."""
    future = arrivals.expect()
    try:
        async with asyncio.timeout(STEP_TIMEOUT_S):
            started = time.perf_counter_ns()
            await send
            arrived, payload = await future
    except TimeoutError:
        raise RuntimeError(f"{what}: nothing arrived in {STEP_TIMEOUT_S}s") from None
    return (arrived - started) / 1000, payload


@dataclass
class Rig:
    session: Session  # the bridge's
    puts: Puts
    station: Station
    gatt: EmulatedGatt
    scanner: EmulatedScanner
    thermometer: BLEDevice
    battery: Arrivals
    climate: Arrivals
    raw: paho.Client
    pd_frames: list[tuple[bytes, int]] = field(default_factory=list)  # frame, watts_in
    adverts: list[tuple[AdvertisementData, float]] = field(default_factory=list)  # and degC
    battery_payloads: list[bytes] = field(default_factory=list)  # as the bridge published them
    climate_payloads: list[bytes] = field(default_factory=list)


async def _handed(deliver: Callable[[], None]) -> None:
    deliver()


async def ecoflow_bridge(rig: Rig, seq: int) -> float:
    frame, watts_in = rig.pd_frames[seq % len(rig.pd_frames)]
    done = rig.puts.count + 1
    elapsed, payload = await arrival(
        "EcoFlow heartbeat -> power/battery", rig.battery, _handed(lambda: rig.gatt.notify(frame))
    )
    await within("the bridge's put", rig.puts.wait_for(done), STEP_TIMEOUT_S)
    if Battery.from_json(payload).watts_in != watts_in:
        raise RuntimeError(f"battery {seq}: {payload[:120]!r}, expected watts_in {watts_in}")
    _keep(rig.battery_payloads, payload)
    return elapsed


async def thermopro_bridge(rig: Rig, seq: int) -> float:
    data, celsius = rig.adverts[seq % len(rig.adverts)]
    done = rig.puts.count + 1
    elapsed, payload = await arrival(
        "ThermoPro advert -> climate",
        rig.climate,
        _handed(lambda: rig.scanner.queue.on_detection(rig.thermometer, data)),
    )
    await within("the bridge's put", rig.puts.wait_for(done), STEP_TIMEOUT_S)
    if not math.isclose(Climate.from_json(payload).temperature_c, celsius):
        raise RuntimeError(f"climate {seq}: {payload[:120]!r}, expected {celsius} degC")
    _keep(rig.climate_payloads, payload)
    return elapsed


def _keep(payloads: list[bytes], payload: bytes, most: int = VALUE_ROUNDS) -> None:
    if len(payloads) < most:
        payloads.append(payload)


async def direct_session(
    rig: Rig, topic: str, arrivals: Arrivals, payloads: list[bytes], seq: int
) -> float:
    data = payloads[seq % len(payloads)]
    elapsed, payload = await arrival(
        f"Session.set_state -> {topic}", arrivals, rig.session.set_state(topic, data)
    )
    if payload != data:
        raise RuntimeError(f"{topic} {seq}: received {payload[:120]!r}")
    return elapsed


async def direct_paho(
    rig: Rig, topic: str, arrivals: Arrivals, payloads: list[bytes], seq: int
) -> float:
    data = payloads[seq % len(payloads)]
    sent: list[paho.MQTTMessageInfo] = []
    elapsed, payload = await arrival(
        f"paho publish -> {topic}",
        arrivals,
        _handed(lambda: sent.append(rig.raw.publish(topic, data, 1, retain=True))),
    )
    await asyncio.to_thread(sent[0].wait_for_publish, STEP_TIMEOUT_S)
    if payload != data:
        raise RuntimeError(f"{topic} {seq}: received {payload[:120]!r}")
    return elapsed


@dataclass(frozen=True)
class Latency(Samples):
    name: str = ""
    reading: str = ""


@dataclass(frozen=True)
class LatencyPath:
    name: str
    reading: str  # which reading and topic
    sample: Callable[[int], Awaitable[float]]


ECOFLOW_READING: Final = "EcoFlow PD heartbeat -> `power/battery`"
THERMOPRO_READING: Final = f"ThermoPro advert -> `env/{LATENCY_PROBE}/climate`"
BRIDGE: Final = "bridge (notification -> decode -> `Publisher.put` -> `set_state`)"
SESSION: Final = "`Session.set_state` of the same payload (bytes)"
PAHO: Final = "raw paho publish of the same payload (QoS 1, retained)"


def latency_paths(rig: Rig) -> list[LatencyPath]:
    battery, climate = rig.session.topics.battery(), rig.session.topics.env_climate(LATENCY_PROBE)
    return [
        LatencyPath(BRIDGE, ECOFLOW_READING, lambda i: ecoflow_bridge(rig, i)),
        LatencyPath(
            SESSION,
            ECOFLOW_READING,
            lambda i: direct_session(rig, battery, rig.battery, rig.battery_payloads, i),
        ),
        LatencyPath(
            PAHO,
            ECOFLOW_READING,
            lambda i: direct_paho(rig, battery, rig.battery, rig.battery_payloads, i),
        ),
        LatencyPath(BRIDGE, THERMOPRO_READING, lambda i: thermopro_bridge(rig, i)),
        LatencyPath(
            SESSION,
            THERMOPRO_READING,
            lambda i: direct_session(rig, climate, rig.climate, rig.climate_payloads, i),
        ),
        LatencyPath(
            PAHO,
            THERMOPRO_READING,
            lambda i: direct_paho(rig, climate, rig.climate, rig.climate_payloads, i),
        ),
    ]


def latency_blocks(cfg: Config) -> list[range]:
    step = math.ceil(cfg.latency_n / LATENCY_BLOCKS)
    end = cfg.warmup + cfg.latency_n
    return [range(start, min(start + step, end)) for start in range(cfg.warmup, end, step)]


async def run_paths(rig: Rig, cfg: Config) -> list[Latency]:
    paths = latency_paths(rig)
    samples: dict[int, list[float]] = {index: [] for index in range(len(paths))}
    for path in paths:  # the bridge paths first: they record the payloads the others send
        for seq in range(cfg.warmup):
            await path.sample(seq)
    for block in latency_blocks(cfg):
        for index, path in enumerate(paths):
            samples[index] += [await path.sample(seq) for seq in block]
    return [
        Latency(samples[index], name=path.name, reading=path.reading)
        for index, path in enumerate(paths)
    ]


def bridge_config(thermometer: str) -> SensorsConfig:
    return SensorsConfig(
        thermopro=ThermoProConfig(
            devices=[ThermoProDevice(probe=LATENCY_PROBE, address=thermometer)]
        ),
        ecoflow_ble=EcoflowBleConfig(
            serial=SERIAL, user_id=USER_ID, address=STATION_ADDRESS, capacity_wh=CAPACITY_WH
        ),
    )


def advertisement(rec: Recorded, round_: int) -> tuple[AdvertisementData, float]:
    """What bleak hands its detection callback for `rec` in `round_`, and its degC."""
    data = AdvertisementData(
        local_name=rec.name,
        manufacturer_data=rec.data(tenths_of(round_), humidity_of(round_)),
        service_data={},
        service_uuids=[],
        tx_power=None,
        rssi=rec.rssi,
        platform_data=(),
    )
    return data, tenths_of(round_) / 10


def station_frames(station: Station, values: StationValues, kinds: Sequence[str]) -> list[bytes]:
    """The station's frames of the heartbeats of `kinds` carrying `values`."""
    packets = station_heartbeats(values)
    return [station.frame(p) for p in packets if heartbeat_source(p) in kinds]


async def start_bridge(rig: Rig) -> None:
    """Handshake done; the station's other heartbeats in (SoC, solar and outputs, remaining
    time), so each PD heartbeat completes a battery payload."""
    await within("the EcoFlow handshake", rig.gatt.authenticated.wait(), READY_TIMEOUT_S)
    for frame in station_frames(rig.station, values_of(0), ("ems", "bms", "mppt")):
        rig.gatt.notify(frame)
    await within("the first station readings", rig.puts.wait_for(3), READY_TIMEOUT_S)


async def measure_latency(creds: Credentials, cfg: Config) -> list[Latency]:
    session = Session(creds.settings_for("sensors"), component="sensors")
    subscriber = Session(creds.settings_for("admin"), component="bench-sub")
    topics = session.topics
    battery, climate = Arrivals(), Arrivals()
    subscriber.route(topics.battery(), battery.deliver)
    subscriber.route(topics.env_climate(LATENCY_PROBE), climate.deliver)
    rec = recorded_adverts()[0]
    config = bridge_config(rec.address)
    assert config.thermopro is not None
    assert config.ecoflow_ble is not None
    station = Station(RIVER_2, SERIAL, USER_ID)
    gatt, scanner = EmulatedGatt(station), EmulatedScanner()
    ecoflow = EcoflowBleSource(config.ecoflow_ble, EmulatedConnector(gatt), None)
    sources: dict[str, Source] = {
        "thermopro": ThermoProSource(config.thermopro, scanner),
        "ecoflow_ble": ecoflow,
    }
    bridge = SensorBridge(session, config, sources, ecoflow)
    puts = Puts(bridge.publisher.put)
    bridge.publisher.put = puts  # type: ignore[method-assign]  # counts what it finished
    async with connected(session, subscriber):
        await subscriber.sync_subscriptions()
        task = asyncio.create_task(bridge.run())
        try:
            with paho_client(creds, "admin", "bench-paho") as raw:
                rig = Rig(
                    session,
                    puts,
                    station,
                    gatt,
                    scanner,
                    BLEDevice(rec.address, rec.name, None),
                    battery,
                    climate,
                    raw,
                )
                await start_bridge(rig)
                rig.pd_frames = [
                    (station_frames(station, values_of(r), ("pd",))[0], values_of(r).watts_in)
                    for r in range(VALUE_ROUNDS)
                ]
                rig.adverts = [advertisement(rec, r) for r in range(VALUE_ROUNDS)]
                log.info("latency through Mosquitto")
                return await within("latency", run_paths(rig, cfg), MEASUREMENT_TIMEOUT_S)
        finally:
            await cancel_and_wait(task)
            if not task.cancelled() and task.exception() is not None:
                log.warning("the bridge ended with %r", task.exception())


# --- report ----------------------------------------------------------------------------------


def thermopro_table(rates: Sequence[Rate], cfg: Config) -> list[str]:
    lines = [
        "(a) ThermoPro decode, one core (per second of the thread's CPU time): "
        "`ThermoProDecoder.decode` on the recorded adverts, "
        f"median of {cfg.repeats} runs of {cfg.decode_calls:,} adverts:",
        "",
        "| adverts | adverts/s | us per advert | runs (adverts/s) |",
        "|---------|----------:|--------------:|------------------|",
    ]
    lines += [f"| {r.name} | {r.rate:,.0f} | {r.us_each:,.1f} | {_runs(r)} |" for r in rates]
    return lines


def ecoflow_table(results: EcoflowResults, cfg: Config) -> list[str]:
    sizes = ", ".join(f"{kind.upper()} {size} B" for kind, size in results.frame_bytes.items())
    whole = results.whole
    lines = [
        "(b) EcoFlow heartbeats, one core (per second of the thread's CPU time): a RIVER 2 "
        "`ClientSession` after the handshake, "
        f"the emulator's heartbeats in turn (frames on the wire: {sizes}), values "
        f"changed every round; median of {cfg.repeats} runs of {cfg.heartbeats:,} heartbeats. "
        "Below the whole path, each step alone over the same heartbeats:",
        "",
        "| path | heartbeats/s | us per heartbeat | share of the whole | runs (heartbeats/s) |",
        "|------|-------------:|-----------------:|-------------------:|---------------------|",
        f"| {whole.name} | {whole.rate:,.0f} | {whole.us_each:,.1f} | 100% | {_runs(whole)} |",
    ]
    pd = results.pd
    lines.append(f"| {pd.name} | {pd.rate:,.0f} | {pd.us_each:,.1f} | - | {_runs(pd)} |")
    lines += [
        f"| {r.name} | {r.rate:,.0f} | {r.us_each:,.1f} | "
        f"{r.us_each / whole.us_each:.0%} | {_runs(r)} |"
        for r in results.stages
    ]
    return lines


def _runs(rate: Rate) -> str:
    return ", ".join(f"{value:,.0f}" for value in rate.rates)


def latency_table(latencies: Sequence[Latency], cfg: Config) -> list[str]:
    lines = [
        f"(c) Latency through Mosquitto to a subscriber `Session`, QoS 1, retained: "
        f"{cfg.latency_n:,} sequential readings per path (after {cfg.warmup} warm-up; the six "
        f"paths alternate in {LATENCY_BLOCKS} blocks), every reading past its deadband:",
        "",
        "| reading | path | p50 (us) | p99 (us) | mean (us) |",
        "|---------|------|---------:|---------:|----------:|",
    ]
    lines += [
        f"| {r.reading} | {r.name} | {r.p50:,.0f} | {r.p99:,.0f} | {r.mean:,.0f} |"
        for r in latencies
    ]
    return lines


def added_table(
    latencies: Sequence[Latency], thermopro: Sequence[Rate], ecoflow: EcoflowResults
) -> list[str]:
    by = {(r.reading, r.name): r for r in latencies}
    decode_us = {ECOFLOW_READING: ecoflow.pd.us_each, THERMOPRO_READING: thermopro[0].us_each}
    lines = [
        "Added by the bridge (bridge against `Session.set_state` of the same payload); decode "
        "alone: the same kind of notification in (a) (changed data) or (b) (PD heartbeats):",
        "",
        "| reading | added p50 (us) | p50 ratio | p99 ratio | decode alone (us) "
        "| decode / added | session / paho p50 |",
        "|---------|------:|------:|------:|------:|------:|------:|",
    ]
    for reading in (ECOFLOW_READING, THERMOPRO_READING):
        bridge, session, raw = by[reading, BRIDGE], by[reading, SESSION], by[reading, PAHO]
        added = bridge.p50 - session.p50
        lines.append(
            f"| {reading} | {added:,.0f} | {bridge.p50 / session.p50:.2f} | "
            f"{bridge.p99 / session.p99:.2f} | {decode_us[reading]:,.0f} | "
            f"{decode_us[reading] / added:.0%} | {session.p50 / raw.p50:.2f} |"
        )
    return lines


def report(
    thermopro: Sequence[Rate], ecoflow: EcoflowResults, latencies: Sequence[Latency], cfg: Config
) -> str:
    parts = [
        thermopro_table(thermopro, cfg),
        ecoflow_table(ecoflow, cfg),
        latency_table(latencies, cfg),
        added_table(latencies, thermopro, ecoflow),
    ]
    return "\n\n".join("\n".join(part) for part in parts)


SECTION_INTRO: Final = (
    "How fast the sensor bridge decodes, and what it adds to a reading's way to MQTT. (a) "
    "`ThermoProDecoder.decode` on the recorded adverts (tests/data/thermopro), with new values "
    "in every advert and with repeated bytes. (b) a RIVER 2 `ClientSession`, authenticated "
    "against an emulator built from the project's own crypto and framing, fed encrypted "
    "heartbeats as 20-byte notifications, and each step of that path alone; (a) and (b) per "
    "second of one thread's CPU time. (c) `SensorBridge` "
    "as `aigloo run` builds it, its BLE sources behind the project's bleak adapters fed by "
    "emulators, on one fresh Mosquitto from the project's config: from a notification (or "
    "advert) to a subscriber's receipt, against the bridge's own `Session` publishing the same "
    "payload, and raw paho-mqtt. The script's docstring says exactly what each side does."
)
DOCS: Final = DocsSection(
    script="benchmarks/sensors.py",
    title="Sensor bridge",
    intro=SECTION_INTRO,
    packages=("aiomqtt", "paho-mqtt", "thermopro-ble", "bleak", "cryptography", "crc"),
)


def main() -> None:
    args = parse_args(
        "Sensor bridge benchmark: decode rates and added latency.", "small N, one repeat"
    )
    start_run(log)
    cfg = QUICK if args.quick else FULL
    log.info("thermopro decode")
    thermopro = measure_thermopro(cfg)
    log.info("ecoflow decode")
    ecoflow = measure_ecoflow(cfg)
    with (
        tempfile.TemporaryDirectory(prefix="aigloo-bench-") as tmp,
        running_broker(Path(tmp)) as creds,
    ):
        latencies = asyncio.run(measure_latency(creds, cfg))
    text = report(thermopro, ecoflow, latencies, cfg)
    DOCS.show(text, write_docs=args.write_docs)


if __name__ == "__main__":
    main()
