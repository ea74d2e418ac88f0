"""What the soak's window measures, side by side: rules latency (`RoundTrips`: a reading to
the rules engine's command, and the same bytes through the raw paho echo), inference
requests through the dispatcher (`InferenceLog`), and each process's memory and CPU
(`Sample`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import paho.mqtt.client as paho
import psutil

from aigloo_edge.errors import PayloadError
from aigloo_edge.inference.client import InferClient
from aigloo_edge.mqtt import MqttSettings
from aigloo_edge.payloads import Climate, InferFinal, InferPolicy
from aigloo_edge.topics import Topics
from tests.support.inference import LOAD_S, ask
from tests.support.soak.nodes import paho_client, subscribe
from tests.support.soak.rig import SOAK_NODE, SOAK_PROBE, Child, SoakPlan

HOT_C, COOL_C = 35.0, 25.0
ROUND_TRIP_TIMEOUT_S: Final = 10.0


# --- rules latency: publish -> rules engine's command, and -> raw paho echo ----------------


@dataclass
class _Awaited:
    topic: str
    accept: Callable[[bytes], bool]
    done: threading.Event = field(default_factory=threading.Event)
    at: float = 0.0


class RoundTrips:
    """One paho client (`admin`, its own network thread, TCP_NODELAY) that publishes a trigger
    and times the first matching message after it: the same publisher and receiver for the
    rules engine and the echo, so only what is in between differs."""

    def __init__(self, settings: MqttSettings, replies: Sequence[str]) -> None:
        self._awaited: _Awaited | None = None
        self._lock = threading.Lock()
        self.client = paho_client(settings, "soak-probe")
        self.client.on_message = self._on_message
        for topic in replies:
            subscribe(self.client, topic)

    def _on_message(self, _c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        at = time.perf_counter()
        with self._lock:
            awaited = self._awaited
        if awaited and message.topic == awaited.topic and awaited.accept(bytes(message.payload)):
            awaited.at = at
            awaited.done.set()

    def time_one(
        self, topic: str, payload: bytes, reply: str, accept: Callable[[bytes], bool]
    ) -> float | None:
        """Seconds from publishing `payload` to the first accepted message on `reply`
        (None: none in ROUND_TRIP_TIMEOUT_S). Blocking: run it in a thread."""
        awaited = _Awaited(reply, accept)
        with self._lock:
            self._awaited = awaited
        sent = time.perf_counter()
        self.client.publish(topic, payload, qos=1, retain=True)
        arrived = awaited.done.wait(ROUND_TRIP_TIMEOUT_S)
        with self._lock:
            self._awaited = None
        return awaited.at - sent if arrived else None

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _policy_allows(allowed: bool) -> Callable[[bytes], bool]:
    """Accepts the rules engine's policy for the soak node when it says `allowed`."""

    def accept(payload: bytes) -> bool:
        try:
            return InferPolicy.from_json(payload).allowed is allowed
        except PayloadError:  # a cleared policy; never raise in paho's network thread
            return False

    return accept


@dataclass
class Latencies:
    """Seconds per round trip, by path ("rules", "echo"), and the trips with no answer."""

    seconds: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    missed: Counter[str] = field(default_factory=Counter)

    def record(self, path: str, took: float | None) -> None:
        if took is None:
            self.missed[path] += 1
        else:
            self.seconds[path].append(took)


def ping_topics(topics: Topics) -> tuple[str, str]:
    """The echo's topics: inside the base topic, outside the contract (no component reads them)."""
    return f"{topics.base}/soak/ping", f"{topics.base}/soak/pong"


async def probe_rules(
    trips: RoundTrips, topics: Topics, plan: SoakPlan, end: float, out: Latencies
) -> None:
    """Every probe interval: one reading that flips the soak rule, timed to its command, and
    the same bytes through the echo; which goes first alternates, so drift hits both alike."""
    ping, pong = ping_topics(topics)
    hot = True
    while time.monotonic() < end:
        began = time.monotonic()
        reading = Climate(probe=SOAK_PROBE, temperature_c=HOT_C if hot else COOL_C).to_json()
        trip = {
            "rules": (
                topics.env_climate(SOAK_PROBE),
                reading,
                topics.infer_policy(SOAK_NODE),
                _policy_allows(not hot),
            ),
            "echo": (ping, reading, pong, reading.__eq__),
        }
        for path in ("rules", "echo") if hot else ("echo", "rules"):
            out.record(path, await asyncio.to_thread(trips.time_one, *trip[path]))
        hot = not hot
        await _sleep_until(min(began + plan.probe_every_s, end))


async def _sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.monotonic()))


# --- inference -----------------------------------------------------------------------------


@dataclass
class InferenceLog:
    outcomes: dict[str, InferFinal | None] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)


async def ask_one(
    client: InferClient, request_id: str, max_tokens: int, deadline_s: float, log: InferenceLog
) -> None:
    """One request through the dispatcher; its final (or None if the stream ended without)."""
    request = ask(request_id, max_tokens=max_tokens, deadline=time.time() + deadline_s)
    log.outcomes[request_id] = None
    began = time.monotonic()
    async for reply in client.stream(request):
        if isinstance(reply, InferFinal):
            log.outcomes[request_id] = reply
    log.seconds.append(time.monotonic() - began)


async def ask_repeatedly(
    client: InferClient, plan: SoakPlan, end: float, log: InferenceLog
) -> None:
    """A request every `infer_every_s` (not waiting for the previous one) until `end`; then
    every request's stream to its end (bounded by its deadline: the client's own final)."""
    asking: list[asyncio.Task[None]] = []
    while time.monotonic() < end:
        began = time.monotonic()
        request_id = f"soak-{len(asking) + 1}"
        asked = ask_one(client, request_id, plan.infer_max_tokens, plan.infer_deadline_s, log)
        asking.append(asyncio.create_task(asked))
        await _sleep_until(min(began + plan.infer_every_s, end))
    await asyncio.gather(*asking)


async def warm_up(client: InferClient, plan: SoakPlan) -> InferFinal | None:
    """The first request loads the model: outside the window, with the load's deadline."""
    log = InferenceLog()
    await ask_one(client, "soak-warmup", plan.infer_max_tokens, LOAD_S, log)
    return log.outcomes["soak-warmup"]


# --- memory --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    at_s: float  # seconds into the window
    rss_mb: float  # MB = 2**20 bytes
    cpu_s: float  # CPU time (user + system) used so far


def sample(pid: int, at_s: float) -> Sample:
    """RSS and CPU time of a process and all its children."""
    process = psutil.Process(pid)
    members = [process, *process.children(recursive=True)]
    rss = sum(member.memory_info().rss for member in members) / 2**20
    cpu = sum(sum(member.cpu_times()[:2]) for member in members)
    return Sample(at_s, rss, cpu)


async def sample_processes(
    pids: Mapping[str, int],
    children: Sequence[Child],
    plan: SoakPlan,
    end: float,
    out: dict[str, list[Sample]],
) -> None:
    """A Sample of each process every `sample_every_s`, up to `end`; a child that exited fails
    the run with its log."""
    start = time.monotonic()
    while True:
        for child in children:
            child.check()
        now = time.monotonic()
        for name, pid in pids.items():
            out.setdefault(name, []).append(sample(pid, now - start))
        if now >= end:
            return
        await _sleep_until(min(now + plan.sample_every_s, end))
