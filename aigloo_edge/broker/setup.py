"""`aigloo broker init`: password file, ACL, credentials and (optionally) TLS for the broker."""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
from pathlib import Path

import yaml
from pydantic import SecretStr

from aigloo_edge.broker.conf import DEFAULT_PORTS
from aigloo_edge.broker.files import write_private
from aigloo_edge.broker.roles import ALL_ROLES, render_acl
from aigloo_edge.broker.tls import write_tls
from aigloo_edge.errors import BrokerError, ConfigError
from aigloo_edge.mqtt.settings import Credentials, load_credentials
from aigloo_edge.topics import Topics

CREDENTIALS_FILE = "credentials.yaml"
PASSWORD_BYTES = 24


def credentials_path(directory: Path) -> Path:
    return directory / CREDENTIALS_FILE


def init_broker(
    directory: Path,
    *,
    base_topic: str = "aigloo",
    host: str = "127.0.0.1",
    ports: dict[str, int] | None = None,
    tls: bool = False,
    tls_hosts: list[str] | None = None,
    rotate: bool = False,
) -> Credentials:
    """Fill `directory` for Mosquitto; keeps existing passwords unless `rotate`."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "data").mkdir(exist_ok=True)
    topics = Topics(base_topic)
    passwords = _passwords(directory, rotate)
    creds = Credentials(
        base_topic=topics.base,
        host=host,
        ports={**DEFAULT_PORTS, **(ports or {})},
        users={user: SecretStr(pw) for user, pw in passwords.items()},
    )
    write_private(credentials_path(directory), _credentials_yaml(creds))
    _write_password_file(directory / "passwd", passwords)
    write_private(directory / "acl", render_acl(topics))
    if tls:
        write_tls(directory / "tls", _tls_hosts(host, tls_hosts or []))
    return creds


def refresh_broker(directory: Path) -> bool:
    """Bring an existing broker directory up to this version's roles and ACL (a role added, a
    grant changed), keeping every password, host and port; True if anything was rewritten."""
    creds = load_credentials(credentials_path(directory))
    acl = directory / "acl"
    current = acl.read_text() if acl.exists() else ""
    if set(ALL_ROLES) <= set(creds.users) and current == render_acl(Topics(creds.base_topic)):
        return False
    init_broker(directory, base_topic=creds.base_topic, host=creds.host, ports=creds.ports)
    return True


def _passwords(directory: Path, rotate: bool) -> dict[str, str]:
    existing: dict[str, str] = {}
    path = credentials_path(directory)
    if path.exists() and not rotate:
        try:
            old = load_credentials(path)
        except ConfigError:
            old = None
        if old is not None:
            existing = {user: pw.get_secret_value() for user, pw in old.users.items()}
    return {role: existing.get(role) or secrets.token_urlsafe(PASSWORD_BYTES) for role in ALL_ROLES}


def _credentials_yaml(creds: Credentials) -> str:
    data = {
        "base_topic": creds.base_topic,
        "host": creds.host,
        "ports": creds.ports,
        "users": {user: pw.get_secret_value() for user, pw in creds.users.items()},
    }
    note = "# Aigloo broker credentials: one password per role. Keep private (mode 0600).\n"
    return note + yaml.safe_dump(data, sort_keys=False)


def _write_password_file(path: Path, passwords: dict[str, str]) -> None:
    """Write `user:password` lines, then let mosquitto_passwd hash them all in one run."""
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        raise BrokerError(
            "mosquitto_passwd not found: install Mosquitto (`make up` does, or "
            "`apt-get install mosquitto` / `brew install mosquitto`)"
        )
    write_private(path, "".join(f"{user}:{pw}\n" for user, pw in passwords.items()))
    result = subprocess.run([tool, "-U", str(path)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        path.unlink(missing_ok=True)  # never leave plain-text passwords behind
        raise BrokerError(f"mosquitto_passwd failed: {result.stderr.strip() or result.stdout}")


def _tls_hosts(host: str, extra: list[str]) -> list[str]:
    hosts = [host, "localhost", "127.0.0.1", socket.gethostname(), *extra]
    return list(dict.fromkeys(h for h in hosts if h))
