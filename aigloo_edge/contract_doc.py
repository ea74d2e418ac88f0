"""The topic contract as a Markdown table, generated from `topics.SPECS`."""

from __future__ import annotations

from aigloo_edge.topics import SPECS, Topics

HEADER = "| topic | name | retained | payload | what |\n| --- | --- | --- | --- | --- |"


def contract_rows(topics: Topics) -> list[str]:
    rows = []
    for spec in SPECS:
        template = spec.template.format_map(
            {"base": topics.base, "discovery": topics.discovery_prefix}
            | {p: f"<{p}>" for p in spec.placeholders if p not in ("base", "discovery")}
        )
        payload = (
            f"[{spec.payload}](schemas/{spec.payload}.json)"
            if spec.payload[0].isupper() and " " not in spec.payload
            else spec.payload
        )
        rows.append(
            f"| `{template}` | {spec.name} | {spec.retain.value} | {payload} | {spec.summary} |"
        )
    return rows


def contract_table(topics: Topics) -> str:
    return "\n".join([HEADER, *contract_rows(topics)])
