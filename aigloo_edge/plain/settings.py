"""Config of the plain-values component (the `plain:` section of a machine's config).

Strict like every config model: an unknown key or a bad value names file:line and the reason.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

PlainGroup = Literal["battery", "solar", "climate", "fans", "telemetry", "node_power", "rules"]
ALL_GROUPS: Final[tuple[PlainGroup, ...]] = get_args(PlainGroup)
# Three times the longest telemetry interval the shipped configs use (the Air's 10 s).
DEFAULT_TELEMETRY_EXPIRY_S: Final = 30.0


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class PlainConfig(Strict):
    """Which JSON state topics get plain per-value topics, for apps that cannot read JSON."""

    groups: list[PlainGroup] = Field(
        default_factory=lambda: list(ALL_GROUPS),
        min_length=1,
        description="battery, solar, climate, fans, telemetry, node_power, rules (default: all)",
    )
    telemetry_expiry_s: float = Field(
        default=DEFAULT_TELEMETRY_EXPIRY_S,
        ge=1,
        le=3600,
        description="message expiry of plain telemetry values (about 3 telemetry intervals)",
    )

    @field_validator("groups")
    @classmethod
    def _distinct(cls, value: list[PlainGroup]) -> list[PlainGroup]:
        if len(set(value)) != len(value):
            raise ValueError("a group is listed twice")
        return value
