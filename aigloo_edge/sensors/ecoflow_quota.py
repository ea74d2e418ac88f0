"""EcoFlow cloud MQTT messages: quota telemetry → station readings, and output set commands.

Pure functions; key names and their sources are in docs/ecoflow-ble-protocol.md §10.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from typing import Any, Final, TypeVar

from aigloo_edge.errors import PayloadError
from aigloo_edge.payloads import json_kind
from aigloo_edge.sensors.readings import OutputName, StationReading

log = logging.getLogger(__name__)

T = TypeVar("T")

SOURCE: Final = "ecoflow_cloud"
IDLE_REMAINING_MIN: Final = 5999  # what the station reports when there is no estimate
MAX_WATTS: Final = 100_000.0


# --- quota messages → readings (pure) ---------------------------------------------------------

# Each quota message names its module; the flat keys (also `/device/quota/all`'s) are prefixed.
TYPE_PREFIXES: Final = {
    "pdStatus": "pd",
    "mpptStatus": "mppt",
    "emsStatus": "bms_emsStatus",
    "bmsStatus": "bms_bmsStatus",
    "invStatus": "inv",
}
SOC_KEYS: Final = (
    "bms_emsStatus.f32LcdShowSoc",
    "bms_emsStatus.lcdShowSoc",
    "bms_bmsStatus.f32ShowSoc",
    "bms_bmsStatus.soc",
    "pd.soc",
)
AC_KEYS: Final = ("mppt.cfgAcEnabled", "inv.cfgAcEnabled")
DC_KEYS: Final = ("pd.carState", "mppt.carState")
CHG_TYPE_CAR: Final = 2  # mppt.cfgChgType: 0 auto, 1 solar, 2 car


def flatten_quota(message: Mapping[str, Any]) -> dict[str, Any]:
    """A quota message's `params` under the flat keys (`pd.soc`, `mppt.inWatts`, ...).

    A message with a `typeCode` has plain keys (`soc`), prefixed here by its module; one
    without (the `/device/quota/all` shape) has the dotted keys already.
    """
    type_code = message.get("typeCode")
    if type_code is not None and not isinstance(type_code, str):
        raise PayloadError("typeCode: expected text")
    params = message.get("params", message.get("param"))
    if params is None:
        raise PayloadError("quota message has no params")
    if not isinstance(params, Mapping):
        raise PayloadError("params: expected an object")
    prefix = f"{TYPE_PREFIXES.get(type_code, type_code)}." if type_code else ""
    return {f"{prefix}{key}": value for key, value in params.items()}


def quota_to_reading(
    payload: bytes | str | Mapping[str, Any],
    *,
    at: float,
    capacity_wh: float | None = None,
) -> StationReading:
    """One quota message as a StationReading: a key it lacks is None, a bad one rejects it all.

    Raises PayloadError naming the key and what is wrong (a wrong type, not finite, out of
    range); the value itself is not echoed.
    """
    message = json_object(payload) if not isinstance(payload, Mapping) else payload
    flat = flatten_quota(message)
    socs = [_number(flat, key, 0, 100) for key in SOC_KEYS]
    acs = [_flag(flat, key) for key in AC_KEYS]
    dcs = [_flag(flat, key) for key in DC_KEYS]
    return StationReading(
        soc_pct=_first(socs),
        watts_in=_number(flat, "pd.wattsInSum", 0, MAX_WATTS),
        watts_out=_number(flat, "pd.wattsOutSum", 0, MAX_WATTS),
        solar_w=_solar(flat),
        remaining_min=_remaining(flat),
        capacity_wh=capacity_wh,
        ac=_first(acs),
        dc=_first(dcs),
        usb=None,  # no USB state key is known for RIVER 2 Pro (see the doc's open points)
        at=at,
        source=SOURCE,
    )


def has_values(reading: StationReading) -> bool:
    """Whether a reading carries anything about the station (not only capacity and time)."""
    values = (reading.soc_pct, reading.watts_in, reading.watts_out, reading.solar_w)
    states = (reading.remaining_min, reading.ac, reading.dc, reading.usb)
    return any(value is not None for value in values + states)


def json_object(payload: bytes | str) -> Mapping[str, Any]:
    try:
        data = json.loads(payload)
    except ValueError:  # also UnicodeDecodeError
        raise PayloadError("payload is not JSON") from None
    if not isinstance(data, dict):
        raise PayloadError("payload is not a JSON object")
    return data


def _first(values: list[T | None]) -> T | None:
    return next((value for value in values if value is not None), None)


def _number(flat: Mapping[str, Any], key: str, low: float, high: float) -> float | None:
    if key not in flat:
        return None
    value = flat[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError(f"{key}: expected a number, got {json_kind(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise PayloadError(f"{key}: number out of range") from None
    if not math.isfinite(number):
        raise PayloadError(f"{key}: not a finite number")
    if not low <= number <= high:
        raise PayloadError(f"{key}: out of range ({low:g} to {high:g})")
    return number


def _flag(flat: Mapping[str, Any], key: str) -> bool | None:
    if key not in flat:
        return None
    value = flat[key]
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return value == 1
    raise PayloadError(f"{key}: expected 0 or 1, got {json_kind(value)}")


def _solar(flat: Mapping[str, Any]) -> float | None:
    watts = _number(flat, "mppt.inWatts", 0, MAX_WATTS)
    charge_type = _number(flat, "mppt.cfgChgType", 0, 255)
    if watts is not None and charge_type == CHG_TYPE_CAR:
        return 0.0  # the XT60 input is set to the car charger: no solar
    return watts


def _remaining(flat: Mapping[str, Any]) -> float | None:
    """Minutes to full or empty: pd.remainTime (signed by direction) or the EMS pair."""
    pd = _number(flat, "pd.remainTime", -1e6, 1e6)
    charging = _number(flat, "bms_emsStatus.chgRemainTime", 0, 1e6)
    discharging = _number(flat, "bms_emsStatus.dsgRemainTime", 0, 1e6)
    state = _number(flat, "bms_emsStatus.chgState", 0, 255)  # 0 idle, 1 charging, 2 discharging
    if pd is not None:
        return _estimate(abs(pd))
    if state == 1:
        return _estimate(charging)
    if state == 2:
        return _estimate(discharging)
    known = [m for m in (_estimate(charging), _estimate(discharging)) if m is not None]
    return known[0] if len(known) == 1 else None


def _estimate(minutes: float | None) -> float | None:
    return None if minutes is None or minutes >= IDLE_REMAINING_MIN else minutes


# --- set commands (pure) ----------------------------------------------------------------------

MPPT_MODULE: Final = 5
UNCHANGED_U8: Final = 255  # acOutCfg: leave X-Boost / frequency as they are
UNCHANGED_VOLTAGE: Final = -1
COMMAND_FROM: Final = "aigloo-edge"
# set_reply codes the developer docs name ("0" is success).
REPLY_CODES: Final = {"-1": "the device does not belong to this account", "-2": "device offline"}


def set_command(serial: str, output: OutputName, on: bool, message_id: int) -> dict[str, Any]:
    """The `set` message switching `output` (RIVER 2 / 2 Pro / DELTA 2: MPPT module 5).

    The common fields are the developer docs' (`id` as text, echoed by the reply; `version`
    "1.0"; `from`); `sn`, `moduleType` and `params` follow the docs-style DELTA 2 examples.
    AC leaves X-Boost, voltage and frequency unchanged (255 / -1 / 255, as hassio-ecoflow-cloud
    sends them); 12 V DC is the car output, `mpptCar`.
    """
    params: dict[str, int]
    if output == "ac":
        operate = "acOutCfg"
        params = {
            "enabled": int(on),
            "xboost": UNCHANGED_U8,
            "out_voltage": UNCHANGED_VOLTAGE,
            "out_freq": UNCHANGED_U8,
        }
    else:
        operate = "mpptCar"
        params = {"enabled": int(on)}
    return {
        "id": str(message_id),
        "version": "1.0",
        "from": COMMAND_FROM,
        "sn": serial,
        "moduleType": MPPT_MODULE,
        "operateType": operate,
        "params": params,
    }


def parse_set_reply(payload: bytes) -> tuple[int, str | None]:
    """The id a `set_reply` answers, and None if accepted or EcoFlow's reason if refused."""
    reply = json_object(payload)
    raw_id = reply.get("id")
    if isinstance(raw_id, str) and raw_id.isdigit():
        raw_id = int(raw_id)
    if isinstance(raw_id, bool) or not isinstance(raw_id, int):
        raise PayloadError("set_reply: no numeric id")
    code = reply.get("code", "0")
    if str(code) == "0":
        return raw_id, None
    message = str(reply.get("message") or REPLY_CODES.get(str(code), "no message"))[:200]
    return raw_id, f"code {code}: {message}"
