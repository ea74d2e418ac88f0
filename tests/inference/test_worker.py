"""The inference worker in a node agent, on the real demo model, against a real broker."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aigloo_edge.inference.client import InferClient
from aigloo_edge.mqtt import Inbound, Session
from aigloo_edge.payloads import (
    BridgeRejected,
    InferAccepted,
    InferChunk,
    InferFinal,
    NodeInfo,
    NodeTelemetry,
    parse_infer_reply,
)
from tests.support.broker import RunningBroker
from tests.support.collect import Collector
from tests.support.inference import LOAD_S, MODEL, QUESTION, ask, chunks, collect, worker_running


@pytest.fixture
async def tester(broker: RunningBroker) -> AsyncIterator[Session]:
    """A client that may send straight to workers (the dispatcher's role)."""
    async with broker.session("dispatcher", component="tester") as session:
        yield session


@pytest.fixture
async def studio(broker: RunningBroker, demo_model_dir: Path) -> AsyncIterator[None]:
    async with worker_running(broker, demo_model_dir):
        yield


async def test_streams_numbered_chunks_then_one_final(
    studio: None, tester: Session, broker: RunningBroker
) -> None:
    """accepted, chunks numbered 0..n-1 that make the answer, then one final with the figures."""
    replies, final = await collect(InferClient(tester, "tester"), ask("r1"), to_node="studio")
    accepted, streamed = replies[0], chunks(replies)
    assert isinstance(accepted, InferAccepted)
    assert (accepted.node, accepted.model, accepted.queued) == ("studio", MODEL, 0)
    assert [c.seq for c in streamed] == list(range(len(streamed)))
    assert len(streamed) > 1
    assert final.ok
    assert final.seq == len(streamed)
    assert final.text == "".join(c.text for c in streamed)
    assert "Paris" in final.text
    assert (final.node, final.model, final.finish_reason) == ("studio", MODEL, "stop")
    assert final.prompt_tokens
    assert final.completion_tokens
    assert final.ttft_s is not None
    assert final.ttft_s > 0
    assert final.tokens_per_s is not None
    assert final.tokens_per_s > 0


async def test_without_stream_only_the_final_carries_the_text(
    studio: None, tester: Session
) -> None:
    """stream=false: no chunks, the final has the whole answer."""
    replies, final = await collect(
        InferClient(tester, "tester"), ask("r2", stream=False), to_node="studio"
    )
    assert chunks(replies) == []
    assert final.ok
    assert "Paris" in final.text


async def test_info_lists_the_models_served(studio: None, broker: RunningBroker) -> None:
    """The node's retained info names the models its worker serves and the component."""
    async with broker.session("admin", component="reader") as admin:
        seen = Collector(admin, broker.topics.node_info("studio"))
        info = NodeInfo.from_json((await seen.next()).payload)
    assert info.models == [MODEL]


async def test_replies_follow_the_v5_response_topic_and_correlation(
    studio: None, tester: Session, broker: RunningBroker
) -> None:
    """A request naming an MQTT v5 response topic is answered there, correlation data echoed."""
    t = broker.topics
    response_topic = t.infer_reply("app", "corr-1")
    seen = Collector(tester, response_topic)
    await tester.sync_subscriptions()
    await tester.publish(
        t.node_infer("studio"),
        ask("corr-1", max_tokens=4).to_json(),
        response_topic=response_topic,
        correlation_data=b"\x01app-42",
    )
    messages: list[Inbound] = []
    async with asyncio.timeout(LOAD_S):
        while not messages or not isinstance(parse_infer_reply(messages[-1].payload), InferFinal):
            messages.append(await seen.next(LOAD_S))
    assert {m.correlation_data for m in messages} == {b"\x01app-42"}
    assert parse_infer_reply(messages[-1].payload).ok  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("fields", "code", "reason"),
    [
        ({"model": "gpt-9"}, "unknown_model", "does not serve 'gpt-9'"),
        ({"max_tokens": 0}, "bad_request", "max_tokens: Input should be greater than or equal"),
        ({"max_tokens": 10**6}, "bad_request", "max_tokens: Input should be less than"),
        ({"prompt": 42, "messages": None}, "bad_request", "prompt: Input should be a valid string"),
        ({"messages": None}, "bad_request", "give exactly one of 'messages' or 'prompt'"),
        ({"deadline": 1.0}, "deadline", "deadline passed before the request arrived"),
        ({"reply_to": "elsewhere/x"}, "bad_request", "reply topic must be a topic under"),
        (
            {"prompt": "word " * 9000, "messages": None},
            "context_length",
            "the prompt is 9001 tokens; smollm2 takes 8192",
        ),
    ],
)
@pytest.mark.usefixtures("studio")
async def test_bad_requests_get_one_final_error(
    tester: Session,
    broker: RunningBroker,
    fields: dict[str, object],
    code: str,
    reason: str,
) -> None:
    """Each bad request gets exactly one final error with a code and a reason, on its topic."""
    t = broker.topics
    seen = Collector(tester, t.filter("infer_reply", client="tester"))
    await tester.sync_subscriptions()
    body = {"id": "bad-1", "client": "tester", "model": MODEL, "messages": QUESTION, **fields}
    present = {key: value for key, value in body.items() if value is not None}
    await tester.publish(t.node_infer("studio"), json.dumps(present))
    final = parse_infer_reply((await seen.next(LOAD_S)).payload)
    while isinstance(final, InferAccepted):  # a request over the context is taken first
        final = parse_infer_reply((await seen.next(LOAD_S)).payload)
    with pytest.raises(TimeoutError):
        await seen.next(0.5)
    assert isinstance(final, InferFinal)
    assert not final.ok
    assert final.error is not None
    assert (final.id, final.error.code) == ("bad-1", code)
    assert reason in final.error.message
    assert final.error.message.count("word") == 0, "the reason does not echo the input"


async def test_a_duplicate_request_id_is_refused(studio: None, tester: Session) -> None:
    """Reusing an id gets `duplicate_id`; the first request is answered normally."""
    client = InferClient(tester, "tester")
    _, first = await collect(client, ask("dup-1", max_tokens=2), to_node="studio")
    _, second = await collect(client, ask("dup-1", max_tokens=2), to_node="studio")
    assert first.ok
    assert second.error is not None
    assert second.error.code == "duplicate_id"


async def test_unaddressable_garbage_is_reported_on_the_bridge(
    studio: None, tester: Session, broker: RunningBroker
) -> None:
    """Bytes that are not a request and name no id are counted and reported, not answered."""
    t = broker.topics
    rejected = Collector(tester, t.bridge_rejected("studio"))
    await tester.sync_subscriptions()
    await tester.publish(t.node_infer("studio"), b"\xff\xfe not json")
    report = BridgeRejected.from_json((await rejected.next()).payload)
    assert report.topic == t.node_infer("studio")
    assert report.kind == "invalid"


async def test_a_full_queue_answers_busy(
    broker: RunningBroker, demo_model_dir: Path, tester: Session
) -> None:
    """With one slot and no queue, a second request while the first runs is refused `busy`."""
    client = InferClient(tester, "tester")
    async with worker_running(broker, demo_model_dir, queue_size=0):
        long = asyncio.create_task(collect(client, ask("long", max_tokens=48), to_node="studio"))
        stream = client.stream(ask("second", max_tokens=2), to_node="studio")
        await asyncio.sleep(0.3)  # let the first be taken
        second = [reply async for reply in stream]
        _, first = await long
    assert first.ok
    final = second[-1]
    assert isinstance(final, InferFinal)
    assert final.error is not None
    assert final.error.code == "busy"
    assert "queue is full" in final.error.message


async def test_a_queued_request_waits_its_turn(
    broker: RunningBroker, demo_model_dir: Path, tester: Session
) -> None:
    """With one slot and a queue, the second request is accepted as queued and served after."""
    client = InferClient(tester, "tester")
    async with worker_running(broker, demo_model_dir, queue_size=2):
        first = asyncio.create_task(collect(client, ask("q1", max_tokens=24), to_node="studio"))
        await asyncio.sleep(0.3)
        replies, second = await collect(client, ask("q2", max_tokens=4), to_node="studio")
        _, first_final = await first
    accepted = replies[0]
    assert isinstance(accepted, InferAccepted)
    assert accepted.queued == 1
    assert first_final.ok
    assert second.ok


async def test_requests_arriving_together_are_told_their_true_place(
    broker: RunningBroker, demo_model_dir: Path, tester: Session
) -> None:
    """Three requests in one burst, one slot: accepted as queued 0, 1 and 2 (the one running
    was once counted as waiting too, so the second heard 2), and a queue of 2 takes them all."""
    client = InferClient(tester, "tester")
    async with worker_running(broker, demo_model_dir, queue_size=2):
        burst = [collect(client, ask(f"b{k}", max_tokens=4), to_node="studio") for k in range(3)]
        answers = await asyncio.gather(*burst)
    places = sorted(r[0].queued for r, _ in answers if isinstance(r[0], InferAccepted))
    assert places == [0, 1, 2]
    assert all(final.ok for _, final in answers)


async def test_cancel_stops_a_running_request(studio: None, tester: Session) -> None:
    """A cancel on infer/cancel ends generation early: final `cancelled` with the partial text."""
    client = InferClient(tester, "tester")
    replies = []
    async with asyncio.timeout(LOAD_S):
        async for reply in client.stream(ask("c1", max_tokens=200), to_node="studio"):
            replies.append(reply)
            if isinstance(reply, InferChunk) and reply.seq == 1:
                await client.cancel("c1")
    final = replies[-1]
    assert isinstance(final, InferFinal)
    assert final.error is not None
    assert final.error.code == "cancelled"
    assert final.finish_reason == "cancelled"
    assert final.text.startswith("".join(c.text for c in chunks(replies)[:2]))
    assert final.completion_tokens is not None
    assert final.completion_tokens < 200


async def test_the_deadline_ends_a_long_generation(studio: None, tester: Session) -> None:
    """A request whose deadline passes mid-generation ends with `deadline` and what it had."""
    client = InferClient(tester, "tester")
    _, warm = await collect(client, ask("warm", max_tokens=1), to_node="studio")
    started = time.time()
    request = ask("d1", prompt="Count to a thousand:", messages=None, max_tokens=2000)
    request = request.model_copy(update={"deadline": started + 1.5})
    _, final = await collect(client, request, to_node="studio")
    assert warm.ok
    assert final.error is not None
    assert final.error.code == "deadline"
    assert time.time() - started < 10


async def test_queue_depth_and_tokens_per_second_show_in_telemetry(
    studio: None, tester: Session
) -> None:
    """While a request runs, the node's telemetry reports infer_queue 1, then 0 again; the
    tokens it generated show as a rate above 0 on the way."""
    t = tester.topics
    telemetry = Collector(tester, t.node_telemetry("studio"))
    await tester.sync_subscriptions()
    client = InferClient(tester, "tester")
    running = asyncio.create_task(collect(client, ask("tq", max_tokens=64), to_node="studio"))
    samples: list[NodeTelemetry] = []

    async def next_sample() -> int | None:
        samples.append(NodeTelemetry.from_json((await telemetry.next(LOAD_S)).payload))
        return samples[-1].infer_queue

    async with asyncio.timeout(LOAD_S):
        while await next_sample() != 1:
            pass
        await running
        while await next_sample() != 0:
            pass
    assert max(s.infer_tokens_per_s or 0.0 for s in samples) > 0


async def test_a_stopping_worker_answers_what_it_holds(
    broker: RunningBroker, demo_model_dir: Path, tester: Session
) -> None:
    """Stopping the agent mid-generation still sends the request its final (`worker_lost`)."""
    client = InferClient(tester, "tester")
    replies = []
    async with worker_running(broker, demo_model_dir):
        stream = client.stream(ask("s1", max_tokens=400), to_node="studio")
        async for reply in stream:
            replies.append(reply)
            if isinstance(reply, InferChunk):
                break
    async with asyncio.timeout(10):
        async for reply in stream:
            replies.append(reply)
    final = replies[-1]
    assert isinstance(final, InferFinal)
    assert final.error is not None
    assert final.error.code == "worker_lost"


async def test_a_request_without_reply_topic_is_answered_on_the_default_one(
    studio: None, tester: Session, broker: RunningBroker
) -> None:
    """No response topic, no reply_to, no client: the answer goes to infer/reply/anon/<id>."""
    t = broker.topics
    default = t.infer_reply("anon", "no-reply-to")
    seen = Collector(tester, default)
    await tester.sync_subscriptions()
    body = {"id": "no-reply-to", "model": MODEL, "prompt": "Hi", "max_tokens": 2}
    await tester.publish(t.node_infer("studio"), json.dumps(body))
    replies = [parse_infer_reply((await seen.next(LOAD_S)).payload)]
    while not isinstance(replies[-1], InferFinal):
        replies.append(parse_infer_reply((await seen.next(LOAD_S)).payload))
    assert replies[-1].ok
