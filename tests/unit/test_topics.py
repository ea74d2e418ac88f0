"""The topic contract: builders, filters, matching, id and base validation, and its doc."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.client import topic_matches_sub

from aigloo_edge.contract_doc import contract_rows
from aigloo_edge.errors import TopicError
from aigloo_edge.topics import SPECS, Topics, validate_id

DOC = Path(__file__).resolve().parents[2] / "docs" / "topics.md"
ids = st.from_regex(r"[a-z0-9_-]{1,64}", fullmatch=True)


def _build_any(topics: Topics, spec_name: str, value: str) -> tuple[str, dict[str, str]]:
    spec = next(s for s in SPECS if s.name == spec_name)
    params = {p: value for p in spec.placeholders if p not in ("base", "discovery")}
    return topics.build(spec_name, **params), params


def test_default_topics_follow_the_design() -> None:
    """The builders give the topics DESIGN.md lists, under the default base `aigloo`."""
    t = Topics()
    assert t.node_telemetry("studio") == "aigloo/nodes/studio/telemetry"
    assert t.node_power_set("mbp") == "aigloo/nodes/mbp/power/set"
    assert t.infer_reply("phone", "r-1") == "aigloo/infer/reply/phone/r-1"
    assert t.power_output_set("ac") == "aigloo/power/ac/set"
    assert t.env_climate("internal") == "aigloo/env/internal/climate"
    assert t.fans_profile_set() == "aigloo/fans/profile/set"
    assert t.rule_state("fans-max") == "aigloo/rules/fans-max/state"
    assert t.hass_device_config("studio") == "homeassistant/device/aigloo_studio/config"
    assert t.hass_status() == "homeassistant/status"


def test_base_topic_is_configurable_with_several_levels() -> None:
    """A fleet's site prefix works as a base topic."""
    t = Topics("sites/north/aigloo")
    assert t.battery() == "sites/north/aigloo/power/battery"
    assert t.match("sites/north/aigloo/power/battery") is not None
    assert Topics().match("sites/north/aigloo/power/battery") is None


@pytest.mark.parametrize("bad", ["Studio", "my node", "a/b", "+", "#", "", "x" * 65, "é"])
def test_invalid_ids_are_refused_with_a_clear_error(bad: str) -> None:
    """Ids outside [a-z0-9_-]{1,64} raise TopicError naming the id and the rule."""
    with pytest.raises(TopicError, match=r"a-z, 0-9"):
        Topics().node_telemetry(bad)


@pytest.mark.parametrize("bad", ["", "/aigloo", "aigloo/", "a//b", "a/+/b", "a/#", "$SYS"])
def test_invalid_base_topics_are_refused(bad: str) -> None:
    """Empty levels, wildcards and `$` prefixes cannot be a base topic."""
    with pytest.raises(TopicError):
        Topics(bad)


def test_build_checks_the_ids_given() -> None:
    """Missing or extra ids are an error, not a malformed topic."""
    t = Topics()
    with pytest.raises(TopicError, match="takes ids"):
        t.build("node_power")
    with pytest.raises(TopicError, match="takes ids"):
        t.build("battery", node="studio")


def test_filters_wildcard_the_ids_not_given() -> None:
    """`filter` turns unspecified ids into `+` and keeps the given ones."""
    t = Topics()
    assert t.filter("node_telemetry") == "aigloo/nodes/+/telemetry"
    assert t.filter("infer_reply", client="phone") == "aigloo/infer/reply/phone/+"
    assert t.filter("hass_device_config") == "homeassistant/device/+/config"
    assert t.all() == "aigloo/#"


@given(value=ids, index=st.integers(0, len(SPECS) - 1))
def test_every_built_topic_matches_back_to_its_row(value: str, index: int) -> None:
    """match() recognises every built topic as its own row with the same ids."""
    t = Topics("site/aigloo")
    spec = SPECS[index]
    topic, params = _build_any(t, spec.name, value)
    found = t.match(topic)
    assert found is not None
    assert found.spec.name == spec.name
    assert found.params == params


@given(value=ids, index=st.integers(0, len(SPECS) - 1))
def test_every_built_topic_matches_its_wildcard_filter(value: str, index: int) -> None:
    """A row's filter (all ids wildcarded) matches every topic built for that row."""
    t = Topics()
    spec = SPECS[index]
    topic, _ = _build_any(t, spec.name, value)
    assert topic_matches_sub(t.filter(spec.name), topic)


def test_foreign_topics_do_not_match() -> None:
    """Topics outside the contract, or with invalid ids, are not recognised."""
    t = Topics()
    for topic in [
        "aigloo/nodes/studio",
        "aigloo/nodes/Studio/info",
        "other/nodes/x/info",
        "aigloo/nodes/studio/telemetry/extra",
        "homeassistant/device/studio/config",
    ]:
        assert t.match(topic) is None, topic


def test_validate_id_returns_the_id() -> None:
    assert validate_id("node", "studio") == "studio"


def test_doc_and_code_agree() -> None:
    """docs/topics.md lists exactly the rows of topics.SPECS, as `aigloo topics` prints them."""
    doc_rows = [line for line in DOC.read_text().splitlines() if re.match(r"\| `", line)]
    contract = [row for row in doc_rows if " | " in row and row.count("|") == 6]
    assert contract == contract_rows(Topics())


def test_request_ids_in_reply_topics_may_use_client_characters() -> None:
    """A reply topic's request level takes the payload's request-id characters (A-Z . :)."""
    t = Topics()
    topic = t.infer_reply("phone", "chatcmpl-AB.12:x")
    assert topic == "aigloo/infer/reply/phone/chatcmpl-AB.12:x"
    matched = t.match(topic)
    assert matched is not None
    assert matched.params == {"client": "phone", "request": "chatcmpl-AB.12:x"}
    with pytest.raises(TopicError):
        t.infer_reply("Phone", "r1")  # other ids stay lower-case
