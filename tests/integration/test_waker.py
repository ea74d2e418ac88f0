"""The waker against a real broker: a real magic packet on a loopback UDP port, then the verdict."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator

from aigloo_edge.node.agent import node_session
from aigloo_edge.node.waker import Waker
from aigloo_edge.payloads import PowerState
from aigloo_edge.runtime import cancel_and_wait
from tests.support.broker import RunningBroker, free_port
from tests.support.collect import Collector
from tests.support.node import node_config

MAC = "a4:83:e7:12:34:56"


@contextlib.contextmanager
def udp_listener() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", free_port()))
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


@contextlib.asynccontextmanager
async def waker_running(broker: RunningBroker, port: int, timeout_s: float) -> AsyncIterator[None]:
    target = {"mac": MAC, "broadcast": "127.0.0.1", "port": port, "timeout_s": timeout_s}
    config = node_config(
        broker, node="mini", components=["waker"], waker={"targets": {"studio": target}}
    )
    session = node_session(config)
    assert config.waker is not None
    Waker(session, config.waker)
    task = asyncio.create_task(session.run())
    try:
        await session.wait_connected(10)
        await session.sync_subscriptions()
        yield
    finally:
        await cancel_and_wait(task)


async def _receive(sock: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(5):
        return await loop.sock_recv(sock, 1024)


async def test_wake_sends_the_magic_packet_then_awake_when_the_target_is_online(
    broker: RunningBroker,
) -> None:
    """`wake` → 6x0xFF + 16xMAC on UDP, `waking`; the Studio's agent online → `awake`."""
    t = broker.topics
    power = t.node_power("studio")
    with udp_listener() as sock:
        async with (
            broker.session("admin", component="ctl") as admin,
            waker_running(broker, sock.getsockname()[1], timeout_s=10),
        ):
            states = Collector(admin, power)
            await admin.sync_subscriptions()
            await admin.publish(t.node_power_set("studio"), b"wake")
            packet = await _receive(sock)
            waking = PowerState.from_json(await states.value_on(power))
            studio_session = broker.session(
                "studio", availability_topic=t.node_availability("studio")
            )
            async with studio_session:
                awake = PowerState.from_json(await states.value_on(power))
    assert packet == b"\xff" * 6 + bytes.fromhex(MAC.replace(":", "")) * 16
    assert waking.state == "waking"
    assert MAC in (waking.reason or "")
    assert awake.state == "awake"


async def test_wake_reports_unreachable_when_the_target_never_comes(
    broker: RunningBroker,
) -> None:
    """No `online` within the timeout → `unreachable`, with the reason."""
    t = broker.topics
    power = t.node_power("studio")
    with udp_listener() as sock:
        async with (
            broker.session("admin", component="ctl") as admin,
            waker_running(broker, sock.getsockname()[1], timeout_s=0.5),
        ):
            states = Collector(admin, power)
            await admin.sync_subscriptions()
            await admin.publish(t.node_power_set("studio"), b'{"state": "wake"}')
            await _receive(sock)
            waking = PowerState.from_json(await states.value_on(power))
            verdict = PowerState.from_json(await states.value_on(power))
    assert waking.state == "waking"
    assert verdict.state == "unreachable"
    assert verdict.reason == f"not online 0.5s after the magic packet to {MAC}"


async def test_wake_for_an_online_node_or_an_unknown_one_sends_nothing(
    broker: RunningBroker,
) -> None:
    """The waker leaves awake nodes to themselves and ignores machines it has no MAC for."""
    t = broker.topics
    with udp_listener() as sock:
        async with (
            broker.session("studio", availability_topic=t.node_availability("studio")),
            broker.session("admin", component="ctl") as admin,
            waker_running(broker, sock.getsockname()[1], timeout_s=5),
        ):
            await admin.publish(t.node_power_set("studio"), b"wake")
            await admin.publish(t.node_power_set("mbp"), b"wake")
            await asyncio.sleep(0.5)
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(0.3):
                    data = await loop.sock_recv(sock, 1024)
            except TimeoutError:
                data = b""
    assert data == b""
