"""`aigloo up` as a user runs it: the broker and agents/local.yaml's components (agent, worker,
dispatcher, gateway, rules, the live twin); a prompt through the gateway; Ctrl-C stops everything
cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

import httpx

from aigloo_edge.broker import init_broker
from aigloo_edge.broker.leftover import stop_orphaned_brokers
from aigloo_edge.mqtt import Session, load_credentials
from aigloo_edge.payloads import Battery, NodeTelemetry, RuleState
from aigloo_edge.runtime import cancel_and_wait
from tests.support.broker import free_ports
from tests.support.collect import Collector

ROOT = Path(__file__).resolve().parents[2]


async def test_up_runs_the_rig_and_stops_on_ctrl_c(tmp_path: Path, demo_cache: Path) -> None:
    """`aigloo up` serves the broker, the agent's telemetry, the twin's station, the shipped rules
    and prompts through the gateway; SIGINT stops everything, exit 0."""
    directory = tmp_path / "broker"
    *listeners, gateway = free_ports(4)
    ports = dict(zip(("mqtt", "websockets", "tls"), listeners, strict=True))
    init_broker(directory, ports=ports)
    aigloo = Path(sys.executable).parent / "aigloo"
    machine = ROOT / "agents" / "local.yaml"
    process = await asyncio.create_subprocess_exec(
        str(aigloo),
        "up",
        "--dir",
        str(directory),
        "--machine",
        str(machine),
        "--gateway-port",
        str(gateway),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "AIGLOO_CACHE": str(demo_cache)},
    )
    assert process.stdout is not None
    settings = load_credentials(directory / "credentials.yaml").settings_for("admin")
    session = Session(settings, component="probe")
    t = session.topics
    availability = Collector(session, t.node_availability("mini"))
    telemetry = Collector(session, t.node_telemetry("mini"))
    rule = Collector(session, t.rule_state("fans-max-when-hot"))
    battery = Collector(session, t.battery())
    task: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(20):
            banner = (await process.stdout.readline()).decode()
        assert f"mqtt {ports['mqtt']}" in banner
        printed = await _printout(process.stdout)
        assert "digital twin: scenario" in printed, printed
        assert "aigloo top" in printed, printed
        assert "Home Assistant: MQTT integration" in printed, printed
        task = asyncio.create_task(session.run())
        await session.wait_connected(10)
        assert await availability.value_on(t.node_availability("mini"), timeout=15) == b"online"
        reading = NodeTelemetry.from_json((await telemetry.next(timeout=15)).payload)
        assert reading.node == "mini"
        assert Battery.from_json(await battery.value_on(t.battery(), 15)).source == "twin"
        state = RuleState.from_json(await rule.value_on(t.rule_state("fans-max-when-hot"), 15))
        assert (state.source or "").endswith("rules/thermal.yaml:9")
        assert "Paris" in await _ask_gateway(f"http://127.0.0.1:{gateway}/v1")
        process.send_signal(signal.SIGINT)
        assert await availability.value_on(t.node_availability("mini")) == b"offline"
        async with asyncio.timeout(15):
            assert await process.wait() == 0
        assert not await _port_open(ports["mqtt"]), "Mosquitto stopped with the rig"
    finally:
        if task is not None:
            await cancel_and_wait(task)
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _printout(stdout: asyncio.StreamReader) -> str:
    """What `up` prints about where to look, down to its last line."""
    lines: list[str] = []
    async with asyncio.timeout(20):
        while not lines or "Ctrl-C stops everything" not in lines[-1]:
            lines.append((await stdout.readline()).decode())
            if not lines[-1]:
                break  # the process closed its output
    return "".join(lines)


async def _port_open(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True


async def _ask_gateway(url: str) -> str:
    """Wait for the gateway to list the demo model, then ask it a question."""
    async with asyncio.timeout(60), httpx.AsyncClient(timeout=60) as http:
        while True:
            with contextlib.suppress(httpx.TransportError):
                listed = (await http.get(f"{url}/models")).json()["data"]
                if listed:
                    break
            await asyncio.sleep(0.2)
        body = {
            "model": listed[0]["id"],
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
            "max_tokens": 16,
            "temperature": 0,
        }
        reply = (await http.post(f"{url}/chat/completions", json=body)).json()
    return str(reply["choices"][0]["message"]["content"])


AGENT_ONLY = """
node: mini
role: mini
broker: {credentials_file: unused.yaml}
components: [agent]
power: {driver: dry-run}
"""


async def _up(directory: Path, machine: Path) -> tuple[asyncio.subprocess.Process, str]:
    """`aigloo up` on `directory` once it has printed where to look (the broker listens), and
    what it printed."""
    aigloo = Path(sys.executable).parent / "aigloo"
    process = await asyncio.create_subprocess_exec(
        str(aigloo), "up", "--dir", str(directory), "--machine", str(machine),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    return process, await _printout(process.stdout)


async def test_up_after_a_killed_up_stops_the_broker_it_left(tmp_path: Path) -> None:
    """A SIGKILLed `aigloo up` cannot stop its Mosquitto, which keeps the ports. The next `up`
    on the same directory stops that broker, says so, and starts its own; Ctrl-C then stops it."""
    directory = tmp_path / "broker"
    listeners = free_ports(3)
    init_broker(directory, ports=dict(zip(("mqtt", "websockets", "tls"), listeners, strict=True)))
    machine = tmp_path / "agent.yaml"
    machine.write_text(AGENT_ONLY)
    first, _ = await _up(directory, machine)
    first.kill()
    await first.wait()
    assert await _port_open(listeners[0]), "the killed up's broker lives on"
    second, printed = await _up(directory, machine)
    try:
        assert "a killed `aigloo up` had left it running" in printed, printed
        assert second.returncode is None, "the second up could not start its broker"
        second.send_signal(signal.SIGINT)
        async with asyncio.timeout(15):
            assert await second.wait() == 0
        assert not await _port_open(listeners[0]), "Mosquitto stopped with the rig"
    finally:
        if second.returncode is None:
            second.kill()
            await second.wait()
        stop_orphaned_brokers(directory.resolve() / "mosquitto.conf")  # whatever failed
