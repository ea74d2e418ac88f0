"""Power drivers: how a node puts itself to sleep."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

from aigloo_edge.config import PowerConfig
from aigloo_edge.errors import AiglooError

log = logging.getLogger(__name__)


class PowerError(AiglooError):
    """The operating system refused or failed to sleep."""


class PowerDriver(Protocol):
    name: str

    async def sleep(self) -> None: ...


@dataclass
class CommandDriver:
    """Runs a command to sleep (`pmset sleepnow`, `systemctl suspend`, or the user's own)."""

    argv: list[str]
    name: str = "command"

    async def sleep(self) -> None:
        try:
            process = await asyncio.create_subprocess_exec(
                *self.argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
            )
        except OSError as exc:
            raise PowerError(f"cannot run {self.argv[0]}: {exc.strerror}") from exc
        _, stderr = await process.communicate()
        if process.returncode != 0:
            detail = stderr.decode(errors="replace").strip()[:200]
            raise PowerError(f"{' '.join(self.argv)} exited {process.returncode}: {detail}")


@dataclass
class DryRunDriver:
    """Records each sleep and does nothing: for trying rules and for the digital twin."""

    name: str = "dry-run"
    calls: list[float] = field(default_factory=list)

    async def sleep(self) -> None:
        self.calls.append(time.time())
        log.info("dry-run power driver: would sleep now")


def make_driver(config: PowerConfig) -> PowerDriver:
    if config.driver == "macos":
        return CommandDriver(["pmset", "sleepnow"], name="macos")
    if config.driver == "linux":
        return CommandDriver(["systemctl", "suspend"], name="linux")
    if config.driver == "command":
        assert config.sleep_command is not None  # the config model guarantees it
        return CommandDriver(list(config.sleep_command))
    return DryRunDriver()
