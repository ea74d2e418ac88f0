"""`aigloo up` as a user runs it: broker set up and reachable, Ctrl-C stops it cleanly."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from aigloo_edge.broker import init_broker
from aigloo_edge.mqtt import Session, load_credentials
from tests.support.broker import free_port
from tests.support.collect import Collector


async def test_up_starts_the_broker_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    """`aigloo up --dir D` runs Mosquitto on D's ports; SIGINT stops it and exits 0."""
    directory = tmp_path / "broker"
    ports = {"mqtt": free_port(), "websockets": free_port(), "tls": free_port()}
    init_broker(directory, ports=ports)
    aigloo = Path(sys.executable).parent / "aigloo"
    process = await asyncio.create_subprocess_exec(
        str(aigloo), "up", "--dir", str(directory), stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(20):
            banner = (await process.stdout.readline()).decode()
        assert f"mqtt {ports['mqtt']}" in banner
        settings = load_credentials(directory / "credentials.yaml").settings_for("admin")
        session = Session(settings, component="probe")
        task = asyncio.create_task(session.run())
        seen = Collector(session, session.topics.solar())
        await session.wait_connected(10)
        await session.sync_subscriptions()
        await session.publish(session.topics.solar(), b'{"watts": 1}')
        assert (await seen.next()).payload == b'{"watts": 1}'
        task.cancel()
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(15):
            assert await process.wait() == 0
        assert not (await _port_open(ports["mqtt"])), "Mosquitto stopped with the rig"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _port_open(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True
