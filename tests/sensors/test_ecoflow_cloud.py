"""The EcoFlow IoT open API source: request signing, the certificate request against a local
stand-in for api.ecoflow.com, quota → readings, set commands, and the cloud MQTT link against a
local Mosquitto standing in for EcoFlow's broker."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from aigloo_edge.errors import PayloadError, SensorError
from aigloo_edge.mqtt import Inbound, MqttSettings, Session
from aigloo_edge.runtime import cancel_and_wait
from aigloo_edge.sensors.ecoflow_api import (
    CloudCredentials,
    canonical_string,
    flatten_params,
    request_certificate,
    signed_headers,
)
from aigloo_edge.sensors.ecoflow_cloud import EcoflowCloudSource
from aigloo_edge.sensors.ecoflow_quota import parse_set_reply, quota_to_reading, set_command
from aigloo_edge.sensors.readings import Lost, Reading, StationReading
from aigloo_edge.sensors.settings import EcoflowCloudConfig
from tests.support.broker import RunningBroker
from tests.support.collect import wait_until

DATA = Path(__file__).parent.parent / "data" / "ecoflow_cloud"
SERIAL = "R621ZEB4XXXXXXXX"
ACCESS_KEY = "ak-TESTONLY-7Qx2mVb9"
SECRET_KEY = "sk-TESTONLY-Lr4pZt8c"
ACCESS_ENV = "AIGLOO_TEST_EF_ACCESS"
SECRET_ENV = "AIGLOO_TEST_EF_SECRET"
WAIT_S = 5.0


def data(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DATA / name).read_text())
    return loaded


# --- signing ----------------------------------------------------------------------------------

# EcoFlow's developer documentation (developer-eu.ecoflow.com/us/document/generalInfo, "HTTP
# access steps", "Step8: verify that the steps to generate the signature are correct") publishes
# these keys, nonce, timestamp, body, key-value string and signature verbatim; several
# independent third-party clients test their signing against the same figures.
DOC_ACCESS_KEY = "Fp4SvIprYSDPXtYJidEtUAd1o"
DOC_SECRET_KEY = "WIbFEKre0s6sLnh4ei7SPUeYnptHG6V"
DOC_NONCE = "345164"
DOC_TIMESTAMP = "1671171709428"
DOC_BODY = {"sn": "123456789", "params": {"cmdSet": 11, "id": 24, "eps": 0}}
DOC_STRING = (
    "params.cmdSet=11&params.eps=0&params.id=24&sn=123456789"
    "&accessKey=Fp4SvIprYSDPXtYJidEtUAd1o&nonce=345164&timestamp=1671171709428"
)
DOC_SIGN = "07c13b65e037faf3b153d51613638fa80003c4c38d2407379a7f52851af1473e"


def test_signature_reproduces_ecoflows_published_example() -> None:
    """The canonical string and the sign header match EcoFlow's documented worked example."""
    assert canonical_string(DOC_BODY, DOC_ACCESS_KEY, DOC_NONCE, DOC_TIMESTAMP) == DOC_STRING
    headers = signed_headers(
        DOC_ACCESS_KEY, DOC_SECRET_KEY, DOC_BODY, nonce=DOC_NONCE, timestamp=DOC_TIMESTAMP
    )
    assert headers == {
        "accessKey": DOC_ACCESS_KEY,
        "nonce": DOC_NONCE,
        "timestamp": DOC_TIMESTAMP,
        "sign": DOC_SIGN,
    }


def test_flattening_follows_the_documented_rule_for_objects_and_arrays() -> None:
    """Nested objects flatten to `a.b`, arrays to `a[i]`, sorted in ASCII order: the docs'
    own example (same page, "Step 2: if the type is nested, expand and splice")."""
    body = {
        "name": "demo1",
        "ids": [1, 2, 3],
        "deviceInfo": {"id": 1},
        "deviceList": [{"id": 1}, {"id": 2}],
    }
    flat = flatten_params(body)
    assert "&".join(f"{k}={flat[k]}" for k in sorted(flat)) == (
        "deviceInfo.id=1&deviceList[0].id=1&deviceList[1].id=2&ids[0]=1&ids[1]=2&ids[2]=3"
        "&name=demo1"
    )


def test_request_without_parameters_signs_only_key_nonce_and_timestamp() -> None:
    """With no parameters the signed text is exactly `accessKey=…&nonce=…&timestamp=…`."""
    text = "accessKey=AK1&nonce=123456&timestamp=1700000000000"
    expected = hmac.new(b"SK1", text.encode(), hashlib.sha256).hexdigest()
    assert canonical_string(None, "AK1", "123456", "1700000000000") == text
    assert signed_headers("AK1", "SK1", nonce="123456", timestamp="1700000000000")["sign"] == (
        expected
    )


def test_fresh_headers_have_a_six_digit_nonce_and_a_millisecond_timestamp() -> None:
    """By default each request gets a new 6-digit nonce and the current Unix time in ms."""
    before = int(time.time() * 1000)
    headers = signed_headers("AK1", "SK1")
    assert headers["nonce"].isdigit()
    assert len(headers["nonce"]) == 6
    assert before <= int(headers["timestamp"]) <= int(time.time() * 1000)
    assert len(headers["sign"]) == 64


# --- the certificate request against a stand-in for api.ecoflow.com ---------------------------


@dataclass
class StandIn:
    """A local api.ecoflow.com: checks each signature as EcoFlow would, answers `answer`."""

    url: str = ""
    answer: dict[str, Any] = field(default_factory=lambda: data("certificate.json"))
    status: int = 200
    received: list[dict[str, str]] = field(default_factory=list)

    def signature_ok(self, headers: dict[str, str]) -> bool:
        text = (
            f"accessKey={headers.get('accessKey')}&nonce={headers.get('nonce')}"
            f"&timestamp={headers.get('timestamp')}"
        )
        want = hmac.new(SECRET_KEY.encode(), text.encode(), hashlib.sha256).hexdigest()
        return headers.get("accessKey") == ACCESS_KEY and headers.get("sign") == want


@contextlib.asynccontextmanager
async def stand_in(answer: dict[str, Any] | None = None) -> AsyncIterator[StandIn]:
    state = StandIn() if answer is None else StandIn(answer=answer)

    async def certification(request: web.Request) -> web.Response:
        headers = dict(request.headers)
        state.received.append(headers)
        if not state.signature_ok(headers):
            return web.json_response({"code": "8521", "message": "signature is wrong"})
        return web.json_response(state.answer, status=state.status)

    app = web.Application()
    app.router.add_get("/iot-open/sign/certification", certification)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    state.url = f"http://{host}:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()


async def test_certificate_request_is_signed_and_returns_the_credentials(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The stand-in receives the four headers with a valid signature; the answer's url, port,
    account and password come back, and neither key nor the password reaches the logs."""
    caplog.set_level(logging.DEBUG)
    async with stand_in() as api, httpx.AsyncClient() as http:
        creds = await request_certificate(api.url, ACCESS_KEY, SECRET_KEY, http)
    [headers] = api.received
    assert {"accessKey", "nonce", "timestamp", "sign"} <= set(headers)
    assert api.signature_ok(headers)
    assert creds == CloudCredentials(
        host="mqtt.ecoflow.com",
        port=8883,
        account="open-0000000000000000",
        password="not-a-real-password",
        protocol="mqtts",
    )
    assert "not-a-real-password" not in repr(creds)
    for secret in (ACCESS_KEY, SECRET_KEY, "not-a-real-password"):
        assert secret not in caplog.text


async def test_wrong_secret_key_gives_ecoflows_error_code_as_sensor_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """EcoFlow's error envelope (code 8521, signature is wrong) is a SensorError with the code
    and a hint; the keys appear neither in the error nor in the logs."""
    caplog.set_level(logging.DEBUG)
    wrong_secret = "sk-TESTONLY-wrong-one"
    async with stand_in() as api, httpx.AsyncClient() as http:
        with pytest.raises(SensorError, match="code 8521: signature is wrong") as failed:
            await request_certificate(api.url, ACCESS_KEY, wrong_secret, http)
    for secret in (ACCESS_KEY, wrong_secret):
        assert secret not in str(failed.value)
        assert secret not in caplog.text


async def test_http_error_status_is_a_sensor_error() -> None:
    """An HTTP error status (here 503) is a SensorError naming the status."""
    async with stand_in() as api, httpx.AsyncClient() as http:
        api.status = 503
        with pytest.raises(SensorError, match="HTTP 503"):
            await request_certificate(api.url, ACCESS_KEY, SECRET_KEY, http)


async def test_unreachable_api_is_a_sensor_error() -> None:
    """No server at the API address: a SensorError naming the address, not a raw httpx error."""
    async with stand_in() as api:
        url = api.url  # closed when the block ends: nothing listens there any more
    async with httpx.AsyncClient() as http:
        with pytest.raises(SensorError, match="cannot reach"):
            await request_certificate(url, ACCESS_KEY, SECRET_KEY, http)


@pytest.mark.parametrize(
    ("data_part", "reason"),
    [
        (None, "no 'data'"),
        ({"url": "mqtt.ecoflow.com", "port": "8883", "certificateAccount": "a"}, "lacks"),
        (
            {"url": "h", "port": "x", "certificateAccount": "a", "certificatePassword": "p"},
            "port",
        ),
    ],
)
async def test_incomplete_certificate_answer_is_a_sensor_error(
    data_part: dict[str, str] | None, reason: str
) -> None:
    """A success envelope without usable data (missing fields, a bad port) is a SensorError."""
    answer = {"code": "0", "message": "Success", "data": data_part}
    async with stand_in(answer) as api, httpx.AsyncClient() as http:
        with pytest.raises(SensorError, match=reason):
            await request_certificate(api.url, ACCESS_KEY, SECRET_KEY, http)


# --- quota messages → readings ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "quota_pd.json",
            {"soc_pct": 81, "watts_in": 120, "watts_out": 35, "remaining_min": 410, "dc": False},
        ),
        ("quota_mppt.json", {"solar_w": 96, "ac": True, "dc": False}),
        ("quota_ems.json", {"soc_pct": 81, "remaining_min": 410}),
        ("quota_bms.json", {"soc_pct": 80}),
        ("quota_inv.json", {"ac": True}),
        (
            "quota_all.json",
            {
                "soc_pct": 81,
                "watts_in": 120,
                "watts_out": 35,
                "remaining_min": 410,
                "solar_w": 96,
                "ac": False,
                "dc": True,
            },
        ),
    ],
)
def test_recorded_quota_messages_map_to_station_readings(
    name: str, expected: dict[str, Any]
) -> None:
    """Each module's quota message (and the flat quota/all shape) fills the fields it carries;
    the rest stay None; source, time and capacity are stamped."""
    reading = quota_to_reading(json.dumps(data(name)), at=1234.5, capacity_wh=768.0)
    empty = dict.fromkeys(
        ["soc_pct", "watts_in", "watts_out", "solar_w", "remaining_min", "ac", "dc", "usb"]
    )
    assert reading == StationReading(
        **{**empty, **expected}, capacity_wh=768.0, at=1234.5, source="ecoflow_cloud"
    )


def test_missing_keys_are_none_not_zero() -> None:
    """A message with only the SoC gives a reading with only the SoC."""
    reading = quota_to_reading(b'{"typeCode":"pdStatus","params":{"soc":50}}', at=1.0)
    assert reading.soc_pct == 50
    assert (reading.watts_in, reading.watts_out, reading.remaining_min, reading.ac) == (
        None,
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"typeCode":"pdStatus","params":{"soc":"81"}}', "pd.soc: expected a number, got text"),
        (
            b'{"typeCode":"pdStatus","params":{"wattsInSum":true}}',
            "pd.wattsInSum: expected a number",
        ),
        (b'{"typeCode":"pdStatus","params":{"wattsOutSum":NaN}}', "not a finite number"),
        (b'{"typeCode":"pdStatus","params":{"wattsOutSum":1e400}}', "not a finite number"),
        (b'{"typeCode":"pdStatus","params":{"wattsOutSum":' + b"9" * 400 + b"}}", "out of range"),
        (b'{"typeCode":"bmsStatus","params":{"soc":140}}', "bms_bmsStatus.soc: out of range"),
        (b'{"typeCode":"mpptStatus","params":{"cfgAcEnabled":2}}', "expected 0 or 1"),
        (b'{"typeCode":"pdStatus","params":[1,2]}', "params: expected an object"),
        (b'{"typeCode":5,"params":{}}', "typeCode: expected text"),
        (b'{"typeCode":"pdStatus"}', "no params"),
        (b"[1,2,3]", "not a JSON object"),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_wrong_types_and_impossible_values_are_rejected_with_a_reason(
    payload: bytes, reason: str
) -> None:
    """A wrong type, a non-finite or huge number, an impossible flag or a malformed message is
    a PayloadError naming the key; it never becomes a reading."""
    with pytest.raises(PayloadError, match=reason):
        quota_to_reading(payload, at=1.0)


@pytest.mark.parametrize(
    ("params", "minutes"),
    [
        ({"pd.remainTime": 5999}, None),  # the station's "no estimate"
        ({"pd.remainTime": 120}, 120),  # positive while charging
        ({"bms_emsStatus.chgState": 1, "bms_emsStatus.chgRemainTime": 90}, 90),
        (
            {
                "bms_emsStatus.chgState": 2,
                "bms_emsStatus.chgRemainTime": 90,
                "bms_emsStatus.dsgRemainTime": 300,
            },
            300,
        ),
        ({"bms_emsStatus.chgRemainTime": 5999, "bms_emsStatus.dsgRemainTime": 300}, 300),
    ],
)
def test_remaining_minutes_follow_the_direction_and_skip_the_idle_value(
    params: dict[str, int], minutes: float | None
) -> None:
    """Remaining time is |pd.remainTime|, or the EMS estimate for the current direction; 5999
    (no estimate) is None."""
    assert quota_to_reading({"params": params}, at=1.0).remaining_min == minutes


def test_solar_is_zero_when_the_input_is_set_to_the_car_charger() -> None:
    """mppt.inWatts counts as solar unless the XT60 input is configured for the car (type 2)."""
    car = {"typeCode": "mpptStatus", "params": {"inWatts": 60, "cfgChgType": 2}}
    assert quota_to_reading(car, at=1.0).solar_w == 0.0


# --- set commands ------------------------------------------------------------------------------


def test_set_commands_for_ac_and_dc() -> None:
    """AC is `acOutCfg` (X-Boost, voltage, frequency left unchanged), 12 V DC is `mpptCar`,
    both on the MPPT module 5, with the documented common fields (id as text, version, from)
    and the serial number."""
    assert set_command(SERIAL, "ac", True, 123456789) == {
        "id": "123456789",
        "version": "1.0",
        "from": "aigloo-edge",
        "sn": SERIAL,
        "moduleType": 5,
        "operateType": "acOutCfg",
        "params": {"enabled": 1, "xboost": 255, "out_voltage": -1, "out_freq": 255},
    }
    assert set_command(SERIAL, "dc", False, 7) == {
        "id": "7",
        "version": "1.0",
        "from": "aigloo-edge",
        "sn": SERIAL,
        "moduleType": 5,
        "operateType": "mpptCar",
        "params": {"enabled": 0},
    }


def test_set_reply_gives_the_id_and_a_refusal_reason() -> None:
    """code "0" accepts (ids may come as text or number); any other code is EcoFlow's reason,
    or the docs' meaning of -1 / -2 when the reply carries no message."""
    ok = {**data("set_reply_ok.json"), "id": "495468919"}
    assert parse_set_reply(json.dumps(ok).encode()) == (495468919, None)
    refused = {"id": 5, "code": "1001", "message": "device offline"}
    assert parse_set_reply(json.dumps(refused).encode()) == (5, "code 1001: device offline")
    offline = {"id": 6, "code": "-2"}
    assert parse_set_reply(json.dumps(offline).encode()) == (6, "code -2: device offline")
    with pytest.raises(PayloadError, match="no numeric id"):
        parse_set_reply(b'{"code":"0"}')


# --- the source ---------------------------------------------------------------------------------


def config(api_url: str = "http://127.0.0.1:9", **changes: Any) -> EcoflowCloudConfig:
    return EcoflowCloudConfig(
        serial=SERIAL,
        access_key_env=ACCESS_ENV,
        secret_key_env=SECRET_ENV,
        api_url=api_url,
        **changes,
    )


async def test_unset_key_variables_are_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the variables the config names, run() fails at once, naming both variables."""
    monkeypatch.delenv(ACCESS_ENV, raising=False)
    monkeypatch.delenv(SECRET_ENV, raising=False)

    async def sink(_: Reading) -> None:
        raise AssertionError("no reading expected")

    with pytest.raises(SensorError, match=f"{ACCESS_ENV} and {SECRET_ENV}"):
        await EcoflowCloudSource(config()).run(sink)


def test_cloud_link_is_tls_by_default_whatever_the_certificate_says() -> None:
    """Without an override the link is TLS (system CAs), MQTT 3.1.1, with the certificate's
    host, port, account and password; a certificate saying `mqtt` does not turn TLS off. The
    client id is fixed (EcoFlow allows few distinct ids per account per day)."""
    creds = CloudCredentials("mqtt-e.ecoflow.com", 8883, "open-1", "pw", protocol="mqtt")
    source = EcoflowCloudSource(config())
    settings = source.connection_settings(creds)
    assert settings.tls is not None
    assert (settings.host, settings.port, settings.username) == (
        "mqtt-e.ecoflow.com",
        8883,
        "open-1",
    )
    assert settings.resolved_password() == "pw"
    assert settings.protocol == "3.1.1"
    assert source.client_id == EcoflowCloudSource(config()).client_id == f"aigloo-edge-{SERIAL}"


async def test_set_output_without_a_connection_is_a_sensor_error() -> None:
    """Switching before the cloud link is up fails at once instead of waiting."""
    with pytest.raises(SensorError, match="not connected"):
        await EcoflowCloudSource(config()).set_output("ac", True)


@dataclass
class Cloud:
    """A running source against the stand-ins, plus the 'station' side of EcoFlow's broker."""

    source: EcoflowCloudSource
    readings: asyncio.Queue[Reading]
    station: Session
    api: StandIn

    def topic(self, kind: str) -> str:
        return f"/open/admin/{SERIAL}/{kind}"

    async def quota(self, payload: dict[str, Any] | bytes) -> None:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        await self.station.publish(self.topic("quota"), raw)

    async def next(self, timeout: float = WAIT_S) -> Reading:
        async with asyncio.timeout(timeout):
            return await self.readings.get()


@contextlib.asynccontextmanager
async def cloud(
    broker: RunningBroker, monkeypatch: pytest.MonkeyPatch, **changes: Any
) -> AsyncIterator[Cloud]:
    """The certificate stand-in answers the local broker's address and the `admin` role's
    credentials; the source connects there over plain TCP (EcoFlow's own broker is TLS)."""
    monkeypatch.setenv(ACCESS_ENV, ACCESS_KEY)
    monkeypatch.setenv(SECRET_ENV, SECRET_KEY)
    answer = {
        "code": "0",
        "message": "Success",
        "data": {
            "url": "127.0.0.1",
            "port": str(broker.ports["mqtt"]),
            "protocol": "mqtt",
            "certificateAccount": "admin",
            "certificatePassword": broker.creds.password_for("admin"),
        },
    }
    plain = MqttSettings(protocol="3.1.1", reconnect_initial_s=0.05, reconnect_max_s=0.2)
    confirm_timeout = changes.pop("confirm_timeout", 2.0)
    readings: asyncio.Queue[Reading] = asyncio.Queue()
    async with (
        stand_in(answer) as api,
        httpx.AsyncClient() as http,
        broker.session("admin", component="ecoflow-standin") as station,
    ):
        source = EcoflowCloudSource(
            config(api.url, **changes),
            time.time,
            http,
            plain,
            confirm_timeout=confirm_timeout,
        )
        task = asyncio.create_task(source.run(readings.put))
        try:
            await source.wait_connected(WAIT_S)
            yield Cloud(source, readings, station, api)
        finally:
            await cancel_and_wait(task)


async def test_quota_messages_on_the_cloud_broker_become_readings(
    broker: RunningBroker, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Recorded quota messages published on /open/<account>/<sn>/quota reach the sink as
    readings; a malformed one is skipped and the next still arrives; no secret is logged."""
    caplog.set_level(logging.DEBUG)
    async with cloud(broker, monkeypatch) as c:
        await c.quota(data("quota_pd.json"))
        pd = await c.next()
        await c.quota(b'{"typeCode":"pdStatus","params":{"soc":"lots"}}')
        await c.quota(data("quota_mppt.json"))
        mppt = await c.next()
    assert isinstance(pd, StationReading)
    assert (pd.soc_pct, pd.watts_in, pd.watts_out, pd.remaining_min, pd.dc) == (
        81,
        120,
        35,
        410,
        False,
    )
    assert (pd.source, pd.capacity_wh) == ("ecoflow_cloud", 768.0)
    assert isinstance(mppt, StationReading)
    assert (mppt.solar_w, mppt.ac, mppt.soc_pct) == (96, True, None)
    assert "pd.soc: expected a number" in caplog.text
    for secret in (ACCESS_KEY, SECRET_KEY, broker.creds.password_for("admin")):
        assert secret not in caplog.text


async def answer_commands(c: Cloud, reply: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Record every set command; answer each with `reply` (its id filled in) on set_reply."""
    seen: list[dict[str, Any]] = []

    async def on_set(message: Inbound) -> None:
        command = json.loads(message.payload)
        seen.append(command)
        if reply is not None:
            # The docs' reply example echoes the id as a number, though commands send text.
            answer = {**reply, "id": int(command["id"]), "operateType": command["operateType"]}
            await c.station.publish(c.topic("set_reply"), json.dumps(answer))

    c.station.route(c.topic("set"), on_set)
    await c.station.sync_subscriptions()
    return seen


async def test_set_output_publishes_the_command_and_is_confirmed_by_set_reply(
    broker: RunningBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """set_output sends acOutCfg / mpptCar on the set topic and returns once a set_reply with
    the same id and code "0" arrives."""
    async with cloud(broker, monkeypatch) as c:
        seen = await answer_commands(c, data("set_reply_ok.json"))
        await c.source.set_output("ac", True)
        await c.source.set_output("dc", False)
    assert [s["operateType"] for s in seen] == ["acOutCfg", "mpptCar"]
    assert seen[0] == set_command(SERIAL, "ac", True, int(seen[0]["id"]))
    assert seen[1] == set_command(SERIAL, "dc", False, int(seen[1]["id"]))
    assert seen[0]["id"] != seen[1]["id"]


async def test_set_output_refused_by_set_reply_is_a_sensor_error(
    broker: RunningBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A set_reply with a non-zero code is a SensorError carrying EcoFlow's code and message."""
    async with cloud(broker, monkeypatch) as c:
        await answer_commands(c, {"code": "1001", "message": "device offline"})
        with pytest.raises(SensorError, match="refused ac on: code 1001: device offline"):
            await c.source.set_output("ac", True)


async def test_set_output_is_confirmed_by_a_quota_showing_the_new_state(
    broker: RunningBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a set_reply, the next quota with the output in the asked state confirms it."""
    async with cloud(broker, monkeypatch) as c:
        seen = await answer_commands(c, None)
        switching = asyncio.create_task(c.source.set_output("ac", True))
        await wait_until(lambda: bool(seen))
        await c.quota(data("quota_mppt.json"))  # cfgAcEnabled: 1
        await asyncio.wait_for(switching, WAIT_S)
        assert isinstance(await c.next(), StationReading)


async def test_set_output_without_confirmation_times_out_as_sensor_error(
    broker: RunningBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No set_reply and no quota showing the new state within the timeout: SensorError."""
    async with cloud(broker, monkeypatch, confirm_timeout=0.3) as c:
        seen = await answer_commands(c, None)
        with pytest.raises(SensorError, match=r"did not confirm dc on within 0\.3s"):
            await c.source.set_output("dc", True)
    assert seen[0]["operateType"] == "mpptCar"


async def test_quota_silence_reports_the_station_lost_once(
    broker: RunningBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Quota messages stopping for stale_after give one Lost("station"); the next quota
    brings the station back."""
    async with cloud(broker, monkeypatch, stale_after=0.4) as c:
        await c.quota(data("quota_pd.json"))
        assert isinstance(await c.next(), StationReading)
        lost = await c.next()
        assert isinstance(lost, Lost)
        assert lost.device == "station"
        assert "no quota message" in lost.reason
        await asyncio.sleep(0.5)
        assert c.readings.empty()  # reported once, not every check
        await c.quota(data("quota_pd.json"))
        assert isinstance(await c.next(), StationReading)


async def test_status_offline_reports_the_station_lost(
    broker: RunningBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EcoFlow's status message with status 0 (the station went offline) gives Lost."""
    async with cloud(broker, monkeypatch) as c:
        await c.station.publish(c.topic("status"), b'{"params":{"status":0}}')
        lost = await c.next()
    assert isinstance(lost, Lost)
    assert lost.reason == "EcoFlow reports the station offline"


async def test_dropped_connection_reports_lost_then_reconnects(
    broker: RunningBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker going away gives Lost("station"); once it is back the source reconnects,
    resubscribes, and quota messages become readings again."""
    async with cloud(broker, monkeypatch) as c:
        await broker.astop()
        lost = await c.next()
        assert isinstance(lost, Lost)
        assert "connection" in lost.reason
        await broker.astart()
        await c.source.wait_connected(WAIT_S)
        await c.station.wait_connected(WAIT_S)
        await c.quota(data("quota_pd.json"))
        assert isinstance(await c.next(), StationReading)
