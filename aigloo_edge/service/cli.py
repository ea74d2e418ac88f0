"""`aigloo service`: install, remove and check the rig's launchd or systemd services.

The machinery is imported inside each command: `aigloo` imports this module for its command
group, and `aigloo --version` should not pay for pydantic and the config models.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

if TYPE_CHECKING:
    from aigloo_edge.service.manager import Machine, Plan, ServiceStatus, Target

T = TypeVar("T")

service_app = typer.Typer(
    help="Run a machine's agent and the broker as services (launchd on macOS, systemd on Linux).",
    no_args_is_help=True,
)

# Exit codes of `status`, as `systemctl status` and LSB init scripts use them.
NOT_RUNNING = 3
NOT_INSTALLED = 4
DEFAULT_BROKER_DIR = Path(".aigloo/broker")  # the same default as `aigloo broker init`

ConfigFile = Annotated[Path, typer.Argument(help="A machine's config, e.g. agents/studio.yaml.")]
UnitDir = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        help="Where the service file goes (default: ~/Library/LaunchAgents or "
        "~/.config/systemd/user; as root /Library/LaunchDaemons or /etc/systemd/system).",
    ),
]
DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Print the file and the commands; change nothing.")
]
RunAs = Annotated[
    str | None,
    typer.Option(
        "--run-as", help="As root: the account the service runs as (default: the sudo user)."
    ),
]
NoSandbox = Annotated[
    bool,
    typer.Option("--no-sandbox", help="systemd: leave out ProtectSystem, ProtectHome and co."),
]
EnvFile = Annotated[
    Path | None,
    typer.Option(
        "--env-file",
        help="KEY=value lines (chmod 600) read at each start: secrets stay out of the unit.",
    ),
]


def _machine(ctx: typer.Context) -> Machine:
    """This computer, or the one a test hands in as the context object."""
    from aigloo_edge.service.manager import Machine, this_machine

    return ctx.obj if isinstance(ctx.obj, Machine) else this_machine()


def _target(
    ctx: typer.Context, unit_dir: Path | None, run_as: str | None = None, sandbox: bool = True
) -> Target:
    from aigloo_edge.service.manager import make_target

    return make_target(_machine(ctx), unit_dir, run_as, sandbox)


def _fail_on_errors(action: Callable[[], T]) -> T:
    """Our errors (a config's file:line, a refused command) as a message and exit status 1."""
    from aigloo_edge.errors import AiglooError

    try:
        return action()
    except AiglooError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None


def _carry_out(plan: Plan, target: Target, dry_run: bool, verb: str) -> None:
    from aigloo_edge.service.manager import apply, describe

    for warning in plan.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if dry_run:
        typer.echo(f"# dry run: {verb} {plan.name} would do this, and nothing was changed")
        for action in plan.actions:
            typer.echo(describe(action))
        return
    _fail_on_errors(lambda: apply(plan, target.machine.runner))


@service_app.command("install")
def install(
    ctx: typer.Context,
    config_file: ConfigFile,
    unit_dir: UnitDir = None,
    dry_run: DryRun = False,
    run_as: RunAs = None,
    no_sandbox: NoSandbox = False,
    env_file: EnvFile = None,
) -> None:
    """Run CONFIG's components as a service, restarted after a failure.

    Started at login (as root: at boot). Installing again rewrites the file and restarts the
    service on it: do so after moving the project or changing the paths the config writes to.
    """
    from aigloo_edge.service.manager import plan_agent_install

    target = _fail_on_errors(lambda: _target(ctx, unit_dir, run_as, not no_sandbox))
    plan = _fail_on_errors(lambda: plan_agent_install(target, config_file, env_file))
    _carry_out(plan, target, dry_run, "install")
    if not dry_run:
        _report_installed(plan, target)


@service_app.command("install-broker")
def install_broker(
    ctx: typer.Context,
    broker_dir: Annotated[
        Path, typer.Argument(help="Directory made by `aigloo broker init`.")
    ] = DEFAULT_BROKER_DIR,
    unit_dir: UnitDir = None,
    dry_run: DryRun = False,
    run_as: RunAs = None,
    no_sandbox: NoSandbox = False,
) -> None:
    """Run the Mini's Mosquitto (`aigloo broker start DIR`) as the `mosquitto` service."""
    from aigloo_edge.service.manager import plan_broker_install

    target = _fail_on_errors(lambda: _target(ctx, unit_dir, run_as, not no_sandbox))
    plan = _fail_on_errors(lambda: plan_broker_install(target, broker_dir))
    _carry_out(plan, target, dry_run, "install")
    if not dry_run:
        _report_installed(plan, target)


@service_app.command("uninstall")
def uninstall(
    ctx: typer.Context, config_file: ConfigFile, unit_dir: UnitDir = None, dry_run: DryRun = False
) -> None:
    """Stop CONFIG's service and remove its file (its logs and state stay)."""
    from aigloo_edge.service.manager import agent_name

    _uninstall(ctx, _fail_on_errors(lambda: agent_name(config_file)), unit_dir, dry_run)


@service_app.command("uninstall-broker")
def uninstall_broker(ctx: typer.Context, unit_dir: UnitDir = None, dry_run: DryRun = False) -> None:
    """Stop the broker's service and remove its file (the broker directory stays)."""
    from aigloo_edge.service.units import BROKER

    _uninstall(ctx, BROKER, unit_dir, dry_run)


def _uninstall(ctx: typer.Context, name: str, unit_dir: Path | None, dry_run: bool) -> None:
    from aigloo_edge.service.manager import plan_uninstall

    target = _fail_on_errors(lambda: _target(ctx, unit_dir))
    plan = plan_uninstall(target, name)
    if not plan.actions:
        typer.echo(f"{name}: not installed ({plan.unit_path})")
        return
    _carry_out(plan, target, dry_run, "uninstall")
    if not dry_run:
        typer.echo(f"removed {name}: {plan.unit_path}")


@service_app.command("status")
def status(
    ctx: typer.Context,
    config_file: Annotated[
        Path | None, typer.Argument(help="A machine's config (none: every aigloo service).")
    ] = None,
    unit_dir: UnitDir = None,
) -> None:
    """Show whether a service is installed and running, and where its logs are.

    Exit status: 0 running, 3 installed but not running, 4 not installed.
    """
    from aigloo_edge.service import manager

    target = _fail_on_errors(lambda: _target(ctx, unit_dir))
    if config_file is not None:
        names = [_fail_on_errors(lambda: manager.agent_name(config_file))]
    else:
        names = manager.installed_names(target)
        if not names:
            typer.echo(f"no aigloo services in {target.unit_dir}")
            raise typer.Exit(NOT_INSTALLED)
    found = _fail_on_errors(lambda: [manager.query_status(target, name) for name in names])
    for one in found:
        _print_status(one)
    raise typer.Exit(_status_code(found))


def _print_status(status: ServiceStatus) -> None:
    typer.echo(f"{status.service}: {status.summary}")
    if status.installed:
        typer.echo(f"  file: {status.path}")
        typer.echo(f"  logs: {status.logs}")


def _status_code(found: list[ServiceStatus]) -> int:
    if not any(one.installed for one in found):
        return NOT_INSTALLED
    return 0 if all(one.running for one in found) else NOT_RUNNING


def _report_installed(plan: Plan, target: Target) -> None:
    from aigloo_edge.service.manager import logs_hint

    typer.echo(f"installed {plan.name}: {plan.unit_path}")
    typer.echo(f"  logs: {logs_hint(target, plan.name)}")
