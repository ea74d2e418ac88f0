"""Running a component's coroutine until SIGINT/SIGTERM, then stopping it cleanly (exit 0)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any, Final

# Longer than a session's goodbye (2 s), so a normal shutdown is never cut short.
CANCEL_RETRY_S: Final = 3.0


def run_until_stopped(main: Coroutine[Any, Any, None]) -> None:
    """Run `main`; a SIGINT or SIGTERM cancels it so its cleanup (e.g. `offline`) runs."""
    asyncio.run(_guarded(main))


async def _guarded(main: Coroutine[Any, Any, None]) -> None:
    task = asyncio.ensure_future(main)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stopper = asyncio.create_task(_cancel_when_set(stop, task))
    try:
        await task
    except asyncio.CancelledError:
        if not task.cancelled():
            raise
    finally:
        stopper.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _cancel_when_set(stop: asyncio.Event, task: asyncio.Future[None]) -> None:
    await stop.wait()
    await cancel_and_wait(task)


async def cancel_and_wait(task: asyncio.Future[Any], retry_s: float = CANCEL_RETRY_S) -> None:
    """Cancel `task` and wait until it is done, cancelling again while it keeps running.

    Python 3.11's asyncio.wait_for (which aiomqtt uses for every acknowledgement) can swallow
    a cancellation that lands as the awaited future completes; one cancel could then be lost
    and a component would never stop.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=retry_s)
