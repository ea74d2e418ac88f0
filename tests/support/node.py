"""Machine configs pointed at a test broker."""

from __future__ import annotations

from typing import Any

from aigloo_edge.config import AgentConfig
from tests.support.broker import RunningBroker


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
