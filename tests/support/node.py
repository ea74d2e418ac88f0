"""Machine configs pointed at a test broker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aigloo_edge.app import run_machine
from aigloo_edge.config import AgentConfig
from aigloo_edge.runtime import cancel_and_wait
from tests.support.broker import RunningBroker
from tests.support.collect import Collector


def node_config(broker: RunningBroker, node: str = "studio", **sections: Any) -> AgentConfig:
    """A strict AgentConfig for `node` on `broker` (the same model `agents/*.yaml` load into)."""
    data: dict[str, Any] = {
        "node": node,
        "role": node,
        "broker": {
            "host": "127.0.0.1",
            "port": broker.ports["mqtt"],
            "credentials_file": str(broker.directory / "credentials.yaml"),
            "base_topic": broker.creds.base_topic,
        },
        "telemetry": {"interval_s": 0.5, "sources": ["psutil"]},
        **sections,
    }
    return AgentConfig.model_validate(data)


@contextlib.asynccontextmanager
async def machine_running(
    broker: RunningBroker, config: AgentConfig, online_as: str
) -> AsyncIterator[None]:
    """`aigloo run` of `config` until the block ends; waits until component `online_as` is up."""
    task = asyncio.create_task(run_machine(config))
    try:
        async with broker.session("admin", component=f"wait-{online_as}") as admin:
            seen = Collector(admin, broker.topics.bridge_availability(online_as))
            while (await seen.next(10)).payload != b"online":
                pass
        yield
    finally:
        await cancel_and_wait(task)
