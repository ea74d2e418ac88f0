"""A long-running source process (powermetrics, macmon) whose latest sample the agent reads."""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
from collections.abc import Callable

from aigloo_edge.node.collectors.sample import AppleSample

log = logging.getLogger(__name__)
Parser = Callable[[bytes], list[AppleSample]]


class StreamingSource:
    """Runs `argv`, feeds its stdout to `parse`, keeps the latest sample.

    An absent tool, a refused `sudo -n` or a non-macOS machine is logged once and the source
    stays empty: never an error loop.
    """

    def __init__(
        self, name: str, argv: list[str], parse: Parser, platforms: tuple[str, ...] = ("darwin",)
    ) -> None:
        self.name = name
        self.argv = argv
        self.platforms = platforms
        self._parse = parse
        self.latest: AppleSample | None = None

    def unavailable_reason(self) -> str | None:
        if sys.platform not in self.platforms:
            return "macOS only"
        if shutil.which(self.argv[0]) is None:
            return f"{self.argv[0]} not found"
        return None

    async def run(self) -> None:
        reason = self.unavailable_reason()
        if reason is not None:
            log.info("telemetry source %s skipped: %s", self.name, reason)
            return
        process = await asyncio.create_subprocess_exec(
            *self.argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            await self._read(process)
        finally:
            if process.returncode is None:
                process.terminate()
                await process.wait()

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        assert process.stderr is not None
        while chunk := await process.stdout.read(65536):
            for sample in self._parse(chunk):
                self.latest = sample
        error = (await process.stderr.read()).decode(errors="replace").strip()[:200]
        code = await process.wait()
        log.warning("telemetry source %s stopped (exit %s): %s", self.name, code, error)
