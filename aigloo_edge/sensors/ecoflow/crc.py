"""The two checksums of the EcoFlow BLE protocol, configured on the `crc` library.

CRC-8 guards the inner packet header; CRC-16/ARC (the `crc` library's `IBM` preset) guards the
outer frame and the whole inner packet. Both are stored as the protocol stores them: the
CRC-16 little-endian.
"""

from __future__ import annotations

from typing import Final

from crc import Calculator, Configuration

# CRC-8: poly 0x07, init 0, no reflection, xorout 0 (check "123456789" -> 0xF4).
CRC8_CONFIG: Final = Configuration(
    width=8,
    polynomial=0x07,
    init_value=0x00,
    final_xor_value=0x00,
    reverse_input=False,
    reverse_output=False,
)
# CRC-16/ARC: poly 0x8005, init 0, reflected in and out, xorout 0 (check "123456789" -> 0xBB3D).
CRC16_CONFIG: Final = Configuration(
    width=16,
    polynomial=0x8005,
    init_value=0x0000,
    final_xor_value=0x0000,
    reverse_input=True,
    reverse_output=True,
)

# `optimized` makes the library build its own lookup table once; every status packet is checked.
_CRC8: Final = Calculator(CRC8_CONFIG, optimized=True)
_CRC16: Final = Calculator(CRC16_CONFIG, optimized=True)


def crc8(data: bytes | bytearray) -> int:
    """CRC-8 of `data` (the inner packet's header check)."""
    return _CRC8.checksum(data)


def crc16(data: bytes | bytearray) -> int:
    """CRC-16/ARC of `data` (outer frames and inner packets)."""
    return _CRC16.checksum(data)


def crc16_le(data: bytes | bytearray) -> bytes:
    """CRC-16/ARC of `data`, as the two little-endian bytes the wire carries."""
    return crc16(data).to_bytes(2, "little")
