"""A TCP proxy on loopback that a test controls, to partition a client from the broker.

`cut()` starts a partition: in "close" mode every piped connection is closed at once (both
peers see the connection end) and new ones are refused (accepted and closed straight away); in
"blackhole" mode the connections stay open but nothing is carried either way, and new ones
hang unanswered, as when a cable is pulled. `heal()` ends it: new connections are piped again.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

CutMode = Literal["close", "blackhole"]
CHUNK = 65536


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.mode: CutMode | None = None
        self.connections = 0
        self.refused = 0  # connections dropped at once during a "close" cut
        self._server: asyncio.Server | None = None
        self._pipes: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._healed = asyncio.Event()
        self._healed.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._close_all()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> TcpProxy:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    def cut(self, mode: CutMode = "close") -> None:
        """Start a partition (see the module docstring)."""
        self.mode = mode
        self._healed.clear()
        if mode == "close":
            self._close_all()

    def heal(self) -> None:
        """End the partition: connections open from now on are piped again. Blackholed ones are
        closed (their peers have long given up on them)."""
        if self.mode == "blackhole":
            self._close_all()
        self.mode = None
        self._healed.set()

    def _close_all(self) -> None:
        for client, upstream in list(self._pipes):
            client.close()
            upstream.close()
        self._pipes.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if self.mode == "close":
                self.refused += 1
                writer.close()
                return
            if self.mode == "blackhole":
                await self._healed.wait()
                writer.close()  # a connection made during the partition never got through
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                writer.close()
                return
            self.connections += 1
            pair = (writer, up_writer)
            self._pipes.add(pair)
            try:
                await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
            finally:
                self._pipes.discard(pair)
                writer.close()
                up_writer.close()
        finally:
            self._tasks.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(CHUNK):
                if self.mode == "blackhole":
                    await self._healed.wait()  # dropped: this connection is closed on heal
                    return
                writer.write(data)
                await writer.drain()
        writer.close()
