"""Home Assistant discovery builders: which devices and entities a rig gets, their availability,
what their templates read and what their controls send, and how devices and components leave."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from aigloo_edge import __version__
from aigloo_edge.hass import (
    DeviceConfig,
    DeviceDiscovery,
    RigInventory,
    Sensor,
    build_discovery,
    device_ids,
    published_components,
    removal,
    removals,
    retire_components,
)
from aigloo_edge.hass.entities import TOKENS_PER_S_FIELD, merge
from aigloo_edge.payloads import (
    Battery,
    FanProfileState,
    NodePower,
    Outputs,
    PowerState,
    RuleState,
)
from aigloo_edge.topics import Topics
from tests.unit.test_hass_schema import (
    ABBREVIATIONS,
    DEVICE_ABBREVIATIONS,
    ORIGIN_ABBREVIATIONS,
    bare_telemetry,
    expand,
    full_telemetry,
    render,
    whole_rig,
)

TOPICS = Topics()


def by_device(inventory: RigInventory | None = None, **kw: Any) -> dict[str, DeviceDiscovery]:
    discoveries = build_discovery(inventory or whole_rig(), TOPICS, **kw)
    return {d.device_id: d for d in discoveries}


def root_of(message: DeviceDiscovery) -> dict[str, Any]:
    return expand(json.loads(message.payload), ABBREVIATIONS)


def components(message: DeviceDiscovery) -> dict[str, dict[str, Any]]:
    return {key: expand(c, ABBREVIATIONS) for key, c in root_of(message)["components"].items()}


def availability(component: dict[str, Any]) -> tuple[list[str], str | None]:
    entries = [expand(e, ABBREVIATIONS) for e in component.get("availability", [])]
    return [e["topic"] for e in entries], component.get("availability_mode")


def test_one_device_per_node_station_fans_probe_rules_and_dispatcher() -> None:
    """Device ids are stable and each message goes, retained, to
    `homeassistant/device/aigloo_<id>/config`; `device_ids` lists the same ids."""
    discoveries = build_discovery(whole_rig(), TOPICS)
    ids = [d.device_id for d in discoveries]
    assert ids == [
        "air",
        "mbp",
        "mini",
        "studio",
        "station",
        "fans",
        "probe_internal",
        "probe_outside-1",
        "rules",
        "dispatcher",
    ]
    assert device_ids(whole_rig()) == ids
    for discovery in discoveries:
        assert discovery.topic == f"homeassistant/device/aigloo_{discovery.device_id}/config"


def test_devices_carry_identity_origin_and_route_through_the_hub() -> None:
    """`dev` has identifiers, name, manufacturer, model and version (the node's agent version
    from its info); the station, fans, probes, rules and dispatcher are `via_device` the Mini;
    `o` names aigloo-edge, its version and the support URL given."""
    devices = by_device(support_url="https://example.org/aigloo")
    studio = expand(root_of(devices["studio"])["device"], DEVICE_ABBREVIATIONS)
    assert studio == {
        "identifiers": ["aigloo_studio"],
        "name": "Aigloo studio",
        "manufacturer": "Apple",
        "model": "Mac15,14 (Apple M3 Ultra)",
        "sw_version": "0.1.0",
    }
    air = expand(root_of(devices["air"])["device"], DEVICE_ABBREVIATIONS)
    assert air == {"identifiers": ["aigloo_air"], "name": "Aigloo air", "model": "MacBook Air"}
    for device_id in ("station", "fans", "probe_internal", "rules", "dispatcher"):
        device = expand(root_of(devices[device_id])["device"], DEVICE_ABBREVIATIONS)
        assert device["via_device"] == "aigloo_mini"
    origin = expand(root_of(devices["rules"])["origin"], ORIGIN_ABBREVIATIONS)
    assert origin == {
        "name": "aigloo-edge",
        "sw_version": __version__,
        "support_url": "https://example.org/aigloo",
    }


def test_no_via_device_when_the_hub_is_not_a_known_node() -> None:
    """`via_device` must name a device HA knows, so it is left out without the hub node."""
    devices = by_device(RigInventory(nodes={"studio": None}, station=True))
    assert "via_device" not in root_of(devices["station"])["device"]


def test_node_entities_follow_the_node_and_power_controls_also_the_waker() -> None:
    """Telemetry sensors follow the node's last will alone; the power state, the sleep/wake
    switch and the wake button stay available through the waker (`any` of node and Mini), so
    a sleeping Studio can be woken; `Online` has no availability so it can show `off`."""
    studio = components(by_device()["studio"])
    node, waker = TOPICS.node_availability("studio"), TOPICS.node_availability("mini")
    for key in ("cpu", "memory", "power_draw", "temperature", "thermal_pressure", "tokens_per_s"):
        assert availability(studio[key]) == ([node], None)
    for key in ("power", "wake", "power_state"):
        assert availability(studio[key]) == ([node, waker], "any")
    assert availability(studio["online"]) == ([], None)
    assert studio["online"]["device_class"] == "connectivity"
    assert studio["online"]["state_topic"] == node


def test_the_hub_cannot_be_slept_and_a_node_the_waker_cannot_reach_gets_no_wake() -> None:
    """The Mini (hub and waker) has no power switch or wake button: nothing could wake it and
    the broker runs there. The Air is not a wake target: it keeps a power switch that follows
    the Air alone (usable while it is up), but no wake button."""
    devices = by_device()
    mini, air = components(devices["mini"]), components(devices["air"])
    assert "power" not in mini
    assert "wake" not in mini
    assert "power_state" in mini
    assert "wake" not in air
    assert availability(air["power"]) == ([TOPICS.node_availability("air")], None)


def test_bridge_entities_follow_their_component() -> None:
    """Station, fans and probes follow the sensor bridge; rules follow `rules`; the
    dispatcher follows `dispatcher`."""
    devices = by_device()
    expectations = {
        "station": "sensors",
        "fans": "sensors",
        "probe_internal": "sensors",
        "rules": "rules",
        "dispatcher": "dispatcher",
    }
    for device_id, component in expectations.items():
        for key, entity in components(devices[device_id]).items():
            if key == "online":
                assert entity["state_topic"] == TOPICS.bridge_availability(component)
                continue
            assert availability(entity) == ([TOPICS.bridge_availability(component)], None), key


def test_bridged_readings_expire_when_the_bridge_goes_quiet() -> None:
    """With `readings_expire_s`, station, probe and fan readings (not controls, not node
    telemetry, which follows the node's last will) turn unknown after that long."""
    devices = by_device()
    for device_id in ("station", "probe_internal", "fans"):
        for key, entity in components(devices[device_id]).items():
            expected = 180 if entity["platform"] in ("sensor", "binary_sensor") else None
            assert entity.get("expire_after") == expected, (device_id, key)
    assert all("expire_after" not in e for e in components(devices["studio"]).values())
    plain = by_device(RigInventory(station=True))
    assert all("expire_after" not in e for e in components(plain["station"]).values())


def test_node_entities_have_the_right_classes_units_and_categories() -> None:
    """Temperatures are °C with `device_class: temperature` (HA converts to °F itself), power
    in W, percentages in %, thermal pressure an enum; disk is diagnostic; the battery is on by
    default only on laptops."""
    devices = by_device()
    studio, mbp = components(devices["studio"]), components(devices["mbp"])
    assert {k: studio["temperature"][k] for k in ("device_class", "unit_of_measurement")} == {
        "device_class": "temperature",
        "unit_of_measurement": "°C",
    }
    assert studio["power_draw"]["device_class"] == "power"
    assert studio["power_draw"]["unit_of_measurement"] == "W"
    assert studio["cpu"]["unit_of_measurement"] == "%"
    assert studio["cpu"]["state_class"] == "measurement"
    assert studio["thermal_pressure"]["options"] == [
        "nominal",
        "moderate",
        "heavy",
        "trapping",
        "sleeping",
        "unknown",
    ]
    assert studio["disk"]["entity_category"] == "diagnostic"
    assert studio["battery"]["enabled_by_default"] is False
    assert "enabled_by_default" not in mbp["battery"]


def test_inference_entities_only_on_nodes_that_serve_inference() -> None:
    """The queue and tokens/s appear where the node's info lists `inference` (or is unknown)."""
    devices = by_device()
    assert "infer_queue" not in components(devices["mini"])
    assert "infer_queue" in components(devices["studio"])
    assert "tokens_per_s" in components(devices["air"])


def test_tokens_per_s_reads_the_telemetry_field() -> None:
    """Tokens/s reads `NodeTelemetry.infer_tokens_per_s`; unknown from an agent without it."""
    template = components(by_device()["studio"])["tokens_per_s"]["value_template"]
    generating = full_telemetry().model_copy(update={TOKENS_PER_S_FIELD: 17.5})
    assert render(template, generating.to_json()) == "17.5"
    older = json.loads(full_telemetry().to_json())
    older.pop(TOKENS_PER_S_FIELD, None)
    assert render(template, json.dumps(older).encode()) == "None"


def test_power_draw_prefers_the_system_rail_and_falls_back_to_the_package() -> None:
    """`power.system_w` (wall) when present, else `power.package_w`, else unknown."""
    template = components(by_device()["studio"])["power_draw"]["value_template"]
    assert render(template, full_telemetry().to_json()) == "150.0"
    package_only = full_telemetry().model_copy(update={"power": NodePower(package_w=33.0)})
    assert render(template, package_only.to_json()) == "33.0"
    assert render(template, bare_telemetry().to_json()) == "None"


@pytest.mark.parametrize(
    ("state", "shown"),
    [("awake", "on"), ("waking", "on"), ("sleeping", "off"), ("unreachable", "None")],
)
def test_power_switch_shows_the_real_power_state(state: Any, shown: str) -> None:
    """The power switch is not optimistic: it reads `nodes/<id>/power`; waking counts as on,
    unreachable is unknown. It sends `wake` / `sleep`."""
    switch = components(by_device()["studio"])["power"]
    assert switch["optimistic"] is False
    assert switch["state_topic"] == TOPICS.node_power("studio")
    assert (switch["payload_on"], switch["payload_off"]) == ("wake", "sleep")
    assert (switch["state_on"], switch["state_off"]) == ("on", "off")
    assert render(switch["value_template"], PowerState(state=state).to_json()) == shown


def test_wake_button_sends_wake_to_the_node() -> None:
    button = components(by_device()["studio"])["wake"]
    assert (button["command_topic"], button["payload_press"]) == (
        TOPICS.node_power_set("studio"),
        "wake",
    )


@pytest.mark.parametrize("output", ["ac", "dc"])
def test_station_output_switches_read_the_battery_outputs(output: str) -> None:
    """The AC and DC switches send `on`/`off` to `power/<output>/set` and read
    `outputs.<output>` from the battery: true → on, false → off, absent → unknown."""
    switch = components(by_device()["station"])[f"{output}_output"]
    assert switch["command_topic"] == TOPICS.power_output_set(output)
    assert switch["state_topic"] == TOPICS.battery()
    template = switch["value_template"]

    def battery(**outputs: bool) -> bytes:
        return Battery(
            soc_pct=50.0, watts_in=0.0, watts_out=0.0, outputs=Outputs(**outputs), source="twin"
        ).to_json()

    assert render(template, battery(**{output: True})) == switch["state_on"]
    assert render(template, battery(**{output: False})) == switch["state_off"]
    assert render(template, battery()) == "None"


@pytest.mark.parametrize("profile", ["off", "quiet", "normal", "max"])
def test_fan_select_shows_and_sends_the_profile(profile: Any) -> None:
    select = components(by_device()["fans"])["profile"]
    assert select["options"] == ["off", "quiet", "normal", "max"]
    assert select["command_topic"] == TOPICS.fans_profile_set()
    assert (
        render(select["value_template"], FanProfileState(profile=profile, duty_pct=40.0).to_json())
        == profile
    )


def test_each_rule_gets_an_enable_switch_and_an_active_sensor() -> None:
    """The switch sends `enable`/`disable` to `rules/<id>/set` and shows `enabled`; the
    active sensor carries the rule state (phase, why, values) as attributes."""
    rules = components(by_device()["rules"])
    switch = rules["rule_fans-max-when-hot"]
    assert switch["name"] == "Fans max when hot"
    assert switch["entity_category"] == "config"
    assert switch["command_topic"] == TOPICS.rule_set("fans-max-when-hot")
    assert (switch["payload_on"], switch["payload_off"]) == ("enable", "disable")
    disabled = RuleState(rule="fans-max-when-hot", enabled=False, active=False).to_json()
    assert render(switch["value_template"], disabled) == "off"
    active = rules["rule_fans-max-when-hot_active"]
    assert active["json_attributes_topic"] == TOPICS.rule_state("fans-max-when-hot")


def test_controls_send_with_qos_1_and_never_retain() -> None:
    """Every switch, select and button publishes its commands at QoS 1, not retained."""
    controls = [
        c
        for d in by_device().values()
        for c in components(d).values()
        if c["platform"] in ("switch", "select", "button")
    ]
    assert controls
    assert all(c["qos"] == 1 and c.get("retain", False) is False for c in controls)


def test_no_number_entities_while_rules_expose_no_tunable_parameters() -> None:
    """Rule thresholds live in the rule files, not in a tunable parameter: no `number`."""
    platforms = {c["platform"] for d in by_device().values() for c in components(d).values()}
    assert platforms == {"sensor", "binary_sensor", "switch", "select", "button"}


def test_a_removed_node_or_probe_gets_an_empty_retained_payload_on_its_topic() -> None:
    """Devices published before and gone now (a node, a probe) get b"" on their own topic."""
    published = device_ids(whole_rig())
    smaller = RigInventory(
        nodes={k: v for k, v in whole_rig().nodes.items() if k != "air"},
        probes=("internal",),
        station=True,
        fans=True,
        rules_engine=True,
        dispatcher=True,
    )
    gone = removals(published, build_discovery(smaller, TOPICS), TOPICS)
    assert [(d.device_id, d.topic, d.payload) for d in gone] == [
        ("air", "homeassistant/device/aigloo_air/config", b""),
        ("probe_outside-1", "homeassistant/device/aigloo_probe_outside-1/config", b""),
    ]
    assert removal(Topics("x", "ha"), "studio").topic == "ha/device/aigloo_studio/config"


def test_a_removed_rule_is_retired_from_the_rules_device() -> None:
    """A deleted rule leaves the rules device: the interim message keeps the other components
    and lists the rule's two components with only their platform, as HA documents."""
    before = by_device()["rules"]
    rig = whole_rig()
    after_rig = RigInventory(nodes=rig.nodes, rules=("ac_off",), rules_engine=True)
    after = by_device(after_rig)["rules"]
    interim = retire_components(published_components(before.payload), after)
    assert interim is not None
    assert interim.topic == after.topic
    cmps = json.loads(interim.payload)["cmps"]
    assert cmps["rule_fans-max-when-hot"] == {"p": "switch"}
    assert cmps["rule_fans-max-when-hot_active"] == {"p": "binary_sensor"}
    assert cmps["rule_ac_off"] == json.loads(after.payload)["cmps"]["rule_ac_off"]
    assert interim.components == after.components  # stubs are not live components
    assert retire_components(after.components, after) is None


def test_models_are_strict_and_serialise_with_abbreviations() -> None:
    """An unknown option is a bug we catch at build time; output uses HA's short keys and
    leaves unset options out."""
    with pytest.raises(ValidationError):
        Sensor(unique_id="x", name="X", state_topic="a/b", colour="red")  # type: ignore[call-arg]
    sensor = Sensor(unique_id="x", name="X", state_topic="a/b")
    assert sensor.model_dump(by_alias=True, exclude_none=True) == {
        "uniq_id": "x",
        "name": "X",
        "p": "sensor",
        "stat_t": "a/b",
    }
    with pytest.raises(ValidationError):
        DeviceConfig.model_validate(
            {"device": {"identifiers": []}, "origin": {"name": "o"}, "components": {}}
        )


def test_a_component_key_used_twice_is_refused() -> None:
    sensor = Sensor(unique_id="x", name="X", state_topic="a/b")
    with pytest.raises(ValueError, match="used twice"):
        merge({"a": sensor}, {"a": sensor})
