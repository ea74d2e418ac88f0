"""The Home Assistant bridge: keeps HA's device discovery in step with the rig.

It watches the retained state (nodes' info and availability, probes, rules, station, fans, the
services' availability), builds the discovery messages with the pure `build_discovery`, and
publishes only what changed, retained. A node, probe or rule whose retained state is cleared is
removed from HA (an empty retained discovery payload; a rule leaves its device in HA's two
steps). The station, the fans and the services stay once seen: a lost station has its readings
cleared by the sensor bridge, and HA should show it unavailable, not forget it. On HA's birth
(`online` on its status topic) every discovery message is sent again after a random delay, so
many publishers do not flood a starting HA; the state topics are retained, so HA then reads the
current state from the broker.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from typing import Final

from aigloo_edge.hass.devices import (
    DeviceDiscovery,
    RigInventory,
    build_discovery,
    published_components,
    removal,
    retire_components,
)
from aigloo_edge.hass.settings import HassConfig
from aigloo_edge.mqtt import Inbound, Session
from aigloo_edge.payloads import Climate, NodeInfo, RuleState, parse_availability
from aigloo_edge.topics import Topics

log = logging.getLogger(__name__)

DEBOUNCE_S: Final = 0.5  # a retained burst (start, a node's return) becomes one update
OWN_PREFIX: Final = "aigloo_"
SERVICES: Final = {"sensors", "rules", "dispatcher"}
STAY: Final = {"station", "fans", "rules", "dispatcher"}  # never withdrawn once published


@dataclass
class Seen:
    """What the bridge has seen of the rig on the broker."""

    nodes: dict[str, NodeInfo | None] = field(default_factory=dict)
    available_nodes: set[str] = field(default_factory=set)  # with a retained availability
    probes: set[str] = field(default_factory=set)
    rules: set[str] = field(default_factory=set)
    services: set[str] = field(default_factory=set)
    station: bool = False
    fans: bool = False

    def inventory(self, config: HassConfig) -> RigInventory:
        targets = None if config.wake_targets is None else frozenset(config.wake_targets)
        return RigInventory(
            nodes=dict(sorted(self.nodes.items())),
            probes=sorted(self.probes),
            rules=sorted(self.rules),
            station=self.station,
            fans=self.fans,
            rules_engine="rules" in self.services or bool(self.rules),
            dispatcher="dispatcher" in self.services,
            waker_node=config.waker_node,
            wake_targets=targets,
            hub_node=config.hub_node,
            readings_expire_s=config.readings_expire_s,
        )


class HassBridge:
    """Publishes and withdraws HA device discovery for what the rig has."""

    def __init__(self, session: Session, config: HassConfig) -> None:
        self.session = session
        self.config = config
        self.topics = Topics(session.topics.base, config.discovery_prefix)
        self.seen = Seen()
        self.retained: dict[str, bytes] = {}  # device id → its discovery retained now
        self.changed = asyncio.Event()
        self._started = False
        self._route()

    def _route(self) -> None:
        t, route = self.topics, self.session.route
        route(t.filter("node_info"), self._on_node_info)
        route(t.filter("node_availability"), self._on_node_availability)
        route(t.filter("env_climate"), self._on_climate)
        route(t.filter("rule_state"), self._on_rule_state)
        route(t.battery(), self._on_station)
        route(t.fans_profile(), self._on_fans)
        route(t.filter("bridge_availability"), self._on_service)
        route(f"{self.topics.discovery_prefix}/device/+/config", self._on_discovery)
        route(self.config.birth_topic, self._on_ha_status)

    async def run(self) -> None:
        await self.session.wait_connected()
        await self.session.sync_subscriptions()
        await asyncio.sleep(self.config.settle_s)  # the retained state arrives first
        self._started = True
        await self.sync()
        while True:
            await self.changed.wait()
            await asyncio.sleep(DEBOUNCE_S)
            self.changed.clear()
            await self.sync()

    # --- what the rig has ----------------------------------------------------------------

    def _mark(self) -> None:
        self.changed.set()

    async def _on_node_info(self, message: Inbound) -> None:
        node = self._id(message, "node")
        if not message.payload:
            self._drop_node(node, info_cleared=True)
            return
        self.seen.nodes[node] = NodeInfo.from_json(message.payload)
        self._mark()

    async def _on_node_availability(self, message: Inbound) -> None:
        node = self._id(message, "node")
        if parse_availability(message.payload) is None:
            self.seen.available_nodes.discard(node)
            self._drop_node(node, info_cleared=False)
            return
        self.seen.available_nodes.add(node)
        if node not in self.seen.nodes:
            self.seen.nodes[node] = None
            self._mark()

    def _drop_node(self, node: str, *, info_cleared: bool) -> None:
        """A node leaves HA once its info and its availability are both cleared."""
        if info_cleared and node in self.seen.nodes:
            self.seen.nodes[node] = None
        gone = node not in self.seen.available_nodes and self.seen.nodes.get(node) is None
        if gone and node in self.seen.nodes:
            del self.seen.nodes[node]
            self._mark()

    async def _on_climate(self, message: Inbound) -> None:
        if message.payload:  # a reading that does not parse makes no device
            Climate.from_json(message.payload)
        self._present(self.seen.probes, self._id(message, "probe"), bool(message.payload))

    async def _on_rule_state(self, message: Inbound) -> None:
        if message.payload:
            RuleState.from_json(message.payload)
        self._present(self.seen.rules, self._id(message, "rule"), bool(message.payload))

    def _present(self, ids: set[str], name: str, present: bool) -> None:
        if present != (name in ids):
            (ids.add if present else ids.discard)(name)
            self._mark()

    async def _on_station(self, message: Inbound) -> None:
        if message.payload and not self.seen.station:
            self.seen.station = True
            self._mark()

    async def _on_fans(self, message: Inbound) -> None:
        if message.payload and not self.seen.fans:
            self.seen.fans = True
            self._mark()

    async def _on_service(self, message: Inbound) -> None:
        component = self._id(message, "component")
        present = parse_availability(message.payload) is not None
        if component in SERVICES and present and component not in self.seen.services:
            self.seen.services.add(component)
            self._mark()

    async def _on_discovery(self, message: Inbound) -> None:
        object_id = message.topic.split("/")[-2]
        if not object_id.startswith(OWN_PREFIX):
            return  # another integration's device
        device_id = object_id.removeprefix(OWN_PREFIX)
        if message.payload:
            self.retained[device_id] = message.payload
        else:
            self.retained.pop(device_id, None)

    async def _on_ha_status(self, message: Inbound) -> None:
        if message.payload.strip() != b"online" or not self._started:
            return
        delay = random.uniform(0, self.config.birth_delay_s)  # noqa: S311 - not for security
        log.info("Home Assistant is online: discovery again in %.1f s", delay)
        await asyncio.sleep(delay)
        await self.sync(force=True)

    def _id(self, message: Inbound, name: str) -> str:
        match = self.topics.match(message.topic)
        if match is None or name not in match.params:
            raise ValueError(f"not a contract topic with a {name}: {message.topic}")
        return match.params[name]

    # --- publishing ----------------------------------------------------------------------

    async def sync(self, *, force: bool = False) -> None:
        """Publish what changed (everything with `force`), and withdraw what left."""
        current = build_discovery(
            self.seen.inventory(self.config), self.topics, support_url=self.config.support_url
        )
        for discovery in current:
            previous = self.retained.get(discovery.device_id)
            if force or previous != discovery.payload:
                await self._publish_device(discovery, previous)
        for gone in self._gone(current):
            log.info("removing %s from Home Assistant", gone.device_id)
            await self._publish(gone)

    async def _publish_device(self, discovery: DeviceDiscovery, previous: bytes | None) -> None:
        if previous:
            interim = retire_components(published_components(previous), discovery)
            if interim is not None:  # HA's two steps for a component that left the device
                await self._publish(interim)
        await self._publish(discovery)

    def _gone(self, current: list[DeviceDiscovery]) -> list[DeviceDiscovery]:
        """Devices retained in HA that the rig no longer has: nodes and probes whose state was
        cleared, now or while the bridge was down (the station, the fans and the services stay
        once seen)."""
        kept = {d.device_id for d in current}
        return [
            removal(self.topics, device_id)
            for device_id in sorted(set(self.retained) - kept)
            if device_id not in STAY
        ]

    async def _publish(self, discovery: DeviceDiscovery) -> None:
        await self.session.publish(discovery.topic, discovery.payload, retain=True)
        if discovery.payload:
            self.retained[discovery.device_id] = discovery.payload
        else:
            self.retained.pop(discovery.device_id, None)
