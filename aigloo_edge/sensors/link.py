"""The transport interface between BLE devices and their protocols.

`ble` implements it with bleak (a real radio); tests implement it with device emulators that
speak the device side of the same protocol. Protocol code sees only these types.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Advertisement:
    """One BLE advertisement, as the scanner saw it.

    `address` is a MAC on Linux and a CoreBluetooth UUID on macOS: match devices by name or
    by the address the config gives.
    """

    address: str
    name: str | None
    rssi: int | None
    manufacturer_data: dict[int, bytes] = field(default_factory=dict)
    service_data: dict[str, bytes] = field(default_factory=dict)
    service_uuids: tuple[str, ...] = ()
    at: float = 0.0


class Scanner(Protocol):
    def advertisements(self) -> AsyncIterator[Advertisement]:
        """Every advertisement heard, until the iterator is closed."""
        ...


class Link(Protocol):
    """One GATT connection: write to a characteristic, receive its notifications."""

    async def write(self, characteristic: str, data: bytes) -> None: ...

    def notifications(self, characteristic: str) -> AsyncIterator[bytes]:
        """Notifications of `characteristic` in arrival order; ends when the link drops."""
        ...

    async def close(self) -> None: ...


class Connector(Protocol):
    async def connect(self, address: str) -> Link:
        """Connect (with retries); raises SensorError naming the device and the cause."""
        ...
