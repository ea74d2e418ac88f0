"""How a component reaches the broker: address, transport, TLS, protocol and credentials."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from aigloo_edge.errors import ConfigError


class TlsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    ca_file: Path | None = Field(default=None, description="CA that signed the broker's cert")
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = Field(default=False, description="skip hostname checks (testing only)")

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        if self.insecure:
            context.check_hostname = False
        return context


class MqttSettings(BaseModel):
    """Connection settings; strict because they come from config files, never the network."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    transport: Literal["tcp", "websockets"] = "tcp"
    websocket_path: str = "/mqtt"
    protocol: Literal["5", "3.1.1"] = "5"
    tls: TlsSettings | None = None
    username: str | None = None
    password: SecretStr | None = None
    credentials_file: Path | None = Field(
        default=None, description="the 0600 file `aigloo broker init` writes; gives the password"
    )
    base_topic: str = "aigloo"
    keepalive: int = Field(default=30, ge=1, le=120)
    session_expiry_s: int = Field(default=300, ge=0, description="MQTT v5 session kept on drop")
    reconnect_initial_s: float = Field(default=0.5, gt=0)
    # 2 s: a component is back within 2 s (plus connecting) of the broker returning, well
    # inside the 5 s goal even after a run of restarts; a retry every 2 s costs nothing.
    reconnect_max_s: float = Field(default=2.0, gt=0)
    reject_report_interval_s: float = Field(default=5.0, gt=0)
    health_interval_s: float = Field(default=60.0, gt=0)

    def resolved_password(self) -> str | None:
        if self.password is not None:
            return self.password.get_secret_value()
        if self.credentials_file is None or self.username is None:
            return None
        return load_credentials(self.credentials_file).password_for(self.username)


class Credentials(BaseModel):
    """The credentials file: one random password per role, plus where the broker listens."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    base_topic: str
    host: str
    ports: dict[str, int]
    users: dict[str, SecretStr]

    def password_for(self, username: str) -> str:
        try:
            return self.users[username].get_secret_value()
        except KeyError:
            raise ConfigError(
                f"no password for user {username!r} in the credentials file"
            ) from None

    def settings_for(self, username: str, *, listener: str = "mqtt") -> MqttSettings:
        transport: Literal["tcp", "websockets"] = (
            "websockets" if listener == "websockets" else "tcp"
        )
        return MqttSettings(
            host=self.host,
            port=self.ports[listener],
            transport=transport,
            username=username,
            password=SecretStr(self.password_for(username)),
            base_topic=self.base_topic,
        )


def load_credentials(path: Path) -> Credentials:
    try:
        data = yaml.safe_load(path.read_text())
        return Credentials.model_validate(data)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read credentials: {exc.strerror}") from exc
    except (yaml.YAMLError, ValueError) as exc:
        raise ConfigError(f"{path}: not a valid credentials file") from exc
