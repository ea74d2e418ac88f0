"""The Apple-silicon streaming sources a telemetry config asks for."""

from __future__ import annotations

from aigloo_edge.config import TelemetryConfig
from aigloo_edge.node.collectors.macmon import LineStream
from aigloo_edge.node.collectors.powermetrics import PlistStream
from aigloo_edge.node.collectors.streaming import StreamingSource


def apple_sources(config: TelemetryConfig) -> list[StreamingSource]:
    interval_ms = str(round(config.interval_s * 1000))
    sources = []
    if "powermetrics" in config.sources:
        argv = [arg.replace("{interval_ms}", interval_ms) for arg in config.powermetrics_command]
        sources.append(StreamingSource("powermetrics", argv, PlistStream().feed))
    if "macmon" in config.sources:
        argv = [arg.replace("{interval_ms}", interval_ms) for arg in config.macmon_command]
        sources.append(StreamingSource("macmon", argv, LineStream().feed))
    return sources
