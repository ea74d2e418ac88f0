"""What the bus shows the soak: `Watch`, one `admin` session's routes (availability,
rejections, health, the simulated nodes' telemetry, inference finals, Mosquitto's `$SYS`
counters), and `until`, which polls its state while the rig's processes stay alive.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from aigloo_edge.errors import PayloadError
from aigloo_edge.mqtt import Inbound, Session
from aigloo_edge.payloads import (
    BridgeHealth,
    BridgeRejected,
    InferFinal,
    NodeInfo,
    parse_infer_reply,
)
from aigloo_edge.topics import Topics
from tests.support.soak.rig import START_TIMEOUT_S, Child

SERVICES: Final = ("sensors", "rules", "dispatcher", "homeassistant", "plain")
RIG_NODES: Final = ("mini", "studio", "mbp", "air")
GATEWAY: Final = "gateway"
BROKER_COUNTS: Final = ("$SYS/broker/messages/+", "$SYS/broker/publish/messages/+")
# Mosquitto's counters worth a rate. Not `publish/messages/received`: Mosquitto counts an
# incoming PUBLISH there only if `command & 0xF5 == 0x30`, so never a retained one (most of
# this traffic).
BROKER_RATES: Final = {
    "messages/received": "packets in",
    "messages/sent": "packets out",
    "publish/messages/sent": "PUBLISH out",
    "publish/messages/dropped": "PUBLISH dropped",
}
DROPPED: Final = "publish/messages/dropped"  # a count over the window, not a rate


@dataclass
class Watch:
    """What one `admin` session in this process sees: availability, rejections, health, the
    simulated nodes' telemetry by seq, and the finals of the soak's inference requests."""

    topics: Topics
    sims: frozenset[str]
    availability: dict[str, bytes] = field(default_factory=dict)
    window_open: bool = False
    dropped: list[str] = field(default_factory=list)  # not `online` during the window
    rejections: list[str] = field(default_factory=list)
    reconnects: dict[str, int] = field(default_factory=dict)
    telemetry: defaultdict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    finals: Counter[str] = field(default_factory=Counter)
    studio_models: list[str] = field(default_factory=list)
    broker_counts: defaultdict[str, list[tuple[float, int]]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def attach(self, session: Session) -> None:
        t = self.topics
        session.route(t.filter("bridge_availability"), self._on_availability)
        session.route(t.filter("node_availability"), self._on_availability)
        session.route(t.filter("bridge_rejected"), self._on_rejected)
        session.route(t.filter("bridge_health"), self._on_health)
        session.route(t.filter("node_telemetry"), self._on_telemetry)
        session.route(t.filter("infer_reply", client=GATEWAY), self._on_reply)
        session.route(t.node_info("studio"), self._on_studio_info)
        for counters in BROKER_COUNTS:
            session.route(counters, self._on_broker_count)

    def watched(self) -> list[str]:
        t = self.topics
        nodes = [*RIG_NODES, *sorted(self.sims)]
        return [t.bridge_availability(s) for s in SERVICES] + [
            t.node_availability(n) for n in nodes
        ]

    def not_online(self) -> list[str]:
        return [a for a in self.watched() if self.availability.get(a) != b"online"]

    async def _on_availability(self, message: Inbound) -> None:
        self.availability[message.topic] = message.payload
        if self.window_open and message.payload != b"online":
            self.dropped.append(f"{message.topic}: {message.payload!r}")

    async def _on_rejected(self, message: Inbound) -> None:
        try:
            report = BridgeRejected.from_json(message.payload)
        except PayloadError:
            self.rejections.append(f"{message.topic}: {message.payload[:200]!r}")
            return
        self.rejections.append(
            f"{report.component} ({report.total}): {report.topic}: {report.reason}"
        )

    async def _on_health(self, message: Inbound) -> None:
        if message.payload:
            health = BridgeHealth.from_json(message.payload)
            self.reconnects[health.component] = health.reconnects

    async def _on_telemetry(self, message: Inbound) -> None:
        node = message.topic.rsplit("/", 2)[-2]
        if node in self.sims and message.payload:
            self.telemetry[node][int(json.loads(message.payload)["seq"])] += 1

    async def _on_reply(self, message: Inbound) -> None:
        reply = parse_infer_reply(message.payload)
        if isinstance(reply, InferFinal):
            self.finals[reply.id] += 1

    async def _on_broker_count(self, message: Inbound) -> None:
        """Mosquitto's own counters (every `sys_interval`, 10 s, and only when they change)."""
        kind = message.topic.removeprefix("$SYS/broker/")
        if kind in BROKER_RATES:
            self.broker_counts[kind].append((time.monotonic(), int(message.payload)))

    def broker_figures(self, began: float, ended: float) -> dict[str, float]:
        """Packets per second through Mosquitto between `began` and `ended` (monotonic), and
        the PUBLISHes it dropped meanwhile (queue or in-flight limits: a loss at QoS 1)."""
        figures = {}
        for kind, name in BROKER_RATES.items():
            counts = self.broker_counts.get(kind, [])
            inside = [c for c in counts if began <= c[0] <= ended]
            if kind == DROPPED:
                first, last = _count_at(counts, began), _count_at(counts, ended)
                if first is not None and last is not None:
                    figures[name] = float(last - first)
            elif len(inside) > 1:
                (t0, n0), (t1, n1) = inside[0], inside[-1]
                figures[name] = (n1 - n0) / (t1 - t0)
        return figures

    async def _on_studio_info(self, message: Inbound) -> None:
        if message.payload:
            self.studio_models = NodeInfo.from_json(message.payload).models


def _count_at(counts: Sequence[tuple[float, int]], moment: float) -> int | None:
    """A counter's value at `moment`: the last one published before it."""
    before = [value for at, value in counts if at <= moment]
    return before[-1] if before else None


async def until(
    condition: Callable[[], bool], what: Callable[[], object], children: Sequence[Child]
) -> None:
    """Poll `condition` (state the watch's routes own) up to START_TIMEOUT_S; a child that
    exits meanwhile fails at once, with its log."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not condition():
        for child in children:
            child.check()
        if time.monotonic() > deadline:
            raise AssertionError(f"not in {START_TIMEOUT_S:g} s: {what()}")
        await asyncio.sleep(0.1)
