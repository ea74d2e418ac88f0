"""`aigloo rules explain ID`: read a rule's retained state from the broker."""

from __future__ import annotations

import asyncio
import uuid

from aigloo_edge.errors import AiglooError
from aigloo_edge.mqtt import Inbound, MqttSettings, Session
from aigloo_edge.payloads import RuleState
from aigloo_edge.runtime import cancel_and_wait

CONNECT_S = 10.0
RETAINED_S = 1.0  # retained states arrive right after subscribing; this bounds the wait


class NoRuleStateError(AiglooError):
    """The broker holds no state for the rule asked about."""


async def fetch_rule_states(settings: MqttSettings) -> dict[str, RuleState]:
    """Every rule's retained state, by rule id."""
    session = Session(settings, component=f"cli-{uuid.uuid4().hex[:8]}", announce=False)
    states: dict[str, RuleState] = {}

    async def keep(message: Inbound, state: RuleState) -> None:
        states[state.rule] = state

    session.route_model(session.topics.filter("rule_state"), RuleState.from_json, keep)
    running = asyncio.create_task(session.run())
    try:
        await session.wait_connected(CONNECT_S)
        await session.sync_subscriptions()
        await asyncio.sleep(RETAINED_S)
    finally:
        await cancel_and_wait(running)
    return states


async def fetch_rule_state(settings: MqttSettings, rule_id: str) -> RuleState:
    states = await fetch_rule_states(settings)
    if rule_id in states:
        return states[rule_id]
    known = ", ".join(sorted(states)) or "none: is the rules engine running?"
    raise NoRuleStateError(f"no state for rule {rule_id!r} on the broker (rules: {known})")
