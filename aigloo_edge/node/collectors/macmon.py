"""Parse `macmon pipe`: one compact JSON object per line per interval, no root needed.

Format facts (sources in tests/data/macmon/README.md):
- `cpu_power`, `gpu_power`, `ane_power`, `all_power` (their sum), `sys_power`: watts.
- `gpu_usage` is `[freq_mhz, ratio]`, ratio 0..1; macmon 0.8 also names it `gpu_scaled_ratio`.
- `temp.cpu_temp_avg`, `temp.gpu_temp_avg`: °C averaged over the SMC/HID sensors.
- macmon writes 0 for a reading it could not take (no sensor, no `PSTR` key), so a zero
  temperature or system power means "not reported", not 0 °C or 0 W.
- No thermal pressure.
"""

from __future__ import annotations

import json
from typing import Any, Final

from aigloo_edge.errors import PayloadError
from aigloo_edge.node.collectors.framing import RecordStream, non_negative_number
from aigloo_edge.node.collectors.sample import AppleSample

# A line with per-core usages of a 32-core Ultra is about 2 KB.
MAX_LINE_BYTES: Final = 1024 * 1024

_TEMPERATURES: Final = (("cpu", "cpu_temp_avg"), ("gpu", "gpu_temp_avg"))


class LineStream(RecordStream):
    """Turns chunks of `macmon pipe` stdout into samples, one per line."""

    record = "line"
    source = "macmon"

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        super().__init__(max_line_bytes)

    def _next_record(self) -> bytes | None:
        end = self._buffer.find(b"\n")
        if end < 0:
            return None
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return line

    def _parse(self, record: bytes) -> AppleSample:
        return parse_line(record)


def parse_line(line: bytes | str) -> AppleSample:
    """One `macmon pipe` line as a sample; unknown keys are ignored, bad ones raise PayloadError."""
    doc = _load(line)
    temp = _object(doc, "temp")
    return AppleSample(
        cpu_w=_number(doc, "cpu_power"),
        gpu_w=_number(doc, "gpu_power"),
        ane_w=_number(doc, "ane_power"),
        package_w=_number(doc, "all_power"),
        system_w=_reading(doc, "sys_power"),
        gpu_pct=_gpu_pct(doc),
        temperatures_c={
            name: value for name, key in _TEMPERATURES if (value := _reading(temp, key)) is not None
        },
    )


def _load(line: bytes | str) -> dict[str, Any]:
    try:
        doc = json.loads(line)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError
        raise PayloadError(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise PayloadError("line: expected a JSON object")
    return doc


def _object(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key, {})
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{key}: expected an object")
    return value


def _number(doc: dict[str, Any], key: str) -> float | None:
    """A finite, non-negative number, or None when absent or null."""
    return non_negative_number(key, doc.get(key))


def _reading(doc: dict[str, Any], key: str) -> float | None:
    """Like _number, but macmon's 0 placeholder for "could not read" becomes None."""
    return _number(doc, key) or None


def _gpu_pct(doc: dict[str, Any]) -> float | None:
    usage = doc.get("gpu_usage")
    if usage is None:
        ratio = _number(doc, "gpu_scaled_ratio")
    elif isinstance(usage, list) and len(usage) == 2:
        ratio = non_negative_number("gpu_usage", usage[1])
    else:
        raise PayloadError("gpu_usage: expected [freq_mhz, ratio]")
    if ratio is None:
        return None
    if ratio > 1:
        raise PayloadError("gpu_usage: ratio expected 0..1")
    return ratio * 100
