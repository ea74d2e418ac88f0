"""The entities of each Aigloo device, as typed discovery components (pure: no I/O).

Every state topic is a retained topic of the contract and every value template reads the JSON
that `aigloo_edge.payloads` defines (SI units: HA converts °C and W to the user's units itself).
Templates use plain Jinja only, and render `None` (HA's "unknown") when an optional field is
absent. Commands send the plain values the command topics accept (`wake`, `on`, `enable`, ...).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, get_args

from aigloo_edge.hass.models import (
    Availability,
    AvailabilityMode,
    BinarySensor,
    Button,
    Component,
    EntityCategory,
    Select,
    Sensor,
    SensorDeviceClass,
    StateClass,
    Switch,
)
from aigloo_edge.payloads import (
    AVAILABILITY_OFFLINE,
    AVAILABILITY_ONLINE,
    Battery,
    FanProfile,
    PowerStateValue,
    ThermalPressure,
)
from aigloo_edge.topics import Topics

UNIQUE_ID_PREFIX: Final = "aigloo"
# Commands (sleep, outputs, fan profiles, rules) must not be lost on the way. Set on each
# control: HA's code merges only some of the root options its docs call shared into components.
COMMAND_QOS: Final = 1
# NodeTelemetry.infer_tokens_per_s: tokens its worker generated per second since the last sample.
TOKENS_PER_S_FIELD: Final = "infer_tokens_per_s"


@dataclass(frozen=True, slots=True)
class Presence:
    """Whose last will an entity's availability follows: none (always available), one
    component, or several with a mode (`any`: available while at least one is online); and,
    for readings, after how many seconds without a new message HA shows them as unknown."""

    topics: tuple[str, ...] = ()
    mode: AvailabilityMode | None = None
    expire_after: int | None = None

    @classmethod
    def of(cls, topic: str, *, expire_after: int | None = None) -> Presence:
        return cls((topic,), expire_after=expire_after)

    @classmethod
    def either(cls, *topics: str) -> Presence:
        return cls(topics, "any")

    @property
    def entries(self) -> list[Availability] | None:
        if not self.topics:
            return None
        return [
            Availability(
                topic=topic,
                payload_available=AVAILABILITY_ONLINE,
                payload_not_available=AVAILABILITY_OFFLINE,
            )
            for topic in self.topics
        ]


@dataclass(frozen=True, slots=True)
class Reading:
    """A sensor read from one field of a JSON state payload."""

    key: str
    name: str
    template: str
    unit: str | None = None
    device_class: SensorDeviceClass | None = None
    state_class: StateClass | None = "measurement"
    precision: int | None = None
    category: EntityCategory | None = None
    icon: str | None = None
    enabled: bool = True
    options: tuple[str, ...] = ()


def enum_reading(
    key: str,
    name: str,
    template: str,
    options: tuple[str, ...],
    *,
    category: EntityCategory | None = None,
    icon: str | None = None,
) -> Reading:
    """An enum sensor: HA allows neither a unit nor a state class with `device_class: enum`."""
    return Reading(
        key,
        name,
        template,
        device_class="enum",
        state_class=None,
        category=category,
        icon=icon,
        options=options,
    )


def unique_id(device_id: str, key: str) -> str:
    return f"{UNIQUE_ID_PREFIX}_{device_id}_{key}"


def sensor(
    device_id: str,
    reading: Reading,
    state_topic: str,
    presence: Presence,
    *,
    attributes_topic: str | None = None,
) -> Sensor:
    return Sensor(
        unique_id=unique_id(device_id, reading.key),
        name=reading.name,
        state_topic=state_topic,
        value_template=reading.template,
        device_class=reading.device_class,
        state_class=reading.state_class,
        unit_of_measurement=reading.unit,
        suggested_display_precision=reading.precision,
        options=list(reading.options) or None,
        entity_category=reading.category,
        icon=reading.icon,
        enabled_by_default=None if reading.enabled else False,
        availability=presence.entries,
        availability_mode=presence.mode,
        expire_after=presence.expire_after,
        json_attributes_topic=attributes_topic,
    )


def sensors(
    device_id: str, readings: tuple[Reading, ...], state_topic: str, presence: Presence
) -> dict[str, Component]:
    return {r.key: sensor(device_id, r, state_topic, presence) for r in readings}


def merge(*parts: dict[str, Component]) -> dict[str, Component]:
    """One device's components; a key used twice is a bug (one would silently replace the
    other, and their unique ids would clash)."""
    merged: dict[str, Component] = {}
    for part in parts:
        clash = merged.keys() & part.keys()
        if clash:
            raise ValueError(f"component keys used twice: {sorted(clash)}")
        merged.update(part)
    return merged


def connectivity(device_id: str, availability_topic: str) -> dict[str, Component]:
    """`Online` reads a component's availability topic itself, so it is never unavailable:
    it shows `off` while the component is away (its last will) instead of vanishing."""
    entity = BinarySensor(
        unique_id=unique_id(device_id, "online"),
        name="Online",
        state_topic=availability_topic,
        payload_on=AVAILABILITY_ONLINE,
        payload_off=AVAILABILITY_OFFLINE,
        device_class="connectivity",
        entity_category="diagnostic",
    )
    return {"online": entity}


# --- nodes ------------------------------------------------------------------------------------

_PCT: Final = "%"
_POWER_W: Final = (
    "{% set p = value_json.power | default({}) %}"
    "{{ p.system_w | default(p.package_w | default(none)) }}"
)
_HOTTEST_C: Final = (
    "{% set t = value_json.temperatures_c | default({}) %}{{ t.values() | max if t else none }}"
)


def _temperature(name: str) -> str:
    return f"{{{{ (value_json.temperatures_c | default({{}})).{name} | default(none) }}}}"


NODE_READINGS: Final = (
    Reading("cpu", "CPU", "{{ value_json.cpu_pct }}", _PCT, precision=0, icon="mdi:cpu-64-bit"),
    Reading(
        "memory", "Memory", "{{ value_json.memory_pct }}", _PCT, precision=0, icon="mdi:memory"
    ),
    Reading(
        "disk",
        "Disk",
        "{{ value_json.disks[0].used_pct if value_json.disks | default([]) else none }}",
        _PCT,
        precision=0,
        category="diagnostic",
        icon="mdi:harddisk",
    ),
    Reading("power_draw", "Power draw", _POWER_W, "W", "power", precision=1),
    Reading("temperature", "Hottest temperature", _HOTTEST_C, "°C", "temperature", precision=1),
    Reading(
        "cpu_temperature", "CPU temperature", _temperature("cpu"), "°C", "temperature", precision=1
    ),
    Reading(
        "gpu_temperature", "GPU temperature", _temperature("gpu"), "°C", "temperature", precision=1
    ),
    enum_reading(
        "thermal_pressure",
        "Thermal pressure",
        "{{ value_json.thermal_pressure | default('unknown') }}",
        get_args(ThermalPressure),
        icon="mdi:thermometer-alert",
    ),
)
INFERENCE_READINGS: Final = (
    Reading(
        "infer_queue",
        "Inference jobs",
        "{{ value_json.infer_queue | default(none) }}",
        precision=0,
        icon="mdi:tray-full",
    ),
    Reading(
        "tokens_per_s",
        "Tokens per second",
        f"{{{{ value_json.{TOKENS_PER_S_FIELD} | default(none) }}}}",
        "tokens/s",
        precision=1,
        icon="mdi:speedometer",
    ),
)


def battery_reading(*, enabled: bool) -> Reading:
    template = "{{ (value_json.battery | default({})).soc_pct | default(none) }}"
    return Reading("battery", "Battery", template, _PCT, "battery", precision=0, enabled=enabled)


@dataclass(frozen=True, slots=True)
class NodeTraits:
    """What a node's device offers, decided from the inventory by `devices`."""

    node: str
    has_battery: bool
    serves_inference: bool
    can_sleep: bool  # HA may sleep it (not the hub or the waker's node: nothing could wake them)
    waker_node: str | None  # set when the waker can wake it


def node_entities(topics: Topics, traits: NodeTraits) -> dict[str, Component]:
    node = traits.node
    own = Presence.of(topics.node_availability(node))
    readings: tuple[Reading, ...] = (*NODE_READINGS, battery_reading(enabled=traits.has_battery))
    if traits.serves_inference:
        readings = (*readings, *INFERENCE_READINGS)
    return merge(
        connectivity(node, topics.node_availability(node)),
        sensors(node, readings, topics.node_telemetry(node), own),
        power_entities(topics, traits),
    )


POWER_SWITCH_TEMPLATE: Final = (
    "{% set s = value_json.state %}"
    "{{ 'on' if s in ('awake', 'waking') else 'off' if s == 'sleeping' else 'None' }}"
)


def power_entities(topics: Topics, traits: NodeTraits) -> dict[str, Component]:
    """Power state, the sleep/wake switch and the wake button. A sleeping node's agent is
    offline, so these stay available through the waker (`any` of the node and its waker)."""
    node = traits.node
    presence = Presence.of(topics.node_availability(node))
    if traits.waker_node is not None:
        presence = Presence.either(
            topics.node_availability(node), topics.node_availability(traits.waker_node)
        )
    state = enum_reading(
        "power_state",
        "Power state",
        "{{ value_json.state }}",
        get_args(PowerStateValue),
        icon="mdi:power-sleep",
    )
    power = topics.node_power(node)
    # The power payload's `reason` rides along as an attribute.
    entities: dict[str, Component] = {
        "power_state": sensor(node, state, power, presence, attributes_topic=power)
    }
    if traits.can_sleep:
        entities["power"] = _power_switch(topics, node, presence)
    if traits.waker_node is not None:
        entities["wake"] = Button(
            qos=COMMAND_QOS,
            unique_id=unique_id(node, "wake"),
            name="Wake",
            command_topic=topics.node_power_set(node),
            payload_press="wake",
            icon="mdi:power",
            availability=presence.entries,
            availability_mode=presence.mode,
        )
    return entities


def _power_switch(topics: Topics, node: str, presence: Presence) -> Switch:
    """On = awake (or waking); off = sleeping; unknown while unreachable."""
    return Switch(
        qos=COMMAND_QOS,
        unique_id=unique_id(node, "power"),
        name="Power",
        device_class="switch",
        command_topic=topics.node_power_set(node),
        payload_on="wake",
        payload_off="sleep",
        state_topic=topics.node_power(node),
        value_template=POWER_SWITCH_TEMPLATE,
        state_on="on",
        state_off="off",
        availability=presence.entries,
        availability_mode=presence.mode,
    )


# --- power station ----------------------------------------------------------------------------

STATION_READINGS: Final = (
    Reading("soc", "Battery", "{{ value_json.soc_pct }}", _PCT, "battery", precision=0),
    Reading("watts_in", "Input power", "{{ value_json.watts_in }}", "W", "power", precision=0),
    Reading("watts_out", "Output power", "{{ value_json.watts_out }}", "W", "power", precision=0),
    Reading(
        "remaining",
        "Time remaining",
        "{{ value_json.remaining_min | default(none) }}",
        "min",
        "duration",
        precision=0,
    ),
    Reading(
        "capacity",
        "Capacity",
        "{{ value_json.capacity_wh | default(none) }}",
        "Wh",
        "energy_storage",
        precision=0,
        category="diagnostic",
    ),
    enum_reading(
        "source",
        "Data source",
        "{{ value_json.source }}",
        get_args(Battery.model_fields["source"].annotation),
        category="diagnostic",
        icon="mdi:database-arrow-right",
    ),
)
SOLAR_READING: Final = Reading(
    "solar",
    "Solar power",
    "{{ value_json.watts }}",
    "W",
    "power",
    precision=0,
    icon="mdi:solar-power",
)
STATION_OUTPUTS: Final = {"ac": "AC output", "dc": "DC output"}


def output_template(output: str) -> str:
    """`on`/`off` from `outputs.<output>`; `None` (unknown) when the station does not say."""
    return (
        f"{{% set v = (value_json.outputs | default({{}})).{output} | default(none) %}}"
        "{{ 'None' if v is none else ('on' if v else 'off') }}"
    )


def station_entities(topics: Topics, presence: Presence) -> dict[str, Component]:
    device = "station"
    entities: dict[str, Component] = {
        **sensors(device, STATION_READINGS, topics.battery(), presence),
        SOLAR_READING.key: sensor(device, SOLAR_READING, topics.solar(), presence),
    }
    for output, name in STATION_OUTPUTS.items():
        entities[f"{output}_output"] = Switch(
            qos=COMMAND_QOS,
            unique_id=unique_id(device, f"{output}_output"),
            name=name,
            device_class="outlet",
            command_topic=topics.power_output_set(output),
            payload_on="on",
            payload_off="off",
            state_topic=topics.battery(),
            value_template=output_template(output),
            state_on="on",
            state_off="off",
            availability=presence.entries,
            availability_mode=presence.mode,
        )
    return entities


# --- thermometer probes, fans -----------------------------------------------------------------

PROBE_READINGS: Final = (
    Reading(
        "temperature",
        "Temperature",
        "{{ value_json.temperature_c }}",
        "°C",
        "temperature",
        precision=1,
    ),
    Reading(
        "humidity",
        "Humidity",
        "{{ value_json.humidity_pct | default(none) }}",
        _PCT,
        "humidity",
        precision=0,
    ),
    Reading(
        "battery",
        "Battery",
        "{{ value_json.battery_pct | default(none) }}",
        _PCT,
        "battery",
        precision=0,
        category="diagnostic",
    ),
    Reading(
        "rssi",
        "Signal strength",
        "{{ value_json.rssi_dbm | default(none) }}",
        "dBm",
        "signal_strength",
        precision=0,
        category="diagnostic",
        enabled=False,
    ),
)


def probe_entities(
    topics: Topics, device_id: str, probe: str, presence: Presence
) -> dict[str, Component]:
    climate = topics.env_climate(probe)
    stale = BinarySensor(
        unique_id=unique_id(device_id, "stale"),
        name="Stale reading",
        device_class="problem",
        state_topic=climate,
        value_template="{{ 'on' if value_json.stale | default(false) else 'off' }}",
        payload_on="on",
        payload_off="off",
        entity_category="diagnostic",
        availability=presence.entries,
        availability_mode=presence.mode,
        expire_after=presence.expire_after,
    )
    return {**sensors(device_id, PROBE_READINGS, climate, presence), "stale": stale}


FAN_DUTY: Final = Reading(
    "duty", "Duty", "{{ value_json.duty_pct }}", _PCT, precision=0, icon="mdi:fan"
)


def fan_entities(topics: Topics, presence: Presence) -> dict[str, Component]:
    device = "fans"
    profile = Select(
        qos=COMMAND_QOS,
        unique_id=unique_id(device, "profile"),
        name="Profile",
        command_topic=topics.fans_profile_set(),
        state_topic=topics.fans_profile(),
        value_template="{{ value_json.profile }}",
        options=list(get_args(FanProfile)),
        icon="mdi:fan",
        availability=presence.entries,
        availability_mode=presence.mode,
    )
    return {
        "profile": profile,
        FAN_DUTY.key: sensor(device, FAN_DUTY, topics.fans_profile(), presence),
    }


# --- rules engine, dispatcher -----------------------------------------------------------------

HEALTH_READINGS: Final = (
    Reading(
        "rejected",
        "Rejected inputs",
        "{{ value_json.rejected }}",
        state_class="total_increasing",
        category="diagnostic",
        icon="mdi:message-alert",
    ),
    Reading(
        "received",
        "Messages received",
        "{{ value_json.received }}",
        state_class="total_increasing",
        category="diagnostic",
        icon="mdi:message-arrow-left",
        enabled=False,
    ),
    Reading(
        "reconnects",
        "Reconnects",
        "{{ value_json.reconnects }}",
        state_class="total_increasing",
        category="diagnostic",
        icon="mdi:lan-pending",
        enabled=False,
    ),
)


def service_entities(topics: Topics, component: str) -> dict[str, Component]:
    """What every non-node component offers: `Online` and its health counters."""
    availability = topics.bridge_availability(component)
    return merge(
        connectivity(component, availability),
        sensors(
            component, HEALTH_READINGS, topics.bridge_health(component), Presence.of(availability)
        ),
    )


def rule_title(rule: str) -> str:
    """`studio-sleeps-on-low-battery` → `Studio sleeps on low battery`."""
    return rule.replace("-", " ").replace("_", " ").capitalize()


def rule_entities(topics: Topics, rules: Iterable[str], presence: Presence) -> dict[str, Component]:
    """Per rule: a switch that enables/disables it, and whether it is active (its state's
    phase, why and values ride along as attributes)."""
    entities: dict[str, Component] = {}
    for rule in sorted(rules):
        state = topics.rule_state(rule)
        key, title = f"rule_{rule}", rule_title(rule)
        entities[key] = Switch(
            qos=COMMAND_QOS,
            unique_id=unique_id("rules", key),
            name=title,
            device_class="switch",
            command_topic=topics.rule_set(rule),
            payload_on="enable",
            payload_off="disable",
            state_topic=state,
            value_template="{{ 'on' if value_json.enabled else 'off' }}",
            state_on="on",
            state_off="off",
            entity_category="config",
            icon="mdi:script-text-outline",
            availability=presence.entries,
            availability_mode=presence.mode,
        )
        entities[f"{key}_active"] = BinarySensor(
            unique_id=unique_id("rules", f"{key}_active"),
            name=f"{title} active",
            state_topic=state,
            value_template="{{ 'on' if value_json.active else 'off' }}",
            payload_on="on",
            payload_off="off",
            json_attributes_topic=state,
            icon="mdi:flash",
            availability=presence.entries,
            availability_mode=presence.mode,
        )
    return entities
