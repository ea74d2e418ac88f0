"""The soak's run (`run_soak`): the rig up, the model warmed, the load and the probes started,
the window measured (`measure`), the last telemetry drained, everything stopped, the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from aigloo_edge.inference.client import InferClient
from aigloo_edge.payloads import InferFinal
from tests.support.broker import RunningBroker
from tests.support.inference import MODEL
from tests.support.soak.figures import (
    HealthFigures,
    LatencyFigures,
    SoakFigures,
    all_arrived,
    inference_figures,
    loss_figures,
    rss_figures,
)
from tests.support.soak.probes import (
    InferenceLog,
    Latencies,
    RoundTrips,
    Sample,
    ask_repeatedly,
    ping_topics,
    probe_rules,
    sample_processes,
    warm_up,
)
from tests.support.soak.rig import (
    AIGLOO,
    SOAK_NODE,
    Child,
    SoakPlan,
    helper_argv,
    spawned,
    write_rig,
)
from tests.support.soak.watch import GATEWAY, Watch, until

DRAIN_S: Final = 10.0


@dataclass
class Window:
    """What the measurement window collected."""

    samples: dict[str, list[Sample]] = field(default_factory=dict)
    latencies: Latencies = field(default_factory=Latencies)
    inference: InferenceLog = field(default_factory=InferenceLog)
    not_online: list[str] = field(default_factory=list)
    began: float = 0.0  # monotonic
    ended: float = 0.0


async def measure(
    watch: Watch,
    *,
    trips: RoundTrips,
    client: InferClient,
    pids: Mapping[str, int],
    children: Sequence[Child],
    plan: SoakPlan,
) -> Window:
    """The window: memory, rules probes and inference side by side for `duration_s`."""
    window = Window()
    window.not_online = [f"{a} (at start)" for a in watch.not_online()]
    watch.window_open = True
    window.began = time.monotonic()
    end = window.began + plan.duration_s
    async with asyncio.TaskGroup() as group:
        group.create_task(sample_processes(pids, children, plan, end, window.samples))
        group.create_task(probe_rules(trips, watch.topics, plan, end, window.latencies))
        group.create_task(ask_repeatedly(client, plan, end, window.inference))
    window.ended = time.monotonic()
    watch.window_open = False
    window.not_online += [f"{a} (at end)" for a in watch.not_online()]
    return window


async def drain(watch: Watch, report: Mapping[str, Mapping[str, int]]) -> None:
    """Give the last telemetry (in flight when the generator stopped) time to arrive."""
    deadline = time.monotonic() + DRAIN_S
    while not all_arrived(report, watch.telemetry):  # state the watch's routes own
        if time.monotonic() > deadline:
            return
        await asyncio.sleep(0.1)


def _figures(
    plan: SoakPlan,
    *,
    window: Window,
    watch: Watch,
    report: Mapping[str, Mapping[str, int]],
    own_reconnects: Mapping[str, int],
    warmup: InferFinal | None,
) -> SoakFigures:
    x = window.latencies
    reconnects = {k: v for k, v in {**watch.reconnects, **own_reconnects}.items() if v}
    return SoakFigures(
        plan=plan,
        window_s=window.ended - window.began,
        rss=[rss_figures(name, samples) for name, samples in window.samples.items()],
        loss=loss_figures(report, watch.telemetry),
        inference=inference_figures(window.inference, watch.finals),
        latency=LatencyFigures(
            [s * 1000 for s in x.seconds["rules"]],
            [s * 1000 for s in x.seconds["echo"]],
            x.missed["rules"],
            x.missed["echo"],
        ),
        health=HealthFigures(window.not_online, watch.dropped, watch.rejections, reconnects),
        broker=watch.broker_figures(window.began, window.ended),
        warmup="none" if warmup is None else "ok" if warmup.ok else f"{warmup.error}",
    )


async def _rig_up(watch: Watch, children: Sequence[Child]) -> None:
    rig = [a for a in watch.watched() if not any(f"/{s}/" in a for s in watch.sims)]
    await until(
        lambda: (
            all(watch.availability.get(a) == b"online" for a in rig)
            and MODEL in watch.studio_models
        ),
        lambda: ({a: watch.availability.get(a) for a in rig}, watch.studio_models),
        children,
    )


@contextlib.asynccontextmanager
async def rig_running(
    broker: RunningBroker, model_dir: Path, workdir: Path, plan: SoakPlan, watch: Watch
) -> AsyncIterator[tuple[Child, Child]]:
    """The Studio's and the Mini's `aigloo run` until the block ends, once every component is
    online and the worker serves the model."""
    mini_config, studio_config = write_rig(broker, model_dir, workdir, plan)
    async with (
        spawned("studio", [str(AIGLOO), "run", str(studio_config)], workdir) as studio,
        spawned("mini", [str(AIGLOO), "run", str(mini_config)], workdir) as mini,
    ):
        await _rig_up(watch, [studio, mini])
        yield studio, mini


@contextlib.asynccontextmanager
async def load_running(
    broker: RunningBroker, workdir: Path, plan: SoakPlan
) -> AsyncIterator[tuple[Child, Child]]:
    """The simulated nodes and the echo until the block ends, once both are ready."""
    ping, pong = ping_topics(broker.topics)
    interval = str(plan.telemetry_interval_s)
    nodes_argv = helper_argv("nodes", broker, "--count", str(plan.nodes), "--interval", interval)
    echo_argv = helper_argv("echo", broker, "--ping", ping, "--pong", pong)
    async with (
        spawned("nodes", nodes_argv, workdir, piped=True) as nodes,
        spawned("echo", echo_argv, workdir, piped=True) as echo,
    ):
        await nodes.report()
        await echo.report()
        yield nodes, echo


@contextlib.asynccontextmanager
async def round_trips(broker: RunningBroker) -> AsyncIterator[RoundTrips]:
    """The rules probe's paho client, subscribed to the soak policy and the echo's replies."""
    replies = [broker.topics.infer_policy(SOAK_NODE), ping_topics(broker.topics)[1]]
    trips = await asyncio.to_thread(RoundTrips, broker.settings("admin"), replies)
    try:
        yield trips
    finally:
        trips.close()


def _pids(broker: RunningBroker, mini: Child, studio: Child, nodes: Child) -> dict[str, int]:
    assert broker.process is not None
    return {
        "mosquitto": broker.process.pid,
        "mini (aigloo run)": mini.process.pid,
        "studio worker (aigloo run)": studio.process.pid,
        "load generator": nodes.process.pid,
    }


async def run_soak(
    broker: RunningBroker, model_dir: Path, workdir: Path, plan: SoakPlan
) -> SoakFigures:
    """Start the rig and its load, measure for `plan.duration_s`, stop it all: the figures."""
    watch = Watch(broker.topics, frozenset(plan.sims))
    async with (
        broker.session("admin", component="soak-watch") as admin,
        broker.session(GATEWAY) as gateway,
    ):
        watch.attach(admin)
        await admin.sync_subscriptions()
        client = InferClient(gateway, GATEWAY)
        async with rig_running(broker, model_dir, workdir, plan, watch) as (studio, mini):
            warmup = await warm_up(client, plan)
            async with (
                load_running(broker, workdir, plan) as (nodes, echo),
                round_trips(broker) as trips,
            ):
                await until(lambda: not watch.not_online(), watch.not_online, [studio, mini])
                window = await measure(
                    watch,
                    trips=trips,
                    client=client,
                    pids=_pids(broker, mini, studio, nodes),
                    children=[studio, mini, nodes],
                    plan=plan,
                )
                report = (await nodes.finish())["nodes"]
                await echo.finish()
                await drain(watch, report)
        own = {"soak-watch": admin.stats.reconnects, "soak-gateway": gateway.stats.reconnects}
    return _figures(
        plan, window=window, watch=watch, report=report, own_reconnects=own, warmup=warmup
    )
