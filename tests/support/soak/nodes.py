"""The soak's helper processes: the simulated nodes, and the raw paho echo the rules latency is
compared with. Each runs in a process of its own so its CPU does not land on the measuring one.

    python -m tests.support.soak.nodes nodes CREDENTIALS --count 20 --interval 1
    python -m tests.support.soak.nodes echo CREDENTIALS --ping TOPIC --pong TOPIC

Both print one JSON line `{"ready": true}` once they work, run until their stdin closes (so an
aborted test leaves no orphan), then print one JSON line with their counts and exit.

`nodes`: `sim01`..`simNN`, each its own `Session` (as `admin`: the ACL has no per-node user for
them) with its availability as will and birth, its retained `NodeInfo`, and a retained
`NodeTelemetry` every interval at QoS 1 with the agent's message expiry and an extra key `seq`
(1, 2, ...; wire models ignore extra keys) so a subscriber can count what it lost.
`echo`: a paho client (MQTT v5, its own network thread, TCP_NODELAY) that republishes every
message on `--ping` to `--pong` at QoS 1, retained (as the rules engine's policy is), like the
rules benchmark's baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import socket
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from aigloo_edge import __version__
from aigloo_edge.errors import NotConnectedError
from aigloo_edge.mqtt import MqttSettings, Session, load_credentials
from aigloo_edge.payloads import NodeInfo, NodeTelemetry
from aigloo_edge.runtime import cancel_and_wait
from aigloo_edge.topics import Topics

CONNECT_TIMEOUT_S: Final = 20.0
EXPIRY_INTERVALS: Final = 3.0  # what the node agent gives its retained telemetry
MEMORY_BYTES: Final = 16 * 2**30


def say(**fields: Any) -> None:
    """One JSON line on stdout: the only channel the harness reads."""
    print(json.dumps(fields), flush=True)


async def stdin_closed() -> None:
    """Return when the harness closes our stdin (or dies)."""
    await asyncio.to_thread(sys.stdin.read)


# --- simulated nodes ---------------------------------------------------------------------


@dataclass
class Counts:
    sent: int = 0  # publishes started: the last seq used
    acked: int = 0  # PUBACK received
    failed: int = 0  # the publish raised (not connected, no PUBACK in time)
    reconnects: int = 0


def node_info(node: str) -> NodeInfo:
    return NodeInfo(
        node=node,
        role="other",
        hostname=node,
        hardware="soak simulation",
        os="Linux",
        os_version="sim",
        version=__version__,
        cpu_cores=8,
        memory_bytes=MEMORY_BYTES,
        components=["agent"],
    )


def telemetry(node: str, seq: int, rng: random.Random) -> bytes:
    """A plausible, changing reading (so plain values and the rules have work), plus `seq`."""
    memory_pct = rng.uniform(20, 80)
    used = int(MEMORY_BYTES * memory_pct / 100)
    reading = NodeTelemetry(
        node=node,
        cpu_pct=round(rng.uniform(0, 100), 1),
        load_avg=(rng.uniform(0, 8), rng.uniform(0, 8), rng.uniform(0, 8)),
        memory_used_bytes=used,
        memory_available_bytes=MEMORY_BYTES - used,
        memory_pct=round(memory_pct, 1),
        uptime_s=float(seq),
    )
    return json.dumps({**reading.model_dump(mode="json", exclude_none=True), "seq": seq}).encode()


class SimNode:
    """One simulated node: its own connection, info, availability and numbered telemetry."""

    def __init__(self, settings: MqttSettings, name: str, interval_s: float) -> None:
        self.name = name
        self.interval_s = interval_s
        self.topics = Topics(settings.base_topic)
        self.session = Session(
            settings, component=name, availability_topic=self.topics.node_availability(name)
        )
        self.counts = Counts()
        self.rng = random.Random(name)

    async def announce(self) -> None:
        await self.session.wait_connected(CONNECT_TIMEOUT_S)
        await self.session.set_state(self.topics.node_info(self.name), node_info(self.name))

    async def publish_until(self, stop: asyncio.Event, start: float) -> None:
        """Telemetry on a fixed schedule from `start` (no drift) until `stop` is set."""
        topic = self.topics.node_telemetry(self.name)
        expiry = EXPIRY_INTERVALS * self.interval_s
        while True:
            delay = start + self.counts.sent * self.interval_s - time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(delay, 0.0))
            if stop.is_set():
                return
            self.counts.sent += 1
            payload = telemetry(self.name, self.counts.sent, self.rng)
            try:
                await self.session.publish(topic, payload, retain=True, expiry_s=expiry)
            except NotConnectedError:
                self.counts.failed += 1
            else:
                self.counts.acked += 1


async def run_nodes(settings: MqttSettings, count: int, interval_s: float) -> None:
    nodes = [SimNode(settings, f"sim{i:02d}", interval_s) for i in range(1, count + 1)]
    sessions = [asyncio.create_task(node.session.run()) for node in nodes]
    try:
        await asyncio.gather(*(node.announce() for node in nodes))
        say(ready=True)
        stop = asyncio.Event()
        now = time.monotonic()
        publishing = [  # spread over the interval, as independent machines would be
            asyncio.create_task(node.publish_until(stop, now + interval_s * i / count))
            for i, node in enumerate(nodes)
        ]
        await stdin_closed()
        stop.set()
        await asyncio.gather(*publishing)
        for node in nodes:
            node.counts.reconnects = node.session.stats.reconnects
        say(nodes={node.name: asdict(node.counts) for node in nodes})
    finally:
        for task in sessions:
            await cancel_and_wait(task)


# --- echo --------------------------------------------------------------------------------


def paho_client(settings: MqttSettings, name: str) -> paho.Client:
    """A connected paho client (MQTT v5, own network thread, TCP_NODELAY)."""
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"{name}-{uuid.uuid4().hex[:10]}",
        protocol=paho.MQTTv5,
    )
    client.username_pw_set(settings.username, settings.resolved_password())
    ready = threading.Event()

    def on_connect(
        _c: paho.Client, _u: object, _f: paho.ConnectFlags, rc: ReasonCode, _p: Properties | None
    ) -> None:
        if not rc.is_failure:
            ready.set()

    client.on_connect = on_connect
    client.connect(settings.host, settings.port)
    sock = client.socket()
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.loop_start()
    if not ready.wait(CONNECT_TIMEOUT_S):
        raise RuntimeError(f"paho client {name} did not connect")
    return client


def subscribe(client: paho.Client, topic: str) -> None:
    """Subscribe at QoS 1 and wait for the SUBACK."""
    acked = threading.Event()

    def on_subscribe(
        _c: paho.Client, _u: object, _m: int, _rc: list[ReasonCode], _p: Properties | None
    ) -> None:
        acked.set()

    client.on_subscribe = on_subscribe
    client.subscribe(topic, 1)
    if not acked.wait(CONNECT_TIMEOUT_S):
        raise RuntimeError(f"no SUBACK for {topic}")


async def run_echo(settings: MqttSettings, ping: str, pong: str) -> None:
    echoed = 0

    def on_message(client: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        nonlocal echoed
        client.publish(pong, message.payload, qos=1, retain=True)
        echoed += 1

    client = paho_client(settings, "soak-echo")
    client.on_message = on_message
    try:
        subscribe(client, ping)
        say(ready=True)
        await stdin_closed()
        say(echoed=echoed)
    finally:
        client.disconnect()
        client.loop_stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["nodes", "echo"])
    parser.add_argument("credentials", type=Path)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--ping", default="")
    parser.add_argument("--pong", default="")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    settings = load_credentials(args.credentials).settings_for("admin")
    if args.mode == "nodes":
        asyncio.run(run_nodes(settings, args.count, args.interval))
    else:
        asyncio.run(run_echo(settings, args.ping, args.pong))


if __name__ == "__main__":
    main()
