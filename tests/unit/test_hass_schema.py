"""Every discovery message the builders make passes a checker written from Home Assistant's
documented device-discovery rules, independently of `aigloo_edge.hass.models`.

Sources (facts taken, no code copied):
- https://www.home-assistant.io/integrations/mqtt/ (home-assistant/home-assistant.io,
  source/_integrations/mqtt.markdown): "Device discovery payload" (`dev` and `o` required,
  components under `cmps`, each with `p`, entity components need `unique_id`; removal by empty
  payload, one component by `{"p": ...}`), the discovery topic and its id class `[a-zA-Z0-9_-]`,
  the three abbreviation tables (entities, device registry, origin), availability options and
  modes, and that HA's birth/will defaults are `online`/`offline`.
- home-assistant/core homeassistant/components/mqtt/discovery.py: TOPIC_MATCHER (the topic
  regex), abbreviations expanded per component before validation, `platform` popped per
  component.
- home-assistant/core homeassistant/components/mqtt/schemas.py: DEVICE_DISCOVERY_SCHEMA (the
  root keys allowed; `device`, `origin`, `components` required), the device schema (at least one
  of identifiers/connections), the origin schema (`name` required), COMPONENT_CONFIG_SCHEMA
  (`platform` in SUPPORTED_COMPONENTS), availability `topic` required, `availability` and
  `availability_topic` exclusive.
- home-assistant/core homeassistant/components/mqtt/const.py: SUPPORTED_COMPONENTS,
  AVAILABILITY_MODES, DEFAULT_PAYLOAD_AVAILABLE / DEFAULT_PAYLOAD_NOT_AVAILABLE.
- home-assistant/core homeassistant/components/sensor/const.py: DEVICE_CLASS_UNITS and
  DEVICE_CLASS_STATE_CLASSES (units and state classes allowed per sensor device class).
- https://www.home-assistant.io/integrations/{sensor,binary_sensor,switch,select,button}.mqtt/:
  each platform's configuration variables (required ones, defaults such as `ON`/`OFF`/`PRESS`),
  `options` only with `device_class: enum` (and then no unit or state class), sensors and
  binary sensors cannot have `entity_category: config`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final, get_args

import jinja2
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from aigloo_edge.hass import DeviceDiscovery, RigInventory, build_discovery
from aigloo_edge.payloads import (
    SCHEMA_MODELS,
    Battery,
    BridgeHealth,
    Climate,
    Command,
    DiskUsage,
    FanProfile,
    FanProfileState,
    NodeBattery,
    NodeInfo,
    NodePower,
    NodeTelemetry,
    Outputs,
    PowerState,
    PowerStateValue,
    RuleState,
    Solar,
)
from aigloo_edge.topics import Retain, Topics

# --- Home Assistant's documented rules (the subset the checker needs) -------------------------


def words(text: str) -> frozenset[str]:
    return frozenset(text.split())


TOPIC_MATCHER: Final = re.compile(
    r"(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?(?P<object_id>[a-zA-Z0-9_-]+)/config"
)
ID_CLASS: Final = re.compile(r"[a-zA-Z0-9_-]+")
SUPPORTED_COMPONENTS: Final = words(
    "alarm_control_panel binary_sensor button camera climate cover date datetime "
    "device_automation device_tracker event fan humidifier image lawn_mower light lock notify "
    "number scene siren select sensor switch tag text time update vacuum valve "
    "water_heater"
)
AVAILABILITY_MODES: Final = frozenset({"all", "any", "latest"})
HA_PAYLOAD_AVAILABLE, HA_PAYLOAD_NOT_AVAILABLE = "online", "offline"

# The entity abbreviation table, for the options any platform below documents.
ABBREVIATIONS: Final = {
    "avty": "availability",
    "avty_mode": "availability_mode",
    "avty_t": "availability_topic",
    "avty_tpl": "availability_template",
    "cmd_t": "command_topic",
    "cmd_tpl": "command_template",
    "cmps": "components",
    "def_ent_id": "default_entity_id",
    "dev": "device",
    "dev_cla": "device_class",
    "e": "encoding",
    "en": "enabled_by_default",
    "ent_cat": "entity_category",
    "ent_pic": "entity_picture",
    "exp_aft": "expire_after",
    "frc_upd": "force_update",
    "ic": "icon",
    "json_attr_t": "json_attributes_topic",
    "json_attr_tpl": "json_attributes_template",
    "lrst_val_tpl": "last_reset_value_template",
    "name": "name",
    "o": "origin",
    "obj_id": "object_id",
    "off_dly": "off_delay",
    "ops": "options",
    "opt": "optimistic",
    "p": "platform",
    "pl_avail": "payload_available",
    "pl_not_avail": "payload_not_available",
    "pl_off": "payload_off",
    "pl_on": "payload_on",
    "pl_prs": "payload_press",
    "ret": "retain",
    "stat_cla": "state_class",
    "stat_off": "state_off",
    "stat_on": "state_on",
    "stat_t": "state_topic",
    "sug_dsp_prc": "suggested_display_precision",
    "t": "topic",
    "uniq_id": "unique_id",
    "unit_of_meas": "unit_of_measurement",
    "val_tpl": "value_template",
}
DEVICE_ABBREVIATIONS: Final = {
    "cu": "configuration_url",
    "cns": "connections",
    "ids": "identifiers",
    "name": "name",
    "mf": "manufacturer",
    "mdl": "model",
    "mdl_id": "model_id",
    "hw": "hw_version",
    "sw": "sw_version",
    "sa": "suggested_area",
    "sn": "serial_number",
}
ORIGIN_ABBREVIATIONS: Final = {"name": "name", "sw": "sw_version", "url": "support_url"}

ROOT_REQUIRED: Final = frozenset({"device", "origin", "components"})
ROOT_ALLOWED: Final = ROOT_REQUIRED | {
    "availability",
    "availability_mode",
    "availability_template",
    "availability_topic",
    "payload_available",
    "payload_not_available",
    "state_topic",
    "command_topic",
    "qos",
    "encoding",
}
DEVICE_ALLOWED: Final = frozenset({*DEVICE_ABBREVIATIONS.values(), "via_device"})
ORIGIN_ALLOWED: Final = frozenset(ORIGIN_ABBREVIATIONS.values())
AVAILABILITY_ENTRY_ALLOWED: Final = frozenset(
    {"topic", "payload_available", "payload_not_available", "value_template"}
)
ENTITY_COMMON: Final = frozenset(
    {
        "availability",
        "availability_mode",
        "availability_template",
        "availability_topic",
        "default_entity_id",
        "enabled_by_default",
        "encoding",
        "entity_category",
        "entity_picture",
        "icon",
        "json_attributes_template",
        "json_attributes_topic",
        "name",
        "object_id",
        "payload_available",
        "payload_not_available",
        "platform",
        "qos",
        "unique_id",
    }
)


@dataclass(frozen=True)
class PlatformRules:
    required: frozenset[str]
    optional: frozenset[str]
    device_classes: frozenset[str]


PLATFORMS: Final = {
    "sensor": PlatformRules(
        frozenset({"state_topic"}),
        words(
            "device_class expire_after force_update last_reset_value_template options "
            "suggested_display_precision state_class unit_of_measurement value_template"
        ),
        frozenset(),  # checked against SENSOR_UNITS below
    ),
    "binary_sensor": PlatformRules(
        frozenset({"state_topic"}),
        words(
            "device_class expire_after force_update off_delay payload_off payload_on value_template"
        ),
        words(
            "battery battery_charging carbon_monoxide cold connectivity door garage_door gas "
            "heat light lock moisture motion moving occupancy opening plug power presence "
            "problem running safety smoke sound tamper update vibration window"
        ),
    ),
    "switch": PlatformRules(
        frozenset({"command_topic"}),
        words(
            "command_template device_class optimistic payload_off payload_on retain state_off "
            "state_on state_topic value_template"
        ),
        frozenset({"outlet", "switch"}),
    ),
    "select": PlatformRules(
        frozenset({"command_topic", "options"}),
        words("command_template optimistic retain state_topic value_template"),
        frozenset(),
    ),
    "button": PlatformRules(
        frozenset({"command_topic"}),
        words("command_template device_class payload_press retain"),
        frozenset({"identify", "restart", "update"}),
    ),
}
MEASUREMENT: Final = frozenset({"measurement"})
STATE_CLASSES: Final = frozenset({"measurement", "measurement_angle", "total", "total_increasing"})
# sensor device class → (units allowed, state classes allowed), for the classes we use.
SENSOR_UNITS: Final[dict[str, tuple[frozenset[str | None], frozenset[str]]]] = {
    "battery": (frozenset({"%"}), MEASUREMENT),
    "duration": (frozenset({"d", "h", "min", "s", "ms", "µs"}), STATE_CLASSES),
    "energy_storage": (frozenset({"Wh", "kWh", "MWh", "GWh", "TWh"}), MEASUREMENT),
    "enum": (frozenset({None}), frozenset()),
    "humidity": (frozenset({"%"}), MEASUREMENT),
    "power": (frozenset({"mW", "W", "kW", "MW", "GW", "TW"}), MEASUREMENT),
    "signal_strength": (frozenset({"dB", "dBm"}), MEASUREMENT),
    "temperature": (frozenset({"°C", "°F", "K"}), MEASUREMENT),
}


def expand(mapping: dict[str, Any], table: dict[str, str]) -> dict[str, Any]:
    """What HA's discovery does first: abbreviated keys to full names; others kept."""
    return {table.get(key, key): value for key, value in mapping.items()}


# --- the checker -------------------------------------------------------------------------------


class Problems(list[str]):
    def need(self, condition: bool, message: str) -> None:
        if not condition:
            self.append(message)


def check_message(topics: Topics, message: DeviceDiscovery) -> list[str]:
    """Every documented rule the message breaks, as readable lines (empty: it passes)."""
    problems = Problems()
    check_topic(topics, message, problems)
    root = expand(json.loads(message.payload), ABBREVIATIONS)
    problems.need(isinstance(root, dict), "payload is not a JSON object")
    problems.need(root.keys() >= ROOT_REQUIRED, f"root lacks {ROOT_REQUIRED - root.keys()}")
    problems.need(root.keys() <= ROOT_ALLOWED, f"root has extra keys {root.keys() - ROOT_ALLOWED}")
    check_device(expand(root.get("device", {}), DEVICE_ABBREVIATIONS), problems)
    origin = expand(root.get("origin", {}), ORIGIN_ABBREVIATIONS)
    problems.need(isinstance(origin.get("name"), str), "origin needs a name")
    problems.need(origin.keys() <= ORIGIN_ALLOWED, f"origin extra keys {origin.keys()}")
    components = root.get("components", {})
    problems.need(bool(components), "no components")
    for key, raw in components.items():
        problems.need(bool(ID_CLASS.fullmatch(key)), f"component key {key!r} outside [a-zA-Z0-9_-]")
        check_component(topics, key, expand(raw, ABBREVIATIONS), problems)
    return problems


def check_topic(topics: Topics, message: DeviceDiscovery, problems: Problems) -> None:
    prefix = topics.discovery_prefix + "/"
    problems.need(message.topic.startswith(prefix), f"{message.topic} not under {prefix}")
    match = TOPIC_MATCHER.fullmatch(message.topic.removeprefix(prefix))
    problems.need(match is not None, f"{message.topic} is not a discovery topic")
    if match is not None:
        problems.need(match["component"] == "device", "not a device-discovery topic")
        problems.need(match["node_id"] is None, "device topics have no node id")


def check_device(device: dict[str, Any], problems: Problems) -> None:
    problems.need(
        device.keys() <= DEVICE_ALLOWED, f"device extra keys {device.keys() - DEVICE_ALLOWED}"
    )
    ids = device.get("identifiers") or device.get("connections")
    problems.need(bool(ids), "device needs identifiers or connections")
    problems.need(isinstance(device.get("name"), str), "device needs a name")
    problems.need(
        all(isinstance(v, str) for k, v in device.items() if k != "identifiers"),
        "device values must be strings",
    )


def check_component(topics: Topics, key: str, config: dict[str, Any], problems: Problems) -> None:
    platform = config.get("platform")
    problems.need(platform in SUPPORTED_COMPONENTS, f"{key}: platform {platform!r} not supported")
    rules = PLATFORMS.get(str(platform))
    if rules is None:
        problems.append(f"{key}: the checker has no rules for {platform!r}")
        return
    where = f"{key} ({platform})"
    allowed = ENTITY_COMMON | rules.required | rules.optional
    problems.need(isinstance(config.get("unique_id"), str), f"{where}: unique_id is required")
    problems.need(
        rules.required <= config.keys(), f"{where}: lacks {rules.required - config.keys()}"
    )
    problems.need(config.keys() <= allowed, f"{where}: unknown options {config.keys() - allowed}")
    category = config.get("entity_category")
    problems.need(category in (None, "config", "diagnostic"), f"{where}: category {category!r}")
    if platform in ("sensor", "binary_sensor"):
        problems.need(category != "config", f"{where}: a {platform} cannot be a config entity")
    if platform == "sensor":
        check_sensor_classes(where, config, problems)
    elif "device_class" in config:
        problems.need(config["device_class"] in rules.device_classes, f"{where}: device_class")
    check_availability(topics, where, config, problems)
    check_topics(topics, where, config, problems)


def check_sensor_classes(where: str, config: dict[str, Any], problems: Problems) -> None:
    device_class = config.get("device_class")
    unit, state_class = config.get("unit_of_measurement"), config.get("state_class")
    problems.need(state_class in (None, *STATE_CLASSES), f"{where}: state_class {state_class}")
    if device_class is not None:
        units, state_classes = SENSOR_UNITS.get(device_class, (frozenset(), frozenset()))
        problems.need(unit in units, f"{where}: unit {unit!r} invalid for {device_class}")
        problems.need(
            state_class is None or state_class in state_classes,
            f"{where}: state_class {state_class} invalid for {device_class}",
        )
    is_enum = device_class == "enum"
    problems.need(is_enum == ("options" in config), f"{where}: options go with device_class enum")
    if is_enum:
        problems.need(unit is None and state_class is None, f"{where}: enum with unit/state_class")


def check_availability(
    topics: Topics, where: str, config: dict[str, Any], problems: Problems
) -> None:
    entries = config.get("availability")
    mode = config.get("availability_mode")
    problems.need(not (entries and "availability_topic" in config), f"{where}: availability twice")
    problems.need(mode is None or mode in AVAILABILITY_MODES, f"{where}: mode {mode!r}")
    problems.need(mode is None or bool(entries), f"{where}: a mode without availability")
    for raw in entries or []:
        entry = expand(raw, ABBREVIATIONS)
        problems.need("topic" in entry, f"{where}: availability entry without topic")
        problems.need(entry.keys() <= AVAILABILITY_ENTRY_ALLOWED, f"{where}: availability keys")
        match = topics.match(entry.get("topic", ""))
        kinds = ("node_availability", "bridge_availability")
        problems.need(
            match is not None and match.spec.name in kinds,
            f"{where}: availability topic {entry.get('topic')}",
        )
        available = entry.get("payload_available", HA_PAYLOAD_AVAILABLE)
        problems.need(available == "online", f"{where}: our last wills say online/offline")


def check_topics(topics: Topics, where: str, config: dict[str, Any], problems: Problems) -> None:
    for option in ("state_topic", "json_attributes_topic"):
        if option in config:
            match = topics.match(config[option])
            problems.need(
                match is not None, f"{where}: {option} {config[option]} not in the contract"
            )
            problems.need(
                match is None or match.spec.retain is not Retain.NO,
                f"{where}: {option} not retained",
            )
    if "command_topic" in config:
        command = config["command_topic"]
        problems.need(not set(command) & {"+", "#", "\0"}, f"{where}: wildcard in command topic")
        match = topics.match(command)
        problems.need(
            match is not None and match.spec.retain is Retain.NO,
            f"{where}: command topic {command}",
        )


# --- value templates against real payloads ----------------------------------------------------

ENV: Final = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)


def render(template: str, payload: bytes) -> str:
    """Render a value template as HA does: `value` is the text, `value_json` the parsed JSON."""
    text = payload.decode()
    return ENV.from_string(template).render(value=text, value_json=json.loads(text)).strip()


def node_info(node: str, role: Any, *, inference: bool = True) -> NodeInfo:
    return NodeInfo(
        node=node,
        role=role,
        hostname=f"{node}.local",
        hardware="Mac15,14 (Apple M3 Ultra)",
        os="Darwin",
        os_version="15.5",
        version="0.1.0",
        cpu_cores=28,
        memory_bytes=256 * 2**30,
        components=["agent", "inference"] if inference else ["agent", "waker"],
    )


def full_telemetry() -> NodeTelemetry:
    return NodeTelemetry(
        node="studio",
        cpu_pct=42.5,
        memory_used_bytes=10,
        memory_available_bytes=20,
        memory_pct=33.3,
        disks=[DiskUsage(mount="/", used_bytes=1, total_bytes=2, used_pct=50.0)],
        battery=NodeBattery(soc_pct=81.0, plugged=True),
        temperatures_c={"cpu": 61.5, "gpu": 55.0},
        power=NodePower(package_w=120.0, system_w=150.0),
        thermal_pressure="moderate",
        infer_queue=2,
    )


def bare_telemetry() -> NodeTelemetry:
    """Only the required fields: every optional reading must render as unknown, not fail."""
    return NodeTelemetry(
        node="studio", cpu_pct=1.0, memory_used_bytes=1, memory_available_bytes=1, memory_pct=1.0
    )


def _bytes(*models: Any) -> list[bytes]:
    return [model.to_json() for model in models]


# Example payloads per contract row: full and sparse versions of what the sources publish.
EXAMPLES: Final[dict[str, Callable[[], list[bytes]]]] = {
    "node_telemetry": lambda: _bytes(
        full_telemetry(),
        bare_telemetry(),
        full_telemetry().model_copy(update={"power": NodePower(package_w=33.0)}),
    ),
    "node_power": lambda: _bytes(*(PowerState(state=s) for s in get_args(PowerStateValue))),
    "battery": lambda: _bytes(
        Battery(
            soc_pct=77.0,
            watts_in=120.0,
            watts_out=80.0,
            remaining_min=300.0,
            capacity_wh=768.0,
            outputs=Outputs(ac=True, dc=False),
            source="ecoflow_ble",
        ),
        Battery(soc_pct=5.0, watts_in=0.0, watts_out=0.0, source="twin"),
    ),
    "solar": lambda: _bytes(Solar(watts=180.0)),
    "env_climate": lambda: _bytes(
        Climate(
            probe="internal",
            temperature_c=33.9,
            humidity_pct=41.0,
            battery_pct=90.0,
            rssi_dbm=-70.0,
        ),
        Climate(probe="internal", temperature_c=20.0, stale=True),
    ),
    "fans_profile": lambda: _bytes(
        *(FanProfileState(profile=p, duty_pct=50.0) for p in get_args(FanProfile))
    ),
    "rule_state": lambda: _bytes(
        RuleState(rule="fans-max-when-hot", enabled=True, active=True, phase="active", why="hot"),
        RuleState(rule="fans-max-when-hot", enabled=False, active=False, phase="disabled"),
    ),
    "bridge_health": lambda: _bytes(
        BridgeHealth(
            component="rules", version="0.1.0", started=1.0, received=5, rejected=1, reconnects=0
        )
    ),
    "node_availability": lambda: [b"online", b"offline"],
    "bridge_availability": lambda: [b"online", b"offline"],
}


def check_rendering(topics: Topics, key: str, config: dict[str, Any]) -> list[str]:
    """Render the component's template on each example payload of its state topic and check
    the result is something HA accepts for that platform."""
    problems = Problems()
    match = topics.match(config.get("state_topic", ""))
    if match is None:
        return problems  # buttons have no state
    for payload in EXAMPLES[match.spec.name]():
        template = config.get("value_template")
        result = payload.decode() if template is None else render(template, payload)
        problems.need(accepted_states(config)(result), f"{key}: {result!r} from {payload[:80]!r}")
    attributes = config.get("json_attributes_topic")
    if attributes is not None:
        attributes_match = topics.match(attributes)
        assert attributes_match is not None
        for payload in EXAMPLES[attributes_match.spec.name]():
            problems.need(isinstance(json.loads(payload), dict), f"{key}: attributes not a dict")
    return problems


def number_or_unknown(text: str) -> bool:
    """A numeric sensor's state: a finite number, or `None` (HA's unknown)."""
    try:
        return text == "None" or math.isfinite(float(text))
    except ValueError:
        return False


def accepted_states(config: dict[str, Any]) -> Callable[[str], bool]:
    """What HA turns into a state for this component (anything else it ignores or logs)."""
    platform = config["platform"]
    if platform == "sensor" and config.get("device_class") != "enum":
        return number_or_unknown
    allowed: set[str] = set(config.get("options", ()))
    if platform == "binary_sensor":
        allowed = {config.get("payload_on", "ON"), config.get("payload_off", "OFF"), "None"}
    if platform == "switch":
        on, off = config.get("payload_on", "ON"), config.get("payload_off", "OFF")
        allowed = {config.get("state_on", on), config.get("state_off", off), "None"}
    return allowed.__contains__


def check_commands(topics: Topics, key: str, config: dict[str, Any]) -> list[str]:
    """What HA would send on a command topic parses with that topic's command model."""
    problems = Problems()
    command = config.get("command_topic")
    if command is None:
        return problems
    match = topics.match(command)
    assert match is not None
    model = SCHEMA_MODELS[match.spec.payload]
    assert issubclass(model, Command)
    payloads = {
        "switch": [config.get("payload_on", "ON"), config.get("payload_off", "OFF")],
        "button": [config.get("payload_press", "PRESS")],
        "select": list(config.get("options", [])),
    }[config["platform"]]
    for payload in payloads:
        try:
            model.parse(payload)
        except Exception as exc:
            problems.append(f"{key}: {payload!r} on {command} is refused: {exc}")
    return problems


# --- the rig under test -----------------------------------------------------------------------


def whole_rig() -> RigInventory:
    return RigInventory(
        nodes={
            "studio": node_info("studio", "studio"),
            "mbp": node_info("mbp", "mbp"),
            "mini": node_info("mini", "mini", inference=False),
            "air": None,  # its info has not arrived yet
        },
        probes=("internal", "outside-1"),
        rules=("fans-max-when-hot", "studio-sleeps-on-low-battery", "ac_off"),
        station=True,
        fans=True,
        rules_engine=True,
        dispatcher=True,
        wake_targets=frozenset({"studio", "mbp"}),
        readings_expire_s=180,
    )


TOPICS: Final = (Topics(), Topics("sites/north/aigloo", "ha"))


def messages(topics: Topics) -> Iterator[tuple[DeviceDiscovery, dict[str, Any]]]:
    for message in build_discovery(whole_rig(), topics, support_url="https://example.org/aigloo"):
        root = expand(json.loads(message.payload), ABBREVIATIONS)
        yield message, root


@pytest.mark.parametrize("topics", TOPICS, ids=["default", "site-prefix"])
def test_every_message_follows_the_documented_device_discovery_schema(topics: Topics) -> None:
    """Root, device, origin and every component pass HA's documented rules: required keys,
    abbreviations, platforms, device and state classes, units, categories, availability and
    topics that exist in our contract (retained state, non-retained commands)."""
    problems = [p for message, _ in messages(topics) for p in check_message(topics, message)]
    assert problems == []


@pytest.mark.parametrize("topics", TOPICS, ids=["default", "site-prefix"])
def test_value_templates_render_values_the_entity_accepts(topics: Topics) -> None:
    """Every value template, rendered with Jinja on full and sparse payloads built from the wire
    models, gives a number or unknown (sensors), one of the options (enums, selects) or the
    on/off states (switches, binary sensors)."""
    problems = [
        problem
        for _, root in messages(topics)
        for key, raw in root["components"].items()
        for problem in check_rendering(topics, key, expand(raw, ABBREVIATIONS))
    ]
    assert problems == []


def test_every_command_ha_can_send_is_accepted_by_the_contract() -> None:
    """Switch payloads, button presses and select options parse with the command models."""
    topics = Topics()
    problems = [
        problem
        for _, root in messages(topics)
        for key, raw in root["components"].items()
        for problem in check_commands(topics, key, expand(raw, ABBREVIATIONS))
    ]
    assert problems == []


def test_unique_ids_are_unique_across_the_whole_rig() -> None:
    """No two entities share a unique_id, in any device; device identifiers are unique too."""
    unique_ids: list[str] = []
    identifiers: list[str] = []
    for _, root in messages(Topics()):
        identifiers += expand(root["device"], DEVICE_ABBREVIATIONS)["identifiers"]
        unique_ids += [expand(c, ABBREVIATIONS)["unique_id"] for c in root["components"].values()]
    assert len(unique_ids) == len(set(unique_ids))
    assert len(identifiers) == len(set(identifiers))


def test_the_checker_catches_what_ha_refuses() -> None:
    """The checker is not vacuous: a payload without `p`, with a wildcard command topic, an
    unknown option, an enum with a unit and no unique_id is reported on each count."""
    topics = Topics()
    good = next(m for m, _ in messages(topics) if m.device_id == "fans")
    broken = json.loads(good.payload)
    profile = broken["cmps"]["profile"]
    del profile["p"]
    broken["cmps"]["duty"]["cmd_t"] = "aigloo/fans/+/set"
    broken["cmps"]["duty"]["dev_cla"] = "enum"
    del broken["cmps"]["duty"]["uniq_id"]
    broken["bogus"] = 1
    message = DeviceDiscovery(good.device_id, good.topic, json.dumps(broken).encode())
    problems = "\n".join(check_message(topics, message))
    for expected in (
        "platform None",
        "wildcard",
        "unknown options",
        "unique_id",
        "extra keys",
        "options go with",
    ):
        assert expected in problems
