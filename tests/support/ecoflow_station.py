"""An EcoFlow station emulator: the DEVICE side of the BLE protocol behind Link/Connector.

In memory, asyncio. It has its own SECP160r1 key pair, answers the key exchange and key info
with a random sRand/seed, checks the user id's MD5 (a wrong one gets code 06), pushes
heartbeats built at the documented struct offsets, obeys AC/DC commands, splits every
notification into `chunk_size`-byte pieces and, like a BLE peripheral, loses notifications
sent before the client subscribed. Fault knobs (`Faults`): drop the link at the n-th client
write, leave writes unanswered, answer the auth with a given code, corrupt the CRC of the next
status frames, pause status, ignore commands, refuse connects; `inject` sends raw bytes.
"""

from __future__ import annotations

import asyncio
import os
import random
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aigloo_edge.errors import SensorError
from aigloo_edge.sensors.ecoflow.crypto import (
    CipherKey,
    EphemeralKey,
    auth_payload,
    session_key,
    temporary_key,
)
from aigloo_edge.sensors.ecoflow.driver import NOTIFY_CHARACTERISTIC, WRITE_CHARACTERISTIC
from aigloo_edge.sensors.ecoflow.frames import (
    FRAME_COMMAND,
    FRAME_PROTOCOL,
    Frame,
    Packet,
    Reassembler,
    decode_packet,
    encode_frame,
    encode_packet,
)
from aigloo_edge.sensors.ecoflow.models import APP, INV, IOT, MPPT, PD, RIVER_2, Model
from aigloo_edge.sensors.ecoflow.source import MANUFACTURER_ID
from aigloo_edge.sensors.link import Advertisement

BMS_EMS = 0x03
AUTH_OK, AUTH_WRONG_USER = 0x00, 0x06


@dataclass
class StationValues:
    """What the heartbeats report (the client's readings should equal these)."""

    soc_pct: float = 81.5
    watts_in: int = 120
    watts_out: int = 35
    solar_w: int = 96
    chg_remain_min: int = 95
    dsg_remain_min: int = 410
    ac: bool = False
    dc: bool = False
    usb: bool = False
    car_input: bool = False  # MPPT cfgChgType 2: the DC input is a car socket


@dataclass
class Faults:
    drop_at_write: int | None = None  # drop the next link when its n-th client write arrives
    corrupt_status: int = 0  # corrupt the outer CRC of this many next status frames
    paused: bool = False  # send no status
    ignore_commands: bool = False
    refuse_connects: int = 0  # fail this many connects
    ignore_writes: int = 0  # leave this many next client writes unanswered (lost on the air)
    auth_code: int | None = None  # answer the next authentication with this code


@dataclass
class StationLog:
    commands: list[tuple[str, bool]] = field(default_factory=list)
    auth_codes: list[int] = field(default_factory=list)
    client_writes: int = 0


class EmulatedStation:
    """A Connector for one station; one connection at a time, as the real one allows."""

    def __init__(
        self,
        serial: str = "R621ZEB4TEST0001",
        user_id: str = "1234567890",
        *,
        model: Model = RIVER_2,
        address: str = "AA:BB:CC:DD:EE:01",
        chunk_size: int = 20,
        interval: float = 0.02,
    ) -> None:
        self.serial, self.model, self.address = serial, model, address
        self.chunk_size, self.interval = chunk_size, interval
        self.values = StationValues()
        self.faults = Faults()
        self.log = StationLog()
        self.links: list[EmulatedLink] = []
        self._auth = auth_payload(user_id, serial)

    @property
    def link(self) -> EmulatedLink | None:
        """The open link, if any."""
        open_links = [link for link in self.links if not link.closed]
        return open_links[-1] if open_links else None

    async def connect(self, address: str) -> EmulatedLink:
        await asyncio.sleep(0)
        if address != self.address:
            raise SensorError(f"BLE connect to {address} failed: no such device")
        if self.faults.refuse_connects > 0:
            self.faults.refuse_connects -= 1
            raise SensorError(f"BLE connect to {address} failed: device not found")
        if self.link is not None:
            raise SensorError(f"BLE connect to {address} failed: already connected elsewhere")
        link = EmulatedLink(self, drop_at_write=self.faults.drop_at_write)
        self.faults.drop_at_write = None  # a one-off fault
        self.links.append(link)
        return link

    def advertisement(self, encrypt_type: int = 7) -> Advertisement:
        data = bytearray(26)
        data[0] = 0x01  # proto version
        data[1:17] = self.serial.encode("ascii").ljust(16, b"\x00")
        data[22] = 0x01 | (encrypt_type << 3)  # encrypt flag, encrypt type in bits 3-5
        return Advertisement(
            address=self.address,
            name=f"EF-{self.serial[-4:]}",
            rssi=-60,
            manufacturer_data={MANUFACTURER_ID: bytes(data)},
        )

    def authenticates(self, payload: bytes) -> bool:
        return payload == self._auth


class EmulatedScanner:
    """Repeats the given adverts until closed."""

    def __init__(self, adverts: list[Advertisement], interval: float = 0.005) -> None:
        self.adverts, self.interval = adverts, interval

    async def advertisements(self) -> AsyncIterator[Advertisement]:
        while True:
            for advert in self.adverts:
                yield advert
                await asyncio.sleep(self.interval)


class EmulatedLink:
    """One GATT connection to the station (a Link)."""

    def __init__(self, station: EmulatedStation, *, drop_at_write: int | None) -> None:
        self.station = station
        self.closed = False
        self._drop_at_write = drop_at_write
        self._writes = 0
        self._subscribed = False
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._reassembler = Reassembler()
        self._key = EphemeralKey.generate()
        self._temporary: CipherKey | None = None
        self._cipher: CipherKey | None = None
        self._status: asyncio.Task[None] | None = None

    # -- Link -----------------------------------------------------------------------------
    async def write(self, characteristic: str, data: bytes) -> None:
        await asyncio.sleep(0)
        if self.closed:
            raise SensorError("BLE write failed: not connected")
        assert characteristic == WRITE_CHARACTERISTIC
        self._writes += 1
        self.station.log.client_writes += 1
        if self._writes == self._drop_at_write:
            self.drop()
            raise SensorError("BLE write failed: the device disconnected")
        faults = self.station.faults
        if faults.ignore_writes > 0:
            faults.ignore_writes -= 1
            return
        for frame in self._reassembler.feed(data):
            self._handle(frame)

    @property
    def client_frame_errors(self) -> int:
        """Frames from the client that failed their CRC (should stay 0)."""
        return self._reassembler.stats.crc_errors

    async def notifications(self, characteristic: str) -> AsyncIterator[bytes]:
        assert characteristic == NOTIFY_CHARACTERISTIC
        self._subscribed = True
        while (chunk := await self._queue.get()) is not None:
            yield chunk

    async def close(self) -> None:
        self.drop()

    # -- test knobs -----------------------------------------------------------------------
    def drop(self) -> None:
        """The radio link goes away: notifications end, the status stops."""
        if not self.closed:
            self.closed = True
            self._queue.put_nowait(None)
            if self._status is not None:
                self._status.cancel()

    def inject(self, data: bytes, *, chunked: bool = True) -> None:
        """Raw bytes as notifications (garbage, a frame with a bad CRC, an oversize chunk)."""
        if chunked:
            self._notify(data)
        elif not self.closed and self._subscribed:
            self._queue.put_nowait(data)

    # -- device side of the protocol --------------------------------------------------------
    def _handle(self, frame: Frame) -> None:
        if frame.frame_type == FRAME_COMMAND:
            self._on_handshake(frame.payload)
        elif self._cipher is not None:
            self._on_packet(decode_packet(self._cipher.decrypt(frame.payload)))

    def _on_handshake(self, payload: bytes) -> None:
        if payload[:2] == b"\x01\x00":
            self._temporary = temporary_key(self._key.shared_secret(payload[2:42]))
            reply = b"\x01\x00\x00" + self._key.public_bytes()
            self._notify(encode_frame(FRAME_COMMAND, reply))
        elif payload[:1] == b"\x02" and self._temporary is not None:
            srand, seed = os.urandom(16), bytes([random.randrange(16), random.randrange(1, 256)])
            self._cipher = session_key(srand, seed, self._temporary.iv)
            info = self._temporary.encrypt(srand + seed)
            self._notify(encode_frame(FRAME_COMMAND, b"\x02" + info))

    def _on_packet(self, packet: Packet) -> None:
        command = (packet.cmd_set, packet.cmd_id)
        if command == (IOT, 0x89):
            self._send(Packet(IOT, APP, IOT, 0x89, b"\x00"))
        elif command == (IOT, 0x86):
            code = AUTH_OK if self.station.authenticates(packet.payload) else AUTH_WRONG_USER
            if self.station.faults.auth_code is not None:
                code, self.station.faults.auth_code = self.station.faults.auth_code, None
            self.station.log.auth_codes.append(code)
            self._send(Packet(IOT, APP, IOT, 0x86, bytes([code])))
            if code == AUTH_OK:
                self._status = asyncio.get_running_loop().create_task(self._push_status())
        elif command in ((0x20, 0x42), (0x20, 0x51)):
            self._on_output(packet)

    def _on_output(self, packet: Packet) -> None:
        output = "ac" if packet.cmd_id == 0x42 else "dc"
        on = packet.payload[:1] == b"\x01"
        self.station.log.commands.append((output, on))
        if self.station.faults.ignore_commands:
            return
        wanted_dst = self.station.model.ac_dst if output == "ac" else MPPT
        if packet.dst == wanted_dst:
            setattr(self.station.values, output, on)
            self._send(Packet(packet.dst, APP, packet.cmd_set, packet.cmd_id, b"\x00"))

    async def _push_status(self) -> None:
        while not self.closed:
            if not self.station.faults.paused:
                for packet in heartbeats(self.station.values):
                    self._send(packet, status=True)
            await asyncio.sleep(self.station.interval)

    def _send(self, packet: Packet, *, status: bool = False) -> None:
        assert self._cipher is not None
        model = self.station.model
        if status:  # devices number their heartbeats; XOR models scramble with seq[0]
            seq = bytes([random.randrange(1, 256)]) + os.urandom(3)
            packet = Packet(
                packet.src,
                packet.dst,
                packet.cmd_set,
                packet.cmd_id,
                packet.payload,
                seq=seq,
                product=0x0C,
                reserved=b"\x02\x51",
            )
        plain = encode_packet(packet, xor=model.xor)
        frame = encode_frame(FRAME_PROTOCOL, self._cipher.encrypt(plain))
        if status and self.station.faults.corrupt_status > 0:
            self.station.faults.corrupt_status -= 1
            frame = frame[:-1] + bytes([frame[-1] ^ 0xFF])
        self._notify(frame)

    def _notify(self, data: bytes) -> None:
        if self.closed or not self._subscribed:
            return  # like BLE: nobody listening, the notification is lost
        size = self.station.chunk_size
        for start in range(0, len(data), size):
            self._queue.put_nowait(data[start : start + size])


def heartbeats(values: StationValues) -> list[Packet]:
    """PD, EMS, BMS, MPPT and INV heartbeats carrying `values` (RIVER 2 / DELTA 2 layouts)."""
    pd = bytearray(117)
    struct.pack_into(
        "<BHHi",
        pd,
        14,
        int(values.soc_pct),
        values.watts_out,
        values.watts_in,
        values.chg_remain_min if values.watts_in > values.watts_out else -values.dsg_remain_min,
    )
    pd[24], pd[33] = int(values.usb), int(values.dc)
    ems = bytearray(46)
    ems[14] = int(values.soc_pct)
    struct.pack_into("<IIxf", ems, 17, values.chg_remain_min, values.dsg_remain_min, values.soc_pct)
    bms = bytearray(69)
    bms[11] = int(values.soc_pct)
    struct.pack_into("<f", bms, 53, values.soc_pct)
    mppt = bytearray(94)
    struct.pack_into("<H", mppt, 16, values.solar_w)
    mppt[31] = 2 if values.car_input else 1
    mppt[56], mppt[66] = int(values.dc), int(values.ac)
    inv = bytearray(67)
    struct.pack_into("<HH", inv, 9, values.watts_in if values.ac else 0, values.watts_out)
    inv[45] = int(values.ac)
    return [
        Packet(PD, APP, 0x20, 0x02, bytes(pd)),
        Packet(BMS_EMS, APP, 0x20, 0x02, bytes(ems)),
        Packet(BMS_EMS, APP, 0x20, 0x32, bytes(bms)),
        Packet(MPPT, APP, 0x20, 0x02, bytes(mppt)),
        Packet(INV, APP, 0x20, 0x02, bytes(inv)),
    ]
