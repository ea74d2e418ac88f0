"""The session's pure parts: backoff, rejection rate limiting, routing."""

from __future__ import annotations

import random

import pytest

from aigloo_edge.errors import PayloadError
from aigloo_edge.mqtt import Backoff, Inbound, RejectionLog, Router
from aigloo_edge.payloads import Climate


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    """Each delay is 50-100 % of initial*2^n, never above the cap."""
    backoff = Backoff(initial=0.5, maximum=4.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(8)]
    nominal = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    for delay, top in zip(delays, nominal, strict=True):
        assert top / 2 <= delay <= top
    assert len(set(delays)) == len(delays), "jitter makes delays differ"


def test_backoff_reset_starts_again_from_initial() -> None:
    backoff = Backoff(initial=1.0, maximum=30.0, rng=random.Random(1))
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_rejection_log_reports_first_then_summarises_the_window() -> None:
    """One report per window: the first at once, the rest folded into a later summary."""
    log = RejectionLog(interval=5.0)
    first = log.record("a/t", "bad", "invalid", now=0.0)
    assert first is not None
    assert (first.total, first.suppressed) == (1, 0)
    assert all(log.record("a/t", f"bad {i}", "invalid", now=1.0) is None for i in range(9))
    assert log.flush(now=4.9) is None
    summary = log.flush(now=5.0)
    assert summary is not None
    assert (summary.total, summary.suppressed, summary.reason) == (10, 9, "bad 8")
    assert log.flush(now=20.0) is None, "nothing new to summarise"
    assert log.record("a/t", "again", "handler_error", now=20.0) is not None
    assert dict(log.by_kind) == {"invalid": 10, "handler_error": 1}


async def test_router_calls_every_matching_handler_in_order() -> None:
    router = Router()
    calls: list[str] = []

    async def first(message: Inbound) -> None:
        calls.append("first " + message.topic)

    async def second(message: Inbound) -> None:
        calls.append("second " + message.topic)

    router.add("aigloo/nodes/+/telemetry", first)
    router.add("aigloo/#", second, qos=0)
    router.add("aigloo/nodes/+/telemetry", second, qos=0)
    for route in router.matching("aigloo/nodes/studio/telemetry"):
        await route.handler(Inbound("aigloo/nodes/studio/telemetry", b""))
    assert calls == [
        "first aigloo/nodes/studio/telemetry",
        "second aigloo/nodes/studio/telemetry",
        "second aigloo/nodes/studio/telemetry",
    ]
    assert router.subscriptions() == {"aigloo/nodes/+/telemetry": 1, "aigloo/#": 0}
    assert list(router.matching("other/topic")) == []
    router.add("other/#", first)  # a route added later is matched although `other/topic` was seen
    assert [r.topic_filter for r in router.matching("other/topic")] == ["other/#"]


async def test_model_route_parses_before_the_handler() -> None:
    """An invalid payload raises PayloadError and never reaches the handler."""
    router = Router()
    got: list[Climate] = []

    async def handler(_: Inbound, climate: Climate) -> None:
        got.append(climate)

    route = router.add_model("aigloo/env/+/climate", Climate.from_json, handler)
    await route.handler(Inbound("aigloo/env/x/climate", b'{"probe":"x","temperature_c":20}'))
    with pytest.raises(PayloadError):
        await route.handler(Inbound("aigloo/env/x/climate", b'{"probe":"x"}'))
    assert [c.temperature_c for c in got] == [20]
