"""The soak's rig: its plan (`SoakPlan`), the files the Mini's and the Studio's `aigloo run`
read (configs, the sunny-day scenario, the shipped rules plus the soak rule), and the child
processes it starts (`Child`, `spawned`, the `nodes.py` helpers' command lines).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from aigloo_edge.rules.catalog import DEFAULT_NODES, DEFAULT_PROBES
from tests.support.broker import RunningBroker
from tests.support.inference import inference_section
from tests.support.node import node_config

ROOT: Final = Path(__file__).resolve().parents[3]
AIGLOO: Final = Path(sys.executable).parent / "aigloo"
SUNNY: Final = ROOT / "scenarios" / "sunny-day.yaml"
START_SOC_PCT: Final = 95
SOAK_PROBE: Final = "soak"
SOAK_NODE: Final = "soak"
SOAK_RULE: Final = "soak-probe-hot"
SOAK_RULES: Final = f"""\
# The soak's probe rule: a reading above 30 degC takes the (machine-less) node `soak` from the
# dispatcher; below, it is offered again. Each flip is one command the soak times.
defaults:
  inference.{SOAK_NODE}_allowed: on
rules:
  - id: {SOAK_RULE}
    when: env.{SOAK_PROBE}.temperature_c > 30
    set: {{inference.{SOAK_NODE}_allowed: off}}
    priority: 10
"""
# A flip every probe interval is hundreds of fires an hour: the default breaker (6 an hour)
# would disable the soak rule; a short window keeps the breaker's own state small too.
SAFETY: Final = {"breaker_max_fires": 1000, "breaker_window": 60}
TELEMETRY: Final = {"interval_s": 1.0, "sources": ["psutil"]}
START_TIMEOUT_S: Final = 60.0
REPORT_TIMEOUT_S: Final = 30.0
STOP_TIMEOUT_S: Final = 10.0
LOG_TAIL_LINES: Final = 30


@dataclass(frozen=True)
class SoakPlan:
    """How long and how hard."""

    duration_s: float
    nodes: int = 20
    telemetry_interval_s: float = 1.0
    sample_every_s: float = 5.0
    probe_every_s: float = 5.0
    infer_every_s: float = 10.0
    infer_max_tokens: int = 16
    infer_deadline_s: float = 30.0

    @property
    def sims(self) -> list[str]:
        return [f"sim{i:02d}" for i in range(1, self.nodes + 1)]


# --- the rig's files ---------------------------------------------------------------------


def _config_file(
    broker: RunningBroker, path: Path, node: str, components: list[str], **sections: Any
) -> Path:
    """A machine config as `aigloo run` reads it (validated by the real model first)."""
    config = node_config(broker, node, components=components, telemetry=TELEMETRY, **sections)
    path.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_defaults=True)))
    return path


def _scenario(workdir: Path) -> Path:
    """The sunny day, with a station full enough that no power rule fires during the soak."""
    data = yaml.safe_load(SUNNY.read_text())
    data["station"]["initial_soc_pct"]["value"] = START_SOC_PCT
    path = workdir / "soak-day.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _rules_dir(workdir: Path) -> Path:
    """The shipped rules, plus the soak's probe rule."""
    directory = workdir / "rules"
    directory.mkdir()
    for shipped in sorted((ROOT / "rules").glob("*.yaml")):
        shutil.copy(shipped, directory)
    (directory / "soak.yaml").write_text(SOAK_RULES)
    return directory


def write_rig(
    broker: RunningBroker, model_dir: Path, workdir: Path, plan: SoakPlan
) -> tuple[Path, Path]:
    """The Mini's and the Studio's config files."""
    rules = {
        "dir": str(_rules_dir(workdir)),
        "state_file": str(workdir / "state" / "rules.sqlite3"),
        "nodes": [*DEFAULT_NODES, SOAK_NODE, *plan.sims],  # the sims' telemetry is rules' load
        "probes": [*DEFAULT_PROBES, SOAK_PROBE],
        "safety": SAFETY,
    }
    mini = _config_file(
        broker,
        workdir / "mini.yaml",
        "mini",
        ["agent", "twin", "rules", "dispatcher", "hass", "plain"],
        twin={"scenario": str(_scenario(workdir)), "speed": 1, "nodes": ["mbp", "air"]},
        rules=rules,
        dispatcher={"accept_timeout_s": 10.0},
        hass={},
        plain={},
    )
    studio = _config_file(
        broker,
        workdir / "studio.yaml",
        "studio",
        ["agent", "inference"],
        inference=inference_section(model_dir),
    )
    return mini, studio


# --- processes ---------------------------------------------------------------------------


@dataclass
class Child:
    """A process the soak started, its output (stderr at least) in a log file."""

    name: str
    process: asyncio.subprocess.Process
    log_path: Path

    def tail(self) -> str:
        with contextlib.suppress(OSError):
            lines = self.log_path.read_text(errors="replace").splitlines()
            return "\n".join(lines[-LOG_TAIL_LINES:])
        return "(no log)"

    def check(self) -> None:
        """Raise, with the end of its log, if it has exited."""
        if self.process.returncode is not None:
            raise RuntimeError(f"{self.name} exited {self.process.returncode}:\n{self.tail()}")

    async def report(self, timeout: float = START_TIMEOUT_S) -> dict[str, Any]:
        """The next JSON line a `nodes.py` helper process prints."""
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            raw = await self.process.stdout.readline()
        if not raw:
            await self.process.wait()
            self.check()
        result: dict[str, Any] = json.loads(raw)
        return result

    async def finish(self) -> dict[str, Any]:
        """Close its stdin (a `nodes.py` helper's stop signal) and read its final report."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        return await self.report(REPORT_TIMEOUT_S)


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()


@contextlib.asynccontextmanager
async def spawned(
    name: str, argv: Sequence[str], workdir: Path, *, piped: bool = False
) -> AsyncIterator[Child]:
    """Run `argv` from the repository root until the block ends (SIGTERM, then SIGKILL)."""
    log_path = workdir / f"{name}.log"
    pipe, devnull = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=ROOT,
            stdin=pipe if piped else devnull,
            stdout=pipe if piped else log,
            stderr=log,
        )
    try:
        yield Child(name, process, log_path)
    finally:
        await _stop(process)


def helper_argv(mode: str, broker: RunningBroker, *args: str) -> list[str]:
    credentials = str(broker.directory / "credentials.yaml")
    return [sys.executable, "-m", "tests.support.soak.nodes", mode, credentials, *args]
