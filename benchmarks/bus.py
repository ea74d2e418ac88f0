"""MQTT bus benchmark: our `Session` against raw paho-mqtt, on one private Mosquitto.

One run starts a fresh broker (`init_broker` credentials and ACL, the project's mosquitto.conf via
`prepare()`, free loopback ports), connects every client as `admin`, and measures:

Round trip (request -> echo -> reply), N sequential requests after a warm-up; p50/p99/mean in us.
Both pairs stay connected and take turns in blocks of N/10, so drift hits both alike.
  * session: two `Session`s in this event loop. The echo is a `route` handler that awaits
    `publish` of the payload to the reply topic; the client awaits `publish` (at QoS 1 that
    means until the PUBACK) and then a future its reply route resolves.
  * paho: two paho clients (MQTT v5, VERSION2 callbacks, `loop_start` network threads). The echo
    republishes from `on_message`; the client publishes and waits on a `threading.Event`.

One-way throughput: a publisher sends M messages of PAYLOAD_BYTES to one topic, a receiver
counts them; msg/s from the first publish to the last receipt, median of R repeats. Every
publisher holds back while WINDOW messages are sent but not yet received, so the broker never
has to drop any (its per-client queue is 1000); any that are lost anyway are reported.
  * session (gather): `Session.publish` calls issued concurrently, `asyncio.gather` per batch.
  * session (sequential): each `Session.publish` awaited before the next.
  * paho: `publish` in a plain loop (it only queues), then wait until the receiver has M.

Both at QoS 1 (the Session default) and QoS 0. Publisher, receiver and echo all live in this one
Python process, as in a component; Mosquitto is the only other process.

The broker runs the project's mosquitto.conf as is (`set_tcp_nodelay true`). The raw paho
sockets get TCP_NODELAY, as the Session sets it on its own: with Nagle's algorithm every QoS 1
exchange waits for a delayed ACK (40-90 ms), which would swamp what is compared here. A QoS 1
p50 near 44 or 88 ms therefore means a side has lost TCP_NODELAY; the report says so.

    .venv/bin/python benchmarks/bus.py [--quick] [--write-docs]

`--write-docs` replaces the "## MQTT bus (benchmarks/bus.py)" section of docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import paho.mqtt.client as paho
from common import (
    CONNECT_TIMEOUT_S,
    DocsSection,
    Samples,
    mark,
    paho_client,
    paho_subscribe,
    parse_args,
    running_broker,
    start_run,
    within,
)

from aigloo_edge.mqtt.message import Inbound
from aigloo_edge.mqtt.session import Session
from aigloo_edge.mqtt.settings import Credentials
from aigloo_edge.runtime import cancel_and_wait

BENCH_USER: Final = "admin"  # may read and write every topic
PAYLOAD_BYTES: Final = 100
GATHER_BATCH: Final = 100
WINDOW: Final = 500  # most messages a throughput publisher may have sent but not seen arrive
REPLY_TIMEOUT_S: Final = 5.0
ROUND_TRIP_BLOCKS: Final = 10
IDLE_TIMEOUT_S: Final = 3.0  # a receiver that sees nothing for this long has all it will get
MEASUREMENT_TIMEOUT_S: Final = 900.0
NAGLE_SIGNATURE_US: Final = 20_000.0  # a delayed ACK is 40 ms; nothing else here is that slow
GOAL_P50_RATIO: Final = 1.2
GOAL_THROUGHPUT_RATIO: Final = 0.8

log = logging.getLogger("benchmarks.bus")


@dataclass(frozen=True)
class Config:
    round_trips: int
    warmup: int
    messages: int
    repeats: int


FULL: Final = Config(round_trips=2000, warmup=200, messages=20000, repeats=3)
QUICK: Final = Config(round_trips=200, warmup=20, messages=2000, repeats=1)


def bench_topic(run_id: str, *levels: str) -> str:
    """A bench-only topic (never part of the topic contract): aigloo/bench/<run>/<levels>."""
    return "/".join(("aigloo", "bench", run_id, *levels))


def payload(seq: int, size: int = PAYLOAD_BYTES) -> bytes:
    """`size` bytes that start with the sequence number, so a reply can be checked."""
    return f"{seq:010d}".encode().ljust(size, b".")


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoundTrip(Samples):
    client: str = ""
    qos: int = 1


@dataclass(frozen=True)
class Run:
    """One throughput run: how many arrived, and the time from first publish to last receipt."""

    received: int
    expected: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.received / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Throughput:
    publisher: str
    qos: int
    runs: list[Run] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return statistics.median(run.rate for run in self.runs)

    @property
    def lost(self) -> int:
        return sum(run.expected - run.received for run in self.runs)


# --- Session side ----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def connected(*sessions: Session) -> AsyncIterator[None]:
    """Run each session in a background task until the block ends; wait until all connect."""
    tasks = [asyncio.create_task(session.run()) for session in sessions]
    try:
        for session in sessions:
            await session.wait_connected(CONNECT_TIMEOUT_S)
        yield
    finally:
        for task in tasks:
            await cancel_and_wait(task)  # cancels again if Python 3.11's wait_for loses one
            if not task.cancelled() and task.exception() is not None:
                log.warning("session ended with %r", task.exception())


class ReplySlot:
    """The one outstanding reply of a sequential requester."""

    def __init__(self) -> None:
        self.future: asyncio.Future[bytes] | None = None

    def expect(self) -> asyncio.Future[bytes]:
        self.future = asyncio.get_running_loop().create_future()
        return self.future

    async def deliver(self, message: Inbound) -> None:
        if self.future is not None and not self.future.done():
            self.future.set_result(message.payload)


@contextlib.asynccontextmanager
async def session_round_trips(
    creds: Credentials, run_id: str, qos: int
) -> AsyncIterator[Callable[[range], Awaitable[list[float]]]]:
    """Connected echo and client Sessions; yields a runner of sequential requests."""
    settings = creds.settings_for(BENCH_USER)
    request = bench_topic(run_id, f"rt-session-q{qos}", "request")
    reply = bench_topic(run_id, f"rt-session-q{qos}", "reply")
    echo = Session(settings, component="bench-echo")
    client = Session(settings, component="bench-client")

    async def on_request(message: Inbound) -> None:
        await echo.publish(reply, message.payload, qos=qos)

    slot = ReplySlot()
    echo.route(request, on_request, qos=qos)
    client.route(reply, slot.deliver, qos=qos)

    async def run(seqs: range) -> list[float]:
        return [await _session_request(client, slot, request, i, qos) for i in seqs]

    async with connected(echo, client):
        yield run


async def _session_request(
    client: Session, slot: ReplySlot, topic: str, seq: int, qos: int
) -> float:
    data = payload(seq)
    future = slot.expect()
    started = time.perf_counter_ns()
    async with asyncio.timeout(REPLY_TIMEOUT_S):
        await client.publish(topic, data, qos=qos)
        answer = await future
    elapsed_us = (time.perf_counter_ns() - started) / 1000
    if answer != data:
        raise RuntimeError(f"session round trip {seq}: wrong reply {answer[:16]!r}")
    return elapsed_us


class Counter:
    """Counts received messages, notes when the last arrived, and paces the publisher."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.last_ns = 0
        self.resume_at = 0
        self.resume = asyncio.Event()
        self.done = asyncio.Event()

    async def hit(self, _message: Inbound) -> None:
        self.count += 1
        self.last_ns = time.perf_counter_ns()
        if self.count >= self.resume_at:
            self.resume.set()
        if self.count >= self.expected:
            self.done.set()

    async def keep_up(self, sent: int) -> None:
        """Hold the publisher while WINDOW messages are unreceived, until half have arrived."""
        if sent - self.count < WINDOW:
            return
        self.resume_at = sent - WINDOW // 2
        self.resume.clear()
        with contextlib.suppress(TimeoutError):  # lost messages: go on, they are reported
            async with asyncio.timeout(IDLE_TIMEOUT_S):
                await self.resume.wait()

    async def wait(self) -> None:
        """Until all arrived, or nothing more arrived for IDLE_TIMEOUT_S (the rest is lost)."""
        seen = -1
        while self.count != seen and not self.done.is_set():
            seen = self.count
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(IDLE_TIMEOUT_S):
                    await self.done.wait()


async def session_throughput(
    creds: Credentials, topic: str, qos: int, messages: int, *, gather: bool
) -> Run:
    settings = creds.settings_for(BENCH_USER)
    publisher = Session(settings, component="bench-pub")
    receiver = Session(settings, component="bench-sub")
    counter = Counter(messages)
    receiver.route(topic, counter.hit, qos=qos)
    data = payload(0)
    async with connected(publisher, receiver):
        started = time.perf_counter_ns()
        if gather:
            await _publish_batches(publisher, counter, topic, data, qos)
        else:
            for sent in range(messages):
                await counter.keep_up(sent)
                await publisher.publish(topic, data, qos=qos)
        await counter.wait()
    return Run(counter.count, messages, (counter.last_ns - started) / 1e9)


async def _publish_batches(
    session: Session, counter: Counter, topic: str, data: bytes, qos: int
) -> None:
    for start in range(0, counter.expected, GATHER_BATCH):
        await counter.keep_up(start)
        size = min(GATHER_BATCH, counter.expected - start)
        await asyncio.gather(*(session.publish(topic, data, qos=qos) for _ in range(size)))


# --- raw paho side ---------------------------------------------------------------------------


class PahoReply:
    """The one outstanding reply of the sequential paho requester (set on its network thread)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.payload: bytes | bytearray = b""

    def on_message(self, _c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        self.payload = message.payload
        self.event.set()


@contextlib.contextmanager
def paho_round_trips(
    creds: Credentials, run_id: str, qos: int
) -> Iterator[Callable[[range], list[float]]]:
    """Connected paho echo and client; yields a runner of sequential requests."""
    request = bench_topic(run_id, f"rt-paho-q{qos}", "request")
    reply = bench_topic(run_id, f"rt-paho-q{qos}", "reply")

    def echo_message(echo: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        echo.publish(reply, message.payload, qos)

    answer = PahoReply()
    with (
        paho_client(creds, BENCH_USER, "bench-echo") as echo,
        paho_client(creds, BENCH_USER, "bench-client") as client,
    ):
        echo.on_message = echo_message
        client.on_message = answer.on_message
        paho_subscribe(echo, request, qos)
        paho_subscribe(client, reply, qos)
        yield lambda seqs: [_paho_request(client, answer, request, i, qos) for i in seqs]


def _paho_request(client: paho.Client, answer: PahoReply, topic: str, seq: int, qos: int) -> float:
    data = payload(seq)
    answer.event.clear()
    started = time.perf_counter_ns()
    client.publish(topic, data, qos)
    if not answer.event.wait(REPLY_TIMEOUT_S):
        raise RuntimeError(f"paho round trip {seq}: no reply in {REPLY_TIMEOUT_S}s")
    elapsed_us = (time.perf_counter_ns() - started) / 1000
    if answer.payload != data:
        raise RuntimeError(f"paho round trip {seq}: wrong reply {answer.payload[:16]!r}")
    return elapsed_us


class PahoCounter:
    """Counts messages on the receiver's network thread; paces the publishing thread."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.last_ns = 0
        self.resume_at = 0
        self.resume = threading.Event()
        self.done = threading.Event()

    def on_message(self, _c: paho.Client, _u: object, _m: paho.MQTTMessage) -> None:
        self.count += 1
        self.last_ns = time.perf_counter_ns()
        if self.count >= self.resume_at:
            self.resume.set()
        if self.count >= self.expected:
            self.done.set()

    def keep_up(self, sent: int) -> None:
        """As `Counter.keep_up`; set the mark before clearing, so no wake-up is missed."""
        if sent - self.count < WINDOW:
            return
        self.resume_at = sent - WINDOW // 2
        self.resume.clear()
        if self.count < self.resume_at:
            self.resume.wait(IDLE_TIMEOUT_S)

    def wait(self) -> None:
        seen = -1
        while self.count != seen and not self.done.is_set():
            seen = self.count
            self.done.wait(IDLE_TIMEOUT_S)


def paho_throughput(creds: Credentials, topic: str, qos: int, cfg: Config) -> Run:
    counter = PahoCounter(cfg.messages)
    data = payload(0)
    with (
        paho_client(creds, BENCH_USER, "bench-sub") as receiver,
        paho_client(creds, BENCH_USER, "bench-pub") as sender,
    ):
        receiver.on_message = counter.on_message
        paho_subscribe(receiver, topic, qos)
        started = time.perf_counter_ns()
        for sent in range(cfg.messages):
            counter.keep_up(sent)
            sender.publish(topic, data, qos)
        counter.wait()
    return Run(counter.count, cfg.messages, (counter.last_ns - started) / 1e9)


def blocks(cfg: Config) -> list[range]:
    """The measured sequence numbers (after the warm-up) cut into ROUND_TRIP_BLOCKS blocks."""
    step = math.ceil(cfg.round_trips / ROUND_TRIP_BLOCKS)
    end = cfg.warmup + cfg.round_trips
    return [range(start, min(start + step, end)) for start in range(cfg.warmup, end, step)]


async def round_trips(creds: Credentials, run_id: str, qos: int, cfg: Config) -> list[RoundTrip]:
    """Session and paho pairs both connected; their blocks alternate, so drift hits both."""
    session_us: list[float] = []
    paho_us: list[float] = []
    async with session_round_trips(creds, run_id, qos) as session_run:
        with paho_round_trips(creds, run_id, qos) as paho_run:
            await session_run(range(cfg.warmup))
            await asyncio.to_thread(paho_run, range(cfg.warmup))
            for block in blocks(cfg):
                session_us += await session_run(block)
                paho_us += await asyncio.to_thread(paho_run, block)
    return [
        RoundTrip(session_us, client="session", qos=qos),
        RoundTrip(paho_us, client="paho", qos=qos),
    ]


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Results:
    cfg: Config
    round_trips: list[RoundTrip] = field(default_factory=list)
    throughputs: dict[tuple[str, int], Throughput] = field(default_factory=dict)

    def round_trip(self, client: str, qos: int) -> RoundTrip:
        return next(r for r in self.round_trips if (r.client, r.qos) == (client, qos))

    def add_run(self, publisher: str, qos: int, run: Run) -> None:
        self.throughputs.setdefault((publisher, qos), Throughput(publisher, qos)).runs.append(run)


SESSION_GATHER: Final = f"session (gather, batches of {GATHER_BATCH})"
SESSION_SEQUENTIAL: Final = "session (sequential await)"
PAHO_LOOP: Final = "paho (publish loop)"
QOS_LEVELS: Final = (1, 0)


async def measure(creds: Credentials, cfg: Config) -> Results:
    results = Results(cfg)
    run_id = uuid.uuid4().hex[:8]
    for qos in QOS_LEVELS:
        log.info("round trips, QoS %d", qos)
        results.round_trips += await within(
            f"round trips at QoS {qos}", round_trips(creds, run_id, qos, cfg), MEASUREMENT_TIMEOUT_S
        )
    for qos in QOS_LEVELS:
        for repeat in range(cfg.repeats):  # interleaved, so drift hits every variant alike
            log.info("throughput, QoS %d, repeat %d of %d", qos, repeat + 1, cfg.repeats)
            await _throughput_round(results, creds, bench_topic(run_id, f"tp{repeat}"), qos)
    return results


async def _throughput_round(results: Results, creds: Credentials, base: str, qos: int) -> None:
    cfg = results.cfg
    m = cfg.messages
    variants: list[tuple[str, Callable[[str], Awaitable[Run]]]] = [
        (SESSION_GATHER, lambda t: session_throughput(creds, t, qos, m, gather=True)),
        (SESSION_SEQUENTIAL, lambda t: session_throughput(creds, t, qos, m, gather=False)),
        (PAHO_LOOP, lambda t: asyncio.to_thread(paho_throughput, creds, t, qos, cfg)),
    ]
    for index, (name, measure_one) in enumerate(variants):
        run = await within(name, measure_one(f"{base}/q{qos}/v{index}"), MEASUREMENT_TIMEOUT_S)
        results.add_run(name, qos, run)


# --- report ----------------------------------------------------------------------------------


def round_trip_table(results: Results) -> list[str]:
    cfg = results.cfg
    lines = [
        f"Round trip, request -> echo -> reply, {cfg.round_trips} sequential (after "
        f"{cfg.warmup} warm-up; session and paho alternate in {ROUND_TRIP_BLOCKS} blocks), "
        f"{PAYLOAD_BYTES} B payload:",
        "",
        "| QoS | client | p50 (us) | p99 (us) | mean (us) |",
        "|----:|--------|---------:|---------:|----------:|",
    ]
    lines += [
        f"| {r.qos} | {r.client} | {r.p50:,.0f} | {r.p99:,.0f} | {r.mean:,.0f} |"
        for r in results.round_trips
    ]
    return lines


def throughput_table(results: Results) -> list[str]:
    cfg = results.cfg
    lines = [
        f"One-way throughput, {cfg.messages} messages of {PAYLOAD_BYTES} B, first publish to "
        f"last receipt, publisher at most {WINDOW} ahead, median of {cfg.repeats}:",
        "",
        "| QoS | publisher | msg/s | lost |",
        "|----:|-----------|------:|-----:|",
    ]
    lines += [
        f"| {t.qos} | {t.publisher} | {t.rate:,.0f} | {t.lost} |"
        for t in results.throughputs.values()
    ]
    return lines


@dataclass(frozen=True)
class Ratio:
    qos: int
    metric: str
    value: float
    goal: str
    met: bool | None


def ratios(results: Results) -> list[Ratio]:
    out: list[Ratio] = []
    for qos in QOS_LEVELS:
        session, raw = results.round_trip("session", qos), results.round_trip("paho", qos)
        p50 = session.p50 / raw.p50
        goal = f"<= {GOAL_P50_RATIO}"
        out.append(Ratio(qos, "round trip p50", p50, goal, p50 <= GOAL_P50_RATIO))
        out.append(Ratio(qos, "round trip p99", session.p99 / raw.p99, "-", None))
        paho_rate = results.throughputs[(PAHO_LOOP, qos)].rate
        for name in (SESSION_GATHER, SESSION_SEQUENTIAL):
            value = results.throughputs[(name, qos)].rate / paho_rate
            if name == SESSION_GATHER:
                goal, met = f">= {GOAL_THROUGHPUT_RATIO}", value >= GOAL_THROUGHPUT_RATIO
            else:
                goal, met = "-", None
            out.append(Ratio(qos, f"throughput, {name}", value, goal, met))
    return out


def ratio_table(results: Results) -> list[str]:
    lines = [
        "Ratios, session / paho:",
        "",
        "| QoS | ratio | value | goal | met |",
        "|----:|-------|------:|-----:|:---:|",
    ]
    lines += [
        f"| {r.qos} | {r.metric} | {r.value:.2f} | {r.goal} | {mark(r.met)} |"
        for r in ratios(results)
    ]
    return lines


def report(results: Results) -> str:
    parts = [round_trip_table(results), throughput_table(results), ratio_table(results)]
    stalled = [r for r in results.round_trips if r.p50 >= NAGLE_SIGNATURE_US]
    if stalled:
        who = ", ".join(f"{r.client} at QoS {r.qos}" for r in stalled)
        parts.append(
            [
                f"**Round trips of {who} stall for tens of ms**: the delayed-ACK signature of a "
                "socket without TCP_NODELAY (broker `set_tcp_nodelay true`, client socket option)."
            ]
        )
    lost = sum(t.lost for t in results.throughputs.values())
    if lost:
        parts.append([f"**{lost} messages lost** in throughput runs: those rates are not valid."])
    return "\n\n".join("\n".join(part) for part in parts)


SECTION_INTRO: Final = (
    "Our `Session` (aiomqtt underneath) against raw paho-mqtt (its own network threads), both "
    "on one fresh Mosquitto started from the project's config, MQTT v5, TCP_NODELAY on every "
    "socket, all clients in one Python process. Round trip: the client publishes, an echo peer "
    "republishes to a reply topic, the client awaits the reply. Throughput: one publisher, one "
    "receiver counting. The script's docstring says exactly how each side publishes and waits. "
    f"Goals: round-trip p50 ratio <= {GOAL_P50_RATIO}, throughput ratio >= "
    f"{GOAL_THROUGHPUT_RATIO}. On the 2-core VM below, repeated runs of the same code move the "
    "round-trip ratios by about +-0.3 and the throughput ratios by about +-0.1: compare several "
    "runs before concluding from one."
)
DOCS: Final = DocsSection(
    script="benchmarks/bus.py",
    title="MQTT bus",
    intro=SECTION_INTRO,
    packages=("aiomqtt", "paho-mqtt"),
)


def main() -> None:
    args = parse_args("MQTT bus benchmark: Session against paho.", "small N and M, one repeat")
    start_run(log)
    cfg = QUICK if args.quick else FULL
    with (
        tempfile.TemporaryDirectory(prefix="aigloo-bench-") as tmp,
        running_broker(Path(tmp)) as creds,
    ):
        results = asyncio.run(measure(creds, cfg))
    text = report(results)
    DOCS.show(text, write_docs=args.write_docs)


if __name__ == "__main__":
    main()
