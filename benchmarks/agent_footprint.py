"""Footprint of the node agent: peak RSS, unique memory (USS) and CPU, against baselines.

In one run, on one fresh Mosquitto from the project's config, each subject runs for the same
time while psutil samples it once a second (after a warm-up):

- agent:   `aigloo agent CONFIG` at a 1 s telemetry interval (psutil source; the agent's
           telemetry messages are counted to prove it worked the whole time);
- glances: Glances with its MQTT export at a 1 s refresh, when Glances is installed
           (`pip install glances`), the tool people use for this today;
- floor:   a bare `python -c "import asyncio"` process sleeping: what any asyncio agent pays.

Run: .venv/bin/python benchmarks/agent_footprint.py [--seconds 60] [--write-docs]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import yaml
from common import DOCS_PATH, running_broker, sample_process, verdict

from aigloo_edge.mqtt import Inbound, Session, load_credentials
from aigloo_edge.runtime import cancel_and_wait

SECTION = "## Node agent footprint (benchmarks/agent_footprint.py)"
WARMUP_S = 3.0
GOAL_RSS_MB = 40.0
GOAL_CPU_PCT = 1.0


@dataclass
class Footprint:
    name: str
    peak_rss_mb: float
    mean_uss_mb: float
    cpu_pct: float
    note: str = ""


def measure(name: str, argv: list[str], seconds: float, note: str = "") -> Footprint:
    """Run `argv`, sample RSS/USS every second after the warm-up, and CPU over the window."""
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        samples = sample_process(process.pid, WARMUP_S, seconds)
    finally:
        process.terminate()
        process.wait()
    return Footprint(name, samples.peak_rss_mb, samples.mean_uss_mb, samples.cpu_pct, note)


def agent_config(directory: Path, port: int) -> Path:
    data = {
        "node": "mini",
        "role": "mini",
        "broker": {"port": port, "credentials_file": str(directory / "credentials.yaml")},
        "telemetry": {"interval_s": 1, "sources": ["psutil"]},
    }
    path = directory / "agent.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def glances_config(directory: Path, port: int) -> Path:
    password = load_credentials(directory / "credentials.yaml").password_for("admin")
    path = directory / "glances.conf"
    path.write_text(
        "[mqtt]\nhost=127.0.0.1\n"
        f"port={port}\ntls=false\nuser=admin\npassword={password}\n"
        "topic=glances\ntopic_structure=per-metric\n"
    )
    return path


async def count_telemetry(directory: Path, seconds: float) -> int:
    """Telemetry messages the agent publishes while it is being measured."""
    settings = load_credentials(directory / "credentials.yaml").settings_for("admin")
    session = Session(settings, component="counter")
    received: list[float] = []

    async def count(_: Inbound) -> None:
        received.append(time.monotonic())

    session.route(session.topics.node_telemetry("mini"), count)
    task = asyncio.create_task(session.run())
    await asyncio.sleep(seconds)
    await cancel_and_wait(task)
    return len(received)


def run(seconds: float) -> list[Footprint]:
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix="aigloo-footprint-") as tmp:
        directory = Path(tmp)
        with running_broker(directory) as creds:
            config = agent_config(directory, creds.ports["mqtt"])
            results = [_measure_agent(bin_dir, config, directory, seconds)]
            glances = shutil.which("glances", path=str(bin_dir)) or shutil.which("glances")
            if glances:
                conf = glances_config(directory, creds.ports["mqtt"])
                argv = [glances, "-C", str(conf), "--export", "mqtt", "--quiet", "-t", "1"]
                results.append(measure("glances --export mqtt", argv, seconds, "refresh 1 s"))
            floor = [
                sys.executable,
                "-c",
                f"import asyncio; asyncio.run(asyncio.sleep({seconds + 60}))",
            ]
            results.append(measure("floor: python + asyncio", floor, seconds, "idle"))
    return results


def _measure_agent(bin_dir: Path, config: Path, directory: Path, seconds: float) -> Footprint:
    argv = [str(bin_dir / "aigloo"), "--log-level", "WARNING", "agent", str(config)]
    counted: list[int] = []

    def count() -> None:
        counted.append(asyncio.run(count_telemetry(directory, seconds + WARMUP_S)))

    counter = threading.Thread(target=count)
    counter.start()
    result = measure("aigloo agent", argv, seconds)
    counter.join()
    result.note = f"interval 1 s; {counted[0]} telemetry messages received"
    return result


def table(results: list[Footprint]) -> str:
    lines = [
        "| process | peak RSS (MB) | mean USS (MB) | CPU (% of one core) | note |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    lines += [
        f"| {r.name} | {r.peak_rss_mb:.1f} | {r.mean_uss_mb:.1f} | {r.cpu_pct:.2f} | {r.note} |"
        for r in results
    ]
    return "\n".join(lines)


def goals_text(results: list[Footprint]) -> str:
    agent = results[0]
    lines = [
        f"- agent peak RSS {agent.peak_rss_mb:.1f} MB against the goal of {GOAL_RSS_MB:.0f} MB: "
        f"{verdict(agent.peak_rss_mb <= GOAL_RSS_MB)}",
        f"- agent CPU {agent.cpu_pct:.2f} % of one core against the goal of {GOAL_CPU_PCT:.0f} %: "
        f"{verdict(agent.cpu_pct <= GOAL_CPU_PCT)}",
    ]
    for other in results[1:]:
        lines.append(
            f"- agent / {other.name}: RSS {agent.peak_rss_mb / other.peak_rss_mb:.2f}, "
            f"USS {agent.mean_uss_mb / other.mean_uss_mb:.2f}"
            + (f", CPU {agent.cpu_pct / other.cpu_pct:.2f}" if other.cpu_pct > 0.05 else "")
        )
    return "\n".join(lines)


def write_docs(report: str) -> None:
    text = DOCS_PATH.read_text() if DOCS_PATH.exists() else "# Benchmarks\n"
    start = text.find(SECTION)
    if start >= 0:
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + text[end + 1 :] if end >= 0 else text[:start]
    DOCS_PATH.write_text(text.rstrip("\n") + "\n\n" + report + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    results = run(args.seconds)
    report = "\n".join(
        [
            SECTION,
            "",
            f"Command: `.venv/bin/python benchmarks/agent_footprint.py --seconds {args.seconds:g}"
            f"{' --write-docs' if args.write_docs else ''}`  ",
            f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  ",
            f"Machine: {psutil.cpu_count()} cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}  ",
            f"Each process measured for {args.seconds:g} s after a {WARMUP_S:g} s warm-up, "
            "one after another, on one Mosquitto. USS is the memory only that process holds "
            "(RSS counts shared libraries too).",
            "",
            table(results),
            "",
            goals_text(results),
        ]
    )
    print(report)
    if args.write_docs:
        write_docs(report)


if __name__ == "__main__":
    main()
