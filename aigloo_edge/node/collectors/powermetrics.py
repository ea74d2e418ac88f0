"""Parse `powermetrics -f plist`: one XML plist per sample, a NUL byte between samples.

Format facts (sources in tests/data/powermetrics/README.md):
- powermetrics writes the NUL *before* each sample after the first, not after it, so a document
  is complete at its closing `</plist>`: waiting for the NUL would delay every sample by one
  interval.
- `processor.{cpu,gpu,ane,combined}_power` are milliwatts; `*_energy` are millijoules over
  `elapsed_ns` (some macOS versions print only those).
- `gpu.idle_ratio` is the GPU's idle residency, 0..1 (`gpu.freq_hz` is in fact MHz; unused).
- `thermal_pressure` names an OSThermalPressureLevel: Nominal, Moderate, Heavy, Trapping, Sleeping.
- No temperatures: the `smc` sampler does not exist on Apple silicon.
"""

from __future__ import annotations

import plistlib
from typing import Any, Final
from xml.parsers.expat import ExpatError

from aigloo_edge.errors import PayloadError
from aigloo_edge.node.collectors.framing import RecordStream, non_negative_number
from aigloo_edge.node.collectors.sample import AppleSample
from aigloo_edge.payloads import ThermalPressure

# A sample with every sampler on (`-s all`, hundreds of tasks) is about 300 KB.
MAX_DOCUMENT_BYTES: Final = 8 * 1024 * 1024

_END: Final = b"</plist>"
_START: Final = b"<?xml"
_GAP: Final = b"\0 \t\r\n"
_PRESSURES: Final[dict[str, ThermalPressure]] = {
    "nominal": "nominal",
    "moderate": "moderate",
    "heavy": "heavy",
    "trapping": "trapping",
    "sleeping": "sleeping",
}
# plistlib's XML reader reports malformed input as any of these, not one exception type.
_PLIST_ERRORS: Final = (ExpatError, ValueError, LookupError, AttributeError, TypeError)


class PlistStream(RecordStream):
    """Turns chunks of powermetrics' stdout into samples, one per plist document."""

    record = "document"
    source = "powermetrics"

    def __init__(self, max_document_bytes: int = MAX_DOCUMENT_BYTES) -> None:
        super().__init__(max_document_bytes)

    def _next_record(self) -> bytes | None:
        del self._buffer[: _gap_length(self._buffer)]
        bounds = _document_bounds(self._buffer)
        if bounds is None:
            return None
        cut, skip = bounds
        document = bytes(self._buffer[:cut])
        del self._buffer[:skip]
        return document

    def _parse(self, record: bytes) -> AppleSample:
        return parse_document(record)


def _gap_length(buffer: bytearray) -> int:
    """Bytes of NUL separators and whitespace before the next document (without copying)."""
    length = 0
    while length < len(buffer) and buffer[length] in _GAP:
        length += 1
    return length


def _document_bounds(buffer: bytearray) -> tuple[int, int] | None:
    """(end of the first document, bytes to drop) or None if no boundary is buffered yet.

    A document ends at `</plist>`; a NUL or a new `<?xml` before that means it was cut short
    (powermetrics killed mid-write), and ending it there keeps the next document intact.
    """
    end = buffer.find(_END)
    cuts = [(end + len(_END), end + len(_END))] if end != -1 else []
    nul = buffer.find(b"\0")
    if nul != -1:
        cuts.append((nul, nul + 1))
    restart = buffer.find(_START, 1)
    if restart != -1:
        cuts.append((restart, restart))
    return min(cuts, default=None)


def parse_document(document: bytes) -> AppleSample:
    """One powermetrics plist document as a sample; a malformed one raises PayloadError."""
    root = _load(document)
    processor = _table(root, "processor")
    gpu = _table(root, "gpu")
    elapsed_s = _elapsed_s(root)
    gpu_w = _watts(processor, "gpu_power", "gpu_energy", elapsed_s)
    return AppleSample(
        cpu_w=_watts(processor, "cpu_power", "cpu_energy", elapsed_s),
        # `gpu.gpu_energy` is all there is when only the gpu_power sampler runs.
        gpu_w=gpu_w if gpu_w is not None else _watts(gpu, "gpu_power", "gpu_energy", elapsed_s),
        ane_w=_watts(processor, "ane_power", "ane_energy", elapsed_s),
        package_w=_watts(processor, "combined_power", "package_energy", elapsed_s),
        gpu_pct=_busy_pct(gpu),
        thermal_pressure=thermal_pressure(root.get("thermal_pressure")),
    )


def thermal_pressure(value: object) -> ThermalPressure | None:
    """`Nominal` → `nominal`; a level this code does not know → `unknown`; absent → None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError("thermal_pressure: expected a string")
    return _PRESSURES.get(value.strip().lower(), "unknown")


def _load(document: bytes) -> dict[str, Any]:
    try:
        root = plistlib.loads(document, fmt=plistlib.FMT_XML)
    except _PLIST_ERRORS as exc:
        raise PayloadError(f"not an XML plist: {exc}") from exc
    if not isinstance(root, dict):
        raise PayloadError("plist root: expected a dict")
    return root


def _table(root: dict[str, Any], key: str) -> dict[str, Any]:
    """A nested dict; absent when its sampler was not requested."""
    value = root.get(key, {})
    if not isinstance(value, dict):
        raise PayloadError(f"{key}: expected a dict")
    return value


def _number(table: dict[str, Any], key: str) -> float | None:
    return non_negative_number(key, table.get(key))


def _elapsed_s(root: dict[str, Any]) -> float | None:
    elapsed_ns = _number(root, "elapsed_ns")
    return elapsed_ns / 1e9 if elapsed_ns else None


def _watts(
    table: dict[str, Any], power_key: str, energy_key: str, elapsed_s: float | None
) -> float | None:
    """Watts from the mW power field, else from the mJ energy field over the interval."""
    milliwatts = _number(table, power_key)
    if milliwatts is not None:
        return milliwatts / 1000
    millijoules = _number(table, energy_key)
    if millijoules is None or elapsed_s is None:
        return None
    return millijoules / 1000 / elapsed_s


def _busy_pct(gpu: dict[str, Any]) -> float | None:
    idle_ratio = _number(gpu, "idle_ratio")
    if idle_ratio is None:
        return None
    if idle_ratio > 1:
        raise PayloadError("idle_ratio: expected 0..1")
    return (1 - idle_ratio) * 100
