"""`aigloo up`: the rig on this machine. Today the broker; the components join as they land."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from rich.console import Console

from aigloo_edge.broker import credentials_path, init_broker, prepare
from aigloo_edge.errors import BrokerError
from aigloo_edge.mqtt.settings import Credentials, load_credentials
from aigloo_edge.topics import Topics

log = logging.getLogger(__name__)
READY_TIMEOUT_S = 10.0


async def run_rig(directory: Path, console: Console) -> None:
    if not credentials_path(directory).exists():
        init_broker(directory)
    argv = prepare(directory)
    creds = load_credentials(credentials_path(directory))
    broker = await asyncio.create_subprocess_exec(*argv, cwd=directory)
    try:
        for listener in ("mqtt", "websockets"):
            await wait_for_port(creds.host, creds.ports[listener], broker)
        _print_where_to_look(console, directory, creds)
        await broker.wait()
        raise BrokerError(f"mosquitto exited with code {broker.returncode}")
    finally:
        await stop_process(broker)


async def wait_for_port(host: str, port: int, process: asyncio.subprocess.Process) -> None:
    """Wait until `host:port` accepts TCP connections, or fail if `process` dies first."""
    async with asyncio.timeout(READY_TIMEOUT_S):
        while process.returncode is None:
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection(host, port)
                writer.close()
                await writer.wait_closed()
                return
            await asyncio.sleep(0.05)
    raise BrokerError(f"mosquitto exited with code {process.returncode} before listening")


async def stop_process(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        async with asyncio.timeout(5):
            await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()


def _print_where_to_look(console: Console, directory: Path, creds: Credentials) -> None:
    path = credentials_path(directory)
    ports = creds.ports
    console.print(
        f"[bold]Aigloo broker[/bold] on {creds.host}: mqtt {ports['mqtt']}, "
        f"websockets {ports['websockets']}, tls {ports['tls']} (if initialised)"
    )
    console.print(f"credentials (one password per role): {path}")
    console.print("watch everything as admin:")
    password = f"$(grep '^  admin:' {path} | cut -d' ' -f4)"
    everything = Topics(creds.base_topic).all()
    console.print(
        f"  mosquitto_sub -h {creds.host} -p {ports['mqtt']} -u admin "
        f"-P \"{password}\" -t '{everything}' -v",
        markup=False,
        highlight=False,
    )
    console.print("Ctrl-C stops everything.")
