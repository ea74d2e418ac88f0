"""Writing and checking the JSON Schema files in docs/schemas/."""

from __future__ import annotations

from pathlib import Path

from aigloo_edge.payloads import json_schemas


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in json_schemas().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


def check_schemas(directory: Path) -> list[str]:
    """Names of schema files that are missing or differ from the models."""
    return [
        name
        for name, text in json_schemas().items()
        if not (directory / name).is_file() or (directory / name).read_text() != text
    ]
