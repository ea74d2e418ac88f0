"""Recordings of MQTT traffic: `aigloo record` writes them (rotating by size), `aigloo replay`
re-publishes them and `aigloo rules replay` runs them through the rules engine.

Submodules: `jsonl` (the line format), `rotate` (FILE, FILE.1 …), `recorder` (MQTT → file),
`replayer` (file → MQTT).
"""

from aigloo_edge.recording.jsonl import (
    BadLine,
    Recorded,
    encode_line,
    read_recording,
    read_recordings,
    write_recording,
)
from aigloo_edge.recording.recorder import record
from aigloo_edge.recording.replayer import (
    BaseMove,
    Pacer,
    ReplayPlan,
    ReplayReport,
    replay_files,
    replay_recording,
    summary_lines,
)
from aigloo_edge.recording.rotate import (
    BYTES_PER_MB,
    DEFAULT_KEEP,
    RotatingWriter,
    recording_files,
)

__all__ = [
    "BYTES_PER_MB",
    "DEFAULT_KEEP",
    "BadLine",
    "BaseMove",
    "Pacer",
    "Recorded",
    "ReplayPlan",
    "ReplayReport",
    "RotatingWriter",
    "encode_line",
    "read_recording",
    "read_recordings",
    "record",
    "recording_files",
    "replay_files",
    "replay_recording",
    "summary_lines",
    "write_recording",
]
