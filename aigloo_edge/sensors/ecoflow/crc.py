"""The two checksums of the EcoFlow BLE protocol, from the `fastcrc` library.

CRC-8/SMBUS (poly 0x07, init 0, no reflection) guards the inner packet header; CRC-16/ARC
(poly 0x8005, reflected) guards the outer frame and the whole inner packet, stored little-endian.
fastcrc (Rust) rather than the pure-Python `crc` library: with reflection, `crc` spent ~400 us per
150-byte frame, 80-93% of decoding a heartbeat (benchmarks/sensors.py); fastcrc takes ~0.2 us.
"""

from __future__ import annotations

import fastcrc


def crc8(data: bytes | bytearray) -> int:
    """CRC-8/SMBUS of `data` (the inner packet's header check; "123456789" -> 0xF4)."""
    return fastcrc.crc8.smbus(bytes(data))


def crc16(data: bytes | bytearray) -> int:
    """CRC-16/ARC of `data` (outer frames and inner packets; "123456789" -> 0xBB3D)."""
    return fastcrc.crc16.arc(bytes(data))


def crc16_le(data: bytes | bytearray) -> bytes:
    """CRC-16/ARC of `data`, as the two little-endian bytes the wire carries."""
    return crc16(data).to_bytes(2, "little")
