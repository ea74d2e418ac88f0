"""The dispatcher's pure routing choice: forward, wake, fall back or refuse, and why."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from aigloo_edge.config import WakePolicyConfig
from aigloo_edge.inference.routing import (
    Decision,
    Forward,
    NodeView,
    Refuse,
    RoutingPolicy,
    StationReading,
    Wake,
    choose,
)
from aigloo_edge.payloads import InferPolicy, PowerStateValue, ThermalPressure

MODEL = "big"
SMALL = "small"
NO_STATION = StationReading()


def awake(name: str, *models: str, **fields: object) -> NodeView:
    """An online, awake node serving `models` (default: MODEL); `fields` override the rest."""
    view = NodeView(node=name, online=True, power="awake", models=models or (MODEL,))
    for key, value in fields.items():
        setattr(view, key, value)
    return view


def asleep(name: str, *models: str, **fields: object) -> NodeView:
    """A node that has gone to sleep (offline, power "sleeping") serving `models`."""
    return awake(name, *models, online=False, power="sleeping", **fields)


def cluster(*views: NodeView) -> dict[str, NodeView]:
    return {view.node: view for view in views}


def routing(
    *,
    wake_allowed: bool = True,
    min_soc_pct: float = 40.0,
    min_solar_w: float = 150.0,
    fallbacks: Mapping[str, str] | None = None,
) -> RoutingPolicy:
    return RoutingPolicy(
        wake=WakePolicyConfig(
            allowed=wake_allowed, min_soc_pct=min_soc_pct, min_solar_w=min_solar_w
        ),
        fallbacks=dict(fallbacks or {}),
    )


def decide(
    nodes: Mapping[str, NodeView],
    *,
    model: str = MODEL,
    policy: RoutingPolicy | None = None,
    station: StationReading = NO_STATION,
    pinned: str | None = None,
    exclude: frozenset[str] = frozenset(),
) -> Decision:
    return choose(model, nodes, policy or routing(), station, pinned=pinned, exclude=exclude)


def refusal(decision: Decision) -> Refuse:
    assert isinstance(decision, Refuse), decision
    return decision


# --- forwarding to ready nodes ----------------------------------------------------------------


def test_forwards_to_the_only_ready_node_with_the_model() -> None:
    """A single awake, online node that has the model gets the request."""
    assert decide(cluster(awake("studio"))) == Forward("studio", MODEL)


def test_ignores_nodes_that_do_not_have_the_model() -> None:
    """Nodes without the model are never chosen, however idle they are."""
    nodes = cluster(
        awake("idle", "other"),
        awake("busy", MODEL, "other", in_flight=5, queue=5),
    )
    assert decide(nodes) == Forward("busy", MODEL)


def test_forwards_the_model_asked_for_on_a_multi_model_node() -> None:
    """A node serving several models is chosen for any of them, and the decision names it."""
    nodes = cluster(awake("studio", "a", "b", "c"))
    assert decide(nodes, model="b") == Forward("studio", "b")


def test_online_node_with_unknown_power_state_counts_as_ready() -> None:
    """An online node that has not published a power state (None) is treated as awake."""
    nodes = cluster(awake("studio", power=None))
    assert decide(nodes) == Forward("studio", MODEL)


@pytest.mark.parametrize(
    ("loads", "expected"),
    [
        pytest.param({"a": (3, 0), "b": (1, 0)}, "b", id="fewer-in-flight"),
        pytest.param({"a": (0, 4), "b": (0, 2)}, "b", id="shorter-queue"),
        pytest.param({"a": (2, 2), "b": (1, 2)}, "b", id="in-flight-plus-queue"),
        pytest.param({"a": (3, 0), "b": (0, 2)}, "b", id="queue-and-in-flight-add-up"),
        pytest.param({"a": (0, 1), "b": (1, 1), "c": (0, 0)}, "c", id="three-nodes"),
    ],
)
def test_least_loaded_ready_node_wins(loads: dict[str, tuple[int, int]], expected: str) -> None:
    """Among ready nodes the one with the smallest in_flight + queue is chosen."""
    nodes = cluster(*(awake(name, in_flight=f, queue=q) for name, (f, q) in loads.items()))
    assert decide(nodes) == Forward(expected, MODEL)


def test_equal_load_is_broken_by_node_name() -> None:
    """With equal load the alphabetically first node name wins, whatever the mapping order."""
    nodes = cluster(
        awake("zulu", in_flight=1),
        awake("alpha", queue=1),
        awake("mike", in_flight=1),
    )
    assert decide(nodes) == Forward("alpha", MODEL)


@pytest.mark.parametrize("hot", ["heavy", "trapping"])
def test_hot_node_loses_to_a_cool_one_even_when_less_loaded(hot: ThermalPressure) -> None:
    """A thermally hot node is passed over for any ready cool node, however busy the cool one."""
    nodes = cluster(
        awake("a-hot", thermal=hot),
        awake("b-cool", thermal="nominal", in_flight=4, queue=6),
    )
    assert decide(nodes) == Forward("b-cool", MODEL)


@pytest.mark.parametrize("cool", [None, "nominal", "moderate", "unknown"])
def test_non_hot_thermal_states_count_as_cool(cool: ThermalPressure | None) -> None:
    """Only "heavy" and "trapping" count as hot; other states and no reading do not."""
    nodes = cluster(awake("a-hot", thermal="heavy"), awake("b", thermal=cool, in_flight=9))
    assert decide(nodes) == Forward("b", MODEL)


def test_hot_node_is_used_when_no_cool_node_is_ready() -> None:
    """A hot node still serves when the only cool node is asleep: no wake is needed."""
    nodes = cluster(awake("hot", thermal="trapping", in_flight=3), asleep("cool"))
    assert decide(nodes) == Forward("hot", MODEL)


def test_among_hot_nodes_the_least_loaded_wins() -> None:
    """When every ready node is hot, load then name decide between them."""
    nodes = cluster(
        awake("a", thermal="heavy", queue=2),
        awake("b", thermal="trapping", queue=1),
    )
    assert decide(nodes) == Forward("b", MODEL)


def test_ready_node_is_preferred_to_waking_a_sleeping_one() -> None:
    """A busy awake node is used rather than waking an idle sleeping one."""
    nodes = cluster(asleep("a-sleepy"), awake("b-busy", in_flight=10, queue=10))
    assert decide(nodes) == Forward("b-busy", MODEL)


# --- nodes that are not ready -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("online", "power"),
    [
        pytest.param(False, "awake", id="offline-awake"),
        pytest.param(False, None, id="offline-unknown"),
        pytest.param(True, "sleeping", id="sleeping"),
        pytest.param(True, "waking", id="waking"),
        pytest.param(True, "unreachable", id="unreachable"),
    ],
)
def test_not_ready_node_is_not_forwarded_to(online: bool, power: PowerStateValue | None) -> None:
    """An offline node, or one sleeping, waking or unreachable, is skipped for a ready one."""
    nodes = cluster(
        awake("a-down", online=online, power=power),
        awake("b-up", in_flight=5),
    )
    assert decide(nodes) == Forward("b-up", MODEL)


@pytest.mark.parametrize(
    ("online", "power"),
    [
        pytest.param(False, "awake", id="offline-awake"),
        pytest.param(False, None, id="offline-unknown"),
        pytest.param(True, "sleeping", id="sleeping"),
        pytest.param(True, "waking", id="waking"),
        pytest.param(True, "unreachable", id="unreachable"),
    ],
)
def test_only_capable_node_not_ready_is_woken_not_forwarded(
    online: bool, power: PowerStateValue | None
) -> None:
    """With no ready alternative, a node that is down or not awake gets a Wake, not a Forward."""
    nodes = cluster(awake("down", online=online, power=power))
    assert decide(nodes) == Wake("down", MODEL)


# --- the rules' InferPolicy -------------------------------------------------------------------


def test_policy_not_allowed_excludes_an_awake_node() -> None:
    """An awake node whose policy forbids use is skipped in favour of an allowed one."""
    nodes = cluster(
        awake("a-banned", policy=InferPolicy(allowed=False, reason="too hot")),
        awake("b-allowed", in_flight=7),
    )
    assert decide(nodes) == Forward("b-allowed", MODEL)


def test_policy_not_allowed_with_nothing_else_refuses_with_the_reason() -> None:
    """With only a forbidden awake node, the request is refused no_worker, giving the reason."""
    nodes = cluster(awake("studio", policy=InferPolicy(allowed=False, reason="cabin too hot")))
    refused = refusal(decide(nodes))
    assert refused.code == "no_worker"
    assert "studio" in refused.message
    assert "cabin too hot" in refused.message
    assert repr(MODEL) in refused.message


def test_policy_not_allowed_without_a_reason_says_not_allowed() -> None:
    """A forbidding policy with no reason is reported as "not allowed"."""
    nodes = cluster(awake("studio", policy=InferPolicy(allowed=False)))
    refused = refusal(decide(nodes))
    assert refused.code == "no_worker"
    assert "studio: not allowed" in refused.message


def test_policy_not_allowed_does_not_wake_a_sleeping_node() -> None:
    """A sleeping node whose policy forbids use is not woken for the request."""
    nodes = cluster(asleep("studio", policy=InferPolicy(allowed=False, reason="maintenance")))
    refused = refusal(decide(nodes))
    assert "maintenance" in refused.message


# --- waking sleeping nodes --------------------------------------------------------------------


def test_only_capable_node_asleep_is_woken_when_allowed() -> None:
    """The one node with the model is asleep and nothing forbids it: wake it for the model."""
    nodes = cluster(asleep("studio"), awake("other", "other-model"))
    assert decide(nodes) == Wake("studio", MODEL)


def test_first_sleeping_node_by_name_is_woken() -> None:
    """When several capable nodes sleep, the alphabetically first one is woken."""
    nodes = cluster(asleep("zulu"), asleep("alpha"), asleep("mike"))
    assert decide(nodes) == Wake("alpha", MODEL)


def test_a_sleeping_node_whose_rules_forbid_waking_is_skipped_for_another() -> None:
    """If the first sleeping node may not be woken, the next one that may is woken instead."""
    nodes = cluster(
        asleep("alpha", policy=InferPolicy(wake=False, reason="quiet hours")),
        asleep("bravo"),
    )
    assert decide(nodes) == Wake("bravo", MODEL)


def test_waking_switched_off_in_config_refuses() -> None:
    """With waking disabled in the dispatcher config, a sleeping node is not woken."""
    nodes = cluster(asleep("studio"))
    refused = refusal(decide(nodes, policy=routing(wake_allowed=False)))
    assert refused.code == "node_asleep_power_saving"
    assert "studio" in refused.message
    assert "switched off" in refused.message


def test_waking_forbidden_by_the_rules_refuses_naming_their_reason() -> None:
    """policy.wake=False stops the wake, and the refusal carries the rules' reason."""
    nodes = cluster(asleep("studio", policy=InferPolicy(wake=False, reason="night mode")))
    refused = refusal(decide(nodes))
    assert refused.code == "node_asleep_power_saving"
    assert "rules do not allow" in refused.message
    assert "studio: night mode" in refused.message


def test_waking_forbidden_by_the_rules_without_reason_says_so() -> None:
    """policy.wake=False with no reason is reported as "no wake allowed"."""
    nodes = cluster(asleep("studio", policy=InferPolicy(wake=False)))
    refused = refusal(decide(nodes))
    assert "studio: no wake allowed" in refused.message


def test_low_battery_and_little_sun_refuses_stating_battery_and_floor() -> None:
    """Battery under min_soc_pct and solar under min_solar_w: refused to save power."""
    nodes = cluster(asleep("studio"))
    refused = refusal(decide(nodes, station=StationReading(soc_pct=23.4, solar_w=80.0)))
    assert refused.code == "node_asleep_power_saving"
    assert "studio" in refused.message
    assert "23%" in refused.message
    assert "40%" in refused.message
    assert "80 W" in refused.message
    assert "150 W" in refused.message


def test_low_battery_and_unknown_solar_refuses() -> None:
    """Battery under the floor with no solar reading is refused; solar is reported unknown."""
    nodes = cluster(asleep("studio"))
    refused = refusal(decide(nodes, station=StationReading(soc_pct=10.0, solar_w=None)))
    assert refused.code == "node_asleep_power_saving"
    assert "unknown" in refused.message
    assert "10%" in refused.message


def test_low_battery_floor_follows_the_config() -> None:
    """The battery floor and solar threshold come from WakePolicyConfig, not fixed values."""
    nodes = cluster(asleep("studio"))
    policy = routing(min_soc_pct=70.0, min_solar_w=500.0)
    refused = refusal(
        decide(nodes, policy=policy, station=StationReading(soc_pct=60.0, solar_w=300.0))
    )
    assert refused.code == "node_asleep_power_saving"
    assert "60%" in refused.message
    assert "70%" in refused.message
    assert "500 W" in refused.message


@pytest.mark.parametrize(
    "station",
    [
        pytest.param(StationReading(soc_pct=None, solar_w=None), id="battery-unknown"),
        pytest.param(StationReading(soc_pct=None, solar_w=0.0), id="battery-unknown-dark"),
        pytest.param(StationReading(soc_pct=40.0, solar_w=0.0), id="battery-at-floor"),
        pytest.param(StationReading(soc_pct=95.0, solar_w=None), id="battery-full"),
        pytest.param(StationReading(soc_pct=10.0, solar_w=150.0), id="low-battery-solar-at-min"),
        pytest.param(StationReading(soc_pct=10.0, solar_w=600.0), id="low-battery-strong-sun"),
    ],
)
def test_wake_is_allowed_by_battery_or_sun(station: StationReading) -> None:
    """Waking goes ahead with battery unknown or at/above the floor, or solar at/above min."""
    nodes = cluster(asleep("studio"))
    assert decide(nodes, station=station) == Wake("studio", MODEL)


def test_waking_switched_off_in_config_beats_a_full_battery() -> None:
    """Config allowed=False forbids waking even when power is plentiful."""
    nodes = cluster(asleep("studio"))
    decision = decide(
        nodes,
        policy=routing(wake_allowed=False),
        station=StationReading(soc_pct=100.0, solar_w=1000.0),
    )
    assert refusal(decision).code == "node_asleep_power_saving"


def test_wake_config_off_does_not_affect_forwarding_to_ready_nodes() -> None:
    """Disabling waking only matters for sleeping nodes; ready ones are still used."""
    nodes = cluster(awake("studio"), asleep("mbp"))
    decision = decide(
        nodes, policy=routing(wake_allowed=False), station=StationReading(soc_pct=5.0)
    )
    assert decision == Forward("studio", MODEL)


# --- fallbacks --------------------------------------------------------------------------------


def test_falls_back_to_a_smaller_model_on_a_ready_node() -> None:
    """No node has the model, but its fallback runs on a ready node: forward the fallback."""
    nodes = cluster(awake("phone", SMALL))
    decision = decide(nodes, policy=routing(fallbacks={MODEL: SMALL}))
    assert decision == Forward("phone", SMALL)


def test_falls_back_when_the_model_node_may_not_be_woken() -> None:
    """The model's node sleeps and waking is blocked; a ready node with the fallback serves."""
    nodes = cluster(asleep("studio", MODEL), awake("phone", SMALL))
    policy = routing(fallbacks={MODEL: SMALL})
    decision = decide(nodes, policy=policy, station=StationReading(soc_pct=5.0, solar_w=0.0))
    assert decision == Forward("phone", SMALL)


def test_falls_back_when_the_model_node_is_forbidden() -> None:
    """The model's only node is ruled out by policy; the fallback on another node is used."""
    nodes = cluster(
        awake("studio", MODEL, policy=InferPolicy(allowed=False)),
        awake("phone", SMALL),
    )
    decision = decide(nodes, policy=routing(fallbacks={MODEL: SMALL}))
    assert decision == Forward("phone", SMALL)


def test_fallback_is_not_woken_for_the_original_model_refusal_stands() -> None:
    """If the fallback would need a wake, it is not used: the original refusal is returned."""
    nodes = cluster(asleep("phone", SMALL))
    decision = decide(nodes, policy=routing(fallbacks={MODEL: SMALL}))
    refused = refusal(decision)
    assert refused.code == "unknown_model"
    assert repr(MODEL) in refused.message


def test_fallback_needing_a_wake_keeps_the_original_power_refusal() -> None:
    """Model node asleep with low battery, fallback node also asleep: original refusal stands."""
    nodes = cluster(asleep("studio", MODEL), asleep("phone", SMALL))
    station = StationReading(soc_pct=5.0, solar_w=0.0)
    decision = decide(nodes, policy=routing(fallbacks={MODEL: SMALL}), station=station)
    refused = refusal(decision)
    assert refused.code == "node_asleep_power_saving"
    assert repr(MODEL) in refused.message
    assert "studio" in refused.message


def test_waking_for_the_model_is_preferred_to_a_ready_fallback() -> None:
    """The fallback is used only after a refusal: an allowed wake for the model comes first."""
    nodes = cluster(asleep("studio", MODEL), awake("phone", SMALL))
    decision = decide(nodes, policy=routing(fallbacks={MODEL: SMALL}))
    assert decision == Wake("studio", MODEL)


def test_fallback_is_not_used_when_the_model_is_ready() -> None:
    """With a ready node for the model, the fallback is ignored even if less loaded."""
    nodes = cluster(awake("studio", MODEL, in_flight=9), awake("phone", SMALL))
    decision = decide(nodes, policy=routing(fallbacks={MODEL: SMALL}))
    assert decision == Forward("studio", MODEL)


def test_fallback_refused_too_returns_the_original_refusal() -> None:
    """When neither model nor fallback has any node, the refusal is about the original model."""
    nodes = cluster(awake("studio", "other"))
    refused = refusal(decide(nodes, policy=routing(fallbacks={MODEL: SMALL})))
    assert refused.code == "unknown_model"
    assert f"no node serves {MODEL!r}" in refused.message


def test_fallback_to_the_same_model_is_ignored() -> None:
    """A fallback naming the model itself changes nothing."""
    nodes = cluster(awake("studio", "other"))
    refused = refusal(decide(nodes, policy=routing(fallbacks={MODEL: MODEL})))
    assert refused.code == "unknown_model"


def test_fallbacks_are_not_chained() -> None:
    """Only the model's own fallback is tried, not the fallback's fallback."""
    nodes = cluster(awake("phone", "tiny"))
    policy = routing(fallbacks={MODEL: SMALL, SMALL: "tiny"})
    assert refusal(decide(nodes, policy=policy)).code == "unknown_model"


def test_fallback_respects_pinning() -> None:
    """A pinned request falls back only on the pinned node."""
    nodes = cluster(awake("studio", "other"), awake("phone", SMALL))
    policy = routing(fallbacks={MODEL: SMALL})
    assert refusal(decide(nodes, policy=policy, pinned="studio")).code == "unknown_model"
    assert decide(nodes, policy=policy, pinned="phone") == Forward("phone", SMALL)


def test_fallback_respects_exclusions() -> None:
    """An excluded node is not used for the fallback either."""
    nodes = cluster(awake("phone", SMALL))
    policy = routing(fallbacks={MODEL: SMALL})
    decision = decide(nodes, policy=policy, exclude=frozenset({"phone"}))
    assert refusal(decision).code == "unknown_model"


# --- pinning ----------------------------------------------------------------------------------


def test_pinned_request_goes_only_to_the_pinned_node() -> None:
    """Pinning overrides load: the pinned node is used even when another is idle."""
    nodes = cluster(awake("a-idle"), awake("b-busy", in_flight=5, queue=5))
    assert decide(nodes, pinned="b-busy") == Forward("b-busy", MODEL)


def test_pinned_hot_node_is_used_despite_a_cool_one() -> None:
    """Pinning overrides thermal preference too."""
    nodes = cluster(awake("cool"), awake("hot", thermal="heavy"))
    assert decide(nodes, pinned="hot") == Forward("hot", MODEL)


def test_pinned_sleeping_node_is_woken_rather_than_using_another() -> None:
    """A pinned node that sleeps is woken; ready nodes elsewhere are not considered."""
    nodes = cluster(awake("ready"), asleep("pinned"))
    assert decide(nodes, pinned="pinned") == Wake("pinned", MODEL)


def test_pinned_forbidden_node_refuses_rather_than_using_another() -> None:
    """A pinned node ruled out by policy leads to a refusal, not a forward elsewhere."""
    nodes = cluster(awake("ready"), awake("pinned", policy=InferPolicy(allowed=False)))
    refused = refusal(decide(nodes, pinned="pinned"))
    assert refused.code == "no_worker"
    assert "pinned" in refused.message


@pytest.mark.parametrize("pinned", ["phone", "ghost"])
def test_pinned_to_a_node_without_the_model_refuses_naming_it(pinned: str) -> None:
    """Pinned to a node lacking the model (or unknown): no_worker, naming the node and model."""
    nodes = cluster(awake("studio"), awake("phone", SMALL))
    refused = refusal(decide(nodes, pinned=pinned))
    assert refused.code == "no_worker"
    assert f"node {pinned!r} does not serve {MODEL!r}" in refused.message
    assert str(sorted([MODEL, SMALL])) in refused.message


# --- exclusions (retries) ---------------------------------------------------------------------


def test_excluded_node_is_skipped_for_the_next_best() -> None:
    """A retry excluding the node already tried goes to another ready node."""
    nodes = cluster(awake("a-idle"), awake("b-busy", in_flight=3))
    assert decide(nodes) == Forward("a-idle", MODEL)
    assert decide(nodes, exclude=frozenset({"a-idle"})) == Forward("b-busy", MODEL)


def test_excluded_ready_node_leads_to_waking_another() -> None:
    """With the only ready node excluded, a sleeping capable node is woken."""
    nodes = cluster(awake("tried"), asleep("sleepy"))
    assert decide(nodes, exclude=frozenset({"tried"})) == Wake("sleepy", MODEL)


def test_all_capable_nodes_excluded_refuses_saying_already_tried() -> None:
    """When every capable node has been tried, the refusal lists them as already tried."""
    nodes = cluster(awake("b-node"), awake("a-node"), awake("c-node", "other"))
    refused = refusal(decide(nodes, exclude=frozenset({"b-node", "a-node"})))
    assert refused.code == "no_worker"
    assert "already tried a-node, b-node" in refused.message


def test_no_exclusions_means_no_already_tried_note() -> None:
    """A first attempt's refusal does not mention retries."""
    refused = refusal(decide(cluster(awake("studio", "other"))))
    assert "already tried" not in refused.message


# --- nobody serves the model ------------------------------------------------------------------


def test_model_nobody_serves_refuses_listing_the_cluster_models() -> None:
    """An unserved model is refused unknown_model, listing (sorted, deduplicated) what is served."""
    nodes = cluster(
        awake("studio", "qwen", "llama"),
        asleep("mbp", "llama", "gemma"),
        awake("phone", "phi", online=False),
    )
    refused = refusal(decide(nodes, model="mystery"))
    assert refused.code == "unknown_model"
    assert "no node serves 'mystery'" in refused.message
    assert "['gemma', 'llama', 'phi', 'qwen']" in refused.message


def test_empty_cluster_refuses_unknown_model() -> None:
    """With no nodes known at all, every request is refused unknown_model."""
    refused = refusal(decide({}))
    assert refused.code == "unknown_model"
    assert "the cluster serves []" in refused.message


def test_choose_does_not_mutate_the_node_views() -> None:
    """Routing is pure: the node views are left exactly as they were."""
    nodes = cluster(awake("a", in_flight=1), asleep("b"))
    before = {name: NodeView(**vars(view)) for name, view in nodes.items()}
    decide(nodes, exclude=frozenset({"a"}))
    assert nodes == before
