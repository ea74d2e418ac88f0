"""The inbound message every handler receives: plain data, no MQTT library types."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Inbound:
    """One received MQTT message with the MQTT v5 properties handlers may need."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    response_topic: str | None = None
    correlation_data: bytes | None = None
    user_properties: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def text(self) -> str:
        """The payload as UTF-8 text; raises UnicodeDecodeError for binary payloads."""
        return self.payload.decode("utf-8")
