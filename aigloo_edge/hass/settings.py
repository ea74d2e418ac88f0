"""The Home Assistant bridge's config section (`hass:` in a machine file)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aigloo_edge.payloads import Id
from aigloo_edge.topics import validate_base


class HassConfig(BaseModel):
    """Where HA listens for discovery and says it (re)started, and what the rig can wake."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    discovery_prefix: str = Field(
        default="homeassistant",
        description="HA's discovery prefix (the broker's ACL grants the homeassistant role this "
        "tree: change both together)",
    )
    status_topic: str | None = Field(
        default=None, description="HA's birth/last-will topic (default: <prefix>/status)"
    )
    birth_delay_s: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="republish discovery after HA's `online`, after a random delay up to this",
    )
    settle_s: float = Field(
        default=2.0, ge=0, le=60, description="read the retained state this long before deciding"
    )
    support_url: str | None = Field(default=None, description="the origin's support URL in HA")
    readings_expire_s: int | None = Field(
        default=None,
        ge=10,
        description="station, probe and fan readings turn unknown in HA after this long",
    )
    waker_node: Id | None = Field(default="mini", description="the node whose agent runs the waker")
    wake_targets: list[Id] | None = Field(
        default=None, description="nodes the waker can wake (default: every node but its own)"
    )
    hub_node: Id | None = Field(
        default="mini", description="runs the broker, sensors, rules and dispatcher (via_device)"
    )

    @field_validator("discovery_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return validate_base(value, what="discovery prefix")

    @property
    def birth_topic(self) -> str:
        return self.status_topic or f"{self.discovery_prefix}/status"
