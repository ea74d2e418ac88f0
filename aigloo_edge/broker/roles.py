"""Broker roles and their ACL grants: the one table the ACL file and its tests come from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from aigloo_edge.plain.fields import plain_value_filters, source_filters
from aigloo_edge.topics import Topics

Access = Literal["read", "write", "readwrite"]
NODE_ROLES: Final = ("studio", "mbp", "mini", "air")
SERVICE_ROLES: Final = (
    "sensors",
    "rules",
    "dispatcher",
    "gateway",
    "homeassistant",
    "mobile",
    "plain",
    "admin",
)
# Several dispatchers may share the load; each needs its own availability and reply subtree.
DISPATCHER_INSTANCES: Final = ("dispatcher", "dispatcher-2", "dispatcher-3")
ALL_ROLES: Final = NODE_ROLES + SERVICE_ROLES


@dataclass(frozen=True, slots=True)
class Grant:
    access: Access
    topic: str
    why: str

    def allows(self, action: Literal["read", "write"]) -> bool:
        return self.access in (action, "readwrite")


def _commands(topics: Topics) -> list[str]:
    """Every command topic a controller (rules, HA, phone) may send."""
    return [
        topics.filter("node_power_set"),
        topics.fans_profile_set(),
        topics.filter("power_output_set"),
        topics.filter("rule_set"),
    ]


def _own_bridge(topics: Topics, role: str) -> Grant:
    return Grant(
        "readwrite",
        topics.tree("bridge", role),
        "own availability, health and rejected-input reports",
    )


WAKER_NODES: Final = ("mini",)


def node_grants(topics: Topics, node: str) -> list[Grant]:
    grants = [
        Grant("readwrite", topics.tree("nodes", node), "own state; own commands (power/set)"),
        Grant("read", topics.infer_cancel(), "cancels for requests it may be running"),
        Grant("write", topics.tree("infer", "reply"), "inference replies (stream chunks, final)"),
        _own_bridge(topics, node),
    ]
    if node in WAKER_NODES:
        grants += [
            Grant("read", topics.filter("node_power_set"), "waker: wake commands for peers"),
            Grant("read", topics.filter("node_availability"), "waker: sees a woken peer arrive"),
            Grant("write", topics.filter("node_power"), "waker: peers' waking/unreachable"),
        ]
    return grants


def service_grants(topics: Topics, role: str) -> list[Grant]:
    everything = topics.all()
    commands = [Grant("write", c, "command") for c in _commands(topics)]
    table: dict[str, list[Grant]] = {
        "sensors": [
            Grant("read", "#", "mqtt_map: readings other systems publish, wherever they are"),
            Grant("write", topics.battery(), "station state"),
            Grant("write", topics.solar(), "solar input"),
            Grant("write", topics.tree("env"), "probe readings"),
            Grant("write", topics.fans_profile(), "fan profile state"),
            Grant("read", topics.filter("power_output_set"), "station output commands"),
            Grant("read", topics.fans_profile_set(), "fan profile commands"),
            Grant(
                "write",
                topics.power_output_set("dc"),
                "fans on the 12 V output (fans driver ecoflow-dc)",
            ),
            Grant(
                "readwrite",
                topics.tree("fans", "driver"),
                "a fan controller board's own topics (fans driver mqtt)",
            ),
        ],
        "rules": [
            Grant("read", "#", "every signal, also custom signals outside the base topic"),
            Grant("write", topics.tree("rules"), "rule state and events"),
            Grant("write", topics.filter("infer_policy"), "may the dispatcher use/wake a node"),
            *commands,
        ],
        "dispatcher": [
            Grant("read", everything, "nodes, power and requests"),
            Grant("write", topics.filter("node_infer"), "requests to workers"),
            Grant(
                "write",
                topics.tree("infer", "reply"),
                "answers it gives itself (errors, no worker)",
            ),
            Grant("write", topics.infer_cancel(), "cancels forwarded to workers"),
            Grant("write", topics.filter("node_power_set"), "wake a node for heavy work"),
            *(_own_bridge(topics, name) for name in DISPATCHER_INSTANCES[1:]),
        ],
        "gateway": [
            Grant("write", topics.infer_request(), "HTTP requests, to the dispatcher"),
            Grant("write", topics.infer_cancel(), "cancels when an HTTP client goes away"),
            Grant("read", topics.tree("infer", "reply", "gateway"), "its replies"),
            Grant("read", topics.filter("node_info"), "models served, for /v1/models"),
            Grant("read", topics.filter("node_availability"), "which nodes are up"),
        ],
        "homeassistant": [
            Grant("read", everything, "every state"),
            Grant("readwrite", topics.discovery_tree(), "discovery and HA's status"),
            *commands,
        ],
        "mobile": [
            Grant("read", everything, "every state and inference replies"),
            Grant("write", topics.infer_request(), "prompts to the cluster"),
            Grant("write", topics.infer_cancel(), "cancel own prompts"),
            *commands,
        ],
        "plain": [
            *(
                Grant("read", f, "JSON state it turns into plain values")
                for f in source_filters(topics)
            ),
            *(
                Grant("write", f, "one field of a state topic as plain text")
                for f in plain_value_filters(topics)
            ),
        ],
        "admin": [
            Grant("readwrite", "#", "everything"),
            Grant("read", "$SYS/#", "broker statistics"),
        ],
    }
    grants = table[role]
    if role != "admin":
        grants.append(_own_bridge(topics, role))
    return grants


def role_grants(topics: Topics) -> dict[str, list[Grant]]:
    grants = {node: node_grants(topics, node) for node in NODE_ROLES}
    grants.update({role: service_grants(topics, role) for role in SERVICE_ROLES})
    return grants


def render_acl(topics: Topics) -> str:
    lines = [
        "# Aigloo Edge ACL, written by `aigloo broker init`; edit the role table, not this file.",
        f"# base topic: {topics.base}",
        "",
    ]
    for role, grants in role_grants(topics).items():
        lines.append(f"user {role}")
        for grant in grants:
            lines.append(f"# {grant.why}")
            lines.append(f"topic {grant.access} {grant.topic}")
        lines.append("")
    return "\n".join(lines)
