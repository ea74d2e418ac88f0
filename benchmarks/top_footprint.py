"""Footprint of `aigloo top` while the rig is busy: memory, CPU and terminal output, against
baselines measured in the same run.

One fresh Mosquitto from the project's config; beside it `aigloo run` of a Mini config with the
live twin at speed 60 (station, probes, fans, Studio, MacBook Pro and Air, telemetry every
second) and the shipped rules, so the bus carries what a busy rig's does. Then, one after the
other, each subject for the same window after a warm-up:

- top:          the dashboard (`tui.cli.top`, what `aigloo top` runs) in an 80x24
                pseudo-terminal, as over SSH; everything it writes to the terminal is read and
                counted;
- bare Textual: a Textual app showing one Static, in the same kind of terminal: the floor any
                Textual dashboard pays;
- status loop:  `aigloo status` run again and again, at most every STATUS_EVERY_S (the
                `watch -n 2 aigloo status` way of keeping an eye on the rig): its CPU summed
                over the window, the largest peak RSS of its runs.

psutil samples RSS and USS once a second; CPU is the process's user+system time over the
window (for the status loop, every run's, from wait4). The bus's messages in each window are
counted by a client of the benchmark's own.

    .venv/bin/python benchmarks/top_footprint.py [--quick] [--write-docs]

`--quick` shortens each window from 60 s to 15 s. `--write-docs` replaces the "## Dashboard
footprint (benchmarks/top_footprint.py)" section of docs/benchmarks.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pty
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import paho.mqtt.client as paho
import yaml
from common import (
    DocsSection,
    paho_client,
    paho_subscribe,
    parse_args,
    running,
    running_broker,
    sample_process,
    start_run,
    stop,
    verdict,
)

from aigloo_edge.mqtt.settings import Credentials

log = logging.getLogger("benchmarks.top_footprint")

ROOT: Final = Path(__file__).resolve().parents[1]
SCENARIO: Final = ROOT / "scenarios" / "sunny-day.yaml"
RULES: Final = ROOT / "rules"
SPEED: Final = 60.0
COLUMNS, LINES = 80, 24
WARMUP_S: Final = 5.0
WINDOW_S: Final = 60.0
QUICK_WINDOW_S: Final = 15.0
STATUS_EVERY_S: Final = 2.0
RIG_READY_S: Final = 30.0
GOAL_CPU_PCT: Final = 5.0
GOAL_RSS_RATIO: Final = 1.5  # top's peak RSS against the bare Textual app's
TOP_CODE: Final = "import typer; from aigloo_edge.tui.cli import top; typer.run(top)"
BARE_CODE: Final = """
from textual.app import App, ComposeResult
from textual.widgets import Static

class Bare(App[None]):
    def compose(self) -> ComposeResult:
        yield Static("Aigloo")

Bare().run()
"""


@dataclass
class Footprint:
    name: str
    peak_rss_mb: float
    mean_uss_mb: float | None
    cpu_pct: float
    terminal_kb_s: float | None
    messages_s: float
    note: str = ""


# --- the rig and the bus ---------------------------------------------------------------------


def rig_config(directory: Path, creds: Credentials) -> Path:
    """A Mini running the twin and the shipped rules against the benchmark's broker."""
    data = {
        "node": "mini",
        "role": "mini",
        "broker": {
            "host": creds.host,
            "port": creds.ports["mqtt"],
            "credentials_file": str(directory / "credentials.yaml"),
            "base_topic": creds.base_topic,
        },
        "components": ["twin", "rules"],
        "telemetry": {"interval_s": 1},
        "rules": {"dir": str(RULES), "state_file": str(directory / "rules.sqlite3")},
        "twin": {"scenario": str(SCENARIO), "speed": SPEED},
    }
    path = directory / "mini.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


class BusCounter:
    """Counts every message under the base topic (from the benchmark's own client)."""

    def __init__(self) -> None:
        self.count = 0
        self.topics: set[str] = set()
        self._lock = threading.Lock()

    def on_message(self, _c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.count += 1
            self.topics.add(message.topic)

    def wait_for(self, topic: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while topic not in self.topics:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the rig published nothing on {topic} in {timeout:g} s")
            time.sleep(0.1)


@contextlib.contextmanager
def counting(creds: Credentials) -> Iterator[BusCounter]:
    counter = BusCounter()
    with paho_client(creds, "admin", "bench-count") as client:
        client.on_message = counter.on_message
        paho_subscribe(client, f"{creds.base_topic}/#", 0)
        yield counter


# --- subjects --------------------------------------------------------------------------------


@dataclass
class Terminal:
    """A child in an 80x24 pseudo-terminal; a thread reads (and counts) what it writes."""

    process: subprocess.Popen[bytes]
    written: int = 0


@contextlib.contextmanager
def in_terminal(argv: list[str], directory: Path) -> Iterator[Terminal]:
    controller, child_end = pty.openpty()
    fcntl.ioctl(child_end, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(COLUMNS), "LINES": str(LINES)}
    process = subprocess.Popen(
        argv,
        cwd=directory,
        env=env,
        stdin=child_end,
        stdout=child_end,
        stderr=child_end,
        start_new_session=True,
    )
    os.close(child_end)
    terminal = Terminal(process)
    reader = threading.Thread(target=_drain, args=(controller, terminal), daemon=True)
    reader.start()
    try:
        yield terminal
    finally:
        stop(process)
        os.close(controller)
        reader.join(timeout=2)


def _drain(controller: int, terminal: Terminal) -> None:
    """Read the terminal as an SSH client would, so the child never blocks on a full pty."""
    with contextlib.suppress(OSError):
        while chunk := os.read(controller, 65536):
            terminal.written += len(chunk)


def sample(name: str, terminal: Terminal, bus: BusCounter, seconds: float) -> Footprint:
    """RSS/USS every second and CPU over `seconds`, after the warm-up."""
    time.sleep(WARMUP_S)
    if terminal.process.poll() is not None:
        raise RuntimeError(f"{name} exited with {terminal.process.returncode} during warm-up")
    before_written, before_messages = terminal.written, bus.count
    samples = sample_process(terminal.process.pid, 0.0, seconds)
    return Footprint(
        name,
        peak_rss_mb=samples.peak_rss_mb,
        mean_uss_mb=samples.mean_uss_mb,
        cpu_pct=samples.cpu_pct,
        terminal_kb_s=(terminal.written - before_written) / samples.seconds / 1024,
        messages_s=(bus.count - before_messages) / samples.seconds,
    )


def measure_in_terminal(
    name: str, argv: list[str], directory: Path, bus: BusCounter, seconds: float
) -> Footprint:
    log.info("%s: %g s warm-up, %g s measured", name, WARMUP_S, seconds)
    with in_terminal(argv, directory) as terminal:
        return sample(name, terminal, bus, seconds)


def measure_status_loop(argv: list[str], bus: BusCounter, seconds: float) -> Footprint:
    """`aigloo status` again and again for `seconds`; each run's own rusage from wait4."""
    log.info("status loop: %g s", seconds)
    cpu_s, peak_kb, runs, took = 0.0, 0, 0, 0.0
    before_messages = bus.count
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        began = time.monotonic()
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise RuntimeError(f"aigloo status exited with {process.returncode}")
        cpu_s += usage.ru_utime + usage.ru_stime
        peak_kb = max(peak_kb, usage.ru_maxrss)  # kilobytes on Linux
        runs += 1
        took += time.monotonic() - began
        time.sleep(max(0.0, STATUS_EVERY_S - (time.monotonic() - began)))
    elapsed = time.monotonic() - started
    return Footprint(
        "aigloo status, in a loop",
        peak_rss_mb=peak_kb / 1024,
        mean_uss_mb=None,
        cpu_pct=100 * cpu_s / elapsed,
        terminal_kb_s=None,
        messages_s=(bus.count - before_messages) / elapsed,
        note=f"{runs} runs, {took / runs:.2f} s each on average",
    )


def run(seconds: float) -> list[Footprint]:
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix="aigloo-top-") as tmp:
        directory = Path(tmp)
        with running_broker(directory) as creds:
            config = rig_config(directory, creds)
            rig_argv = [str(bin_dir / "aigloo"), "--log-level", "WARNING", "run", str(config)]
            with running("rig", rig_argv, directory), counting(creds) as bus:
                bus.wait_for(f"{creds.base_topic}/power/battery", RIG_READY_S)
                top_argv = [sys.executable, "-c", TOP_CODE, "--config", str(config)]
                status_argv = [str(bin_dir / "aigloo"), "status", "--config", str(config)]
                return [
                    measure_in_terminal("aigloo top", top_argv, directory, bus, seconds),
                    measure_in_terminal(
                        "bare Textual app (one Static)",
                        [sys.executable, "-c", BARE_CODE],
                        directory,
                        bus,
                        seconds,
                    ),
                    measure_status_loop(status_argv, bus, seconds),
                ]


# --- report ----------------------------------------------------------------------------------


def _figure(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report(results: list[Footprint], seconds: float) -> str:
    lines = [
        f"Each subject measured for {seconds:g} s after a {WARMUP_S:g} s warm-up, the twin at "
        f"speed {SPEED:g} with the shipped rules publishing throughout.",
        "",
        "| subject | peak RSS (MB) | mean USS (MB) | CPU (% of one core) | terminal output "
        "(KB/s) | bus messages/s | note |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    lines += [
        f"| {r.name} | {r.peak_rss_mb:.1f} | {_figure(r.mean_uss_mb)} | {r.cpu_pct:.2f} "
        f"| {_figure(r.terminal_kb_s, 2)} | {r.messages_s:.0f} | {r.note} |"
        for r in results
    ]
    top, bare, status = results
    rss_ratio = top.peak_rss_mb / bare.peak_rss_mb
    status_rss = top.peak_rss_mb / status.peak_rss_mb
    lines += [
        "",
        f"- top / bare Textual app: RSS {rss_ratio:.2f}x against the goal of "
        f"<= {GOAL_RSS_RATIO:g}x: {verdict(rss_ratio <= GOAL_RSS_RATIO)}; "
        f"CPU {top.cpu_pct:.2f} % vs {bare.cpu_pct:.2f} %",
        f"- top CPU {top.cpu_pct:.2f} % of one core against the goal of <= {GOAL_CPU_PCT:g} %: "
        f"{verdict(top.cpu_pct <= GOAL_CPU_PCT)}",
        f"- top / `aigloo status` every {STATUS_EVERY_S:g} s: CPU "
        f"{top.cpu_pct / status.cpu_pct:.2f}x, peak RSS {status_rss:.2f}x "
        f"({top.peak_rss_mb - status.peak_rss_mb:+.1f} MB: the same models and MQTT client, "
        "plus Textual)",
    ]
    return "\n".join(lines)


SECTION_INTRO: Final = (
    "`aigloo top` (the Textual dashboard) in an 80x24 pseudo-terminal while the live twin at "
    "speed 60 and the shipped rules keep the bus busy, against a bare Textual app showing one "
    "Static in the same terminal and `aigloo status` run in a loop, all in the same run. The "
    "script's docstring says exactly what each side does. Goals: CPU <= 5 % of one core; peak "
    "RSS <= 1.5x the bare Textual app's."
)
DOCS: Final = DocsSection(
    script="benchmarks/top_footprint.py",
    title="Dashboard footprint",
    intro=SECTION_INTRO,
    packages=("textual", "rich", "aiomqtt"),
)


def main() -> None:
    args = parse_args(
        "Footprint of aigloo top against a bare Textual app and aigloo status in a loop.",
        f"{QUICK_WINDOW_S:g} s windows instead of {WINDOW_S:g} s",
    )
    start_run(log)
    seconds = QUICK_WINDOW_S if args.quick else WINDOW_S
    results = run(seconds)
    DOCS.show(report(results, seconds), write_docs=args.write_docs)


if __name__ == "__main__":
    main()
