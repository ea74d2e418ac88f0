"""Cutting a source's stdout into records and parsing each: one bad record is never fatal."""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod

from aigloo_edge.errors import PayloadError
from aigloo_edge.node.collectors.sample import AppleSample

log = logging.getLogger(__name__)


class RecordStream(ABC):
    """Buffers chunks, yields a sample per complete record; counts and logs bad ones."""

    #: what a record is called in messages ("line", "document")
    record: str
    #: the tool whose output this is, for log messages
    source: str

    def __init__(self, max_record_bytes: int) -> None:
        self._buffer = bytearray()
        self._max_record_bytes = max_record_bytes
        self.rejected = 0
        self.last_error: str | None = None

    def feed(self, data: bytes) -> list[AppleSample]:
        """Buffer `data`; return a sample for every record it completed, in stream order."""
        self._buffer += data
        samples: list[AppleSample] = []
        while (record := self._next_record()) is not None:
            if not record.strip():
                continue
            try:
                samples.append(self._parse(record))
            except PayloadError as exc:
                self._reject(str(exc))
        if len(self._buffer) > self._max_record_bytes:
            self._buffer.clear()
            self._reject(f"{self.record} longer than {self._max_record_bytes} bytes")
        return samples

    @abstractmethod
    def _next_record(self) -> bytes | None:
        """Cut the first complete record off `self._buffer`, or None while incomplete."""

    @abstractmethod
    def _parse(self, record: bytes) -> AppleSample: ...

    def _reject(self, reason: str) -> None:
        self.rejected += 1
        self.last_error = reason
        log.warning("%s %s rejected: %s", self.source, self.record, reason)


def non_negative_number(key: str, value: object) -> float | None:
    """A finite number >= 0 from a decoded record, None when absent; else a PayloadError."""
    if value is None:
        return None
    # bool is an int subclass: `true` must not read as 1.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError(f"{key}: expected a number")
    try:
        number = float(value)
    except OverflowError as exc:
        raise PayloadError(f"{key}: out of range") from exc
    if not math.isfinite(number) or number < 0:
        raise PayloadError(f"{key}: expected a finite number >= 0")
    return number
