"""The bleak edge without a radio: bleak's own BLEDevice/AdvertisementData objects converted,
the detection callback (bleak's signature, called by bleak's own scanner front-end over a
stand-in backend) turned into an async iterator with a bounded queue, passive-to-active
fallback, and connection/GATT errors translated into SensorError naming the device."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, ClassVar, NoReturn

import pytest
from bleak.args.bluez import BlueZScannerArgs, OrPattern
from bleak.args.corebluetooth import CBScannerArgs
from bleak.assigned_numbers import AdvertisementDataType
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService
from bleak.exc import BleakError

from aigloo_edge.errors import SensorError
from aigloo_edge.sensors import ble
from aigloo_edge.sensors.ble import (
    BleakConnector,
    BleakScannerSource,
    DetectionQueue,
    NotifyCallback,
    to_advertisement,
)
from aigloo_edge.sensors.link import Advertisement

MAC = "C3:18:C9:9C:C8:90"
T0 = 1_800_000_000.0
NOTIFY_UUID = "0000ff02-0000-1000-8000-00805f9b34fb"


def tp357(rssi: int = -60, company: int = 61890) -> tuple[BLEDevice, AdvertisementData]:
    """The TP357 advert of thermopro-ble's tests, as bleak's BlueZ backend would report it."""
    device = BLEDevice(MAC, "TP357 (2142)", details={"path": "/org/bluez/hci0/dev_C3"})
    data = AdvertisementData(
        local_name="TP357 (2142)",
        manufacturer_data={company: b"\x00\x1d\x02,"},
        service_data={},
        service_uuids=[],
        tx_power=None,
        rssi=rssi,
        platform_data=(),
    )
    return device, data


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        self.now += 1
        return self.now


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - the stand-in radio's state has no event
            await asyncio.sleep(0.001)


def test_bleak_objects_convert_to_an_advertisement() -> None:
    """Every field of bleak's BLEDevice + AdvertisementData lands in our Advertisement, with
    the receive time given; the name is the advertised local name."""
    device = BLEDevice("4125DDBA-2774-4851-9889-6AADDD4CAC3D", "TP393 (9376)", details=None)
    data = AdvertisementData(
        local_name="TP393 (9376)",
        manufacturer_data={62146: b"\x005\x02,"},
        service_data={"0000181a-0000-1000-8000-00805f9b34fb": b"\x01\x02"},
        service_uuids=["0000181a-0000-1000-8000-00805f9b34fb"],
        tx_power=4,
        rssi=-71,
        platform_data=("ignored",),
    )

    advert = to_advertisement(device, data, at=T0)

    assert advert == Advertisement(
        address="4125DDBA-2774-4851-9889-6AADDD4CAC3D",
        name="TP393 (9376)",
        rssi=-71,
        manufacturer_data={62146: b"\x005\x02,"},
        service_data={"0000181a-0000-1000-8000-00805f9b34fb": b"\x01\x02"},
        service_uuids=("0000181a-0000-1000-8000-00805f9b34fb",),
        at=T0,
    )


def test_name_falls_back_to_the_device_name_but_not_to_bluez_placeholder_alias() -> None:
    """Without a local name in the advert the OS's device name is used, unless it is only
    BlueZ's alias made from the address (then the advert has no name)."""
    _, data = tp357()
    unnamed = data._replace(local_name=None)

    named = to_advertisement(BLEDevice(MAC, "TP357 (2142)", None), unnamed, at=T0)
    alias = to_advertisement(BLEDevice(MAC, MAC.replace(":", "-"), None), unnamed, at=T0)

    assert named.name == "TP357 (2142)"
    assert alias.name is None


async def test_detection_callback_feeds_the_async_iterator_in_order() -> None:
    """Adverts given to the detection callback (bleak's signature) come out of the iterator in
    arrival order, stamped with the clock."""
    queue = DetectionQueue(maxsize=8, clock=Clock())
    for rssi in (-50, -51, -52):
        queue.on_detection(*tp357(rssi))

    adverts = aiter(queue)
    got = [await anext(adverts) for _ in range(3)]

    assert [a.rssi for a in got] == [-50, -51, -52]
    assert [a.at for a in got] == [T0 + 1, T0 + 2, T0 + 3]
    assert queue.dropped == 0


async def test_full_queue_drops_the_oldest_adverts_and_counts_them() -> None:
    """When the consumer falls behind a full queue, the oldest adverts make room for the newest
    and each one dropped is counted."""
    queue = DetectionQueue(maxsize=2)
    for rssi in (-50, -51, -52, -53, -54):
        queue.on_detection(*tp357(rssi))

    kept = [(await queue.get()).rssi, (await queue.get()).rssi]

    assert kept == [-53, -54]
    assert queue.dropped == 3


class Radio(BaseBleakScanner):
    """A bleak scanner backend standing in for the radio (bleak's `backend=` hook).

    `refuse_passive` makes it refuse passive scanning in its constructor, as CoreBluetooth does.
    """

    made: ClassVar[list[Radio]] = []
    refuse_passive = False
    refuse_start = False

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: str,
        *,
        bluez: BlueZScannerArgs,
        cb: CBScannerArgs,
        **kwargs: Any,
    ) -> None:
        if scanning_mode == "passive" and self.refuse_passive:
            raise BleakError("macOS does not support passive scanning")
        super().__init__(detection_callback, service_uuids)
        self.mode = scanning_mode
        self.bluez = bluez
        self.running = False
        self.made.append(self)

    async def start(self) -> None:
        if self.refuse_start:
            raise BleakError("No Bluetooth adapters found.")
        self.running = True

    async def stop(self) -> None:
        self.running = False


def radio(*, refuse_passive: bool = False, refuse_start: bool = False) -> type[Radio]:
    return type(
        "TestRadio",
        (Radio,),
        {"made": [], "refuse_passive": refuse_passive, "refuse_start": refuse_start},
    )


async def test_scanner_scans_passively_with_name_patterns_and_stops_when_closed() -> None:
    """Where the backend allows it the source scans passively, giving BlueZ or-patterns for the
    name prefixes; adverts from bleak's callback come out of advertisements(); closing the
    iterator stops the scan."""
    backend = radio()
    source = BleakScannerSource(name_prefixes=["TP35"], backend=backend, clock=Clock())
    adverts = source.advertisements()
    first = asyncio.ensure_future(anext(adverts))
    await until(lambda: bool(backend.made) and backend.made[0].running)
    scanner = backend.made[0]

    scanner.call_detection_callbacks(*tp357())
    advert = await first
    await adverts.aclose()

    assert (advert.address, advert.name, advert.at) == (MAC, "TP357 (2142)", T0 + 1)
    assert source.mode is None
    assert scanner.mode == "passive"
    assert scanner.bluez.get("or_patterns") == [
        OrPattern(0, AdvertisementDataType.COMPLETE_LOCAL_NAME, b"TP35"),
        OrPattern(0, AdvertisementDataType.SHORTENED_LOCAL_NAME, b"TP35"),
    ]
    assert not scanner.running


async def test_scanner_falls_back_to_active_and_logs_it_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """When passive scanning is refused (macOS; BlueZ without advertisement monitors) the
    source scans actively and says so in one log line."""
    backend = radio(refuse_passive=True)
    source = BleakScannerSource(backend=backend)
    adverts = source.advertisements()
    first = asyncio.ensure_future(anext(adverts))
    with caplog.at_level(logging.INFO, logger=ble.__name__):
        await until(lambda: bool(backend.made) and backend.made[0].running)
    backend.made[0].call_detection_callbacks(*tp357())
    await first

    assert source.mode == "active"
    assert backend.made[0].mode == "active"
    assert [r.getMessage() for r in caplog.records] == [
        "passive BLE scanning unavailable (macOS does not support passive scanning): "
        "scanning actively"
    ]
    await adverts.aclose()


async def test_scanner_that_cannot_start_raises_sensor_error() -> None:
    """No adapter at all: the source raises SensorError with bleak's cause."""
    source = BleakScannerSource(passive=False, backend=radio(refuse_start=True))

    with pytest.raises(SensorError, match="BLE scanner could not start: No Bluetooth adapters"):
        await anext(source.advertisements())


async def test_scanner_counts_adverts_dropped_by_a_slow_consumer() -> None:
    """A burst larger than the queue drops the oldest adverts; the source reports the count."""
    backend = radio()
    source = BleakScannerSource(passive=False, backend=backend, queue_size=2)
    adverts = source.advertisements()
    first = asyncio.ensure_future(anext(adverts))
    await until(lambda: bool(backend.made) and backend.made[0].running)

    for rssi in (-50, -51, -52, -53, -54):
        backend.made[0].call_detection_callbacks(*tp357(rssi))

    assert [(await first).rssi, (await anext(adverts)).rssi] == [-53, -54]
    assert source.dropped == 3
    await adverts.aclose()


async def found(address: str, timeout: float) -> BLEDevice | None:
    return BLEDevice(address, "R621ZEB4XXXXXXXX", details=None)


async def missing(address: str, timeout: float) -> BLEDevice | None:
    return None


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (BleakError("le-connection-abort-by-local"), "le-connection-abort-by-local"),
        (TimeoutError(), "TimeoutError"),
    ],
    ids=["BleakError", "TimeoutError"],
)
async def test_connection_failure_is_a_sensor_error_naming_the_device(
    monkeypatch: pytest.MonkeyPatch, error: Exception, cause: str
) -> None:
    """bleak-retry-connector giving up (BleakError) or timing out becomes SensorError naming
    the address and the cause, chained to the original."""

    async def fail(*args: object, **kwargs: object) -> NoReturn:
        raise error

    monkeypatch.setattr(ble, "establish_connection", fail)
    connector = BleakConnector(lookup=found)

    with pytest.raises(SensorError, match=f"BLE connection to {MAC} failed: {cause}") as caught:
        await connector.connect(MAC)
    assert caught.value.__cause__ is error


async def test_device_not_found_is_a_sensor_error_naming_the_device() -> None:
    """No advert from the address within the lookup time: SensorError naming it."""
    connector = BleakConnector(lookup=missing, find_timeout=2.5)

    with pytest.raises(SensorError, match=f"BLE device {MAC} not found .*2.5 s"):
        await connector.connect(MAC)


class GattDevice:
    """The connected device's GATT side, standing in for the radio."""

    def __init__(self) -> None:
        self.is_connected = True
        self.writes: list[tuple[str, bytes, bool | None]] = []
        self.notify: dict[str, NotifyCallback] = {}
        self.fail_writes = False

    async def write_gatt_char(
        self, char_specifier: str, data: bytes, response: bool | None = None
    ) -> None:
        if self.fail_writes:
            raise BleakError("Not connected")
        self.writes.append((char_specifier, bytes(data), response))

    async def start_notify(self, char_specifier: str, callback: NotifyCallback) -> None:
        self.notify[char_specifier] = callback

    async def stop_notify(self, char_specifier: str) -> None:
        self.notify.pop(char_specifier)

    async def disconnect(self) -> None:
        self.is_connected = False


def characteristic() -> BleakGATTCharacteristic:
    service = BleakGATTService(None, 10, "0000ff00-0000-1000-8000-00805f9b34fb")
    return BleakGATTCharacteristic(None, 12, NOTIFY_UUID, ["notify"], lambda: 20, service)


async def connected(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[ble.BleakLink, GattDevice, Callable[[object], None]]:
    """Connect through BleakConnector to a GattDevice; also return bleak's disconnect callback."""
    device = GattDevice()
    calls: dict[str, Any] = {}

    async def establish(*args: Any, **kwargs: Any) -> GattDevice:
        calls.update(kwargs, name=args[2])
        return device

    monkeypatch.setattr(ble, "establish_connection", establish)
    link = await BleakConnector(lookup=found, max_attempts=3).connect(MAC)
    assert (calls["name"], calls["max_attempts"]) == (MAC, 3)
    return link, device, calls["disconnected_callback"]


async def test_link_notifications_arrive_in_order_and_end_when_the_device_disconnects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Notifications (bleak's start_notify callback) come out of the iterator in order; bleak
    reporting the disconnect ends it."""
    link, device, disconnected = await connected(monkeypatch)
    received: list[bytes] = []

    async def read() -> None:
        async for data in link.notifications(NOTIFY_UUID):
            received.append(data)

    reader = asyncio.create_task(read())
    await until(lambda: NOTIFY_UUID in device.notify)
    for data in (b"\xaa\x01", b"\xaa\x02"):
        device.notify[NOTIFY_UUID](characteristic(), bytearray(data))
    disconnected(device)
    await asyncio.wait_for(reader, timeout=2)

    assert received == [b"\xaa\x01", b"\xaa\x02"]


async def test_link_writes_with_response_and_translates_write_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A write goes out as write-with-response; a failed write is SensorError naming the
    device and characteristic."""
    link, device, _ = await connected(monkeypatch)

    await link.write(NOTIFY_UUID, b"\x01\x02")
    device.fail_writes = True

    assert device.writes == [(NOTIFY_UUID, b"\x01\x02", True)]
    with pytest.raises(SensorError, match=f"BLE write to {MAC} \\({NOTIFY_UUID}\\) failed"):
        await link.write(NOTIFY_UUID, b"\x03")


async def test_closing_the_link_disconnects_and_ends_notifications(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """close() disconnects the device and ends open notification iterators; a new iterator on
    a closed link ends at once."""
    link, device, _ = await connected(monkeypatch)
    notifications = link.notifications(NOTIFY_UUID)
    pending = asyncio.ensure_future(anext(notifications, None))
    await until(lambda: NOTIFY_UUID in device.notify)

    await link.close()

    assert await asyncio.wait_for(pending, timeout=2) is None
    assert not device.is_connected
    assert [data async for data in link.notifications(NOTIFY_UUID)] == []
