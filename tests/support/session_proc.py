"""A Session in its own process, for tests that kill or signal it.

Usage: python -m tests.support.session_proc '<MqttSettings JSON>' COMPONENT
Prints `ready` once connected; runs until SIGINT/SIGTERM (exit 0) or SIGKILL.
"""

from __future__ import annotations

import asyncio
import sys

from aigloo_edge.mqtt import MqttSettings, Session
from aigloo_edge.runtime import run_until_stopped


async def _serve(settings: MqttSettings, component: str) -> None:
    session = Session(settings, component=component)
    session.route(session.topics.filter("node_power_set"), _ignore)
    task = asyncio.create_task(session.run())
    await session.wait_connected(10)
    print("ready", flush=True)
    await task


async def _ignore(_: object) -> None:
    return None


def main() -> None:
    settings = MqttSettings.model_validate_json(sys.argv[1])
    run_until_stopped(_serve(settings, sys.argv[2]))


if __name__ == "__main__":
    main()
