"""Plain values: chosen fields of the JSON state topics as plain-text topics, for phone apps.

`fields` is the pure mapping (`plain_values`, the topic patterns for the broker's ACL);
`component.PlainValues` is the thin MQTT shell around it; `settings.PlainConfig` is its config
section. Import `aigloo_edge.plain.component` for the component: this package stays light.
"""

from aigloo_edge.plain.fields import (
    SOURCES,
    PlainSource,
    PlainUpdate,
    plain_value_filters,
    plain_values,
    source_filters,
)
from aigloo_edge.plain.settings import ALL_GROUPS, PlainConfig, PlainGroup

__all__ = [
    "ALL_GROUPS",
    "SOURCES",
    "PlainConfig",
    "PlainGroup",
    "PlainSource",
    "PlainUpdate",
    "plain_value_filters",
    "plain_values",
    "source_filters",
]
