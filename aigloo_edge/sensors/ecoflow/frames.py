"""The two framing layers and the reassembly of notification chunks into whole frames.

Outer frame (all little-endian): `5A 5A`, type byte (`0x00` cleartext handshake, `0x10`
encrypted packet), `0x01`, u16 = len(payload) + 2, payload, CRC-16 over everything before it.
Inner packet: `AA`, version, u16 payload length, CRC-8 of bytes 0-3, product byte, 4-byte
seq, 2 unknown bytes, src, dst, (V3: two more address bytes), cmd_set, cmd_id, payload,
CRC-16 over everything before it.
"""

from __future__ import annotations

from dataclasses import dataclass

from aigloo_edge.errors import SensorError
from aigloo_edge.sensors.ecoflow.crc import crc8, crc16_le

FRAME_PREFIX = b"\x5a\x5a"
FRAME_COMMAND = 0x00  # handshake messages, cleartext
FRAME_PROTOCOL = 0x10  # an AES-encrypted inner packet
PACKET_PREFIX = 0xAA
_FRAME_OVERHEAD = 8  # 6 header bytes + 2 CRC bytes
# The models' largest frame is about 200 bytes; the reference accepts up to 10 000, which would
# let one false length stall the stream for a long time.
MAX_FRAME = 2048
MAX_BUFFER = 4096


class FrameError(SensorError):
    """Bytes that are not a valid frame or packet (prefix, length, CRC)."""


@dataclass(frozen=True, slots=True)
class Frame:
    frame_type: int  # FRAME_COMMAND or FRAME_PROTOCOL
    payload: bytes


@dataclass(frozen=True, slots=True)
class Packet:
    """One inner packet. `reserved` (bytes 10-11) and `product` (byte 5) have no known meaning:
    we send what the reference client sends and keep what devices send."""

    src: int
    dst: int
    cmd_set: int
    cmd_id: int
    payload: bytes = b""
    version: int = 2
    seq: bytes = bytes(4)
    product: int = 0x0D
    reserved: bytes = bytes(2)


def encode_frame(frame_type: int, payload: bytes) -> bytes:
    body = FRAME_PREFIX + bytes([frame_type, 0x01]) + (len(payload) + 2).to_bytes(2, "little")
    body += payload
    return body + crc16_le(body)


def decode_frame(data: bytes) -> Frame:
    """One whole frame; raises FrameError if any check fails."""
    if len(data) < _FRAME_OVERHEAD or data[:2] != FRAME_PREFIX:
        raise FrameError("not a 5A5A frame")
    if _frame_end(data, 0) != len(data):
        raise FrameError("frame length field does not match the frame")
    if crc16_le(data[:-2]) != data[-2:]:
        raise FrameError("frame CRC-16 mismatch")
    return Frame(data[2] & 0xF0, bytes(data[6:-2]))


def xor_payload(payload: bytes, key: int) -> bytes:
    """The per-model obfuscation of DELTA 2: every payload byte XORed with seq[0]."""
    return bytes(b ^ key for b in payload) if key else payload


def encode_packet(packet: Packet, *, xor: bool = False) -> bytes:
    payload = xor_payload(packet.payload, packet.seq[0]) if xor else packet.payload
    head = bytes([PACKET_PREFIX, packet.version]) + len(payload).to_bytes(2, "little")
    head += bytes([crc8(head), packet.product]) + packet.seq + packet.reserved
    head += bytes([packet.src, packet.dst])
    if packet.version == 3:
        head += b"\x01\x01"  # dsrc, ddst: the reference always sends 1
    body = head + bytes([packet.cmd_set, packet.cmd_id]) + payload
    return body + crc16_le(body)


def decode_packet(data: bytes, *, xor: bool = False) -> Packet:
    """Parse one inner packet (trailing bytes past its length, e.g. padding, are ignored)."""
    if len(data) < 18 or data[0] != PACKET_PREFIX:
        raise FrameError("not an AA packet")
    version = data[1]
    if version not in (2, 3):
        raise FrameError(f"unsupported packet version {version:#04x}")
    header = 16 if version == 2 else 18
    end = header + int.from_bytes(data[2:4], "little") + 2
    if len(data) < end:
        raise FrameError("packet shorter than its length field")
    if crc8(data[:4]) != data[4]:
        raise FrameError("packet header CRC-8 mismatch")
    if crc16_le(data[: end - 2]) != data[end - 2 : end]:
        raise FrameError("packet CRC-16 mismatch")
    seq = bytes(data[6:10])
    payload = bytes(data[header : end - 2])
    return Packet(
        src=data[12],
        dst=data[13],
        cmd_set=data[header - 2],
        cmd_id=data[header - 1],
        payload=xor_payload(payload, seq[0]) if xor else payload,
        version=version,
        seq=seq,
        product=data[5],
        reserved=bytes(data[10:12]),
    )


def _frame_end(buf: bytes | bytearray, start: int) -> int:
    return start + 6 + int.from_bytes(buf[start + 4 : start + 6], "little")


@dataclass
class ReassemblyStats:
    frames: int = 0
    crc_errors: int = 0
    discarded_bytes: int = 0  # garbage between frames, false prefixes, frames that failed
    oversize_drops: int = 0  # chunks longer than the buffer bound, dropped whole


class Reassembler:
    """Notification chunks in, whole CRC-checked frames out.

    Bounded: a chunk longer than `max_buffer` is dropped and counted, and after each feed the
    buffer holds at most one incomplete frame (under `max_frame` bytes). An incomplete
    candidate is given up only when a complete, CRC-valid frame starts later in the buffer:
    `5A 5A` inside ciphertext must not make us drop a real frame whose tail is on its way.
    """

    def __init__(self, max_buffer: int = MAX_BUFFER, max_frame: int = MAX_FRAME) -> None:
        self.stats = ReassemblyStats()
        self._max_buffer = max_buffer
        self._max_frame = max_frame
        self._buf = bytearray()

    def feed(self, chunk: bytes) -> list[Frame]:
        if len(chunk) > self._max_buffer:
            self.stats.oversize_drops += 1
            return []
        self._buf += chunk
        frames: list[Frame] = []
        while (frame := self._next()) is not None:
            frames.append(frame)
        return frames

    @property
    def buffered(self) -> int:
        """Bytes held for a frame that has not completed yet."""
        return len(self._buf)

    def reset(self) -> None:
        self._buf.clear()

    def _next(self) -> Frame | None:
        while self._sync() and len(self._buf) >= _FRAME_OVERHEAD:
            end = _frame_end(self._buf, 0)
            if not _FRAME_OVERHEAD <= end <= self._max_frame:
                self._discard(2)
            elif len(self._buf) < end:
                if not self._skip_to_later_frame():
                    return None
            elif crc16_le(self._buf[: end - 2]) != self._buf[end - 2 : end]:
                self.stats.crc_errors += 1
                self._discard(2)
            else:
                frame = Frame(self._buf[2] & 0xF0, bytes(self._buf[6 : end - 2]))
                del self._buf[:end]
                self.stats.frames += 1
                return frame
        return None

    def _sync(self) -> bool:
        """Drop bytes before the first prefix; False when there is none (yet)."""
        start = self._buf.find(FRAME_PREFIX)
        if start < 0:
            keep = 1 if self._buf[-1:] == FRAME_PREFIX[:1] else 0  # half a prefix may follow
            self._discard(len(self._buf) - keep)
            return False
        self._discard(start)
        return True

    def _skip_to_later_frame(self) -> bool:
        start = self._buf.find(FRAME_PREFIX, 2)
        while start >= 0:
            if self._complete_at(start):
                self._discard(start)
                return True
            start = self._buf.find(FRAME_PREFIX, start + 1)
        return False

    def _complete_at(self, start: int) -> bool:
        if len(self._buf) < start + _FRAME_OVERHEAD:
            return False
        end = _frame_end(self._buf, start)
        if not _FRAME_OVERHEAD <= end - start <= self._max_frame or len(self._buf) < end:
            return False
        return crc16_le(self._buf[start : end - 2]) == self._buf[end - 2 : end]

    def _discard(self, count: int) -> None:
        if count > 0:
            self.stats.discarded_bytes += count
            del self._buf[:count]
