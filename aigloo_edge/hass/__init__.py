"""Home Assistant MQTT device discovery: typed payloads and pure builders.

`build_discovery(inventory, topics)` gives one retained message per Aigloo device; `removal`,
`removals` and `retire_components` give the messages that take a device or a component away.
The MQTT side (publishing, HA's birth message) lives in the bridge, not here.
"""

from aigloo_edge.hass.devices import (
    DeviceDiscovery,
    RigInventory,
    build_discovery,
    device_identifier,
    device_ids,
    node_traits,
    probe_device_id,
    published_components,
    removal,
    removals,
    retire_components,
)
from aigloo_edge.hass.models import (
    Availability,
    BinarySensor,
    Button,
    Component,
    Device,
    DeviceConfig,
    Origin,
    RemovedComponent,
    Select,
    Sensor,
    Switch,
)

__all__ = [
    "Availability",
    "BinarySensor",
    "Button",
    "Component",
    "Device",
    "DeviceConfig",
    "DeviceDiscovery",
    "Origin",
    "RemovedComponent",
    "RigInventory",
    "Select",
    "Sensor",
    "Switch",
    "build_discovery",
    "device_identifier",
    "device_ids",
    "node_traits",
    "probe_device_id",
    "published_components",
    "removal",
    "removals",
    "retire_components",
]
