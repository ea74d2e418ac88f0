"""A real Mosquitto for tests, started from the project's own mosquitto.conf.

Each RunningBroker gets its own directory (credentials from `broker init`), free ports and a
unique base topic, so tests never see each other's retained messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aigloo_edge.broker import init_broker, prepare
from aigloo_edge.mqtt import MqttSettings, Session, TlsSettings
from aigloo_edge.mqtt.settings import Credentials
from aigloo_edge.runtime import cancel_and_wait
from aigloo_edge.topics import Topics

READY_TIMEOUT_S = 10.0


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: all held open until all are chosen, because the kernel may
    hand a just-closed port out again (two listeners on one port: the broker exits at start)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def broker_ports() -> dict[str, int]:
    return dict(zip(("mqtt", "websockets", "tls"), free_ports(3), strict=True))


def wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mosquitto exited {process.returncode}:\n{log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"mosquitto did not listen on {port}:\n{log.read_text()}")


@dataclass
class RunningBroker:
    directory: Path
    creds: Credentials
    tls: bool = False
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.directory / "mosquitto.log"

    @property
    def topics(self) -> Topics:
        return Topics(self.creds.base_topic)

    @property
    def ports(self) -> dict[str, int]:
        return self.creds.ports

    def start(self) -> None:
        argv = prepare(self.directory)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(argv, cwd=self.directory, stdout=log, stderr=log)
        for listener in ("mqtt", "websockets", "tls") if self.tls else ("mqtt", "websockets"):
            wait_listening(self.ports[listener], self.process, self.log_path)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    # Async forms: a test's event loop must keep running while the broker goes down, as a
    # real agent's would (a blocked loop misses the FIN and only notices at keepalive).
    async def astart(self) -> None:
        await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    async def arestart(self) -> None:
        await asyncio.to_thread(self.restart)

    def settings(self, role: str, *, listener: str = "mqtt", **overrides: Any) -> MqttSettings:
        base = self.creds.settings_for(role, listener=listener)
        if listener == "tls":
            overrides.setdefault("tls", TlsSettings(ca_file=self.directory / "tls" / "ca.crt"))
        return base.model_copy(update=overrides)

    @contextlib.asynccontextmanager
    async def session(
        self,
        role: str,
        *,
        component: str | None = None,
        availability_topic: str | None = None,
        connect: bool = True,
        announce: bool = True,
        **overrides: Any,
    ) -> AsyncIterator[Session]:
        """A running Session as `role`; cancelled (and so `offline`) when the block ends."""
        session = Session(
            self.settings(role, **overrides),
            component=component or role,
            availability_topic=availability_topic,
            announce=announce,
        )
        task = asyncio.create_task(session.run())
        try:
            if connect:
                await session.wait_connected(READY_TIMEOUT_S)
            yield session
        finally:
            await cancel_and_wait(task)


def make_broker(tmp: Path, *, tls: bool = False) -> RunningBroker:
    base = f"t{uuid.uuid4().hex[:8]}/aigloo"
    ports = broker_ports()
    creds = init_broker(tmp, base_topic=base, ports=ports, tls=tls)
    broker = RunningBroker(tmp, creds, tls=tls)
    broker.start()
    return broker
