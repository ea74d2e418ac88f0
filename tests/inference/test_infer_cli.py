"""`aigloo infer` as a user runs it, against a real cluster (broker, dispatcher, worker)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import yaml

from tests.support.broker import RunningBroker
from tests.support.inference import LOAD_S, MODEL, dispatcher_running, worker_running


def client_config(broker: RunningBroker, directory: Path) -> Path:
    """A machine config whose broker section points at the test broker (what --config reads)."""
    path = directory / "air.yaml"
    document = {
        "node": "air",
        "role": "air",
        "broker": {
            "port": broker.ports["mqtt"],
            "credentials_file": str(broker.directory / "credentials.yaml"),
            "base_topic": broker.creds.base_topic,
        },
    }
    path.write_text(yaml.safe_dump(document))
    return path


async def run_infer(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aigloo_edge",
        "infer",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(LOAD_S):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_infer_streams_the_answer_and_its_figures(
    broker: RunningBroker, demo_model_dir: Path, tmp_path: Path
) -> None:
    """The answer goes to stdout; model, node and speed go to stderr; exit 0. With no --model,
    the model the cluster serves is used."""
    config = client_config(broker, tmp_path)
    async with worker_running(broker, demo_model_dir), dispatcher_running(broker):
        code, out, err = await run_infer(
            "What is the capital of France?", "--config", str(config), "--max-tokens", "24"
        )
    assert code == 0, err
    assert "Paris" in out
    assert f"{MODEL} on studio" in err
    assert "tok/s" in err


async def test_infer_reports_the_clusters_error(
    broker: RunningBroker, demo_model_dir: Path, tmp_path: Path
) -> None:
    """An error answer is printed with its code and reason, and the exit code is 2."""
    config = client_config(broker, tmp_path)
    async with worker_running(broker, demo_model_dir), dispatcher_running(broker):
        code, _, err = await run_infer("hi", "--config", str(config), "--model", "gpt-9")
    assert code == 2
    assert "error: unknown_model" in err
    assert "gpt-9" in err
