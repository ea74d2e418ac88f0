"""The topic contract (v1): every topic in the project is built or matched here, nowhere else.

Each topic is a `TopicSpec`: a template such as ``{base}/nodes/{node}/telemetry``, whether it is
retained, and the payload it carries. `Topics` binds the specs to one base topic (``aigloo`` by
default; a fleet uses e.g. ``sites/north/aigloo``) and offers one builder per topic plus `match`.
`docs/topics.md` documents the same table; a test keeps the two in step.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from aigloo_edge.errors import TopicError

_ID_PATTERN: Final = re.compile(r"[a-z0-9_-]{1,64}")
# Request ids are chosen by clients (uuids, `chatcmpl-…`), so they may also carry A-Z, `.`, `:`.
_REQUEST_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_PLACEHOLDER: Final = re.compile(r"\{(\w+)\}")
DEFAULT_BASE: Final = "aigloo"
DEFAULT_DISCOVERY_PREFIX: Final = "homeassistant"


class Retain(StrEnum):
    """How a topic's messages are kept by the broker."""

    YES = "yes"
    NO = "no"
    EXPIRING = "yes, with message expiry"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One row of the topic contract."""

    name: str
    template: str
    retain: Retain
    payload: str
    summary: str

    @property
    def placeholders(self) -> tuple[str, ...]:
        return tuple(_PLACEHOLDER.findall(self.template))


def _spec(name: str, template: str, retain: Retain, payload: str, summary: str) -> TopicSpec:
    return TopicSpec(name, template, retain, payload, summary)


R = Retain
SPECS: Final[tuple[TopicSpec, ...]] = (
    _spec(
        "node_availability",
        "{base}/nodes/{node}/availability",
        R.YES,
        "availability",
        "`online` / `offline` (the agent's last will)",
    ),
    _spec(
        "node_info",
        "{base}/nodes/{node}/info",
        R.YES,
        "NodeInfo",
        "role, hardware, OS, version, inference models, memory",
    ),
    _spec(
        "node_telemetry",
        "{base}/nodes/{node}/telemetry",
        R.EXPIRING,
        "NodeTelemetry",
        "cpu, memory, disk, net, battery, temperatures, power, thermal pressure, load",
    ),
    _spec(
        "node_power",
        "{base}/nodes/{node}/power",
        R.YES,
        "PowerState",
        "`awake` / `sleeping` / `waking` / `unreachable` (+ reason)",
    ),
    _spec(
        "node_power_set", "{base}/nodes/{node}/power/set", R.NO, "PowerCommand", "`sleep` / `wake`"
    ),
    _spec(
        "node_infer",
        "{base}/nodes/{node}/infer",
        R.NO,
        "InferRequest",
        "an inference request for that node's worker",
    ),
    _spec(
        "infer_request",
        "{base}/infer/request",
        R.NO,
        "InferRequest",
        "an inference request for the cluster (the dispatcher)",
    ),
    _spec(
        "infer_reply",
        "{base}/infer/reply/{client}/{request}",
        R.NO,
        "InferReply",
        "stream chunks, then exactly one final message",
    ),
    _spec("infer_cancel", "{base}/infer/cancel", R.NO, "InferCancel", "`{id}` of a request"),
    _spec(
        "infer_policy",
        "{base}/infer/policy/{node}",
        R.YES,
        "InferPolicy",
        "may the dispatcher use this node, and wake it (set by the rules)",
    ),
    _spec(
        "battery",
        "{base}/power/battery",
        R.YES,
        "Battery",
        "SoC %, watts in/out, remaining minutes, outputs, source",
    ),
    _spec("solar", "{base}/power/solar", R.YES, "Solar", "solar input watts"),
    _spec(
        "power_output_set",
        "{base}/power/{output}/set",
        R.NO,
        "OutputCommand",
        "`on` / `off` for a station output (`ac`, `dc`)",
    ),
    _spec(
        "env_climate",
        "{base}/env/{probe}/climate",
        R.YES,
        "Climate",
        "temperature °C, humidity %, sensor battery %, RSSI",
    ),
    _spec(
        "fans_profile",
        "{base}/fans/profile",
        R.YES,
        "FanProfileState",
        "`off` / `quiet` / `normal` / `max` and duty %",
    ),
    _spec(
        "fans_profile_set",
        "{base}/fans/profile/set",
        R.NO,
        "FanProfileCommand",
        "a fan profile to apply",
    ),
    _spec(
        "rule_state",
        "{base}/rules/{rule}/state",
        R.YES,
        "RuleState",
        "enabled, phase (idle/pending/active/cooldown/disabled/tripped), since, last fired, "
        "why and the values that decided it",
    ),
    _spec("rule_set", "{base}/rules/{rule}/set", R.NO, "RuleCommand", "`enable` / `disable`"),
    _spec(
        "rules_events",
        "{base}/rules/events",
        R.NO,
        "RuleEvent",
        "every firing, release, command, held command, trip and reload, with its reason",
    ),
    _spec(
        "bridge_availability",
        "{base}/bridge/{component}/availability",
        R.YES,
        "availability",
        "`online` / `offline` of a component that is not a node",
    ),
    _spec(
        "bridge_health",
        "{base}/bridge/{component}/health",
        R.YES,
        "BridgeHealth",
        "version, uptime, counters of a component's session",
    ),
    _spec(
        "bridge_rejected",
        "{base}/bridge/{component}/rejected",
        R.NO,
        "BridgeRejected",
        "rejected inputs: topic, reason, counts (rate-limited)",
    ),
    _spec(
        "hass_device_config",
        "{discovery}/device/aigloo_{device}/config",
        R.YES,
        "HA discovery",
        "Home Assistant device discovery",
    ),
)
SPEC_BY_NAME: Final = {spec.name: spec for spec in SPECS}


def validate_id(kind: str, value: str) -> str:
    """Return `value` if it is a valid id (``[a-z0-9_-]``, 1-64 chars), else raise TopicError.

    A `request` id may also use ``A-Z``, ``.`` and ``:`` (1-128 chars), as payloads allow.
    """
    if kind == "request" and isinstance(value, str) and _REQUEST_ID_PATTERN.fullmatch(value):
        return value
    if not isinstance(value, str) or not _ID_PATTERN.fullmatch(value):
        raise TopicError(
            f"invalid {kind} id {value!r}: use 1-64 characters from a-z, 0-9, '_' and '-'"
        )
    return value


def validate_base(base: str, *, what: str = "base topic") -> str:
    """Return `base` if it is a usable topic prefix: non-empty levels, no wildcards, no `$`."""
    levels = base.split("/")
    if not base or any(not level for level in levels):
        raise TopicError(
            f"invalid {what} {base!r}: levels must be non-empty (no leading, "
            "trailing or double '/')"
        )
    if any(ch in base for ch in "+#\x00") or base.startswith("$"):
        raise TopicError(f"invalid {what} {base!r}: no wildcards ('+', '#'), NUL or leading '$'")
    return base


@dataclass(frozen=True, slots=True)
class TopicMatch:
    """A concrete topic recognised as one row of the contract, with its ids."""

    spec: TopicSpec
    params: dict[str, str]


class Topics:
    """The contract bound to one base topic and one Home Assistant discovery prefix."""

    def __init__(
        self, base: str = DEFAULT_BASE, discovery_prefix: str = DEFAULT_DISCOVERY_PREFIX
    ) -> None:
        self.base = validate_base(base)
        self.discovery_prefix = validate_base(discovery_prefix, what="discovery prefix")

    def __repr__(self) -> str:
        return f"Topics(base={self.base!r})"

    def build(self, name: str, **ids: str) -> str:
        """Build the topic `name` from SPECS with every placeholder's id validated."""
        spec = SPEC_BY_NAME[name]
        expected = set(spec.placeholders) - {"base", "discovery"}
        if set(ids) != expected:
            raise TopicError(f"topic {name} takes ids {sorted(expected)}, got {sorted(ids)}")
        values = {key: validate_id(key, value) for key, value in ids.items()}
        return spec.template.format(base=self.base, discovery=self.discovery_prefix, **values)

    def filter(self, name: str, **ids: str) -> str:
        """A subscription filter for `name`: ids given are fixed, the others become `+`."""
        spec = SPEC_BY_NAME[name]
        values = {
            key: validate_id(key, ids[key]) if key in ids else "+"
            for key in spec.placeholders
            if key not in ("base", "discovery")
        }
        built = spec.template.format(base=self.base, discovery=self.discovery_prefix, **values)
        # A wildcard must fill its whole level (`aigloo_+` is not a valid filter level).
        return "/".join("+" if "+" in level else level for level in built.split("/"))

    def all(self) -> str:
        """The filter for every topic under the base."""
        return f"{self.base}/#"

    def tree(self, *levels: str) -> str:
        """The filter for a subtree, e.g. `tree("nodes", "studio")` → `aigloo/nodes/studio/#`."""
        return "/".join([self.base, *(validate_id("topic level", lv) for lv in levels), "#"])

    def discovery_tree(self) -> str:
        """The filter for everything under the Home Assistant discovery prefix."""
        return f"{self.discovery_prefix}/#"

    def match(self, topic: str) -> TopicMatch | None:
        """Recognise a concrete topic as a contract row, or None if it is not one."""
        levels = topic.split("/")
        # Only rows with as many levels can match; they are tried in SPECS order.
        for row in _rows(self.base, self.discovery_prefix).get(len(levels), ()):
            if row.pick(levels) != row.literals:
                continue
            params: dict[str, str] = {}
            for slot in row.slots:
                value = _match_slot(slot, levels[slot.index])
                if value is None:
                    break
                params[slot.name] = value
            else:
                return TopicMatch(row.spec, params)
        return None

    # Typed builders, one per row, so call sites read like the contract.
    def node_availability(self, node: str) -> str:
        return self.build("node_availability", node=node)

    def node_info(self, node: str) -> str:
        return self.build("node_info", node=node)

    def node_telemetry(self, node: str) -> str:
        return self.build("node_telemetry", node=node)

    def node_power(self, node: str) -> str:
        return self.build("node_power", node=node)

    def node_power_set(self, node: str) -> str:
        return self.build("node_power_set", node=node)

    def node_infer(self, node: str) -> str:
        return self.build("node_infer", node=node)

    def infer_request(self) -> str:
        return self.build("infer_request")

    def infer_reply(self, client: str, request: str) -> str:
        return self.build("infer_reply", client=client, request=request)

    def infer_cancel(self) -> str:
        return self.build("infer_cancel")

    def infer_policy(self, node: str) -> str:
        return self.build("infer_policy", node=node)

    def battery(self) -> str:
        return self.build("battery")

    def solar(self) -> str:
        return self.build("solar")

    def power_output_set(self, output: str) -> str:
        return self.build("power_output_set", output=output)

    def env_climate(self, probe: str) -> str:
        return self.build("env_climate", probe=probe)

    def fans_profile(self) -> str:
        return self.build("fans_profile")

    def fans_profile_set(self) -> str:
        return self.build("fans_profile_set")

    def rule_state(self, rule: str) -> str:
        return self.build("rule_state", rule=rule)

    def rule_set(self, rule: str) -> str:
        return self.build("rule_set", rule=rule)

    def rules_events(self) -> str:
        return self.build("rules_events")

    def bridge_availability(self, component: str) -> str:
        return self.build("bridge_availability", component=component)

    def bridge_health(self, component: str) -> str:
        return self.build("bridge_health", component=component)

    def bridge_rejected(self, component: str) -> str:
        return self.build("bridge_rejected", component=component)

    def plain_value(self, state_topic: str, field: str) -> str:
        """One field of a JSON state topic as plain text: `aigloo/power/battery/soc_pct`.

        `state_topic` may be a filter (`aigloo/env/+/climate`), as in the `plain` role's grants.
        """
        return f"{state_topic}/{validate_id('field', field)}"

    def hass_device_config(self, device: str) -> str:
        return self.build("hass_device_config", device=device)

    def hass_status(self) -> str:
        """Home Assistant's own birth/last-will topic (not ours, so not in SPECS)."""
        return f"{self.discovery_prefix}/status"


class _KeepPlaceholders(dict[str, str]):
    """format_map helper: fills the prefixes and leaves id placeholders as `{name}`."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@dataclass(frozen=True, slots=True)
class _Slot:
    """A pattern level with an id in it, such as `aigloo_{device}`: head, id name, tail."""

    index: int  # of the level in the topic
    head: str
    name: str
    tail: str


@dataclass(frozen=True, slots=True)
class _Row:
    """One row's pattern, split into levels once: the literal levels (picked from a topic's
    levels in one call and compared at once) and the levels an id fills."""

    spec: TopicSpec
    pick: Callable[[list[str]], object]  # the topic's levels where the pattern has literals
    literals: object  # what `pick` must return: a level, or a tuple of levels
    slots: tuple[_Slot, ...]


@functools.lru_cache(maxsize=32)
def _rows(base: str, discovery: str) -> dict[int, tuple[_Row, ...]]:
    """Every row's pattern under one base and discovery prefix, by level count, in SPECS order
    (`match` runs per message; formatting and splitting every row each time was its cost)."""
    prefix = _KeepPlaceholders({"base": base, "discovery": discovery})
    by_length: dict[int, list[_Row]] = {}
    for spec in SPECS:
        levels = spec.template.format_map(prefix).split("/")
        literal: dict[int, str] = {}
        slots: list[_Slot] = []
        for index, level in enumerate(levels):
            found = _PLACEHOLDER.search(level)
            if found is None:
                literal[index] = level
            else:
                head, tail = level[: found.start()], level[found.end() :]
                slots.append(_Slot(index, head, found.group(1), tail))
        values = tuple(literal.values())
        pick: Callable[[list[str]], object] = (
            operator.itemgetter(*literal) if literal else _no_levels  # (every row has some)
        )
        row = _Row(spec, pick, values[0] if len(values) == 1 else values, tuple(slots))
        by_length.setdefault(len(levels), []).append(row)
    return {length: tuple(rows) for length, rows in by_length.items()}


def _no_levels(_levels: list[str]) -> object:
    return ()


def _match_slot(slot: _Slot, level: str) -> str | None:
    """The id in one topic level for a slot such as `aigloo_{device}`, if valid."""
    if not (level.startswith(slot.head) and level.endswith(slot.tail)):
        return None
    value = level[len(slot.head) : len(level) - len(slot.tail)]
    try:
        return validate_id(slot.name, value)
    except TopicError:
        return None
