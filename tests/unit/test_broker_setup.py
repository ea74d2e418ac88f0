"""Broker set-up without a running broker: config rendering, role intent, files written."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from aigloo_edge.broker import init_broker, refresh_broker, render_config, template_path
from aigloo_edge.broker.conf import split_listeners
from aigloo_edge.mqtt import load_credentials
from aigloo_edge.topics import Topics
from tests.support.acl import expected_topics

PORTS = {"mqtt": 21883, "websockets": 29001, "tls": 28883}


def test_project_config_has_what_the_mini_needs() -> None:
    """The root mosquitto.conf: per-listener auth, three listeners, persistence, limits."""
    text = template_path().read_text()
    head, listeners = split_listeners(text)
    settings = {line.split()[0]: line.split()[1:] for line in head if line and line[0] != "#"}
    assert settings["per_listener_settings"] == ["true"]
    assert settings["persistence"] == ["true"]
    assert settings["check_retain_source"] == ["true"]
    assert settings["set_tcp_nodelay"] == ["true"]
    for limit in ("max_packet_size", "max_queued_messages", "max_keepalive", "autosave_interval"):
        assert limit in settings
    assert [block.kind for block in listeners] == ["mqtt", "websockets", "tls"]
    for block in listeners:
        body = [line.strip() for line in block.lines]
        assert "allow_anonymous false" in body
        assert "password_file passwd" in body
        assert "acl_file acl" in body


def test_render_substitutes_ports_and_drops_tls_without_certs(tmp_path: Path) -> None:
    rendered = render_config(tmp_path, PORTS)
    assert "listener 21883" in rendered
    assert "listener 29001" in rendered
    assert "listener 28883" not in rendered
    assert "certfile" not in rendered


def test_render_keeps_tls_once_certs_exist(tmp_path: Path) -> None:
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls" / "server.crt").write_text("x")
    rendered = render_config(tmp_path, PORTS)
    assert "listener 28883" in rendered
    assert "certfile tls/server.crt" in rendered


def test_render_runs_as_the_owner_when_root(tmp_path: Path) -> None:
    """As root, Mosquitto would drop to `mosquitto` and lose access to our 0600 files."""
    rendered = render_config(tmp_path, PORTS)
    assert ("user root" in rendered) == (os.geteuid() == 0)


def test_init_writes_private_files_and_keeps_passwords(tmp_path: Path) -> None:
    """Credentials, passwd and acl are 0600; re-running init keeps passwords; --rotate not."""
    creds = init_broker(tmp_path, ports=PORTS)
    for name in ("credentials.yaml", "passwd", "acl"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    passwd = (tmp_path / "passwd").read_text()
    for user, password in creds.users.items():
        assert f"{user}:$7$" in passwd, "hashed by mosquitto_passwd"
        assert password.get_secret_value() not in passwd
    again = init_broker(tmp_path, ports=PORTS)
    assert again.users == creds.users
    rotated = init_broker(tmp_path, ports=PORTS, rotate=True)
    assert all(rotated.users[u] != creds.users[u] for u in creds.users)
    assert load_credentials(tmp_path / "credentials.yaml").ports == PORTS


def test_refresh_adds_a_new_role_and_acl_and_keeps_the_rest(tmp_path: Path) -> None:
    """A broker directory from an older version (no `plain` user, an older ACL) is brought up
    to date by `aigloo up`; every existing password, the host and the ports stay."""
    creds = init_broker(tmp_path, ports=PORTS, host="mini.local")
    assert refresh_broker(tmp_path) is False  # already current: nothing rewritten
    path = tmp_path / "credentials.yaml"
    older = path.read_text().replace(f"  plain: {creds.users['plain'].get_secret_value()}\n", "")
    path.write_text(older)
    (tmp_path / "acl").write_text("user admin\ntopic readwrite #\n")
    assert refresh_broker(tmp_path) is True
    after = load_credentials(path)
    assert "plain" in after.users
    assert {u: after.users[u] for u in creds.users if u != "plain"} == {
        u: p for u, p in creds.users.items() if u != "plain"
    }
    assert (after.host, after.ports) == ("mini.local", PORTS)
    assert "user plain" in (tmp_path / "acl").read_text()


def test_init_with_tls_writes_a_ca_and_a_server_cert(tmp_path: Path) -> None:
    init_broker(tmp_path, tls=True, tls_hosts=["mini.local"])
    tls = tmp_path / "tls"
    assert {p.name for p in tls.iterdir()} == {"ca.crt", "ca.key", "server.crt", "server.key"}
    assert stat.S_IMODE((tls / "server.key").stat().st_mode) == 0o600


def test_acl_file_has_a_user_block_per_role(tmp_path: Path) -> None:
    init_broker(tmp_path, base_topic="sites/north/aigloo")
    acl = (tmp_path / "acl").read_text()
    assert "user studio\n" in acl
    assert "topic readwrite sites/north/aigloo/nodes/studio/#" in acl
    assert "topic write sites/north/aigloo/infer/request" in acl


T = Topics()


@pytest.mark.parametrize(
    ("role", "action", "topic", "allowed"),
    [
        ("studio", "write", T.node_telemetry("studio"), True),
        ("studio", "write", T.node_telemetry("mbp"), False),
        ("studio", "read", T.node_power_set("studio"), True),
        ("studio", "read", T.node_power_set("mbp"), False),
        ("studio", "write", T.battery(), False),
        ("studio", "read", T.battery(), False),
        ("sensors", "write", T.battery(), True),
        ("sensors", "write", T.node_power_set("studio"), False),
        ("sensors", "read", T.fans_profile_set(), True),
        ("rules", "write", T.node_power_set("studio"), True),
        ("rules", "write", T.node_telemetry("studio"), False),
        ("rules", "read", T.env_climate("internal"), True),
        ("dispatcher", "write", T.node_infer("mbp"), True),
        ("dispatcher", "write", T.fans_profile_set(), False),
        ("mobile", "write", T.infer_request(), True),
        ("mobile", "write", T.node_power_set("studio"), True),
        ("mobile", "write", T.node_telemetry("studio"), False),
        ("mobile", "write", T.battery(), False),
        ("mobile", "read", T.infer_reply("phone", "r1"), True),
        ("homeassistant", "write", T.hass_device_config("studio"), True),
        ("homeassistant", "write", T.node_power("studio"), False),
        ("admin", "write", T.node_telemetry("studio"), True),
    ],
)
def test_role_table_says_what_the_issue_asks(
    role: str, action: str, topic: str, allowed: bool
) -> None:
    """Spot checks of the role table's intent, written independently of the table."""
    got = topic in expected_topics(T, role, action, [topic])  # type: ignore[arg-type]
    assert got is allowed
