"""Issue 10 (2): components SIGKILLed as `aigloo run CONFIG` processes.

The node agent's kill is covered by tests/integration/test_agent_process.py (offline within
1.5 keepalives); the session-level kill and freeze by test_process_lifecycle.py. Here:

- the rules engine killed with a rule in its `for` phase (`pending`);
- the dispatcher killed with a request in flight;
- an inference worker (real mlx-lm, the demo model) killed mid-generation, with a second
  request queued behind the first: the streaming one ends `worker_lost`, the queued one is
  retried on the other worker;
- the sensor bridge and the fans killed while the rules hold `max`: once back, they apply their
  `initial` profile and the rules engine re-asserts `max`.

Each prints (and records with `record_property`) a one-line figures string.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path

from aigloo_edge.inference.client import DEADLINE_GRACE_S, InferClient
from aigloo_edge.mqtt import Session
from aigloo_edge.payloads import (
    ChatMessage,
    Climate,
    FanProfileCommand,
    FanProfileState,
    InferFinal,
    InferPolicy,
    InferRequest,
)
from tests.support.broker import RunningBroker
from tests.support.collect import Collector
from tests.support.inference import (
    LOAD_S,
    ask,
    dispatcher_running,
    inference_section,
    serving_info,
    worker_running,
)
from tests.support.kills import (
    OFFLINE_BOUND_S,
    FinalTally,
    Tracked,
    aigloo_run,
    drain,
    track,
    wait_serving,
    write_config,
)

RecordProperty = Callable[[str, object], None]  # pytest's record_property

FOR_S = 6.0
PENDING_RULES = f"""
defaults:
  fans.profile: normal
rules:
  - id: hot
    when: env.internal.temperature_c > 30
    for: {FOR_S:g}s
    set: {{fans.profile: max}}
    priority: 100
"""


def _rules_config(broker: RunningBroker, tmp_path: Path, rules: str, reassert_s: float) -> Path:
    """`aigloo run` of the rules engine alone on one rule file, its state in SQLite, settling
    fast so a test need not wait."""
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "rules.yaml").write_text(rules)
    section = {
        "dir": str(rules_dir),
        "state_file": str(tmp_path / "state" / "rules.sqlite3"),
        "safety": {"settle": 0.2, "startup_grace": 1, "reassert": reassert_s},
    }
    return write_config(broker, tmp_path / "rules.yaml", "mini", ["rules"], rules=section)


async def test_killed_rules_engine_keeps_its_pending_timer(
    broker: RunningBroker, tmp_path: Path, record_property: RecordProperty
) -> None:
    """SIGKILL the rules engine 1.5 s into a 6 s `for`: it goes `offline` within 1.5 keepalives,
    and once started again the rule fires neither early nor late: its timer continues from the
    SQLite state instead of starting over (or firing at once)."""
    config = _rules_config(broker, tmp_path, PENDING_RULES, reassert_s=60)
    t = broker.topics
    availability = t.bridge_availability("rules")
    async with (
        broker.session("admin", component="watcher") as admin,
        broker.session("sensors") as sensors,
    ):
        seen = Collector(admin, availability)
        commands = Collector(admin, t.fans_profile_set())
        async with aigloo_run(config) as first:
            assert await seen.value_on(availability, timeout=20) == b"online"
            await asyncio.sleep(1.0)  # past settle: the engine has its retained inputs
            reading = Climate(probe="internal", temperature_c=35)
            await sensors.publish(t.env_climate("internal"), reading, retain=True)
            hot_at = time.monotonic()
            await asyncio.sleep(1.5)
            first.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            assert await seen.value_on(availability, timeout=10) == b"offline"
            to_offline = time.monotonic() - killed_at
        early = [FanProfileCommand.parse(m.payload).profile for m in drain(commands)]
        assert "max" not in early, "fired before its `for` was over"
        async with aigloo_run(config):
            assert await seen.value_on(availability, timeout=20) == b"online"
            async with asyncio.timeout(FOR_S + 10):
                while FanProfileCommand.parse((await commands.next()).payload).profile != "max":
                    pass
            fired_after = time.monotonic() - hot_at
    figures = (
        f"rules SIGKILL: offline after {to_offline:.2f} s; `for` {FOR_S:g} s rule fired "
        f"{fired_after:.2f} s after the reading (killed and restarted while pending)"
    )
    print(figures)
    record_property("kill_rules", figures)
    assert to_offline <= OFFLINE_BOUND_S
    assert fired_after >= FOR_S - 0.5, "the pending timer was lost or skipped (fired early)"
    assert fired_after <= FOR_S + 4.0, "the pending timer started over after the restart"


async def _fake_worker(admin: Session, node: str, model: str) -> Collector:
    """Retained state of a node that serves `model`; the requests forwarded to it, unanswered."""
    t = admin.topics
    forwarded = Collector(admin, t.node_infer(node))
    await admin.sync_subscriptions()
    await admin.publish(t.node_info(node), serving_info(node, [model]), retain=True)
    await admin.publish(t.node_availability(node), "online", retain=True)
    return forwarded


async def test_killed_dispatcher_still_leaves_the_client_a_final_answer_by_the_deadline(
    broker: RunningBroker, tmp_path: Path, record_property: RecordProperty
) -> None:
    """SIGKILL the dispatcher while a request is at a worker that never answers: the dispatcher
    goes `offline` within 1.5 keepalives, and the client still gets a final (error) answer at
    the request's deadline (plus the client's grace)."""
    section = {"accept_timeout_s": 30.0}
    config = write_config(
        broker, tmp_path / "mini.yaml", "mini", ["dispatcher"], dispatcher=section
    )
    t = broker.topics
    availability = t.bridge_availability("dispatcher")
    async with (
        broker.session("admin", component="watcher") as admin,
        broker.session("gateway") as gateway,
    ):
        seen = Collector(admin, availability)
        forwarded = await _fake_worker(admin, "studio", "demo")
        client = InferClient(gateway, "gateway")
        async with aigloo_run(config) as dispatcher:
            assert await seen.value_on(availability, timeout=20) == b"online"
            await asyncio.sleep(0.5)  # it has read the retained node state
            deadline_s = 4.0
            request = InferRequest(
                id="k1",
                model="demo",
                messages=[ChatMessage(role="user", content="hi")],
                deadline=time.time() + deadline_s,
            )
            sent_at = time.monotonic()
            final: InferFinal | None = None

            async def listen() -> None:
                nonlocal final
                async for reply in client.stream(request):
                    if isinstance(reply, InferFinal):
                        final = reply

            asking = asyncio.create_task(listen())
            await forwarded.next(10)  # the request is at the worker: in flight
            dispatcher.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            assert await seen.value_on(availability, timeout=10) == b"offline"
            to_offline = time.monotonic() - killed_at
            # With no dispatcher left, the client ends the request DEADLINE_GRACE_S past its
            # deadline; wait longer than that (a loaded CPU delays timers, not the semantics).
            limit = deadline_s + DEADLINE_GRACE_S + 3.0
            done, _ = await asyncio.wait({asking}, timeout=limit)
            waited = time.monotonic() - sent_at
            if not done:
                asking.cancel()
    figures = (
        f"dispatcher SIGKILL: offline after {to_offline:.2f} s; client final: "
        f"{final.error if final else None} after {waited:.2f} s (deadline {deadline_s:g} s)"
    )
    print(figures)
    record_property("kill_dispatcher", figures)
    assert to_offline <= OFFLINE_BOUND_S
    assert final is not None, f"no final answer {waited:.1f} s after a {deadline_s:g} s deadline"
    assert not final.ok


# --- a worker killed mid-generation --------------------------------------------------------

LONG_PROMPT = "Count to a thousand:"
REQUEST_S = 2 * LOAD_S  # both workers load the model cold on a (possibly loaded) 2-core CPU


def _studio_config(broker: RunningBroker, tmp_path: Path, model_dir: Path) -> Path:
    """Studio's worker: one generation at a time, the others wait in its queue."""
    section = inference_section(model_dir, per_model_concurrency=1, queue_size=4)
    return write_config(
        broker, tmp_path / "studio.yaml", "studio", ["agent", "inference"], inference=section
    )


async def _keep_mbp_free(admin: Session, allowed: bool) -> None:
    """The rules' `infer/policy/mbp`: while not allowed, the dispatcher routes to studio only."""
    policy = InferPolicy() if allowed else InferPolicy(allowed=False, reason="kept for the retry")
    await admin.publish(admin.topics.infer_policy("mbp"), policy, retain=True)


async def _streaming_and_queued_at_studio(client: InferClient) -> tuple[Tracked, Tracked]:
    """A long request A streaming at studio, and B accepted there behind it (sent once A was
    accepted, so studio's only slot is A's)."""
    deadline = time.time() + REQUEST_S
    long = ask("A", prompt=LONG_PROMPT, messages=None, max_tokens=1500, deadline=deadline)
    a = track(client, long)
    await asyncio.wait_for(a.accepted.wait(), LOAD_S)
    b = track(client, ask("B", max_tokens=8, deadline=deadline))
    await asyncio.wait_for(asyncio.gather(a.chunked.wait(), b.accepted.wait()), LOAD_S)
    return a, b


async def test_killed_worker_mid_generation_loses_the_stream_and_retries_the_queued_request(
    broker: RunningBroker, tmp_path: Path, demo_model_dir: Path, record_property: RecordProperty
) -> None:
    """SIGKILL studio's worker process (real mlx-lm) while request A streams and B waits in its
    queue: studio goes `offline` within 1.5 keepalives; A gets one final `worker_lost` with
    the text it had streamed; B, not started, is retried on mbp and answered there. Both end
    before their deadline, each with exactly one final."""
    t = broker.topics
    availability = t.node_availability("studio")
    config = _studio_config(broker, tmp_path, demo_model_dir)
    async with (
        broker.session("admin", component="watcher") as admin,
        broker.session("gateway") as gateway,
    ):
        seen = Collector(admin, availability)
        tally = FinalTally(admin, "gateway")
        await admin.sync_subscriptions()
        await _keep_mbp_free(admin, allowed=False)
        async with (
            aigloo_run(config) as studio,
            worker_running(broker, demo_model_dir, node="mbp"),
        ):
            assert await seen.value_on(availability, timeout=20) == b"online"
            await wait_serving(admin, "studio", LOAD_S)
            async with dispatcher_running(broker):
                await asyncio.sleep(0.5)  # it has read the retained node states
                a, b = await _streaming_and_queued_at_studio(InferClient(gateway, "gateway"))
                b_chunks_before = len(b.chunks)
                await _keep_mbp_free(admin, allowed=True)
                studio.send_signal(signal.SIGKILL)
                killed_at = time.monotonic()
                assert await seen.value_on(availability, timeout=15) == b"offline"
                to_offline = time.monotonic() - killed_at
                await a.done(OFFLINE_BOUND_S + 5)
                await b.done(REQUEST_S)
                await asyncio.sleep(1.0)  # a second final would be here by now
    figures = (
        f"worker SIGKILL mid-generation: offline after {to_offline:.2f} s; streaming A "
        f"({len(a.chunks)} chunks) final {a.final.error.code if a.final.error else 'ok'} after "
        f"{a.final_at - killed_at:.2f} s; queued B final "
        f"{b.final.error.code if b.final.error else 'ok'} on {b.final.node} after "
        f"{b.final_at - killed_at:.2f} s (cold model load there included)"
    )
    print(figures)
    record_property("kill_worker", figures)
    assert to_offline <= OFFLINE_BOUND_S
    _assert_lost_mid_stream(a, killed_at)
    _assert_retried_elsewhere(b, b_chunks_before)
    assert dict(tally.finals) == {"A": 1, "B": 1}, "every request gets exactly one final"


def _assert_lost_mid_stream(a: Tracked, killed_at: float) -> None:
    final = a.final
    assert final.error is not None, f"A finished ({final.finish_reason}) before the kill"
    assert final.error.code == "worker_lost", final.error
    assert "studio" in final.error.message
    assert a.chunks, "A was killed before streaming"
    assert final.text == "".join(c.text for c in a.chunks), "the partial text was not kept"
    assert a.final_at - killed_at <= OFFLINE_BOUND_S + 1.0
    assert a.final_wall < a.deadline


def _assert_retried_elsewhere(b: Tracked, chunks_before_kill: int) -> None:
    final = b.final
    first = b.acceptances[0]
    assert (first.node, first.queued) == ("studio", 1), "B was not queued behind A at studio"
    assert chunks_before_kill == 0, "B had started at studio before the kill"
    assert final.ok, final.error
    assert final.node == "mbp"
    assert b.final_wall < b.deadline


# --- the sensor bridge and the fans killed -------------------------------------------------

REASSERT_S = 2.0
MAX_RULES = """
defaults:
  fans.profile: max
rules: []
"""
PROBE = {"mqtt_map": {"probes": {"exhaust": {"temperature_c": {"topic": "esphome/box/exhaust"}}}}}


def _bridge_and_rules_configs(broker: RunningBroker, tmp_path: Path) -> tuple[Path, Path]:
    """The sensor bridge with dry-run fans (initial `normal`); rules that hold `max`."""
    bridge = write_config(
        broker,
        tmp_path / "bridge.yaml",
        "mini",
        ["sensors", "fans"],
        sensors=PROBE,
        fans={"driver": "dry-run", "initial": "normal"},
    )
    rules = _rules_config(broker, tmp_path, MAX_RULES, reassert_s=REASSERT_S)
    return bridge, rules


async def _profiles_until(states: Collector, profile: str, timeout: float) -> list[str]:
    """The fan profiles reported on `fans/profile`, up to and including `profile`."""
    seen: list[str] = []
    async with asyncio.timeout(timeout):
        while not seen or seen[-1] != profile:
            seen.append(FanProfileState.from_json((await states.next(timeout)).payload).profile)
    return seen


async def _retained_profile(broker: RunningBroker) -> str:
    async with broker.session("admin", component="late-reader") as reader:
        state = await Collector(reader, broker.topics.fans_profile()).next(5)
    assert state.retain
    return FanProfileState.from_json(state.payload).profile


async def test_killed_sensor_bridge_and_fans_come_back_and_the_rules_reassert_max(
    broker: RunningBroker, tmp_path: Path, record_property: RecordProperty
) -> None:
    """SIGKILL the `sensors`+`fans` process while the rules hold `max`: its availability goes
    `offline` within 1.5 keepalives; started again it comes back `online`, applies its
    `initial` profile, and the rules engine (which stays online) sends `max` again once."""
    bridge_config, rules_config = _bridge_and_rules_configs(broker, tmp_path)
    t = broker.topics
    bridge_up, rules_up = t.bridge_availability("sensors"), t.bridge_availability("rules")
    async with broker.session("admin", component="watcher") as admin, AsyncExitStack() as stack:
        bridge_seen, rules_seen = Collector(admin, bridge_up), Collector(admin, rules_up)
        states, commands = (
            Collector(admin, t.fans_profile()),
            Collector(admin, t.fans_profile_set()),
        )
        await admin.sync_subscriptions()
        bridge = await stack.enter_async_context(aigloo_run(bridge_config))
        assert await bridge_seen.value_on(bridge_up, timeout=20) == b"online"
        assert await _profiles_until(states, "normal", 10) == ["normal"]
        await stack.enter_async_context(aigloo_run(rules_config))
        assert await rules_seen.value_on(rules_up, timeout=20) == b"online"
        assert await _profiles_until(states, "max", 10) == ["max"]
        await asyncio.sleep(REASSERT_S + 0.5)  # a contradiction now is re-asserted at once
        drain(commands)
        bridge.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        assert await bridge_seen.value_on(bridge_up, timeout=15) == b"offline"
        to_offline = time.monotonic() - killed_at
        restarted_at = time.monotonic()
        await stack.enter_async_context(aigloo_run(bridge_config))
        assert await bridge_seen.value_on(bridge_up, timeout=20) == b"online"
        online_at = time.monotonic()
        after_restart = await _profiles_until(states, "max", REASSERT_S + 10)
        back_after = time.monotonic() - online_at
        await asyncio.sleep(1.0)  # a flapping engine would send more by now
        resent = [FanProfileCommand.parse(m.payload).profile for m in drain(commands)]
        retained = await _retained_profile(broker)
        rules_availability = [m.payload for m in drain(rules_seen)]
    figures = (
        f"sensors+fans SIGKILL: offline after {to_offline:.2f} s; online "
        f"{online_at - restarted_at:.2f} s after the restart; profiles then {after_restart}, "
        f"max again {back_after:.2f} s after online (reassert {REASSERT_S:g} s)"
    )
    print(figures)
    record_property("kill_sensors_fans", figures)
    assert to_offline <= OFFLINE_BOUND_S
    assert after_restart == ["normal", "max"], "the initial profile, then the rules' max"
    assert back_after <= REASSERT_S + 2.0
    assert resent == ["max"], "the rules engine re-asserts once"
    assert retained == "max"
    assert rules_availability == [], "the rules engine went offline or reconnected meanwhile"
