"""Running a component's coroutine until SIGINT/SIGTERM, then stopping it cleanly (exit 0)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any


def run_until_stopped(main: Coroutine[Any, Any, None]) -> None:
    """Run `main`; a SIGINT or SIGTERM cancels it so its cleanup (e.g. `offline`) runs."""
    asyncio.run(_guarded(main))


async def _guarded(main: Coroutine[Any, Any, None]) -> None:
    task = asyncio.ensure_future(main)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        if not task.cancelled():
            raise
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
