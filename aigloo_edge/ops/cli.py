"""`aigloo status`, `aigloo node|fans|power ...`, `aigloo rules enable|disable`: the commands
an owner types on the Air (over SSH to the Mini) or the Mini itself."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from aigloo_edge.display import TemperatureUnit

# The contract's fan profiles (payloads.FanProfile), spelled here so that every `aigloo`
# command does not load pydantic and the wire models at start; a test keeps them equal.
FanProfileChoice = Literal["off", "quiet", "normal", "max"]

if TYPE_CHECKING:
    from aigloo_edge.mqtt import MqttSettings
    from aigloo_edge.ops.control import Action

ConfigOption = Annotated[
    Path, typer.Option(envvar="AIGLOO_CONFIG", help="A machine config: its broker and display.")
]
UserOption = Annotated[str, typer.Option("--as", help="Broker user to connect as.")]
UnitOption = Annotated[
    TemperatureUnit | None, typer.Option("--unit", help="F or C (default: the config's display).")
]
TimeoutOption = Annotated[float | None, typer.Option(help="Seconds to wait for the change.")]
DEFAULT_CONFIG = Path("agents/local.yaml")

node_app = typer.Typer(help="Sleep or wake a machine and wait until it has.", no_args_is_help=True)
fans_app = typer.Typer(
    help="Set the fan profile and wait until it is applied.", no_args_is_help=True
)


def _quiet_logs() -> None:
    # Connection chatter would mix with the answer the command prints.
    if logging.getLogger().level <= logging.INFO:
        logging.getLogger().setLevel(logging.WARNING)


def broker_settings(config: Path, user: str) -> tuple[MqttSettings, TemperatureUnit]:
    """The broker settings for `user` and the display unit, from a machine config."""
    from aigloo_edge.config import load_config

    loaded = load_config(config)
    return loaded.broker.settings_for(user), loaded.display.temperature


def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable, SI units.")] = False,
    config: ConfigOption = DEFAULT_CONFIG,
    user: UserOption = "mobile",
    unit: UnitOption = None,
) -> None:
    """One screen, one shot: nodes, station, probes, fans, active rules, last events."""
    import asyncio

    from rich.console import Console

    from aigloo_edge.ops.views import status_json, status_view
    from aigloo_edge.ops.watch import snapshot

    _quiet_logs()
    settings, config_unit = broker_settings(config, user)
    state = asyncio.run(snapshot(settings))
    now = time.time()
    if as_json:
        print(json.dumps(status_json(state, now), indent=2, default=str))
        return
    Console(highlight=False).print(status_view(state, unit or config_unit, now))


def _carry_out(config: Path, user: str, action: Action) -> None:
    import asyncio

    from rich.console import Console

    from aigloo_edge.ops.control import carry_out

    _quiet_logs()
    settings, _ = broker_settings(config, user)
    outcome = asyncio.run(carry_out(settings, action))
    console = Console(highlight=False)
    for warning in outcome.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True)
    style = None if outcome.ok else "red"
    console.print(outcome.message, style=style, markup=False, soft_wrap=True)
    if not outcome.ok:
        raise typer.Exit(1)


def _node_power(
    node: str, state: Literal["sleep", "wake"], config: Path, user: str, timeout: float | None
) -> None:
    from aigloo_edge.ops.control import SLEEP_TIMEOUT_S, WAKE_TIMEOUT_S, NodePower

    default = WAKE_TIMEOUT_S if state == "wake" else SLEEP_TIMEOUT_S
    _carry_out(config, user, NodePower(timeout or default, node, state))


@node_app.command("sleep")
def node_sleep(
    node: Annotated[str, typer.Argument(help="studio, mbp, mini or air.")],
    config: ConfigOption = DEFAULT_CONFIG,
    user: UserOption = "mobile",
    timeout: TimeoutOption = None,
) -> None:
    """Put a machine to sleep and wait until it reports `sleeping`."""
    _node_power(node, "sleep", config, user, timeout)


@node_app.command("wake")
def node_wake(
    node: Annotated[str, typer.Argument(help="studio, mbp, mini or air.")],
    config: ConfigOption = DEFAULT_CONFIG,
    user: UserOption = "mobile",
    timeout: TimeoutOption = None,
) -> None:
    """Wake a machine (Wake-on-LAN from its waker) and wait until its agent is back online."""
    _node_power(node, "wake", config, user, timeout)


@fans_app.command("set")
def fans_set(
    profile: Annotated[FanProfileChoice, typer.Argument(help="off, quiet, normal or max.")],
    config: ConfigOption = DEFAULT_CONFIG,
    user: UserOption = "mobile",
    timeout: TimeoutOption = None,
) -> None:
    """Set the fan profile and wait until the fan controller reports it."""
    from aigloo_edge.ops.control import FANS_TIMEOUT_S, Fans

    _carry_out(config, user, Fans(timeout or FANS_TIMEOUT_S, profile))


def power(
    output: Annotated[Literal["ac", "dc"], typer.Argument(help="The station output.")],
    state: Annotated[Literal["on", "off"], typer.Argument(help="on or off.")],
    config: ConfigOption = DEFAULT_CONFIG,
    user: UserOption = "mobile",
    timeout: TimeoutOption = None,
) -> None:
    """Switch a station output and wait until the station reports it."""
    from aigloo_edge.ops.control import OUTPUT_TIMEOUT_S, Output

    _carry_out(config, user, Output(timeout or OUTPUT_TIMEOUT_S, output, state == "on"))


def _rule_switch(rule: str, enable: bool, config: Path, user: str, timeout: float | None) -> None:
    from aigloo_edge.ops.control import RULE_TIMEOUT_S, RuleSwitch

    _carry_out(config, user, RuleSwitch(timeout or RULE_TIMEOUT_S, rule, enable))


def rules_enable(
    rule: Annotated[str, typer.Argument(help="A rule id.")],
    config: ConfigOption = DEFAULT_CONFIG,
    user: UserOption = "mobile",
    timeout: TimeoutOption = None,
) -> None:
    """Enable a rule and wait until the rules engine reports it enabled."""
    _rule_switch(rule, True, config, user, timeout)


def rules_disable(
    rule: Annotated[str, typer.Argument(help="A rule id.")],
    config: ConfigOption = DEFAULT_CONFIG,
    user: UserOption = "mobile",
    timeout: TimeoutOption = None,
) -> None:
    """Disable a rule (it releases what it holds) and wait until the engine reports it."""
    _rule_switch(rule, False, config, user, timeout)


def register(app: typer.Typer, rules_app: typer.Typer) -> None:
    app.command()(status)
    app.command()(power)
    app.add_typer(node_app, name="node")
    app.add_typer(fans_app, name="fans")
    rules_app.command("enable")(rules_enable)
    rules_app.command("disable")(rules_disable)
