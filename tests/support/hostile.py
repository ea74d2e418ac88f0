"""Malformed and hostile MQTT payloads, for fuzzing every subscribed topic.

`HOSTILE_CORPUS` is a fixed list of known-nasty payloads (sent to every topic, every run);
`hostile_payloads()` is a hypothesis strategy mixing them with generated ones. None of them is a
valid command or a valid reading: each is malformed, of the wrong type, out of range or
non-finite, so whatever a component does with one, it must not act on it as valid.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final

from hypothesis import strategies as st

DEEP: Final = 10_000  # nesting far past json's recursion limit (RecursionError, not ValueError)
HUGE_TEXT: Final = 300_000  # bytes: big, but under mosquitto.conf's 1 MiB max_packet_size

HOSTILE_CORPUS: Final[tuple[bytes, ...]] = (
    b"",
    b"\xff\xfe\xfd",  # invalid UTF-8
    b"\xc3\x28",  # invalid 2-byte sequence
    b"\xed\xa0\x80",  # a UTF-16 surrogate encoded as UTF-8 (invalid)
    b"\x00",
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"1e308",
    b"1e999",
    b"1" + b"0" * 400,  # 10**400 as an int literal
    b"1" * 5000,  # past Python's int-string conversion limit
    b"[" * DEEP,
    b"[" * DEEP + b"]" * DEEP,
    b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    b"x" * HUGE_TEXT,
    json.dumps({"text": "y" * HUGE_TEXT}).encode(),
    b"null",
    b"true",
    b"[]",
    b"{}",
    b'"sleep now"',
    b"[1, 2, 3]",
    b"sleep now",
    b"max!",
    b"enable disable",
    b"on off",
    b"wake\x00",
    b"SLEEP; rm -rf /",
    b'{"soc_pct": NaN, "watts_in": 1, "watts_out": 1, "remaining_min": 1, "capacity_wh": 768}',
    b'{"soc_pct": Infinity, "watts_in": 0, "watts_out": 0}',
    b'{"soc_pct": 57, "watts_in": -Infinity, "watts_out": 0}',
    b'{"soc_pct": 1e400, "watts_in": 0, "watts_out": 0}',
    b'{"soc_pct": 101, "watts_in": 0, "watts_out": 0}',
    b'{"soc_pct": "57", "watts_in": 0, "watts_out": 0}',
    b'{"watts": NaN}',
    b'{"watts": -1}',
    b'{"watts": 1e308, "ts": 1e308}',
    b'{"temperature_c": NaN, "humidity_pct": 40}',
    b'{"temperature_c": 9999, "humidity_pct": 40}',
    b'{"temperature_c": 20, "humidity_pct": Infinity}',
    b'{"profile": "max", "duty_pct": NaN}',
    b'{"profile": "ludicrous"}',
    b'{"state": "sleep", "force": "yes"}',
    b'{"state": "hibernate"}',
    b'{"state": NaN}',
    b'{"action": "enable", "id": ""}',
    b'{"action": 1}',
    b'{"id": "r1", "model": "m", "messages": [], "max_tokens": NaN}',
    b'{"id": "r1", "model": "m", "prompt": "hi", "max_tokens": 1e400}',
    b'{"id": "../../etc", "model": "m", "prompt": "hi"}',
    b'{"id": "r1", "model": "", "prompt": "hi", "temperature": -1}',
    b'{"id": 5}',
    b'{"cpu_pct": NaN, "memory_pct": 50}',
    b'{"node": "STUDIO!", "role": "studio"}',
    b'{"v": NaN, "ts": -1}',
    b'{"v": 1, "ts": NaN, "extra": {"nested": [1, 2, {"x": NaN}]}}',
)

_JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
_FIELDS = (
    "soc_pct",
    "watts",
    "watts_in",
    "watts_out",
    "temperature_c",
    "humidity_pct",
    "profile",
    "state",
    "action",
    "id",
    "model",
    "prompt",
    "messages",
    "ts",
    "v",
)
_BAD_NUMBERS: st.SearchStrategy[Any] = st.sampled_from(
    [math.nan, math.inf, -math.inf, 1e308, -1e308, 10**400, -1, 101, 1e12, "12", True, None, []]
)


def _dumps(value: Any) -> bytes:
    # Python's json writes NaN/Infinity literals, as a careless (or hostile) sender would.
    return json.dumps(value, allow_nan=True).encode()


def _out_of_range(field: str, bad: Any, extra: dict[str, Any]) -> bytes:
    return _dumps({**extra, field: bad})


_WRONG_RECORDS = st.builds(
    _out_of_range,
    st.sampled_from(_FIELDS),
    _BAD_NUMBERS,
    st.dictionaries(st.text(max_size=8), _JSON, max_size=3),
)
_COMMAND_WORDS = st.sampled_from(
    ["sleep", "wake", "max", "quiet", "on", "off", "enable", "disable"]
)
_JUNK_WORDS = st.builds(
    lambda word, junk: (word + junk).encode("utf-8", "surrogatepass"),
    _COMMAND_WORDS,
    st.text(min_size=1, max_size=8).filter(lambda s: s.strip() != ""),
)


VALID_WORDS: Final = frozenset(
    {"sleep", "wake", "off", "quiet", "normal", "max", "on", "enable", "disable", "online"}
)


def is_valid_word(payload: bytes) -> bool:
    """Whether a command parser would take this as a plain command (`"max"`, ` on `)."""
    return payload.decode("utf-8", "replace").strip().strip('"') in VALID_WORDS


def hostile_payloads() -> st.SearchStrategy[bytes]:
    """Random bytes, JSON of any shape (NaN and 10**400 included), records with one bad field,
    command words with junk, and the fixed corpus; never a valid plain command word."""
    return st.one_of(
        st.sampled_from(HOSTILE_CORPUS),
        st.binary(max_size=200),
        _JSON.map(_dumps),
        _WRONG_RECORDS,
        _JUNK_WORDS,
        st.integers(min_value=1, max_value=DEEP).map(lambda d: b"[" * d + b"]" * d),
    ).filter(lambda payload: not is_valid_word(payload))


_NONFINITE_WORD = re.compile(rb"(?i)(?<![a-z])(nan|-?inf|-?infinity)(?![a-z])")


def nonfinite_in(payload: bytes) -> str | None:
    """What in a payload a component published looks like NaN/inf, or None: a JSON document
    with a NaN/Infinity literal or a non-finite number, or a plain value `nan`/`inf`."""
    if not payload:
        return None
    found: list[str] = []

    def constant(name: str) -> float:
        found.append(name)
        return math.nan

    try:
        document = json.loads(payload, parse_constant=constant)
    except (ValueError, RecursionError):
        hit = _NONFINITE_WORD.fullmatch(payload.strip())
        return hit[0].decode() if hit else None
    if found:
        return found[0]
    return _nonfinite_number(document)


def _nonfinite_number(value: Any) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, str) and _NONFINITE_WORD.fullmatch(value.strip().encode()):
        return value
    children = value.values() if isinstance(value, dict) else value
    if isinstance(value, dict | list):
        for child in children:
            if (hit := _nonfinite_number(child)) is not None:
                return hit
    return None
