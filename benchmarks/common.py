"""What the benchmark scripts share: a private Mosquitto and the processes around it, the start
of a run, deadlines, and each script's section of docs/benchmarks.md.

The scripts run as `.venv/bin/python benchmarks/<script>.py` from the repository root, which
puts this folder first on sys.path: they import this module as `common`. The folder is no
package, so mypy (given `benchmarks` in its `files`) resolves `common` the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib.metadata
import logging
import math
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Final, TypeVar

import paho.mqtt.client as paho
import psutil
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from aigloo_edge.broker.run import mosquitto_binary, prepare
from aigloo_edge.broker.setup import init_broker
from aigloo_edge.mqtt.settings import Credentials

HOST: Final = "127.0.0.1"
CONNECT_TIMEOUT_S: Final = 10.0
STOP_TIMEOUT_S: Final = 8.0  # a child that outlives its stop signal this long is killed
LOG_TAIL_LINES: Final = 30
DOCS_PATH: Final = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
DOCS_INTRO: Final = "# Benchmarks — every figure with the command that produced it\n"

log = logging.getLogger("benchmarks.common")
T = TypeVar("T")


# --- processes -------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on HOST that nothing listens on at the moment."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """Distinct free ports, all held until chosen (the kernel may hand a closed one out again)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET)) for _ in range(count)]
        for sock in socks:
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def broker_ports() -> dict[str, int]:
    """A distinct free port for each of the broker's listeners."""
    return dict(zip(("mqtt", "websockets", "tls"), free_ports(3), strict=True))


@dataclass
class Child:
    """A process a benchmark started, with its combined output in a log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def check(self) -> None:
        """Raise, with the end of its log, if the process has exited."""
        if self.process.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with code {self.process.returncode}:\n{self.tail()}"
            )

    def tail(self) -> str:
        """The last LOG_TAIL_LINES lines of its log."""
        with contextlib.suppress(OSError):
            lines = self.log_path.read_text(errors="replace").splitlines()
            return "\n".join(lines[-LOG_TAIL_LINES:])
        return "(no log)"


@contextlib.contextmanager
def running(
    name: str,
    argv: list[str],
    directory: Path,
    *,
    stop_with: signal.Signals = signal.SIGTERM,
    env: Mapping[str, str] | None = None,
) -> Iterator[Child]:
    """Start `argv` in `directory`, its output in `<name>.log` there, in its own session (a
    Ctrl-C here does not reach it; we stop it), with `env` (None: ours); on exit `stop` it."""
    log_path = directory / f"{name}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            argv,
            cwd=directory,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield Child(name, process, log_path)
    finally:
        stop(process, stop_with)


def stop(process: subprocess.Popen[bytes], stop_with: signal.Signals = signal.SIGTERM) -> None:
    """Send `stop_with` unless the process has exited; kill it if it lingers."""
    if process.poll() is not None:
        return
    process.send_signal(stop_with)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        log.warning("pid %d ignored %s; killing it", process.pid, stop_with.name)
        process.kill()
        process.wait()


def wait_for_port(port: int, child: Child, timeout: float) -> None:
    """Until `port` on HOST accepts connections; fail early if `child` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child.check()
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{child.name} did not accept connections on {HOST}:{port} in {timeout}s")


@contextlib.contextmanager
def running_broker(directory: Path, timeout: float = CONNECT_TIMEOUT_S) -> Iterator[Credentials]:
    """A fresh broker in `directory` (`init_broker` credentials and ACL, the project's
    mosquitto.conf via `prepare()`, free loopback ports) and its Mosquitto, accepting
    connections; stopped on exit."""
    creds = init_broker(directory, host=HOST, ports=broker_ports())
    with running("mosquitto", prepare(directory), directory) as child:
        wait_for_port(creds.ports["mqtt"], child, timeout)
        yield creds


def mosquitto_version() -> str:
    """The version the broker binary reports, e.g. `2.0.18`."""
    result = subprocess.run([mosquitto_binary(), "-h"], capture_output=True, text=True, check=False)
    first = (result.stdout or result.stderr).splitlines()[:1]
    return first[0].removeprefix("mosquitto version ").strip() if first else "unknown"


# --- a run -----------------------------------------------------------------------------------


def parse_args(description: str, quick_help: str) -> argparse.Namespace:
    """The options every benchmark takes: `--quick` (what it shrinks: `quick_help`) and
    `--write-docs`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    return parser.parse_args()


def exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    """Exit by raising, so every `with` unwinds: processes stopped, directories removed."""
    raise SystemExit(128 + signum)


def start_run(log: logging.Logger) -> None:
    """SIGTERM unwinds; messages only, `log` at INFO, the rest at WARNING, aiomqtt's "There are
    N pending calls" hidden."""
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    logging.getLogger("mqtt").setLevel(logging.ERROR)


async def within(what: str, work: Awaitable[T], timeout: float, failure: str = "not done") -> T:
    """Await `work`; after `timeout` seconds raise `<what>: <failure> in <timeout>s`."""
    try:
        async with asyncio.timeout(timeout):
            return await work
    except TimeoutError:
        raise RuntimeError(f"{what}: {failure} in {timeout}s") from None


# --- docs ------------------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, where there is one."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


def machine(packages: tuple[str, ...]) -> str:
    """Cores, CPU, OS, Python, Mosquitto and the installed version of each of `packages`."""
    versions = "".join(f", {name} {importlib.metadata.version(name)}" for name in packages)
    return (
        f"{os.cpu_count()} cores ({cpu_model()}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, mosquitto {mosquitto_version()}{versions}"
    )


def command_line(script: str) -> str:
    """How this run was started from the repository root, with any PYTHONPATH."""
    pythonpath = os.environ.get("PYTHONPATH")
    prefix = f"PYTHONPATH={pythonpath} " if pythonpath else ""
    return prefix + " ".join([".venv/bin/python", script, *sys.argv[1:]])


def with_section(text: str, heading: str, section: str) -> str:
    """`text` with the section under `heading` (up to the next `## ` heading) replaced by
    `section`, or with `section` appended."""
    start = text.find(heading)
    if start < 0:
        return text.rstrip("\n") + "\n\n" + section
    end = text.find("\n## ", start + len(heading))
    rest = text[end + 1 :] if end >= 0 else ""
    return text[:start] + section + ("\n" + rest if rest else "")


@dataclass(frozen=True)
class DocsSection:
    """A benchmark's section of docs/benchmarks.md: `## <title> (<script>)`, the intro, then
    the command, date and machine (naming `packages` with their versions), then the report."""

    script: str  # as run from the repository root: "benchmarks/bus.py"
    title: str
    intro: str
    packages: tuple[str, ...]

    @property
    def heading(self) -> str:
        return f"## {self.title} ({self.script})"

    def show(self, report: str, *, write_docs: bool) -> None:
        """Print the report; with `--write-docs`, also put it in docs/benchmarks.md."""
        print(report)
        if write_docs:
            self.write(report)
            print(f"\nwrote to {DOCS_PATH}")

    def render(self, report: str) -> str:
        today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        return "\n".join(
            [
                self.heading,
                "",
                self.intro,
                "",
                f"Command: `{command_line(self.script)}` (from the repository root)  ",
                f"Date: {today}  ",
                f"Machine: {machine(self.packages)}",
                "",
                report,
                "",
            ]
        )

    def write(self, report: str, path: Path = DOCS_PATH) -> None:
        """Replace this section of the docs file (or append it) with `report` and its context."""
        text = path.read_text() if path.exists() else DOCS_INTRO
        text = with_section(text, self.heading, self.render(report))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True)
class Samples:
    """Latency samples in microseconds, with the figures every table shows."""

    samples_us: list[float]

    @property
    def p50(self) -> float:
        return percentile(sorted(self.samples_us), 0.50)

    @property
    def p99(self) -> float:
        return percentile(sorted(self.samples_us), 0.99)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples_us)


# --- raw paho-mqtt clients, the baseline every bus figure is measured against ----------------

NODELAY_OPTION: Final = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@contextlib.contextmanager
def paho_client(creds: Credentials, role: str, name: str) -> Iterator[paho.Client]:
    """A connected paho client (MQTT v5, own network thread, TCP_NODELAY) as `role`;
    disconnected on exit."""
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"{name}-{uuid.uuid4().hex[:10]}",
        protocol=paho.MQTTv5,
    )
    client.username_pw_set(role, creds.password_for(role))
    ready = threading.Event()

    def on_connect(
        _c: paho.Client, _u: object, _f: paho.ConnectFlags, rc: ReasonCode, _p: Properties | None
    ) -> None:
        if not rc.is_failure:
            ready.set()

    client.on_connect = on_connect
    client.connect(HOST, creds.ports["mqtt"])
    sock = client.socket()
    if isinstance(sock, socket.socket):
        sock.setsockopt(*NODELAY_OPTION)
    client.loop_start()
    try:
        if not ready.wait(CONNECT_TIMEOUT_S):
            raise RuntimeError(f"paho client {name} did not connect")
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


def paho_subscribe(client: paho.Client, topic: str, qos: int) -> None:
    """Subscribe and wait for the SUBACK."""
    acked = threading.Event()

    def on_subscribe(
        _c: paho.Client, _u: object, _m: int, _rc: list[ReasonCode], _p: Properties | None
    ) -> None:
        acked.set()

    client.on_subscribe = on_subscribe
    client.subscribe(topic, qos)
    if not acked.wait(CONNECT_TIMEOUT_S):
        raise RuntimeError(f"no SUBACK for {topic}")


@dataclass(frozen=True)
class ProcessSamples:
    """A process's memory, sampled once a second, and its CPU time over the window."""

    peak_rss_mb: float
    mean_uss_mb: float
    cpu_pct: float  # of one core
    seconds: float  # the window's length


def sample_process(pid: int, warmup_s: float, seconds: float) -> ProcessSamples:
    """Wait `warmup_s`, then sample RSS and USS every second for `seconds`, with CPU over them."""
    watched = psutil.Process(pid)
    time.sleep(warmup_s)
    before = watched.cpu_times()
    started = time.monotonic()
    rss, uss = [], []
    while time.monotonic() - started < seconds:
        time.sleep(1.0)
        memory = watched.memory_full_info()
        rss.append(memory.rss)
        uss.append(memory.uss)
    after = watched.cpu_times()
    elapsed = time.monotonic() - started
    cpu_s = (after.user + after.system) - (before.user + before.system)
    return ProcessSamples(
        max(rss) / 2**20, sum(uss) / len(uss) / 2**20, 100 * cpu_s / elapsed, elapsed
    )


def verdict(ok: bool) -> str:
    """How a goal reads in docs/benchmarks.md: `met`, or a bold `not met`."""
    return "met" if ok else "**not met**"


def mark(ok: bool | None) -> str:
    """A goal table's last cell: `yes`, a bold `no`, or `-` for a figure without a goal."""
    return "-" if ok is None else "yes" if ok else "**no**"
