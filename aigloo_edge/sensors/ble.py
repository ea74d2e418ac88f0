"""The radio: bleak behind the `link` interfaces. The one module that imports bleak.

Bleak reports through callbacks (advertisements, notifications, disconnects); each is wrapped
here, once, into a bounded queue read as an async iterator. When a queue is full the oldest item
is dropped and counted: a slow consumer loses old adverts, never the newest, and never blocks
bleak's callback.

Platform notes: passive scanning needs BlueZ advertisement-monitor `or_patterns` on Linux
(built from `name_prefixes`) and is refused by CoreBluetooth on macOS; either way the scanner
falls back to active scanning and says so once. Addresses are MACs on Linux and CoreBluetooth
UUIDs on macOS.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from typing import Generic, Literal, Protocol, TypeVar

from bleak import BleakScanner
from bleak.args.bluez import BlueZScannerArgs, OrPattern, OrPatternLike
from bleak.assigned_numbers import AdvertisementDataType
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakError
from bleak_retry_connector import (
    BLEAK_RETRY_EXCEPTIONS,
    BleakClientWithServiceCache,
    establish_connection,
)

from aigloo_edge.errors import SensorError
from aigloo_edge.sensors.link import Advertisement

__all__ = [
    "BleakConnector",
    "BleakLink",
    "BleakScannerSource",
    "DetectionQueue",
    "GattClient",
    "ScanMode",
    "passive_patterns",
    "to_advertisement",
]

log = logging.getLogger(__name__)

ScanMode = Literal["active", "passive"]
DeviceLookup = Callable[[str, float], Awaitable[BLEDevice | None]]
NotifyCallback = Callable[[BleakGATTCharacteristic, bytearray], None]

_T = TypeVar("_T")
_NAME_TYPES = (
    AdvertisementDataType.COMPLETE_LOCAL_NAME,
    AdvertisementDataType.SHORTENED_LOCAL_NAME,
)


def to_advertisement(device: BLEDevice, data: AdvertisementData, at: float) -> Advertisement:
    """Bleak's device + advertisement data as our `Advertisement` (pure).

    The name is the advertised local name, else the OS's name for the device, unless that is
    only BlueZ's placeholder alias (the address written with dashes).
    """
    name = data.local_name or device.name
    if name is not None and name.replace("-", ":").casefold() == device.address.casefold():
        name = None
    return Advertisement(
        address=device.address,
        name=name or None,
        rssi=data.rssi,
        manufacturer_data={company: bytes(raw) for company, raw in data.manufacturer_data.items()},
        service_data={uuid: bytes(raw) for uuid, raw in data.service_data.items()},
        service_uuids=tuple(data.service_uuids),
        at=at,
    )


def passive_patterns(name_prefixes: Sequence[str]) -> list[OrPatternLike]:
    """BlueZ advertisement-monitor patterns matching a local name that starts with a prefix."""
    return [
        OrPattern(0, ad_type, prefix.encode())
        for prefix in name_prefixes
        for ad_type in _NAME_TYPES
    ]


class _DropOldest(Generic[_T]):
    """A bounded FIFO fed from callbacks: when full, the oldest item makes room and is counted."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("a queue holds at least one item")
        self._queue: asyncio.Queue[_T] = asyncio.Queue(maxsize)
        self.dropped = 0

    def put(self, item: _T) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(item)

    async def get(self) -> _T:
        return await self._queue.get()


class DetectionQueue:
    """Bleak's detection callback on one side, `Advertisement`s in arrival order on the other."""

    def __init__(self, maxsize: int = 1024, clock: Callable[[], float] = time.time) -> None:
        self._queue: _DropOldest[Advertisement] = _DropOldest(maxsize)
        self._clock = clock

    @property
    def dropped(self) -> int:
        """Adverts dropped because the consumer fell `maxsize` behind."""
        return self._queue.dropped

    def on_detection(self, device: BLEDevice, data: AdvertisementData) -> None:
        """Bleak's `AdvertisementDataCallback`: called on the event loop for every advert."""
        self._queue.put(to_advertisement(device, data, self._clock()))

    async def get(self) -> Advertisement:
        return await self._queue.get()

    def __aiter__(self) -> AsyncIterator[Advertisement]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Advertisement]:
        while True:
            yield await self._queue.get()


class BleakScannerSource:
    """`Scanner` over `bleak.BleakScanner`: passive where the platform allows, else active.

    `name_prefixes` build the BlueZ or-patterns passive scanning needs on Linux (only adverts
    whose local name starts with one are reported there). `backend` is bleak's own hook for a
    custom scanner backend (tests use one in place of the radio).
    """

    def __init__(
        self,
        *,
        passive: bool = True,
        name_prefixes: Sequence[str] = (),
        adapter: str | None = None,
        queue_size: int = 1024,
        clock: Callable[[], float] = time.time,
        backend: type[BaseBleakScanner] | None = None,
    ) -> None:
        self._passive = passive
        self._name_prefixes = tuple(name_prefixes)
        self._adapter = adapter
        self._queue_size = queue_size
        self._clock = clock
        self._backend = backend
        self._queues: list[DetectionQueue] = []
        self._fallback_logged = False
        self.mode: ScanMode | None = None

    @property
    def dropped(self) -> int:
        """Adverts dropped (consumer too slow) over every scan of this source."""
        return sum(queue.dropped for queue in self._queues)

    async def advertisements(self) -> AsyncGenerator[Advertisement, None]:
        """Every advert heard while the iterator is open; closing it stops the scan."""
        queue = DetectionQueue(self._queue_size, self._clock)
        self._queues.append(queue)
        scanner = await self._start(queue)
        try:
            async for advert in queue:
                yield advert
        finally:
            self.mode = None
            try:
                await scanner.stop()
            except BleakError as exc:
                log.warning("BLE scanner did not stop cleanly: %s", exc)

    async def _start(self, queue: DetectionQueue) -> BleakScanner:
        if self._passive:
            try:
                return await self._open(queue, "passive")
            except BleakError as exc:
                self._log_fallback(exc)
        try:
            return await self._open(queue, "active")
        except BleakError as exc:
            raise SensorError(f"BLE scanner could not start: {exc}") from exc

    async def _open(self, queue: DetectionQueue, mode: ScanMode) -> BleakScanner:
        scanner = BleakScanner(
            queue.on_detection,
            scanning_mode=mode,
            bluez=self._bluez_args(mode),
            backend=self._backend,
        )
        await scanner.start()
        self.mode = mode
        return scanner

    def _bluez_args(self, mode: ScanMode) -> BlueZScannerArgs:
        args: BlueZScannerArgs = {}
        if self._adapter is not None:
            args["adapter"] = self._adapter
        if mode == "passive" and self._name_prefixes:
            args["or_patterns"] = passive_patterns(self._name_prefixes)
        return args

    def _log_fallback(self, exc: BleakError) -> None:
        level = logging.DEBUG if self._fallback_logged else logging.INFO
        log.log(level, "passive BLE scanning unavailable (%s): scanning actively", exc)
        self._fallback_logged = True


class GattClient(Protocol):
    """The part of `bleak.BleakClient` a link uses."""

    @property
    def is_connected(self) -> bool: ...

    async def write_gatt_char(
        self, char_specifier: str, data: bytes, response: bool | None = None
    ) -> None: ...

    async def start_notify(self, char_specifier: str, callback: NotifyCallback) -> None: ...

    async def stop_notify(self, char_specifier: str) -> None: ...

    async def disconnect(self) -> None: ...


class _Subscribers:
    """The link's open notification queues, ended (a `None`) when the device disconnects."""

    def __init__(self) -> None:
        self.queues: set[_DropOldest[bytes | None]] = set()
        self.down = False

    def disconnected(self, _client: object) -> None:
        """Bleak's `disconnected_callback`."""
        self.down = True
        for queue in self.queues:
            queue.put(None)


class BleakLink:
    """`Link` over a connected bleak client: write with response, notifications as iterators."""

    def __init__(
        self,
        client: GattClient,
        address: str,
        *,
        queue_size: int = 256,
        subscribers: _Subscribers | None = None,
    ) -> None:
        self._client = client
        self._address = address
        self._queue_size = queue_size
        self._subscribers = subscribers or _Subscribers()

    @property
    def address(self) -> str:
        return self._address

    @property
    def dropped(self) -> int:
        """Notifications dropped by the open iterators (consumer too slow)."""
        return sum(queue.dropped for queue in self._subscribers.queues)

    def disconnected(self, client: object) -> None:
        """Mark the link down and end every notification iterator (bleak's callback)."""
        self._subscribers.disconnected(client)

    async def write(self, characteristic: str, data: bytes) -> None:
        try:
            await self._client.write_gatt_char(characteristic, data, response=True)
        except BLEAK_RETRY_EXCEPTIONS as exc:
            raise SensorError(
                f"BLE write to {self._address} ({characteristic}) failed: {_cause(exc)}"
            ) from exc

    async def notifications(self, characteristic: str) -> AsyncGenerator[bytes, None]:
        """Notifications in arrival order; ends when the device disconnects or the link closes."""
        if self._subscribers.down:
            return
        queue: _DropOldest[bytes | None] = _DropOldest(self._queue_size)

        def on_notify(_sender: BleakGATTCharacteristic, data: bytearray) -> None:
            queue.put(bytes(data))

        await self._start_notify(characteristic, on_notify)
        self._subscribers.queues.add(queue)
        if self._subscribers.down:  # dropped while notifications were being switched on
            queue.put(None)
        try:
            while (item := await queue.get()) is not None:
                yield item
        finally:
            self._subscribers.queues.discard(queue)
            await self._stop_notify(characteristic)

    async def close(self) -> None:
        """Disconnect; open notification iterators end."""
        try:
            await self._client.disconnect()
        except BLEAK_RETRY_EXCEPTIONS as exc:
            log.warning("BLE disconnect from %s failed: %s", self._address, _cause(exc))
        finally:
            self._subscribers.disconnected(self._client)

    async def _start_notify(self, characteristic: str, callback: NotifyCallback) -> None:
        try:
            await self._client.start_notify(characteristic, callback)
        except BLEAK_RETRY_EXCEPTIONS as exc:
            raise SensorError(
                f"BLE notifications from {self._address} ({characteristic}) failed: {_cause(exc)}"
            ) from exc

    async def _stop_notify(self, characteristic: str) -> None:
        if self._subscribers.down or not self._client.is_connected:
            return
        try:
            await self._client.stop_notify(characteristic)
        except BLEAK_RETRY_EXCEPTIONS as exc:
            log.debug("stop_notify on %s failed: %s", self._address, _cause(exc))


async def _find_device(address: str, timeout: float) -> BLEDevice | None:
    return await BleakScanner.find_device_by_address(address, timeout=timeout)


class BleakConnector:
    """`Connector` over bleak-retry-connector: find the device, then connect with retries."""

    def __init__(
        self,
        *,
        max_attempts: int = 4,
        find_timeout: float = 10.0,
        queue_size: int = 256,
        lookup: DeviceLookup = _find_device,
    ) -> None:
        self._max_attempts = max_attempts
        self._find_timeout = find_timeout
        self._queue_size = queue_size
        self._lookup = lookup

    async def connect(self, address: str) -> BleakLink:
        """Connect to `address`; raises SensorError naming the device and the cause."""
        device = await self._device(address)
        subscribers = _Subscribers()
        try:
            client = await establish_connection(
                BleakClientWithServiceCache,
                device,
                address,
                disconnected_callback=subscribers.disconnected,
                max_attempts=self._max_attempts,
            )
        except BLEAK_RETRY_EXCEPTIONS as exc:
            raise SensorError(f"BLE connection to {address} failed: {_cause(exc)}") from exc
        return BleakLink(client, address, queue_size=self._queue_size, subscribers=subscribers)

    async def _device(self, address: str) -> BLEDevice:
        try:
            device = await self._lookup(address, self._find_timeout)
        except BLEAK_RETRY_EXCEPTIONS as exc:
            raise SensorError(f"BLE scan for {address} failed: {_cause(exc)}") from exc
        if device is None:
            raise SensorError(
                f"BLE device {address} not found (no advert within {self._find_timeout:g} s)"
            )
        return device


def _cause(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
