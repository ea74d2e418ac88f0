"""`aigloo run`: every component a machine's config enables, in one process and one TaskGroup."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from aigloo_edge.config import AgentConfig

log = logging.getLogger(__name__)


def run_config_file(path: Path, only: set[str] | None) -> None:
    """`aigloo run FILE` / `aigloo agent FILE`: load, then run until SIGINT/SIGTERM."""
    from aigloo_edge.config import load_config
    from aigloo_edge.runtime import run_until_stopped

    run_until_stopped(run_machine(load_config(path), only))


async def run_machine(config: AgentConfig, only: set[str] | None = None) -> None:
    """Run the enabled components (or the subset `only`) until cancelled."""
    enabled = [name for name in config.components if only is None or name in only]
    if not enabled:
        raise ValueError(f"none of {sorted(only or [])} is enabled in this config")
    async with asyncio.TaskGroup() as group:
        for coroutine in _component_runs(config, enabled):
            group.create_task(coroutine)
    log.info("stopped %s", ", ".join(enabled))


def _component_runs(config: AgentConfig, enabled: Sequence[str]) -> list[Coroutine[Any, Any, None]]:
    # Imported here so a machine loads only what its components need (mlx, bleak later).
    from aigloo_edge.node.agent import NodeAgent, node_session

    runs: list[Coroutine[Any, Any, None]] = []
    node_components = {"agent", "waker"} & set(enabled)
    if node_components:
        # The agent and the waker act as the machine itself: one session, its node user.
        session = node_session(config)
        if "agent" in enabled:
            runs.append(NodeAgent(config, session).run())
        if "waker" in enabled:
            from aigloo_edge.node.waker import Waker

            assert config.waker is not None  # the config model guarantees it
            Waker(session, config.waker)
        runs.append(session.run())
    log.info("starting %s for node %s", ", ".join(enabled), config.node)
    return runs
