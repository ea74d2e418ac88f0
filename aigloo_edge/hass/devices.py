"""The Home Assistant devices of an Aigloo rig, built from a small typed inventory (pure).

`build_discovery` turns a `RigInventory` into one retained device-discovery message per device:
each node, the power station, the fans, each thermometer probe, the rules engine and the
dispatcher. Device ids are stable (`studio`, `station`, `fans`, `probe_<probe>`, `rules`,
`dispatcher`, ...) so the bridge can remove a device that left (`removals`) or a component that
left a device (`retire_components`) without guessing.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from aigloo_edge import __version__
from aigloo_edge.hass.entities import (
    NodeTraits,
    Presence,
    fan_entities,
    merge,
    node_entities,
    probe_entities,
    rule_entities,
    service_entities,
    station_entities,
)
from aigloo_edge.hass.models import (
    PLATFORMS,
    Component,
    Device,
    DeviceConfig,
    Entity,
    Origin,
    Platform,
    RemovedComponent,
)
from aigloo_edge.payloads import NodeInfo
from aigloo_edge.topics import Topics

ORIGIN_NAME: Final = "aigloo-edge"
MANUFACTURER: Final = "Aigloo"
SENSORS: Final = "sensors"  # the bridge component behind the station, the probes and the fans
RULES: Final = "rules"
DISPATCHER: Final = "dispatcher"
STATION: Final = "station"
FANS: Final = "fans"
LAPTOP_ROLES: Final = frozenset({"mbp", "air"})
ROLE_MODELS: Final = {
    "studio": "Mac Studio",
    "mbp": "MacBook Pro",
    "mini": "Mac mini",
    "air": "MacBook Air",
}


@dataclass(frozen=True, slots=True)
class RigInventory:
    """What the rig has now, as the bridge has seen it on the broker.

    `nodes` maps each node id to its retained `NodeInfo` (None until it arrives). The waker runs
    inside `waker_node`'s agent; it can wake `wake_targets` (None: every node but its own).
    `hub_node` runs the sensor bridge, the rules engine and the dispatcher: their `via_device`.
    `readings_expire_s`: station, probe and fan readings show as unknown in HA after this long
    without a message (a few of the bridge's heartbeats; None: they never expire), since a
    source that goes quiet has its retained state cleared, which HA does not see as unknown.
    """

    nodes: Mapping[str, NodeInfo | None] = field(default_factory=dict)
    probes: Collection[str] = ()
    rules: Collection[str] = ()
    station: bool = False
    fans: bool = False
    rules_engine: bool = False
    dispatcher: bool = False
    waker_node: str | None = "mini"
    wake_targets: frozenset[str] | None = None
    hub_node: str | None = "mini"
    readings_expire_s: int | None = None


@dataclass(frozen=True, slots=True)
class DeviceDiscovery:
    """One message to publish, retained: the device's config, or b"" to remove the device."""

    device_id: str
    topic: str
    payload: bytes
    config: DeviceConfig | None = None

    @property
    def components(self) -> dict[str, Platform]:
        """Component key → platform of the live components (not those being removed)."""
        if self.config is None:
            return {}
        return {
            key: component.platform
            for key, component in self.config.components.items()
            if isinstance(component, Entity)
        }


def probe_device_id(probe: str) -> str:
    return f"probe_{probe}"


def device_identifier(device_id: str) -> str:
    """The device-registry identifier, the same as the discovery topic's object id."""
    return f"aigloo_{device_id}"


def origin(support_url: str | None = None) -> Origin:
    return Origin(name=ORIGIN_NAME, sw_version=__version__, support_url=support_url)


def build_discovery(
    inventory: RigInventory, topics: Topics, *, support_url: str | None = None
) -> list[DeviceDiscovery]:
    """Every device's discovery message, in a stable order (nodes, station, fans, probes,
    rules, dispatcher)."""
    source = origin(support_url)
    return [
        _discovery(
            topics,
            device_id,
            DeviceConfig(device=device, origin=source, components=components),
        )
        for device_id, device, components in _plans(inventory, topics)
    ]


def device_ids(inventory: RigInventory) -> list[str]:
    """The ids `build_discovery` publishes for this inventory, in the same order."""
    return [device_id for device_id, _, _ in _plans(inventory, Topics())]


def removal(topics: Topics, device_id: str) -> DeviceDiscovery:
    """The empty retained payload that removes a device and its entities from HA."""
    return DeviceDiscovery(device_id, topics.hass_device_config(device_id), b"")


def removals(
    published: Iterable[str], current: Iterable[DeviceDiscovery], topics: Topics
) -> list[DeviceDiscovery]:
    """Removal messages for the devices published before that the rig no longer has."""
    kept = {discovery.device_id for discovery in current}
    return [removal(topics, device_id) for device_id in sorted(set(published) - kept)]


def retire_components(
    previous: Mapping[str, Platform], current: DeviceDiscovery
) -> DeviceDiscovery | None:
    """The interim message that makes HA drop components `current` no longer has (such as a
    deleted rule): `current` plus `{"p": <platform>}` for each of `previous` (component key →
    platform, e.g. `published_components` of what is retained now). HA documents this two-step
    removal: publish this, then `current` itself. None when nothing was dropped."""
    if current.config is None:
        return None
    gone = {
        key: RemovedComponent(platform=platform)
        for key, platform in previous.items()
        if key not in current.components
    }
    if not gone:
        return None
    config = current.config.model_copy(update={"components": {**current.config.components, **gone}})
    return DeviceDiscovery(current.device_id, current.topic, config.to_json(), config)


def published_components(payload: bytes) -> dict[str, Platform]:
    """Component key → platform of a retained discovery message (ours, from any run); {} for
    an empty or unreadable one."""
    try:
        document = json.loads(payload) if payload else {}
    except (ValueError, RecursionError):  # RecursionError: nested deeper than json can parse
        return {}
    components = document.get("cmps") if isinstance(document, dict) else None
    if not isinstance(components, dict):
        return {}
    return {
        key: value["p"]
        for key, value in components.items()
        if isinstance(value, dict) and value.get("p") in PLATFORMS
    }


# --- plans: (device id, device, components) per device ----------------------------------------

Plan = tuple[str, Device, dict[str, Component]]


def _discovery(topics: Topics, device_id: str, config: DeviceConfig) -> DeviceDiscovery:
    return DeviceDiscovery(
        device_id, topics.hass_device_config(device_id), config.to_json(), config
    )


def _plans(inventory: RigInventory, topics: Topics) -> list[Plan]:
    via = _hub_identifier(inventory)
    sensors = Presence.of(
        topics.bridge_availability(SENSORS), expire_after=inventory.readings_expire_s
    )
    plans = [
        _node_plan(inventory, topics, node, info) for node, info in sorted(inventory.nodes.items())
    ]
    if inventory.station:
        device = _service_device(STATION, "Aigloo power station", "RIVER 2 series", via, "EcoFlow")
        plans.append((STATION, device, station_entities(topics, sensors)))
    if inventory.fans:
        device = _service_device(FANS, "Aigloo fans", "Six 80 mm fans", via)
        plans.append((FANS, device, fan_entities(topics, sensors)))
    for probe in sorted(inventory.probes):
        device_id = probe_device_id(probe)
        device = _service_device(
            device_id, f"Aigloo probe {probe}", "BLE thermometer", via, "ThermoPro"
        )
        plans.append((device_id, device, probe_entities(topics, device_id, probe, sensors)))
    if inventory.rules_engine or inventory.rules:
        plans.append(_rules_plan(inventory, topics, via))
    if inventory.dispatcher:
        device = _service_device(DISPATCHER, "Aigloo dispatcher", "Inference dispatcher", via)
        plans.append((DISPATCHER, device, service_entities(topics, DISPATCHER)))
    return plans


def _hub_identifier(inventory: RigInventory) -> str | None:
    hub = inventory.hub_node
    return device_identifier(hub) if hub is not None and hub in inventory.nodes else None


def _service_device(
    device_id: str, name: str, model: str, via: str | None, manufacturer: str = MANUFACTURER
) -> Device:
    # Our own software's devices carry our version; hardware we only bridge does not.
    version = __version__ if manufacturer == MANUFACTURER else None
    return Device(
        identifiers=[device_identifier(device_id)],
        name=name,
        manufacturer=manufacturer,
        model=model,
        sw_version=version,
        via_device=via,
    )


def _rules_plan(inventory: RigInventory, topics: Topics, via: str | None) -> Plan:
    device = _service_device(RULES, "Aigloo rules engine", "Rules engine", via)
    presence = Presence.of(topics.bridge_availability(RULES))
    components = merge(
        service_entities(topics, RULES), rule_entities(topics, inventory.rules, presence)
    )
    return RULES, device, components


def _node_plan(inventory: RigInventory, topics: Topics, node: str, info: NodeInfo | None) -> Plan:
    device = Device(
        identifiers=[device_identifier(node)],
        name=f"Aigloo {node}",
        manufacturer="Apple" if info is not None and info.os == "Darwin" else None,
        model=info.hardware if info is not None else ROLE_MODELS.get(node),
        sw_version=info.version if info is not None else None,
    )
    return node, device, node_entities(topics, node_traits(inventory, node, info))


def node_traits(inventory: RigInventory, node: str, info: NodeInfo | None) -> NodeTraits:
    """What HA may show and do for a node. The hub and the waker's node are never put to
    sleep from HA: nothing could wake them, and the broker runs there."""
    role = info.role if info is not None else node
    waker = inventory.waker_node
    wakeable = (
        waker is not None
        and node != waker
        and (inventory.wake_targets is None or node in inventory.wake_targets)
    )
    return NodeTraits(
        node=node,
        has_battery=role in LAPTOP_ROLES,
        serves_inference=info is None or "inference" in info.components,
        can_sleep=node not in {waker, inventory.hub_node},
        waker_node=waker if wakeable else None,
    )
