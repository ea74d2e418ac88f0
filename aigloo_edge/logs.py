"""Logging set-up: one logger per module, structured fields appended as key=value."""

from __future__ import annotations

import logging
from typing import Final

STRUCTURED_FIELDS: Final = ("component", "node", "request_id", "rule_id", "topic")


class StructuredFormatter(logging.Formatter):
    """Appends the structured fields a record carries (via `extra=`) as `key=value`."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = [
            f"{name}={getattr(record, name)}" for name in STRUCTURED_FIELDS if hasattr(record, name)
        ]
        return f"{text} {' '.join(fields)}" if fields else text


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        StructuredFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # paho logs every packet at DEBUG through aiomqtt; keep that out unless asked for.
    logging.getLogger("mqtt").setLevel(max(root.level, logging.INFO))
