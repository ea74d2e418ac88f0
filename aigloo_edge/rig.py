"""`aigloo up`: the rig on this machine: the broker, then this machine's components."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

from rich.console import Console

from aigloo_edge.app import run_machine
from aigloo_edge.broker import credentials_path, init_broker, prepare, refresh_broker
from aigloo_edge.broker.leftover import UP_PID_ENV, stop_orphaned_brokers
from aigloo_edge.config import AgentConfig, load_config
from aigloo_edge.errors import BrokerError
from aigloo_edge.mqtt.settings import Credentials, load_credentials
from aigloo_edge.runtime import cancel_and_wait
from aigloo_edge.topics import Topics

log = logging.getLogger(__name__)
READY_TIMEOUT_S = 10.0
BROKER_LOG = "mosquitto.log"


DEFAULT_MACHINE = Path("agents/local.yaml")  # what `status` and `top` read by default


async def run_rig(
    directory: Path, machine: Path | None, console: Console, *, gateway_port: int | None = None
) -> None:
    """Start Mosquitto on `directory`, then the components of the `machine` config."""
    if not credentials_path(directory).exists():
        init_broker(directory)
    elif refresh_broker(directory):
        console.print(f"broker directory {directory}: roles and ACL brought up to date")
    argv = prepare(directory)
    creds = load_credentials(credentials_path(directory))
    config = None
    if machine is not None:
        config = with_gateway_port(
            on_this_broker(load_config(machine), directory, creds), gateway_port
        )
    for pid in await asyncio.to_thread(stop_orphaned_brokers, Path(argv[-1])):
        console.print(f"stopped Mosquitto (pid {pid}): a killed `aigloo up` had left it running")
    with (directory / BROKER_LOG).open("ab") as broker_log:
        broker = await asyncio.create_subprocess_exec(
            *argv,
            cwd=directory,
            stdout=broker_log,
            stderr=broker_log,
            env={**os.environ, UP_PID_ENV: str(os.getpid())},  # see broker/leftover.py
        )
    components: asyncio.Task[None] | None = None
    try:
        for listener in ("mqtt", "websockets"):
            await wait_for_port(creds.host, creds.ports[listener], broker)
        if config is not None:
            components = asyncio.create_task(run_machine(config))
        _print_where_to_look(console, directory, creds, config, machine)
        await broker.wait()
        raise BrokerError(f"mosquitto exited with code {broker.returncode}")
    finally:
        try:
            if components is not None:
                await cancel_and_wait(components)
        finally:
            # Even if a second Ctrl-C cuts the components' goodbye short, stop the broker.
            await stop_process(broker)


def on_this_broker(config: AgentConfig, directory: Path, creds: Credentials) -> AgentConfig:
    """The machine config pointed at the broker `up` runs (its port, base and credentials)."""
    broker = config.broker.model_copy(
        update={
            "host": creds.host,
            "port": creds.ports["mqtt"],
            "base_topic": creds.base_topic,
            "credentials_file": credentials_path(directory).resolve(),
        }
    )
    return config.model_copy(update={"broker": broker})


def with_gateway_port(config: AgentConfig, port: int | None) -> AgentConfig:
    if port is None or config.gateway is None:
        return config
    return config.model_copy(update={"gateway": config.gateway.model_copy(update={"port": port})})


async def wait_for_port(host: str, port: int, process: asyncio.subprocess.Process) -> None:
    """Wait until `host:port` accepts TCP connections, or fail if `process` dies first."""
    async with asyncio.timeout(READY_TIMEOUT_S):
        while process.returncode is None:
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection(host, port)
                writer.close()
                await writer.wait_closed()
                return
            await asyncio.sleep(0.05)
    raise BrokerError(f"mosquitto exited with code {process.returncode} before listening")


async def stop_process(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        async with asyncio.timeout(5):
            await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()


def _print_where_to_look(
    console: Console,
    directory: Path,
    creds: Credentials,
    config: AgentConfig | None,
    machine: Path | None,
) -> None:
    path = credentials_path(directory)
    ports = creds.ports
    topics = Topics(creds.base_topic)
    console.print(
        f"[bold]Aigloo broker[/bold] on {creds.host}: mqtt {ports['mqtt']}, "
        f"websockets {ports['websockets']}, tls {ports['tls']} (if initialised)"
    )
    console.print(f"credentials (one password per role): {path}")
    console.print(f"broker log: {directory / BROKER_LOG}")
    if config is not None:
        console.print(
            f"node [bold]{config.node}[/bold] runs {', '.join(config.components)}: "
            f"telemetry on {topics.node_telemetry(config.node)}"
        )
    password = f"$(grep '^  admin:' {path} | cut -d' ' -f4)"
    console.print("watch everything as admin:")
    console.print(
        f"  mosquitto_sub -h {creds.host} -p {ports['mqtt']} -u admin "
        f"-P \"{password}\" -t '{topics.all()}' -v",
        markup=False,
        highlight=False,
    )
    if config is not None and config.gateway is not None:
        _print_inference(console, config)
    if config is not None and config.rules is not None:
        _print_rules(console, config, topics)
    if config is not None and config.twin is not None:
        _print_twin(console, config, topics)
    if config is not None and (config.hass is not None or config.plain is not None):
        _print_clients(console, config, creds)
    if machine is not None:
        _print_dashboard(console, machine)
    console.print("Ctrl-C stops everything.")


def _print_clients(console: Console, config: AgentConfig, creds: Credentials) -> None:
    ports = creds.ports
    if config.hass is not None:
        console.print(
            f"Home Assistant: MQTT integration on {creds.host}:{ports['mqtt']} as user "
            f"homeassistant; devices on {config.hass.discovery_prefix}/device/aigloo_+/config "
            "(docs/hass.md)",
            markup=False,
            highlight=False,
        )
    mobile = f"phones: websockets on port {ports['websockets']} as user mobile (docs/mobile.md)"
    if config.plain is not None:
        topics = Topics(creds.base_topic)
        mobile += f"; plain values such as {topics.plain_value(topics.battery(), 'soc_pct')}"
    console.print(mobile, markup=False, highlight=False)


def _print_dashboard(console: Console, machine: Path) -> None:
    config = "" if machine == DEFAULT_MACHINE else f" --config {machine}"
    console.print("the dashboard (live; keys for fans, sleep/wake, outputs, rules):")
    console.print(f"  aigloo top{config}", markup=False, highlight=False)
    console.print(
        f"  aigloo status{config}   (one shot; --json for scripts)", markup=False, highlight=False
    )


def _print_inference(console: Console, config: AgentConfig) -> None:
    assert config.gateway is not None
    url = f"http://{config.gateway.host}:{config.gateway.port}/v1"
    console.print(f"OpenAI-compatible gateway: {url} (models: GET {url}/models)")
    console.print("ask the cluster (the demo model loads on the first request):", highlight=False)
    console.print('  aigloo infer "What is the capital of France?"', markup=False, highlight=False)
    body = '{"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "Hi"}]}'
    console.print(
        f"  curl -s {url}/chat/completions -H 'Content-Type: application/json' -d '{body}'",
        markup=False,
        highlight=False,
    )


def _print_rules(console: Console, config: AgentConfig, topics: Topics) -> None:
    assert config.rules is not None
    console.print(
        f"rules from {config.rules.dir} (edit them: valid changes load at once); "
        f"decisions on {topics.rules_events()}, each rule's state on {topics.filter('rule_state')}",
        markup=False,
        highlight=False,
    )
    console.print("  aigloo rules explain fans-max-when-hot", markup=False, highlight=False)


def _print_twin(console: Console, config: AgentConfig, topics: Topics) -> None:
    assert config.twin is not None
    twin = config.twin
    console.print(
        f"digital twin: scenario {twin.scenario} at {twin.speed:g}x real time, playing "
        f"{', '.join(twin.nodes)} (this machine, {config.node}, is real)",
        markup=False,
        highlight=False,
    )
    readings = ", ".join(
        [topics.battery(), topics.solar(), topics.filter("env_climate"), topics.fans_profile()]
    )
    console.print(f"  the station, probes and fans: {readings}", markup=False, highlight=False)
    played = ", ".join(topics.tree("nodes", node) for node in twin.nodes)
    console.print(
        f"  the played machines: {played} (availability, info, telemetry, power)",
        markup=False,
        highlight=False,
    )
    console.print(
        f"  it obeys {topics.fans_profile_set()}, {topics.filter('power_output_set')} and "
        f"{topics.filter('node_power_set')} (sleep/wake of the machines it plays)",
        markup=False,
        highlight=False,
    )
