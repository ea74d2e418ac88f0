"""What the soak's measurements come to: percentiles, the `*Figures` dataclasses built from the
window's samples, round trips, requests and the watch's counts, and `SoakFigures`' table
and flat properties for pytest's record_property.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from tests.support.soak.probes import InferenceLog, Sample
from tests.support.soak.rig import SoakPlan
from tests.support.soak.watch import BROKER_RATES, DROPPED

WARMUP_FRACTION: Final = 0.2


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (NaN for no values)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


@dataclass(frozen=True)
class RssFigures:
    """One process's memory after the warm-up: medians of the first and last thirds, and the
    least-squares trend over the same samples; its CPU use over the whole window."""

    name: str
    samples: int
    first_mb: float
    last_mb: float
    slope_mb_per_h: float
    peak_mb: float
    cpu_pct: float  # of one core

    @property
    def growth_mb(self) -> float:
        return self.last_mb - self.first_mb

    @property
    def growth_pct(self) -> float:
        return 100 * self.growth_mb / self.first_mb if self.first_mb else math.nan


def rss_figures(name: str, samples: Sequence[Sample]) -> RssFigures:
    span = samples[-1].at_s
    kept = [s for s in samples if s.at_s >= WARMUP_FRACTION * span] or list(samples)
    third = max(1, len(kept) // 3)
    first = statistics.median(s.rss_mb for s in kept[:third])
    last = statistics.median(s.rss_mb for s in kept[-third:])
    hours = [s.at_s / 3600 for s in kept]
    slope = 0.0
    if len(set(hours)) > 1:
        slope = statistics.linear_regression(hours, [s.rss_mb for s in kept]).slope
    cpu_pct = 100 * (samples[-1].cpu_s - samples[0].cpu_s) / span if span else math.nan
    peak = max(s.rss_mb for s in samples)
    return RssFigures(name, len(kept), first, last, slope, peak, cpu_pct)


@dataclass(frozen=True)
class LossFigures:
    """The simulated nodes' QoS 1 telemetry: the generator's counts against the checker's."""

    nodes: int
    sent: int
    acked: int
    failed: int
    received: int
    missing: int
    duplicated: int
    reconnects: int


def loss_figures(
    report: Mapping[str, Mapping[str, int]], seen: Mapping[str, Counter[int]]
) -> LossFigures:
    missing = duplicated = received = 0
    for node, counts in report.items():
        got = seen.get(node, Counter())
        missing += sum(1 for seq in range(1, counts["sent"] + 1) if seq not in got)
        duplicated += sum(n - 1 for n in got.values() if n > 1)
        received += sum(got.values())
    return LossFigures(
        nodes=len(report),
        sent=sum(c["sent"] for c in report.values()),
        acked=sum(c["acked"] for c in report.values()),
        failed=sum(c["failed"] for c in report.values()),
        received=received,
        missing=missing,
        duplicated=duplicated,
        reconnects=sum(c["reconnects"] for c in report.values()),
    )


def all_arrived(report: Mapping[str, Mapping[str, int]], seen: Mapping[str, Counter[int]]) -> bool:
    return all(len(seen.get(node, ())) >= counts["sent"] for node, counts in report.items())


@dataclass(frozen=True)
class InferenceFigures:
    requests: int
    ok: int
    errors: dict[str, int]  # by code ("no final" when the stream ended without one)
    not_one_final: dict[str, int]  # request id -> finals seen on the bus, where not exactly 1
    p50_s: float
    max_s: float


def inference_figures(log: InferenceLog, finals: Counter[str]) -> InferenceFigures:
    errors: Counter[str] = Counter()
    for final in log.outcomes.values():
        if final is None:
            errors["no final"] += 1
        elif not final.ok:
            errors[final.error.code if final.error else "unknown"] += 1
    return InferenceFigures(
        requests=len(log.outcomes),
        ok=sum(1 for f in log.outcomes.values() if f is not None and f.ok),
        errors=dict(errors),
        not_one_final={r: finals[r] for r in log.outcomes if finals[r] != 1},
        p50_s=percentile(log.seconds, 0.5),
        max_s=max(log.seconds, default=math.nan),
    )


@dataclass(frozen=True)
class LatencyFigures:
    rules_ms: list[float]
    echo_ms: list[float]
    rules_missed: int
    echo_missed: int

    def p(self, which: str, fraction: float) -> float:
        return percentile(self.rules_ms if which == "rules" else self.echo_ms, fraction)

    def ratio(self, fraction: float) -> float:
        return self.p("rules", fraction) / self.p("echo", fraction)


@dataclass(frozen=True)
class HealthFigures:
    not_online: list[str]  # watched availability not `online` at the window's start or end
    dropped: list[str]  # anything but `online` on a watched availability during the window
    rejections: list[str]
    reconnects: dict[str, int]  # sessions that reconnected, and how often


@dataclass(frozen=True)
class SoakFigures:
    plan: SoakPlan
    window_s: float
    rss: list[RssFigures]
    loss: LossFigures
    inference: InferenceFigures
    latency: LatencyFigures
    health: HealthFigures
    warmup: str
    broker: dict[str, float]  # Watch.broker_figures

    def table(self) -> str:
        return "\n".join(
            [
                f"soak: {self.window_s:.0f} s window, {self.plan.nodes} nodes at "
                f"{1 / self.plan.telemetry_interval_s:g} Hz, a rules probe every "
                f"{self.plan.probe_every_s:g} s, inference every {self.plan.infer_every_s:g} s "
                f"(warm-up request: {self.warmup})",
                *self._rss_lines(),
                self._broker_line(),
                self._loss_line(),
                self._inference_line(),
                *self._latency_lines(),
                self._health_line(),
            ]
        )

    def _rss_lines(self) -> list[str]:
        lines = [
            f"{'RSS (after 20 % warm-up)':<26}{'first MB':>9}{'last MB':>9}{'growth MB':>10}"
            f"{'growth %':>9}{'MB/h':>8}{'peak MB':>9}{'n':>4}{'CPU %':>7}"
        ]
        for r in self.rss:
            lines.append(
                f"{r.name:<26}{r.first_mb:>9.1f}{r.last_mb:>9.1f}{r.growth_mb:>+10.2f}"
                f"{r.growth_pct:>+9.2f}{r.slope_mb_per_h:>+8.1f}{r.peak_mb:>9.1f}{r.samples:>4}"
                f"{r.cpu_pct:>7.1f}"
            )
        return lines

    def _broker_line(self) -> str:
        shown = ", ".join(
            f"{name} {value:.0f}" if name == BROKER_RATES[DROPPED] else f"{name} {value:.1f}/s"
            for name, value in self.broker.items()
        )
        return f"mosquitto ($SYS): {shown or 'no counts in the window'}"

    def _loss_line(self) -> str:
        x = self.loss
        return (
            f"telemetry QoS 1 ({x.nodes} nodes): sent {x.sent}, acked {x.acked}, publish "
            f"failures {x.failed}, received {x.received}, lost {x.missing}, duplicated "
            f"{x.duplicated}, generator reconnects {x.reconnects}"
        )

    def _inference_line(self) -> str:
        x = self.inference
        return (
            f"inference: {x.requests} requests, {x.ok} ok, errors {x.errors or 'none'}, "
            f"not exactly one final {x.not_one_final or 'none'}, p50 {x.p50_s:.2f} s, "
            f"max {x.max_s:.2f} s"
        )

    def _latency_lines(self) -> list[str]:
        x = self.latency
        return [
            f"rules latency (reading -> command), n={len(x.rules_ms)}, missed {x.rules_missed}: "
            f"p50 {x.p('rules', 0.5):.2f} ms, p99 {x.p('rules', 0.99):.2f} ms",
            f"paho echo (same publisher), n={len(x.echo_ms)}, missed {x.echo_missed}: "
            f"p50 {x.p('echo', 0.5):.2f} ms, p99 {x.p('echo', 0.99):.2f} ms",
            f"rules / echo: p50 {x.ratio(0.5):.2f} (goal <= 1.5), "
            f"p99 {x.ratio(0.99):.2f} (goal <= 3.0)",
        ]

    def _health_line(self) -> str:
        x = self.health
        return (
            f"availability: not online {x.not_online or 'none'}, dropped {x.dropped or 'none'}; "
            f"rejections {len(x.rejections)}; reconnects {x.reconnects or 'none'}"
        )

    def properties(self) -> dict[str, object]:
        """Flat figures for pytest's record_property."""
        props: dict[str, object] = {"soak_window_s": round(self.window_s, 1)}
        for r in self.rss:
            props[f"soak_rss_{r.name}"] = (
                f"{r.first_mb:.1f} -> {r.last_mb:.1f} MB, {r.slope_mb_per_h:+.1f} MB/h, "
                f"CPU {r.cpu_pct:.1f} %"
            )
        props["soak_telemetry"] = json.dumps(self.loss.__dict__)
        props["soak_inference"] = json.dumps(self.inference.__dict__)
        x = self.latency
        props["soak_rules_ms_p50_p99"] = f"{x.p('rules', 0.5):.2f} / {x.p('rules', 0.99):.2f}"
        props["soak_echo_ms_p50_p99"] = f"{x.p('echo', 0.5):.2f} / {x.p('echo', 0.99):.2f}"
        props["soak_ratio_p50_p99"] = f"{x.ratio(0.5):.2f} / {x.ratio(0.99):.2f}"
        props["soak_health"] = json.dumps(self.health.__dict__)
        props["soak_broker"] = json.dumps(self.broker)
        return props
