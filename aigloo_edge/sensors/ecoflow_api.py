"""EcoFlow IoT open API over HTTP: request signing (HMAC-SHA256) and the MQTT certificate.

Facts: docs/ecoflow-ble-protocol.md §10. Keys and passwords are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar

import httpx

from aigloo_edge.errors import SensorError

log = logging.getLogger(__name__)

T = TypeVar("T")

CERTIFICATE_PATH: Final = "/iot-open/sign/certification"
HTTP_TIMEOUT_S: Final = 15.0
ERROR_HINTS: Final = {"8521": "check the access and secret keys, and the clock"}


# --- request signing (pure) -------------------------------------------------------------------


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested objects become `a.b`, arrays `a[0]` (and `a[0].b`); values become text."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        _flatten_into(flat, name, value)
    return flat


def _flatten_into(flat: dict[str, str], name: str, value: Any) -> None:
    if isinstance(value, Mapping):
        flat.update(flatten_params(value, name))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _flatten_into(flat, f"{name}[{index}]", item)
    else:
        flat[name] = _text(value)


def _text(value: Any) -> str:
    """A value as JavaScript's template strings write it (the reference clients are JS)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def canonical_string(
    params: Mapping[str, Any] | None, access_key: str, nonce: str, timestamp: str
) -> str:
    """The text that is signed: sorted `k=v` pairs, then accessKey, nonce and timestamp."""
    flat = flatten_params(params or {})
    pairs = [f"{key}={flat[key]}" for key in sorted(flat)]
    pairs += [f"accessKey={access_key}", f"nonce={nonce}", f"timestamp={timestamp}"]
    return "&".join(pairs)


def hmac_sha256_hex(message: str, secret_key: str) -> str:
    return hmac.new(secret_key.encode(), message.encode(), hashlib.sha256).hexdigest()


def signed_headers(
    access_key: str,
    secret_key: str,
    params: Mapping[str, Any] | None = None,
    *,
    nonce: str | None = None,
    timestamp: str | None = None,
) -> dict[str, str]:
    """The four auth headers of one request; a fresh nonce and the current time by default."""
    nonce = nonce if nonce is not None else str(100_000 + secrets.randbelow(900_000))
    timestamp = timestamp if timestamp is not None else str(int(time.time() * 1000))
    sign = hmac_sha256_hex(canonical_string(params, access_key, nonce, timestamp), secret_key)
    return {"accessKey": access_key, "nonce": nonce, "timestamp": timestamp, "sign": sign}


# --- the MQTT certificate ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CloudCredentials:
    """What `/iot-open/sign/certification` answers: where and as whom to connect."""

    host: str
    port: int
    account: str
    password: str = field(repr=False)
    protocol: str = "mqtts"

    def topic(self, serial: str, kind: Literal["quota", "set", "set_reply", "status"]) -> str:
        return f"/open/{self.account}/{serial}/{kind}"


async def request_certificate(
    api_url: str, access_key: str, secret_key: str, http: httpx.AsyncClient
) -> CloudCredentials:
    """Ask EcoFlow for the MQTT credentials; SensorError (without the keys) if refused."""
    url = api_url.rstrip("/") + CERTIFICATE_PATH
    log.info("requesting the EcoFlow MQTT certificate from %s", api_url)
    try:
        response = await http.get(url, headers=signed_headers(access_key, secret_key))
    except httpx.HTTPError as exc:
        raise SensorError(f"cannot reach {api_url}: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise SensorError(
            f"EcoFlow certificate request failed: HTTP {response.status_code}"
            f" {response.reason_phrase}".rstrip()
        )
    try:
        body = response.json()
    except ValueError:
        raise SensorError("EcoFlow certificate response is not JSON") from None
    if not isinstance(body, dict):
        raise SensorError("EcoFlow certificate response is not a JSON object")
    code = str(body.get("code"))
    if code != "0":
        message = str(body.get("message") or "no message")[:200]
        hint = f" ({ERROR_HINTS[code]})" if code in ERROR_HINTS else ""
        raise SensorError(f"EcoFlow refused the certificate request: code {code}: {message}{hint}")
    return _credentials(body.get("data"))


def _credentials(data: object) -> CloudCredentials:
    if not isinstance(data, dict):
        raise SensorError("EcoFlow certificate response has no 'data' object")
    values: dict[str, str] = {}
    for key in ("url", "port", "certificateAccount", "certificatePassword"):
        value = data.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value:
            raise SensorError(f"EcoFlow certificate response lacks {key!r}")
        values[key] = value
    port = int(values["port"]) if values["port"].isdigit() else 0
    if not 1 <= port <= 65535:
        raise SensorError("EcoFlow certificate response has no valid 'port'")
    protocol = data.get("protocol")
    return CloudCredentials(
        host=values["url"],
        port=port,
        account=values["certificateAccount"],
        password=values["certificatePassword"],
        protocol=protocol if isinstance(protocol, str) else "mqtts",
    )
