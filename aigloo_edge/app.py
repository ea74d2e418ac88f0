"""`aigloo run`: every component a machine's config enables, in one process and one TaskGroup."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aigloo_edge.config import AgentConfig
from aigloo_edge.errors import NotConnectedError

if TYPE_CHECKING:
    from aigloo_edge.node.agent import NodeAgent

log = logging.getLogger(__name__)


def run_config_file(path: Path, only: set[str] | None) -> None:
    """`aigloo run FILE` / `aigloo agent FILE`: load, then run until SIGINT/SIGTERM."""
    from aigloo_edge.config import load_config
    from aigloo_edge.runtime import run_until_stopped

    run_until_stopped(run_machine(load_config(path), only))


async def run_machine(config: AgentConfig, only: set[str] | None = None) -> None:
    """Run the enabled components (or the subset `only`) until cancelled."""
    enabled = [name for name in config.components if only is None or name in only]
    if not enabled:
        raise ValueError(f"none of {sorted(only or [])} is enabled in this config")
    async with asyncio.TaskGroup() as group:
        for coroutine in _component_runs(config, enabled):
            group.create_task(coroutine)
    log.info("stopped %s", ", ".join(enabled))


def _component_runs(config: AgentConfig, enabled: Sequence[str]) -> list[Coroutine[Any, Any, None]]:
    # Imported here so a machine loads only what its components need (mlx, bleak later).
    from aigloo_edge.node.agent import NodeAgent, node_session

    runs: list[Coroutine[Any, Any, None]] = []
    node_components = {"agent", "waker", "inference"} & set(enabled)
    if node_components:
        # The agent, its worker and the waker act as the machine itself: one session.
        session = node_session(config)
        if "agent" in enabled:
            agent = NodeAgent(config, session)
            runs.append(agent.run())
            if "inference" in enabled:
                runs.append(_serve_inference(config, agent))
        if "waker" in enabled:
            from aigloo_edge.node.waker import Waker

            assert config.waker is not None  # the config model guarantees it
            Waker(session, config.waker)
        runs.append(session.run())
    if "dispatcher" in enabled:
        runs.extend(_dispatcher_runs(config))
    if "gateway" in enabled:
        runs.extend(_gateway_runs(config))
    if "rules" in enabled:
        runs.extend(_rules_runs(config))
    if "hass" in enabled:
        runs.extend(_hass_runs(config))
    if "plain" in enabled:
        runs.extend(_plain_runs(config))
    if {"sensors", "fans"} & set(enabled):
        runs.extend(_sensor_runs(config, enabled))
    if "twin" in enabled:
        runs.extend(_twin_runs(config))
    log.info("starting %s for node %s", ", ".join(enabled), config.node)
    return runs


async def _serve_inference(config: AgentConfig, agent: NodeAgent) -> None:
    """Open the engine (importing the demo model if asked), then serve; info lists the models."""
    from aigloo_edge.inference.engines import open_engine
    from aigloo_edge.inference.worker import Worker

    assert config.inference is not None  # the config model guarantees it
    section = config.inference
    engine = await open_engine(section)
    worker = Worker(
        config.node,
        agent.session,
        engine,
        jobs=agent.jobs,
        queue_size=section.queue_size,
        per_model_concurrency=section.per_model_concurrency,
    )
    agent.models = worker.models
    if agent.session.is_connected:
        # `info` listing the models tells dispatchers to send requests: subscribe first.
        with contextlib.suppress(NotConnectedError):
            await agent.session.sync_subscriptions()
    await agent.publish_info()
    log.info("serving %s with %s", ", ".join(worker.models), engine.name)
    await worker.run()


def _dispatcher_runs(config: AgentConfig) -> list[Coroutine[Any, Any, None]]:
    from aigloo_edge.inference.dispatcher import Dispatcher
    from aigloo_edge.mqtt import Session

    assert config.dispatcher is not None  # the config model guarantees it
    settings = config.broker.settings_for("dispatcher")
    session = Session(settings, component=config.dispatcher.instance)
    return [session.run(), Dispatcher(session, config.dispatcher).run()]


def _gateway_runs(config: AgentConfig) -> list[Coroutine[Any, Any, None]]:
    from aigloo_edge.inference.client import InferClient
    from aigloo_edge.inference.directory import ModelDirectory
    from aigloo_edge.inference.gateway import Gateway
    from aigloo_edge.mqtt import Session

    assert config.gateway is not None  # the config model guarantees it
    session = Session(config.broker.settings_for("gateway"), component="gateway")
    directory = ModelDirectory(session)
    gateway = Gateway(
        config.gateway,
        InferClient(session, "gateway"),
        models=directory.models,
        ready=lambda: session.is_connected,
    )
    return [session.run(), gateway.run()]


def _hass_runs(config: AgentConfig) -> list[Coroutine[Any, Any, None]]:
    from aigloo_edge.hass.bridge import HassBridge
    from aigloo_edge.mqtt import Session

    assert config.hass is not None  # the config model guarantees it
    session = Session(config.broker.settings_for("homeassistant"), component="homeassistant")
    return [session.run(), HassBridge(session, config.hass).run()]


def _plain_runs(config: AgentConfig) -> list[Coroutine[Any, Any, None]]:
    """Plain per-value topics for phone apps that cannot read JSON (docs/mobile.md)."""
    from aigloo_edge.mqtt import Session
    from aigloo_edge.plain.component import PlainValues

    assert config.plain is not None  # the config model guarantees it
    session = Session(config.broker.settings_for("plain"), component="plain")
    return [session.run(), PlainValues(session, config.plain).run()]


def _rules_runs(config: AgentConfig) -> list[Coroutine[Any, Any, None]]:
    from aigloo_edge.mqtt import Session
    from aigloo_edge.rules.runner import RulesRunner

    assert config.rules is not None  # the config model guarantees it
    session = Session(config.broker.settings_for("rules"), component="rules")
    return [session.run(), RulesRunner(session, config.rules).run()]


def _sensor_runs(config: AgentConfig, enabled: Sequence[str]) -> list[Coroutine[Any, Any, None]]:
    """The sensor bridge and the fans share one session: the `sensors` role and its bridge."""
    from aigloo_edge.mqtt import Session

    session = Session(config.broker.settings_for("sensors"), component="sensors")
    runs: list[Coroutine[Any, Any, None]] = [session.run()]
    if "sensors" in enabled:
        from aigloo_edge.sensors.bridge import SensorBridge
        from aigloo_edge.sensors.sources import build_sources

        assert config.sensors is not None  # the config model guarantees it
        sources, switch = build_sources(config.sensors, session)
        runs.append(SensorBridge(session, config.sensors, sources, switch).run())
    if "fans" in enabled:
        from aigloo_edge.sensors.fans import FanController

        assert config.fans is not None  # the config model guarantees it
        runs.append(FanController(session, config.fans).run())
    return runs


def _twin_runs(config: AgentConfig) -> list[Coroutine[Any, Any, None]]:
    """The live twin: the station, the probes, the fans and the machines it plays."""
    from aigloo_edge.twin.live import LiveTwin

    assert config.twin is not None  # the config model guarantees it
    return [LiveTwin(config).run()]
