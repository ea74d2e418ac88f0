"""Access (issue 10, item 5): who may connect, publish, subscribe, retain and leave a Will.

The role x topic matrix over TCP lives in tests/integration/test_acl.py; here it runs again over
the websockets listener (phones and browser apps). Then the edges of the ACL a well-behaved
Session never reaches: anonymous and wrong-password CONNECTs on every listener, retained state
forged by a role that may not write it, a Will aimed at a forbidden topic, a packet over the
broker's 1 MiB limit, plain MQTT against the TLS port. Last, a full rig runs with DEBUG logging
and no password or API key may appear in any log line (its own, the CLI's, Mosquitto's).

The TLS listener's happy path (the CA from `broker init --tls` is trusted, a client without it
refuses the server) is tests/integration/test_session.py::test_tls_listener_with_local_ca and
::test_tls_listener_rejects_an_untrusted_server_cert.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from aigloo_edge.broker import ALL_ROLES
from tests.support.acl import expected_topics, probe_topics, published_through, read_through
from tests.support.broker import RunningBroker, free_port
from tests.support.collect import Collector
from tests.support.node import node_config

ROOT = Path(__file__).resolve().parents[2]
AIGLOO = Path(sys.executable).parent / "aigloo"
MAX_PACKET = 1_048_576  # mosquitto.conf: max_packet_size
NOT_AUTHORIZED = 135  # MQTT v5 CONNACK reason 0x87 (Mosquitto 2.0 answers it for a bad password)
PACKET_TOO_LARGE = 149  # MQTT v5 DISCONNECT reason 0x95
UNSPECIFIED_ERROR = 128  # what paho reports when the socket closed first


# --- the role x topic matrix over websockets ---------------------------------------------------


@pytest.mark.parametrize("role", ALL_ROLES)
async def test_over_websockets_a_role_may_publish_exactly_its_grants(
    broker: RunningBroker, role: str, record_property: Callable[[str, object], None]
) -> None:
    """Over the websockets listener, a role's publishes reach subscribers only on the topics its
    grants let it write: every other probe topic is dropped by the broker."""
    probes = probe_topics(broker.topics)
    received = await published_through(broker, role, "websockets")
    allowed = expected_topics(broker.topics, role, "write", probes)
    record_property("access_cases", len(probes))
    record_property("allowed", len(allowed))
    assert received == allowed


@pytest.mark.parametrize("role", ALL_ROLES)
async def test_over_websockets_a_role_may_read_exactly_its_grants(
    broker: RunningBroker, role: str, record_property: Callable[[str, object], None]
) -> None:
    """Over the websockets listener, a role subscribed to every probe topic receives only those
    its grants let it read."""
    probes = probe_topics(broker.topics)
    received = await read_through(broker, role, "websockets")
    allowed = expected_topics(broker.topics, role, "read", probes)
    record_property("access_cases", len(probes))
    record_property("allowed", len(allowed))
    assert received == allowed


def test_matrix_size(broker: RunningBroker, record_property: Callable[[str, object], None]) -> None:
    """The figures for docs/reliability.md: roles x probe topics x 2 directions x 2 transports
    (TCP in tests/integration/test_acl.py, websockets here), and how many of them are allowed."""
    probes = probe_topics(broker.topics)
    allowed = sum(
        len(expected_topics(broker.topics, role, action, probes))
        for role in ALL_ROLES
        for action in ("read", "write")
    )
    per_transport = len(ALL_ROLES) * len(probes) * 2
    figures = {
        "roles": len(ALL_ROLES),
        "probe_topics": len(probes),
        "cases_per_transport": per_transport,
        "cases_total": per_transport * 2,
        "allowed_per_transport": allowed,
        "denied_per_transport": per_transport - allowed,
    }
    for name, value in figures.items():
        record_property(name, value)
    print(f"access matrix: {figures}")
    assert figures["denied_per_transport"] > 0 < allowed


# --- a raw client, for what a Session never does ----------------------------------------------


class Raw:
    """A paho client driven by its own network thread, recording CONNACK, DISCONNECT, messages."""

    def __init__(
        self,
        broker: RunningBroker,
        username: str | None,
        password: str | None = None,
        *,
        listener: str = "mqtt",
        client_id: str = "",
        protocol: int = mqtt.MQTTv5,
    ) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5 if protocol == mqtt.MQTTv5 else mqtt.MQTTv311,
            transport="websockets" if listener == "websockets" else "tcp",
            reconnect_on_failure=False,  # one attempt: the test reads its outcome
        )
        if listener == "tls":
            self.client.tls_set(ca_certs=str(broker.directory / "tls" / "ca.crt"))
        if username is not None:
            if password is None:
                password = broker.creds.password_for(username)
            self.client.username_pw_set(username, password)
        self.broker = broker
        self.port = broker.ports[listener]
        self.connack: ReasonCode | int | None = None
        self.connack_properties: Properties | None = None
        self.disconnect: ReasonCode | int | None = None
        self.messages: list[mqtt.MQTTMessage] = []
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = lambda _c, _u, m: self.messages.append(m)

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: ReasonCode, props: Any) -> None:
        self.connack, self.connack_properties = rc, props

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        self.disconnect = rc

    def connect(self) -> Raw:
        self.client.connect("127.0.0.1", self.port, keepalive=60)
        self.client.loop_start()
        return self

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()  # also wakes the network thread at once
        self.client.loop_stop()

    def wait(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"connack={self.connack} disconnect={self.disconnect}")
            time.sleep(0.01)

    def wait_connack(self) -> int:
        self.wait(lambda: self.connack is not None or self.disconnect is not None)
        return _code(self.connack if self.connack is not None else self.disconnect)

    def subscribe_and_wait(self, topic: str) -> None:
        done: list[int] = []
        self.client.on_subscribe = lambda *_a: done.append(1)
        self.client.subscribe(topic, qos=1)
        self.wait(lambda: bool(done))


def _code(rc: ReasonCode | int | None) -> int:
    return rc.value if isinstance(rc, ReasonCode) else int(rc or 0)


@contextlib.contextmanager
def raw(broker: RunningBroker, username: str | None, **kwargs: Any) -> Iterator[Raw]:
    client = Raw(broker, username, **kwargs)
    try:
        yield client
    finally:
        client.stop()


# --- authentication ----------------------------------------------------------------------------


@pytest.mark.parametrize("listener", ["mqtt", "websockets", "tls"])
@pytest.mark.parametrize(
    ("username", "password"),
    [(None, None), ("admin", "wrong"), ("mobile", ""), ("nobody", "guess")],
    ids=["anonymous", "admin-wrong-password", "mobile-empty-password", "unknown-user"],
)
def test_connect_without_valid_credentials_is_refused_with_not_authorized(
    tls_broker: RunningBroker, listener: str, username: str | None, password: str | None
) -> None:
    """Every listener (TCP, websockets, TLS) answers an anonymous client, a wrong or empty
    password and an unknown user with CONNACK 0x87 Not authorized, and then closes."""
    with raw(tls_broker, username, password=password, listener=listener) as client:
        assert client.connect().wait_connack() == NOT_AUTHORIZED
        client.wait(lambda: client.disconnect is not None)
    with raw(tls_broker, "admin", listener=listener) as control:  # the right password works
        assert control.connect().wait_connack() == 0


def test_connect_311_without_valid_credentials_is_refused(broker: RunningBroker) -> None:
    """An MQTT 3.1.1 client with a wrong password is refused too: CONNACK return code 5, Not
    authorised (which paho reports as the v5 reason code 0x87)."""
    with raw(broker, "admin", password="wrong", protocol=mqtt.MQTTv311) as client:
        assert client.connect().wait_connack() == NOT_AUTHORIZED


# --- retained state forged by a role that may not write it -----------------------------------


async def test_a_role_cannot_plant_or_overwrite_retained_state_it_may_not_write(
    broker: RunningBroker,
) -> None:
    """A retained publish by a role without write access to the topic is dropped: a fresh
    subscriber still gets the legitimate retained value (or none, where none was set)."""
    t = broker.topics
    cases = [  # (role, topic, legitimate retained value set first by admin or None)
        ("mobile", t.battery(), b'{"soc_pct": 57}'),
        ("gateway", t.fans_profile(), b'{"profile": "quiet"}'),
        ("studio", t.node_availability("mbp"), b"online"),
        ("homeassistant", t.node_power("studio"), b'{"state": "awake"}'),
        ("plain", t.rule_state("fans-max"), None),
        ("mobile", t.env_climate("internal"), None),
    ]
    for role, topic, _ in cases:
        assert topic not in expected_topics(t, role, "write", [topic]), (role, topic)
    async with broker.session("admin", component="setter", announce=False) as admin:
        for _, topic, value in cases:
            if value is not None:
                await admin.publish(topic, value, retain=True)
    for role, topic, _ in cases:
        async with broker.session(role, component=role, announce=False) as forger:
            await forger.publish(topic, b"forged", retain=True)
            await forger.publish(f"{t.base}/bridge/{role}/sentinel", b"end")  # PUBACK'd in order
    async with broker.session("admin", component="fresh", announce=False) as fresh:
        retained = Collector(fresh, t.all())
        await fresh.sync_subscriptions()
        sentinel = f"{t.base}/bridge/fresh/sentinel"  # queued after the retained messages
        await fresh.publish(sentinel, b"end")
        got = {m.topic: m.payload for m in await retained.until(sentinel) if m.retain}
    assert {topic: got.get(topic) for _, topic, _ in cases} == {
        topic: value for _, topic, value in cases
    }


# --- a Will aimed at a forbidden topic --------------------------------------------------------


def _drop_with_will(
    broker: RunningBroker, role: str, topic: str, payload: bytes, client_id: str
) -> int:
    """Connect as `role` with a retained QoS 1 Will on `topic`, then drop the TCP connection
    without DISCONNECT (as a crash or a lost link does); the CONNACK reason code."""
    will = Raw(broker, role, client_id=client_id)
    will.client.will_set(topic, payload, qos=1, retain=True)
    will.client.connect("127.0.0.1", will.port, keepalive=60)
    while will.connack is None:
        will.client.loop(0.05)
    sock = will.client.socket()
    assert sock is not None
    sock.close()  # unclean: the broker sees EOF and must publish (or drop) the Will
    return _code(will.connack)


def test_a_will_on_a_topic_the_role_may_not_write_is_never_delivered(
    broker: RunningBroker,
) -> None:
    """Mosquitto 2.0 accepts the CONNECT (CONNACK 0) of a client whose Will names a topic it may
    not write, and checks the ACL when the Will would be sent: after an unclean drop a live
    subscriber receives nothing and nothing is retained. The control, a node's Will on its own
    availability dropped the same way, is delivered (so the drop did trigger Wills)."""
    t = broker.topics
    forbidden = t.node_availability("studio")
    allowed = t.node_availability("mbp")
    with raw(broker, "admin", client_id="watcher") as watcher:
        watcher.connect().wait_connack()
        watcher.subscribe_and_wait(f"{t.base}/nodes/#")
        assert _drop_with_will(broker, "mobile", forbidden, b"forged", "mobile-will") == 0
        # the broker has handled that drop (and so that Will) before the control's
        watcher.wait(lambda: "Client mobile-will closed its connection" in _log(broker))
        assert _drop_with_will(broker, "mbp", allowed, b"offline", "mbp-will") == 0
        watcher.wait(lambda: any(m.topic == allowed for m in watcher.messages))
        assert [(m.topic, m.payload) for m in watcher.messages] == [(allowed, b"offline")]
    with raw(broker, "admin", client_id="fresh") as fresh:
        fresh.connect().wait_connack()
        fresh.subscribe_and_wait(f"{t.base}/nodes/#")
        fresh.client.publish(f"{t.base}/nodes/sentinel", b"end", qos=1)  # after the retained
        fresh.wait(lambda: any(m.topic.endswith("/sentinel") for m in fresh.messages))
        assert {m.topic: m.payload for m in fresh.messages if m.retain} == {allowed: b"offline"}


def _log(broker: RunningBroker) -> str:
    return broker.log_path.read_text()


# --- oversize packets --------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [mqtt.MQTTv5, mqtt.MQTTv311], ids=["v5", "v3.1.1"])
def test_a_packet_over_the_size_limit_is_refused_and_the_client_dropped(
    broker: RunningBroker, protocol: int
) -> None:
    """A PUBLISH over `max_packet_size` (1 MiB) is not delivered and its sender is disconnected
    (v5: DISCONNECT 0x95 Packet too large; the limit is announced in the CONNACK). One just
    under the limit, from the same role, goes through."""
    t = broker.topics
    with raw(broker, "admin", client_id="watcher") as watcher:
        watcher.connect().wait_connack()
        watcher.subscribe_and_wait(t.solar())
        with raw(broker, "admin", client_id="fits", protocol=protocol) as fits:
            fits.connect().wait_connack()
            fits.client.publish(t.solar(), b"x" * (MAX_PACKET - 1024), qos=1)
            watcher.wait(lambda: len(watcher.messages) == 1)
        with raw(broker, "admin", client_id="big", protocol=protocol) as big:
            assert big.connect().wait_connack() == 0
            if protocol == mqtt.MQTTv5:
                assert big.connack_properties is not None
                announced = getattr(big.connack_properties, "MaximumPacketSize", None)
                assert announced == MAX_PACKET
            big.client.publish(t.solar(), b"x" * (MAX_PACKET + 1), qos=1)
            big.wait(lambda: big.disconnect is not None)
            if protocol == mqtt.MQTTv5:
                # The broker sends DISCONNECT 0x95 and closes; paho reports 0x80 when the close
                # wins the race with reading that DISCONNECT.
                assert _code(big.disconnect) in {PACKET_TOO_LARGE, UNSPECIFIED_ERROR}
        with raw(broker, "admin", client_id="after") as after:
            after.connect().wait_connack()
            after.client.publish(t.solar(), b"after", qos=1)
            watcher.wait(lambda: len(watcher.messages) == 2)
    assert [len(m.payload) for m in watcher.messages] == [MAX_PACKET - 1024, 5]
    assert "oversize packet" in broker.log_path.read_text()


# --- TLS ---------------------------------------------------------------------------------------


def test_plain_mqtt_to_the_tls_port_gets_no_connack(tls_broker: RunningBroker) -> None:
    """A plain-TCP MQTT CONNECT (valid credentials) to the TLS listener gets no CONNACK: the
    broker treats it as a failed TLS handshake and closes the connection."""
    connect = _connect_packet("admin", tls_broker.creds.password_for("admin"))
    with socket.create_connection(("127.0.0.1", tls_broker.ports["tls"]), 5) as sock:
        sock.sendall(connect)
        sock.settimeout(5)
        reply = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(1024):
                reply += chunk
    assert not reply.startswith(b"\x20")  # CONNACK
    with socket.create_connection(("127.0.0.1", tls_broker.ports["mqtt"]), 5) as sock:
        sock.sendall(connect)  # the same bytes to the TCP listener: accepted (the control)
        sock.settimeout(5)
        assert sock.recv(4) == b"\x20\x02\x00\x00"


def _connect_packet(username: str, password: str) -> bytes:
    """An MQTT 3.1.1 CONNECT with clean session, keepalive 30, username and password."""

    def field(value: str) -> bytes:
        data = value.encode()
        return len(data).to_bytes(2, "big") + data

    body = field("MQTT") + bytes([4, 0xC2]) + (30).to_bytes(2, "big")
    body += field("raw-plain") + field(username) + field(password)
    assert len(body) < 128
    return bytes([0x10, len(body)]) + body


# --- secrets in logs ---------------------------------------------------------------------------


def _write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def _aigloo(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AIGLOO), "--log-level", "DEBUG", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"},
        check=False,
    )


def _http(url: str, key: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_no_password_or_api_key_appears_in_any_log_line(
    broker: RunningBroker, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    """With DEBUG logging everywhere, a rig (twin, agent, rules, dispatcher, gateway with API
    keys, Home Assistant discovery, plain values) runs, is queried over HTTP with a right and a
    wrong key, is driven by `aigloo status` and `aigloo fans set`, sees a wrong-password CLI and
    raw clients refused: no role password, no API key and no wrong password appears in the rig's
    log, the CLI's output or Mosquitto's log."""
    keys = ["sk-aigloo-" + "k" * 24 + "1", "sk-aigloo-" + "k" * 24 + "2"]
    keys_file = tmp_path / "api-keys"
    keys_file.write_text("\n".join(keys) + "\n")
    keys_file.chmod(0o600)
    gateway_port = free_port()
    mini = node_config(
        broker,
        "mini",
        components=["agent", "twin", "rules", "dispatcher", "gateway", "hass", "plain"],
        twin={"scenario": str(ROOT / "scenarios" / "sunny-day.yaml"), "speed": 1},
        rules={"dir": str(ROOT / "rules"), "state_file": str(tmp_path / "rules.sqlite3")},
        dispatcher={},
        gateway={"port": gateway_port, "api_keys_file": str(keys_file)},
        hass={},
        plain={},
    ).model_dump(mode="json", exclude_none=True)
    mini_file = _write_yaml(tmp_path / "mini.yaml", mini)
    air = node_config(broker, "air").model_dump(mode="json", include={"node", "role", "broker"})
    air["components"] = ["agent"]
    air_file = _write_yaml(tmp_path / "air.yaml", air)
    wrong_secret = "wrong-" + "p" * 26
    bad_creds = yaml.safe_load((broker.directory / "credentials.yaml").read_text())
    bad_creds["users"] = {user: wrong_secret for user in bad_creds["users"]}
    bad_creds_file = _write_yaml(tmp_path / "bad-credentials.yaml", bad_creds)
    bad_creds_file.chmod(0o600)
    air_bad = json.loads(json.dumps(air))
    air_bad["broker"]["credentials_file"] = str(bad_creds_file)
    air_bad_file = _write_yaml(tmp_path / "air-bad.yaml", air_bad)

    rig_log = tmp_path / "rig.log"
    with rig_log.open("w") as log:
        rig = subprocess.Popen(
            [str(AIGLOO), "--log-level", "DEBUG", "run", str(mini_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
        )
    outputs: list[str] = []
    try:
        base = f"http://127.0.0.1:{gateway_port}/v1/models"
        deadline = time.monotonic() + 30
        while True:
            assert rig.poll() is None, rig_log.read_text()
            with contextlib.suppress(OSError):
                if _http(base, keys[0]) == 200:
                    break
            assert time.monotonic() < deadline, rig_log.read_text()
            time.sleep(0.2)
        assert _http(base, keys[1]) == 200
        assert _http(base, "sk-not-a-key-" + "z" * 20) == 401
        for args in (
            ("status", "--json", "--config", str(air_file)),
            ("fans", "set", "max", "--config", str(air_file)),
            ("status", "--config", str(air_bad_file)),
        ):
            ran = _aigloo(*args)
            outputs.append(ran.stdout + ran.stderr)
        for listener in ("mqtt", "websockets"):
            with raw(broker, "admin", password=wrong_secret, listener=listener) as bad:
                assert bad.connect().wait_connack() == NOT_AUTHORIZED
    finally:
        rig.terminate()
        try:
            rig.wait(15)
        except subprocess.TimeoutExpired:
            rig.kill()
            rig.wait()
    broker.stop()  # flush Mosquitto's log
    logs = {
        "rig": rig_log.read_text(),
        "cli": "\n".join(outputs),
        "mosquitto": broker.log_path.read_text(),
    }
    secrets = {
        **{f"password:{user}": broker.creds.password_for(user) for user in broker.creds.users},
        **{f"api_key:{i}": key for i, key in enumerate(keys)},
        "wrong_password": wrong_secret,
    }
    leaks = [(name, where) for name, s in secrets.items() for where, t in logs.items() if s in t]
    lines = sum(text.count("\n") for text in logs.values())
    record_property("log_lines_scanned", lines)
    record_property("secrets_checked", len(secrets))
    print(f"secrets scan: {len(secrets)} secrets over {lines} log lines")
    # the run did what it should, so the scan covers real traffic
    assert " DEBUG " in logs["rig"]
    assert "status=200" in logs["rig"]
    assert "invalid_api_key" in logs["rig"]
    assert "Not authorized" in logs["cli"]
    assert "not authorised" in logs["mosquitto"]
    assert leaks == []
