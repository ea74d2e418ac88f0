"""The dispatcher between real clients and real workers (demo model), on a real broker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aigloo_edge.inference.client import InferClient
from aigloo_edge.mqtt import Session
from aigloo_edge.payloads import (
    Battery,
    InferChunk,
    InferFinal,
    InferPolicy,
    PowerCommand,
    PowerState,
    Solar,
)
from tests.support.broker import RunningBroker
from tests.support.collect import Collector
from tests.support.inference import (
    LOAD_S,
    MODEL,
    ask,
    chunks,
    collect,
    dispatcher_running,
    serving_info,
    worker_running,
)


@pytest.fixture
async def phone(broker: RunningBroker) -> AsyncIterator[InferClient]:
    """A client as the owner's phone: it may only talk to the cluster (infer/request)."""
    async with broker.session("mobile", component="phone") as session:
        yield InferClient(session, "phone")


@pytest.fixture
async def admin(broker: RunningBroker) -> AsyncIterator[Session]:
    async with broker.session("admin", component="operator") as session:
        yield session


async def announce(admin: Session, node: str, *, online: bool, power: str = "awake") -> None:
    """Retained state as a node that serves the demo model would have left it."""
    t = admin.topics
    await admin.publish(t.node_info(node), serving_info(node, [MODEL]), retain=True)
    await admin.publish(t.node_power(node), PowerState(state=power), retain=True)  # type: ignore[arg-type]
    await admin.publish(t.node_availability(node), "online" if online else "offline", retain=True)


async def test_routes_to_a_worker_and_relays_its_stream(
    broker: RunningBroker, demo_model_dir: Path, phone: InferClient
) -> None:
    """A request to the cluster is served by the worker that has the model, streamed through."""
    async with worker_running(broker, demo_model_dir), dispatcher_running(broker):
        replies, final = await collect(phone, ask("d1"))
    streamed = chunks(replies)
    assert final.ok
    assert final.node == "studio"
    assert "Paris" in final.text
    assert [c.seq for c in streamed] == list(range(len(streamed)))
    assert final.seq == len(streamed)
    assert final.text == "".join(c.text for c in streamed)


async def test_a_model_nobody_serves_is_refused_as_unknown(
    broker: RunningBroker, demo_model_dir: Path, phone: InferClient
) -> None:
    """No node has the model: one final `unknown_model` naming what the cluster does serve."""
    async with worker_running(broker, demo_model_dir), dispatcher_running(broker):
        _, final = await collect(phone, ask("d2", model="llama-70b"))
    assert final.error is not None
    assert final.error.code == "unknown_model"
    assert "'llama-70b'" in final.error.message
    assert MODEL in final.error.message


async def test_a_fallback_model_serves_when_the_asked_one_cannot(
    broker: RunningBroker, demo_model_dir: Path, phone: InferClient
) -> None:
    """With `fallbacks: {llama-70b: smollm2}`, a request for the big model gets the small one."""
    async with (
        worker_running(broker, demo_model_dir),
        dispatcher_running(broker, fallbacks={"llama-70b": MODEL}),
    ):
        _, final = await collect(phone, ask("d3", model="llama-70b", max_tokens=4))
    assert final.ok
    assert final.model == MODEL


async def test_a_worker_that_never_accepts_is_retried_elsewhere(
    broker: RunningBroker, demo_model_dir: Path, phone: InferClient, admin: Session
) -> None:
    """A node that looks ready but never takes the request: after the accept timeout, the
    request is retried once on another node, and answered from there."""
    await announce(admin, "air", online=True)  # ranks first by name; nothing runs there
    async with (
        worker_running(broker, demo_model_dir),
        dispatcher_running(broker, accept_timeout_s=1.0),
    ):
        _, final = await collect(phone, ask("d4", max_tokens=4))
    assert final.ok
    assert final.node == "studio"


async def test_a_worker_lost_mid_stream_gets_the_request_a_worker_lost_final(
    broker: RunningBroker, demo_model_dir: Path, phone: InferClient, admin: Session
) -> None:
    """The worker's node drops off (its will says offline) after streaming began: the client
    gets one final `worker_lost` with the text so far, and nothing after it."""
    replies = []
    async with worker_running(broker, demo_model_dir), dispatcher_running(broker):
        async with asyncio.timeout(LOAD_S):
            async for reply in phone.stream(ask("d5", max_tokens=300)):
                replies.append(reply)
                if isinstance(reply, InferChunk) and reply.seq == 1:
                    await admin.publish(
                        admin.topics.node_availability("studio"), "offline", retain=True
                    )
    final = replies[-1]
    assert isinstance(final, InferFinal)
    assert final.error is not None
    assert final.error.code == "worker_lost"
    assert "studio went offline" in final.error.message
    assert final.text.startswith("".join(c.text for c in chunks(replies)[:2]))
    assert sum(isinstance(r, InferFinal) for r in replies) == 1


async def test_a_sleeping_node_is_woken_and_the_request_waits_for_it(
    broker: RunningBroker, demo_model_dir: Path, phone: InferClient, admin: Session
) -> None:
    """The only node with the model sleeps: the dispatcher sends it `wake`, holds the request,
    and forwards it once the node is back."""
    await announce(admin, "studio", online=False, power="sleeping")
    wakes = Collector(admin, admin.topics.node_power_set("studio"))
    await admin.sync_subscriptions()
    async with dispatcher_running(broker):
        answer = asyncio.create_task(collect(phone, ask("d6", max_tokens=4)))
        command = PowerCommand.parse((await wakes.next()).payload)
        async with worker_running(broker, demo_model_dir):  # the node wakes up
            _, final = await answer
    assert command.state == "wake"
    assert final.ok
    assert final.node == "studio"


async def test_no_wake_on_a_low_battery_without_sun(
    broker: RunningBroker, phone: InferClient, admin: Session
) -> None:
    """Battery under the wake floor and little solar: `node_asleep_power_saving`, saying why."""
    await announce(admin, "studio", online=False, power="sleeping")
    t = admin.topics
    battery = Battery(soc_pct=22, watts_in=5, watts_out=40, source="twin")
    await admin.publish(t.battery(), battery, retain=True)
    await admin.publish(t.solar(), Solar(watts=10), retain=True)
    async with dispatcher_running(broker):
        _, final = await collect(phone, ask("d7"))
    assert final.error is not None
    assert final.error.code == "node_asleep_power_saving"
    assert "battery 22%" in final.error.message
    assert "40% wake floor" in final.error.message


async def test_the_rules_can_forbid_a_node(
    broker: RunningBroker, demo_model_dir: Path, phone: InferClient, admin: Session
) -> None:
    """`infer/policy/studio` = not allowed: the awake Studio is not used, and the error says
    the rules' reason."""
    policy = InferPolicy(allowed=False, wake=False, reason="battery saving")
    await admin.publish(admin.topics.infer_policy("studio"), policy, retain=True)
    async with worker_running(broker, demo_model_dir), dispatcher_running(broker):
        _, final = await collect(phone, ask("d8"))
    assert final.error is not None
    assert final.error.code == "no_worker"
    assert "battery saving" in final.error.message


async def test_a_request_held_for_a_wake_ends_at_its_deadline(
    broker: RunningBroker, phone: InferClient, admin: Session
) -> None:
    """A node that does not wake in time: the held request is answered `deadline`."""
    await announce(admin, "studio", online=False, power="sleeping")
    async with dispatcher_running(broker):
        started = time.time()
        request = ask("d9").model_copy(update={"deadline": started + 1.0})
        _, final = await collect(phone, request)
    assert final.error is not None
    assert final.error.code == "deadline"
    assert time.time() - started < 3


async def test_a_deadline_beyond_the_longest_allowed_is_refused(
    broker: RunningBroker, phone: InferClient, admin: Session
) -> None:
    """A deadline further away than `max_deadline_s` is refused as a bad request at once: held
    that long, a request whose worker hung would occupy the dispatcher for hours."""
    await announce(admin, "studio", online=True)
    async with dispatcher_running(broker, max_deadline_s=60):
        request = ask("d11").model_copy(update={"deadline": time.time() + 3600})
        _, final = await collect(phone, request)
    assert final.error is not None
    assert final.error.code == "bad_request"
    assert "at most 60 s" in final.error.message


async def test_cancel_reaches_the_worker_through_the_dispatcher(
    broker: RunningBroker, demo_model_dir: Path, phone: InferClient
) -> None:
    """The client cancels by its own id; the worker stops and the client gets `cancelled`."""
    replies = []
    async with worker_running(broker, demo_model_dir), dispatcher_running(broker):
        async with asyncio.timeout(LOAD_S):
            async for reply in phone.stream(ask("d10", max_tokens=300)):
                replies.append(reply)
                if isinstance(reply, InferChunk) and reply.seq == 0:
                    await phone.cancel("d10")
    final = replies[-1]
    assert isinstance(final, InferFinal)
    assert final.error is not None
    assert final.error.code == "cancelled"


async def test_a_duplicate_id_in_flight_is_refused(
    broker: RunningBroker, demo_model_dir: Path, phone: InferClient
) -> None:
    """A second request with the id of one still running (here from another client) gets
    `duplicate_id`; the first ends normally."""
    async with (
        worker_running(broker, demo_model_dir),
        dispatcher_running(broker),
        broker.session("mobile", component="tablet") as tablet_session,
    ):
        tablet = InferClient(tablet_session, "tablet")
        first = asyncio.create_task(collect(phone, ask("same", max_tokens=16)))
        await asyncio.sleep(0.2)
        _, second = await collect(tablet, ask("same", max_tokens=2))
        _, first_final = await first
    assert second.error is not None
    assert second.error.code == "duplicate_id"
    assert first_final.ok


async def test_two_dispatchers_share_the_requests(
    broker: RunningBroker, demo_model_dir: Path, phone: InferClient, admin: Session
) -> None:
    """Two dispatchers on one shared subscription: each request is handled by exactly one,
    both take a share, and every request gets one final."""
    relayed = Collector(admin, admin.topics.filter("infer_reply", client="dispatcher"))
    relayed_2 = Collector(admin, admin.topics.filter("infer_reply", client="dispatcher-2"))
    await admin.sync_subscriptions()
    async with (
        worker_running(broker, demo_model_dir, queue_size=8),
        dispatcher_running(broker),
        dispatcher_running(broker, instance="dispatcher-2"),
    ):
        finals = await asyncio.gather(
            *(collect(phone, ask(f"s{i}", max_tokens=2)) for i in range(4))
        )
    assert all(final.ok for _, final in finals)
    assert not relayed.queue.empty()
    assert not relayed_2.queue.empty()
