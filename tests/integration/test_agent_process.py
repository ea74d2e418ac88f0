"""`aigloo run agents/X.yaml` as a process: online, last will on SIGKILL, clear config errors."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import yaml

from tests.support.broker import RunningBroker
from tests.support.collect import Collector
from tests.support.node import node_config

AIGLOO = str(Path(sys.executable).parent / "aigloo")
KEEPALIVE_S = 5  # the smallest a machine config accepts


def _write_config(broker: RunningBroker, path: Path) -> Path:
    config = node_config(broker)
    data = config.model_dump(mode="json", exclude_defaults=True)
    data["broker"]["keepalive"] = KEEPALIVE_S
    path.write_text(yaml.safe_dump(data))
    return path


async def test_killed_agent_goes_offline_within_one_and_a_half_keepalives(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """SIGKILL leaves no goodbye; the broker publishes the agent's last will `offline`."""
    config = _write_config(broker, tmp_path / "studio.yaml")
    topic = broker.topics.node_availability("studio")
    async with broker.session("admin", component="watcher") as admin:
        seen = Collector(admin, topic)
        process = await asyncio.create_subprocess_exec(AIGLOO, "run", str(config))
        try:
            assert await seen.value_on(topic, timeout=20) == b"online"
            process.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            assert await seen.value_on(topic, timeout=15) == b"offline"
            elapsed = time.monotonic() - killed_at
        finally:
            if process.returncode is None:
                process.kill()
            await process.wait()
    assert elapsed <= 1.5 * KEEPALIVE_S + 1.0, elapsed


async def test_run_with_a_broken_config_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("node: studio\nrole: studio\nbroker: {credentials_file: c.yaml, prot: 1}\n")
    process = await asyncio.create_subprocess_exec(
        AIGLOO, "run", str(path), stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await process.communicate()
    assert process.returncode == 2
    assert f"{path}:3: broker.prot: unknown setting" in stderr.decode()
