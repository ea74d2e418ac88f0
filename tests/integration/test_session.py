"""The MQTT session against a real Mosquitto: birth/will, routing, bad input, restarts."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiomqtt
import pytest

from aigloo_edge.errors import PayloadError
from aigloo_edge.mqtt import Inbound
from aigloo_edge.payloads import BridgeRejected, Climate
from tests.support.broker import RunningBroker
from tests.support.collect import Collector, wait_until
from tests.support.proxy import TcpProxy


async def test_birth_then_offline_on_clean_stop(broker: RunningBroker) -> None:
    """A session publishes retained `online` on connect and `offline` when stopped."""
    topic = broker.topics.bridge_availability("rules")
    async with broker.session("admin", component="watcher") as watcher:
        seen = Collector(watcher, topic)
        async with broker.session("rules"):
            assert await seen.value_on(topic) == b"online"
        assert await seen.value_on(topic) == b"offline"


async def test_a_session_that_does_not_announce_leaves_nothing_retained(
    broker: RunningBroker,
) -> None:
    """A CLI client (announce=False) routes and publishes like a component but sends no birth,
    no health and no goodbye: nothing retained is left under bridge/ once it has gone."""
    t = broker.topics
    async with broker.session("admin", component="watcher") as watcher:
        bridge = Collector(watcher, t.tree("bridge"))
        await watcher.sync_subscriptions()
        while (await bridge.next()).topic != t.bridge_availability("watcher"):
            pass  # the watcher's own birth
        async with broker.session("admin", component="cli-1", announce=False) as cli:
            echo = Collector(cli, t.solar())
            await cli.sync_subscriptions()
            await cli.publish(t.solar(), b'{"watts": 5}')
            assert (await echo.next()).payload == b'{"watts": 5}'
        async with broker.session("admin", component="late") as late:
            retained = Collector(late, t.tree("bridge", "cli-1"))
            await late.sync_subscriptions()
            with pytest.raises(TimeoutError):
                await retained.next(timeout=0.5)
        seen = [bridge.queue.get_nowait().topic for _ in range(bridge.queue.qsize())]
        assert not [topic for topic in seen if "/cli-1/" in topic]


async def test_bad_json_and_raising_handler_do_not_stop_the_router(
    broker: RunningBroker,
) -> None:
    """Malformed JSON and a handler exception are counted and reported; later input flows."""
    t = broker.topics
    good: list[Climate] = []

    async def keep(_: Inbound, climate: Climate) -> None:
        good.append(climate)

    async def explode(_: Inbound) -> None:
        raise RuntimeError("boom")

    async with (
        broker.session("admin", component="sender") as sender,
        broker.session("rules", reject_report_interval_s=0.01) as rules,
    ):
        reports = Collector(sender, t.bridge_rejected("rules"))
        await sender.sync_subscriptions()
        rules.route_model(t.filter("env_climate"), Climate.from_json, keep)
        rules.route(t.fans_profile_set(), explode)
        await rules.sync_subscriptions()
        await sender.publish(t.env_climate("internal"), b"{not json")
        await sender.publish(t.fans_profile_set(), b"max")
        valid = Climate(probe="internal", temperature_c=31.5)
        await sender.publish(t.env_climate("internal"), valid)
        first = BridgeRejected.from_json((await reports.next()).payload)
        await wait_until(lambda: bool(good))
    assert good[0].temperature_c == 31.5
    assert rules.rejections.total == 2
    assert dict(rules.rejections.by_kind) == {"invalid": 1, "handler_error": 1}
    assert first.kind == "invalid"
    assert first.topic == t.env_climate("internal")
    assert "JSON" in first.reason


async def test_rejection_reports_are_rate_limited(broker: RunningBroker) -> None:
    """A flood of bad input yields one report now and one summary, with every case counted."""
    t = broker.topics

    async def reject_all(_: Inbound) -> None:
        raise PayloadError("never valid")

    async with (
        broker.session("admin", component="sender") as sender,
        broker.session("sensors", reject_report_interval_s=0.5) as sensors,
    ):
        reports = Collector(sender, t.bridge_rejected("sensors"))
        await sender.sync_subscriptions()
        sensors.route(t.fans_profile_set(), reject_all)
        await sensors.sync_subscriptions()
        for _ in range(50):
            await sender.publish(t.fans_profile_set(), b"max")
        first = BridgeRejected.from_json((await reports.next()).payload)
        summary = BridgeRejected.from_json((await reports.next(timeout=3)).payload)
    assert (first.total, first.suppressed) == (1, 0)
    assert summary.total == 50
    assert summary.suppressed == 49
    assert reports.queue.empty()


async def test_session_survives_broker_restart(broker: RunningBroker) -> None:
    """After a broker restart the session reconnects, re-subscribes and receives again."""
    t = broker.topics
    async with broker.session("studio", component="studio") as studio:
        commands = Collector(studio, t.node_power_set("studio"))
        await broker.arestart()
        await wait_until(
            lambda: not (studio.stats.reconnects < 1 or not studio.is_connected), timeout=10
        )
        async with broker.session("admin", component="sender") as sender:
            await sender.publish(t.node_power_set("studio"), b"sleep")
            assert (await commands.next()).payload == b"sleep"


async def test_state_set_while_disconnected_is_published_on_reconnect(
    broker: RunningBroker,
) -> None:
    """Retained state given while the broker is down reaches the broker once it is back."""
    t = broker.topics
    topic = t.node_power("studio")
    async with broker.session("studio", component="studio") as studio:
        await broker.astop()
        await wait_until(lambda: not studio.is_connected)
        await studio.set_state(topic, b'{"state":"sleeping"}')
        await broker.astart()
        await studio.wait_connected(10)
        async with broker.session("admin", component="reader") as reader:
            seen = Collector(reader, topic)
            await reader.wait_connected()
            got = await seen.next()
    assert json.loads(got.payload)["state"] == "sleeping"
    assert got.retain


async def test_expired_state_is_not_republished(broker: RunningBroker) -> None:
    """Retained state past its expiry is not re-published after a reconnect."""
    t = broker.topics
    topic = t.node_telemetry("studio")
    now = [0.0]
    async with broker.session("studio", component="studio") as studio:
        studio._clock = lambda: now[0]
        await broker.astop()
        await wait_until(lambda: not studio.is_connected)
        await studio.set_state(topic, b"{}", expiry_s=15)
        now[0] = 16.0
        await broker.astart()
        await studio.wait_connected(10)
        async with broker.session("admin", component="reader") as reader:
            seen = Collector(reader, topic)
            with pytest.raises(TimeoutError):
                await seen.next(timeout=0.5)


async def test_protocol_311_option_connects_and_routes(broker: RunningBroker) -> None:
    """The MQTT 3.1.1 option connects, receives and publishes (without v5 properties)."""
    t = broker.topics
    async with broker.session("studio", protocol="3.1.1") as studio:
        commands = Collector(studio, t.node_power_set("studio"))
        await studio.sync_subscriptions()
        async with broker.session("admin", component="sender") as sender:
            await sender.publish(t.node_power_set("studio"), b"wake")
            assert (await commands.next()).payload == b"wake"
            await studio.publish(t.node_telemetry("studio"), b"{}", expiry_s=15)


@pytest.mark.parametrize(
    ("listener", "username", "password"),
    [
        ("mqtt", None, None),
        ("mqtt", "admin", "wrong"),
        ("websockets", None, None),
        ("websockets", "mobile", "wrong"),
    ],
)
async def test_anonymous_and_wrong_password_are_refused(
    broker: RunningBroker, listener: str, username: str | None, password: str | None
) -> None:
    """Every listener refuses clients without credentials, or with a wrong password."""
    with pytest.raises(aiomqtt.MqttError, match=r"[Nn]ot authori|[Bb]ad user name or password"):
        async with aiomqtt.Client(
            "127.0.0.1",
            broker.ports[listener],
            username=username,
            password=password,
            transport="websockets" if listener == "websockets" else "tcp",
            protocol=aiomqtt.ProtocolVersion.V5,
        ):
            pass


async def test_mobile_over_websockets_reads_state_and_sends_a_command(
    broker: RunningBroker,
) -> None:
    """A phone (mobile role, websockets) sees node state and its command reaches the node."""
    t = broker.topics
    async with (
        broker.session("studio") as studio,
        broker.session("mobile", listener="websockets") as phone,
    ):
        commands = Collector(studio, t.node_power_set("studio"))
        states = Collector(phone, t.filter("node_power"))
        await studio.sync_subscriptions()
        await phone.sync_subscriptions()
        await studio.set_state(t.node_power("studio"), b'{"state":"awake"}')
        assert json.loads((await states.next()).payload)["state"] == "awake"
        await phone.publish(t.node_power_set("studio"), b"sleep")
        assert (await commands.next()).payload == b"sleep"


async def test_tls_listener_with_local_ca(tls_broker: RunningBroker) -> None:
    """The TLS listener accepts a client that trusts the CA from `broker init --tls`."""
    t = tls_broker.topics
    async with tls_broker.session("admin", listener="tls") as admin:
        echo = Collector(admin, t.solar())
        await admin.sync_subscriptions()
        await admin.publish(t.solar(), b'{"watts": 120}')
        assert (await echo.next()).payload == b'{"watts": 120}'


async def test_tls_listener_rejects_an_untrusted_server_cert(tls_broker: RunningBroker) -> None:
    """Without the local CA the client refuses the broker's certificate."""
    settings = tls_broker.settings("admin", listener="tls")
    with pytest.raises(aiomqtt.MqttError, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):
        async with aiomqtt.Client(
            "127.0.0.1",
            settings.port,
            username="admin",
            password=settings.resolved_password(),
            tls_context=__import__("ssl").create_default_context(),
        ):
            pass


async def test_a_route_added_while_connecting_is_subscribed(broker: RunningBroker) -> None:
    """A route added during the connect (here by a connect hook, as a worker that finishes
    loading at that moment does) is subscribed on this connection, not only after the next."""
    t = broker.topics
    async with broker.session("studio", component="studio", connect=False) as studio:
        commands: list[Collector] = []

        async def add_route() -> None:
            if not commands:
                commands.append(Collector(studio, t.node_power_set("studio")))

        studio.on_connect(add_route)
        await studio.wait_connected(10)
        async with broker.session("admin", component="sender") as sender:
            await sender.publish(t.node_power_set("studio"), b"sleep")
            assert (await commands[0].next()).payload == b"sleep"


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_a_command_sent_while_the_link_is_down_arrives_after_the_reconnect(
    broker: RunningBroker, protocol: str
) -> None:
    """The session survives a dropped link on both protocols: a QoS 1 command published while
    the component is cut off is queued by the broker and delivered once it is back (with a
    clean 3.1.1 session, it was lost)."""
    t = broker.topics
    topic = t.node_power_set("studio")
    async with TcpProxy("127.0.0.1", broker.ports["mqtt"]) as proxy:
        link: dict[str, Any] = {"port": proxy.port, "protocol": protocol, "reconnect_max_s": 0.5}
        async with (
            broker.session("studio", component="studio", **link) as studio,
            broker.session("admin", component="sender") as sender,
        ):
            commands = Collector(studio, topic)
            await studio.sync_subscriptions()
            connects = studio.stats.connects
            proxy.cut()
            await wait_until(lambda: not studio.is_connected)
            await sender.publish(topic, b"wake", qos=1)
            proxy.heal()
            await wait_until(lambda: studio.stats.connects > connects, timeout=10)
            assert (await commands.next(timeout=5)).payload == b"wake"


async def test_a_link_that_drops_every_attempt_is_never_taken_for_connected(
    broker: RunningBroker,
) -> None:
    """Cut right after connecting, then every attempt accepted and dropped at once: the loss is
    seen at once (the setup's acknowledgements are not awaited on a dead link), no attempt is
    counted as a connect (aiomqtt took the previous connection's CONNACK for a new one, which
    then hung in its first subscribe), and the session is back a backoff step after the heal."""
    async with TcpProxy("127.0.0.1", broker.ports["mqtt"]) as proxy:
        link: dict[str, Any] = {"port": proxy.port, "reconnect_max_s": 0.5}
        async with broker.session("studio", component="studio", **link) as studio:
            connects = studio.stats.connects
            proxy.cut()
            await asyncio.sleep(2.0)  # several attempts, each dropped before its CONNACK
            assert studio.stats.connects == connects, "a dropped attempt counted as connected"
            assert proxy.refused >= 2, "the session stopped trying"
            proxy.heal()
            healed_at = time.monotonic()
            await wait_until(lambda: studio.stats.connects > connects, timeout=10)
            back_after = time.monotonic() - healed_at
    assert back_after < 3.0, f"back {back_after:.1f} s after the heal (attempts hung)"
