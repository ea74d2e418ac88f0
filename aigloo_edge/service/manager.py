"""The thin shell around `units`: where service files go, writing them, and driving launchctl or
systemctl.

Every change is first a `Plan` (directories, files, commands, in order), so `--dry-run` prints
exactly what `apply` would do. Commands go through a `Runner`: tests record them instead of
touching the machine's service manager.
"""

from __future__ import annotations

import logging
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

from aigloo_edge.broker.run import mosquitto_binary
from aigloo_edge.broker.setup import credentials_path
from aigloo_edge.config import AgentConfig, load_config
from aigloo_edge.errors import BrokerError, ServiceError
from aigloo_edge.service.units import (
    BROKER,
    Manager,
    Placement,
    ServiceSpec,
    agent_spec,
    broker_spec,
    file_name,
    label,
    name_from_file,
    secret_env_names,
    unit_name,
    unit_text,
)

log = logging.getLogger(__name__)

UNIT_MODE: Final = 0o644  # launchd refuses job files others can write
COMMAND_TIMEOUT_S: Final = 60.0
BOOTSTRAP_ATTEMPTS: Final = 3  # launchd may still be tearing down the job `bootout` stopped
BOOTSTRAP_PAUSE_S: Final = 1.0
# Read at install time: where the service's cache goes, who ran sudo, where user units live.
PASSED_ENVIRONMENT: Final = ("AIGLOO_CACHE", "SUDO_USER", "XDG_CONFIG_HOME")
USERNS_SYSCTLS: Final = {
    "/proc/sys/user/max_user_namespaces": "0",  # value that means "not available"
    "/proc/sys/kernel/unprivileged_userns_clone": "0",
    "/proc/sys/kernel/apparmor_restrict_unprivileged_userns": "1",
}


# --- running commands -------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str = ""
    stderr: str = ""


class Runner(Protocol):
    """Runs one command line and reports how it ended."""

    def run(self, argv: Sequence[str]) -> Outcome: ...


class SubprocessRunner:
    """The real thing: launchctl and systemctl, with a timeout."""

    def run(self, argv: Sequence[str]) -> Outcome:
        try:
            done = subprocess.run(
                list(argv), capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
            )
        except FileNotFoundError as exc:
            raise ServiceError(f"{argv[0]} not found: is this machine run by it?") from exc
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ServiceError(f"cannot run {argv[0]}: {exc}") from exc
        return Outcome(done.returncode, done.stdout, done.stderr)


# --- the machine and the choices of one invocation --------------------------------------------


def _home_of(user: str) -> Path:
    try:
        return Path(pwd.getpwnam(user).pw_dir)
    except KeyError:
        raise ServiceError(f"no user {user!r} on this machine") from None


@dataclass(frozen=True)
class Machine:
    """Facts about this computer the services depend on: detected, or given by tests."""

    manager: Manager
    uid: int
    user: str
    home: Path
    aigloo: Path  # the `aigloo` script next to this interpreter
    runner: Runner
    environ: Mapping[str, str] = field(default_factory=dict)
    user_namespaces: bool = True  # systemd user services sandbox only with them
    linger_dir: Path = Path("/var/lib/systemd/linger")
    home_of: Callable[[str], Path] = _home_of


def this_machine(runner: Runner | None = None) -> Machine:
    """The computer this runs on, as launchd (macOS) or systemd (Linux) sees it."""
    uid = os.geteuid()
    account = pwd.getpwuid(uid)
    return Machine(
        manager=_service_manager(),
        uid=uid,
        user=account.pw_name,
        home=Path(account.pw_dir),
        # Not resolved: a venv's python is a symlink to the base interpreter, outside the venv.
        aigloo=Path(os.path.abspath(sys.executable)).parent / "aigloo",
        runner=runner or SubprocessRunner(),
        environ={key: os.environ[key] for key in PASSED_ENVIRONMENT if key in os.environ},
        user_namespaces=_user_namespaces_available(),
    )


def _service_manager() -> Manager:
    if sys.platform == "darwin":
        return "launchd"
    if sys.platform.startswith("linux"):
        return "systemd"
    raise ServiceError(f"services need launchd (macOS) or systemd (Linux), not {sys.platform}")


def _user_namespaces_available() -> bool:
    for sysctl, unavailable in USERNS_SYSCTLS.items():
        try:
            if Path(sysctl).read_text().strip() == unavailable:
                return False
        except OSError:
            continue  # absent knob: this kernel does not restrict them that way
    return True


@dataclass(frozen=True)
class Target:
    """Where services go for this invocation: user or system scope, directory, account."""

    machine: Machine
    system: bool  # root: LaunchDaemons / the system manager
    unit_dir: Path
    custom_dir: bool  # not the manager's own directory: systemd must `link` it
    run_as: str | None
    service_home: Path  # home of the account the service runs as
    sandbox: bool

    @property
    def manager(self) -> Manager:
        return self.machine.manager


def default_unit_dir(machine: Machine, system: bool) -> Path:
    """~/Library/LaunchAgents, ~/.config/systemd/user; as root LaunchDaemons, /etc/systemd."""
    if machine.manager == "launchd":
        return Path("/Library/LaunchDaemons") if system else machine.home / "Library/LaunchAgents"
    if system:
        return Path("/etc/systemd/system")
    config_home = machine.environ.get("XDG_CONFIG_HOME", "")
    base = Path(config_home) if config_home.startswith("/") else machine.home / ".config"
    return base / "systemd/user"


def log_dir(target: Target) -> Path | None:
    """launchd writes the service's output to a file here; systemd sends it to the journal."""
    if target.manager != "launchd":
        return None
    return (
        Path("/Library/Logs/aigloo")
        if target.system
        else target.machine.home / "Library/Logs/aigloo"
    )


def make_target(
    machine: Machine, unit_dir: Path | None = None, run_as: str | None = None, sandbox: bool = True
) -> Target:
    """Decide the scope: root installs system services (run as `run_as`, else the sudo user)."""
    system = machine.uid == 0
    if run_as is not None and not system:
        raise ServiceError("--run-as is for system services: run the install as root (sudo)")
    if system and run_as is None:
        sudo_user = machine.environ.get("SUDO_USER")
        run_as = sudo_user if sudo_user and sudo_user != "root" else None
    default_dir = default_unit_dir(machine, system)
    chosen = Path(os.path.abspath(unit_dir.expanduser())) if unit_dir else default_dir
    return Target(
        machine=machine,
        system=system,
        unit_dir=chosen,
        custom_dir=chosen != default_dir,
        run_as=run_as,
        service_home=machine.home_of(run_as) if run_as else machine.home,
        sandbox=sandbox,
    )


# --- plans ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MakeDir:
    path: Path
    owner: str | None = None  # chown what it creates (a system service running as a user)


@dataclass(frozen=True)
class WriteFile:
    path: Path
    content: bytes
    mode: int = UNIT_MODE


@dataclass(frozen=True)
class RemoveFile:
    path: Path


@dataclass(frozen=True)
class RunCommand:
    argv: tuple[str, ...]
    may_fail: bool = False  # e.g. stopping a job that is not loaded
    attempts: int = 1


Action = MakeDir | WriteFile | RemoveFile | RunCommand


@dataclass(frozen=True)
class Plan:
    """What install or uninstall does, in order; `warnings` are for the person running it."""

    name: str
    unit_path: Path
    actions: tuple[Action, ...]
    warnings: tuple[str, ...] = ()


def describe(action: Action) -> str:
    """One action as a person reads it (`--dry-run`)."""
    if isinstance(action, MakeDir):
        owner = f" (owner {action.owner})" if action.owner else ""
        return f"mkdir -p {action.path}{owner}"
    if isinstance(action, WriteFile):
        return f"write {action.path} (mode {action.mode:04o}):\n{action.content.decode()}"
    if isinstance(action, RemoveFile):
        return f"rm {action.path}"
    note = "  # may fail: not loaded" if action.may_fail else ""
    return shlex.join(action.argv) + note


def plan_agent_install(target: Target, config_path: Path, env_file: Path | None = None) -> Plan:
    """Install `aigloo run CONFIG`; raises ConfigError (file:line) before anything is planned."""
    config_path = config_path.resolve()
    config = _load_as(config_path, target.service_home)
    warnings: list[str] = []
    placement = _placement(target, _checked_env_file(env_file), warnings)
    spec = agent_spec(config, config_path, placement)
    warnings += _agent_warnings(config, target, env_file)
    return _install_plan(target, spec, warnings)


def plan_broker_install(target: Target, broker_dir: Path) -> Plan:
    """Install `aigloo broker start DIR` (Mosquitto) from a directory `broker init` filled."""
    broker_dir = broker_dir.resolve()
    if not credentials_path(broker_dir).is_file():
        raise ServiceError(f"{broker_dir} has no credentials.yaml: run `aigloo broker init` first")
    warnings: list[str] = []
    try:
        mosquitto_binary()
    except BrokerError as exc:
        warnings.append(str(exc))
    spec = broker_spec(broker_dir, _placement(target, None, warnings))
    return _install_plan(target, spec, warnings)


def plan_uninstall(target: Target, name: str) -> Plan:
    """Stop the service, forget it, remove its file; nothing to do if it is not installed."""
    path = unit_path(target, name)
    if not path.exists():
        return Plan(name, path, ())
    if target.manager == "launchd":
        actions: list[Action] = [
            RunCommand(_launchctl("bootout", _job(target, name)), may_fail=True)
        ]
        actions.append(RemoveFile(path))
    else:
        actions = [
            RunCommand(_systemctl(target, "disable", "--now", unit_name(name))),
            RemoveFile(path),
            RunCommand(_systemctl(target, "daemon-reload")),
        ]
    return Plan(name, path, tuple(actions))


def unit_path(target: Target, name: str) -> Path:
    return target.unit_dir / file_name(target.manager, name)


def agent_name(config_path: Path) -> str:
    """The service name of a machine config (its node id); raises ConfigError if it is broken."""
    return load_config(config_path).node


def _load_as(config_path: Path, home: Path) -> AgentConfig:
    with _home(home):  # `~` in the config means the home of whoever runs the service
        return load_config(config_path)


@contextmanager
def _home(home: Path) -> Iterator[None]:
    saved = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    try:
        yield
    finally:
        if saved is None:
            del os.environ["HOME"]
        else:
            os.environ["HOME"] = saved


def _checked_env_file(env_file: Path | None) -> Path | None:
    if env_file is None:
        return None
    path = env_file.expanduser().resolve()
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ServiceError(f"{path}: cannot read the environment file: {exc.strerror}") from exc
    if not stat.S_ISREG(mode):
        raise ServiceError(f"{path}: the environment file is not a regular file")
    if mode & 0o077:
        raise ServiceError(f"{path} holds secrets but others may read it: chmod 600 {path}")
    return path


def _placement(target: Target, env_file: Path | None, warnings: list[str]) -> Placement:
    machine = target.machine
    if not machine.aigloo.is_file():
        raise ServiceError(f"no `aigloo` script at {machine.aigloo}: install aigloo-edge there")
    cache_env = machine.environ.get("AIGLOO_CACHE")
    if cache_env:  # the service's working directory differs: hand it an absolute path
        cache_env = os.path.abspath(Path(cache_env).expanduser())
    cache_dir = Path(cache_env) if cache_env else target.service_home / ".cache/aigloo"
    return Placement(
        manager=target.manager,
        system=target.system,
        aigloo=machine.aigloo,
        log_dir=log_dir(target),
        cache_dir=cache_dir,
        cache_env=cache_env,
        run_as=target.run_as,
        home=target.service_home if target.run_as else None,
        sandbox=_sandbox(target, warnings),
        env_file=env_file,
    )


def _sandbox(target: Target, warnings: list[str]) -> bool:
    user_systemd = target.manager == "systemd" and not target.system
    if target.sandbox and user_systemd and not target.machine.user_namespaces:
        warnings.append(
            "this kernel forbids unprivileged user namespaces: the user unit goes without "
            "the file-system sandbox (install as root for it)"
        )
        return False
    return target.sandbox


def _agent_warnings(config: AgentConfig, target: Target, env_file: Path | None) -> list[str]:
    warnings = []
    secrets = secret_env_names(config)
    if secrets and env_file is None:
        warnings.append(
            f"the config reads {', '.join(secrets)} from the environment, which a service does "
            "not inherit: put them in a file (chmod 600) and pass --env-file"
        )
    if not config.broker.credentials_file.exists():
        warnings.append(f"{config.broker.credentials_file} does not exist yet: the agent needs it")
    if target.manager == "systemd" and not target.system:
        warnings += _linger_warning(target.machine)
    return warnings


def _linger_warning(machine: Machine) -> list[str]:
    if (machine.linger_dir / machine.user).exists():
        return []
    return [
        "user services start at login and stop at logout: "
        f"`sudo loginctl enable-linger {machine.user}` starts them at boot"
    ]


def _install_plan(target: Target, spec: ServiceSpec, warnings: list[str]) -> Plan:
    path = unit_path(target, spec.name)
    content = unit_text(spec)
    owner = target.run_as if target.system else None
    if target.manager == "launchd":
        actions = _launchd_install(target, spec, path, content, owner)
        if target.custom_dir:
            warnings.append(f"launchd loads jobs at login or boot only from {_default(target)}")
    else:
        actions = _systemd_install(target, spec, path, content, owner)
    return Plan(spec.name, path, tuple(actions), tuple(warnings))


def _default(target: Target) -> Path:
    return default_unit_dir(target.machine, target.system)


def _launchd_install(
    target: Target, spec: ServiceSpec, path: Path, content: bytes, owner: str | None
) -> list[Action]:
    job = _job(target, spec.name)
    assert spec.log_file is not None  # launchd placements always have a log directory
    return [
        MakeDir(spec.log_file.parent, owner),
        MakeDir(target.unit_dir),
        WriteFile(path, content),
        # Unload whatever version is loaded, so the job runs the file just written.
        RunCommand(_launchctl("bootout", job), may_fail=True),
        RunCommand(_launchctl("enable", job)),  # undo a `launchctl disable`, which persists
        RunCommand(
            _launchctl("bootstrap", _domain(target), str(path)), attempts=BOOTSTRAP_ATTEMPTS
        ),
    ]


def _systemd_install(
    target: Target, spec: ServiceSpec, path: Path, content: bytes, owner: str | None
) -> list[Action]:
    # ProtectSystem=strict needs the writable directories to exist before the service starts.
    actions: list[Action] = [MakeDir(directory, owner) for directory in spec.writable_paths]
    actions += [MakeDir(target.unit_dir), WriteFile(path, content)]
    if target.custom_dir:
        actions.append(RunCommand(_systemctl(target, "link", str(path))))
    unit = unit_name(spec.name)
    actions += [
        RunCommand(_systemctl(target, "daemon-reload")),
        RunCommand(_systemctl(target, "enable", unit)),
        RunCommand(_systemctl(target, "restart", unit)),  # so a reinstall runs the new file
    ]
    return actions


def _systemctl(target: Target, *args: str) -> tuple[str, ...]:
    return ("systemctl", *(() if target.system else ("--user",)), *args)


def _launchctl(*args: str) -> tuple[str, ...]:
    return ("launchctl", *args)


def _domain(target: Target) -> str:
    return "system" if target.system else f"gui/{target.machine.uid}"


def _job(target: Target, name: str) -> str:
    return f"{_domain(target)}/{label(name)}"


# --- applying a plan --------------------------------------------------------------------------


def apply(plan: Plan, runner: Runner, pause: Callable[[float], None] = time.sleep) -> None:
    """Carry out the plan's actions in order; the first failure stops it with a ServiceError."""
    for action in plan.actions:
        log.debug("service %s: %s", plan.name, describe(action).splitlines()[0])
        if isinstance(action, MakeDir):
            _make_dirs(action.path, action.owner)
        elif isinstance(action, WriteFile):
            _write_atomically(action.path, action.content, action.mode)
        elif isinstance(action, RemoveFile):
            action.path.unlink(missing_ok=True)
        else:
            _run(action, runner, pause)


def _make_dirs(path: Path, owner: str | None) -> None:
    """mkdir -p, handing each directory it creates to `owner` (root installs for a user)."""
    missing = [path, *path.parents]
    missing = [directory for directory in missing if not directory.exists()]
    for directory in reversed(missing):
        directory.mkdir()
        if owner is not None:
            shutil.chown(directory, owner)


def _write_atomically(path: Path, content: bytes, mode: int) -> None:
    """Write beside, then rename: a service manager never reads a half-written file."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(content)
    partial.chmod(mode)
    partial.replace(path)


def _run(action: RunCommand, runner: Runner, pause: Callable[[float], None]) -> None:
    for attempt in range(1, action.attempts + 1):
        outcome = runner.run(action.argv)
        if outcome.returncode == 0 or action.may_fail:
            return
        if attempt < action.attempts:
            log.info("%s failed (%s); trying again", action.argv[:2], outcome.returncode)
            pause(BOOTSTRAP_PAUSE_S)
    detail = (outcome.stderr or outcome.stdout).strip()
    raise ServiceError(f"`{shlex.join(action.argv)}` exited {outcome.returncode}: {detail}")


# --- status -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceStatus:
    """What the service manager says about one service."""

    name: str
    service: str  # the launchd label or the systemd unit
    path: Path
    installed: bool
    loaded: bool = False
    running: bool = False
    pid: int | None = None
    detail: str = ""
    logs: str = ""

    @property
    def summary(self) -> str:
        if not self.installed:
            return "not installed"
        if self.running:
            return f"running (pid {self.pid})" if self.pid else "running"
        state = "stopped" if self.loaded else "not loaded"
        return f"{state} ({self.detail})" if self.detail else state


def query_status(target: Target, name: str) -> ServiceStatus:
    """Installed or not, loaded, running, and where its output goes."""
    path = unit_path(target, name)
    service = label(name) if target.manager == "launchd" else unit_name(name)
    if not path.exists():
        return ServiceStatus(name, service, path, installed=False)
    if target.manager == "launchd":
        return _launchd_status(target, name, path)
    return _systemd_status(target, name, path)


def logs_hint(target: Target, name: str) -> str:
    """The log file (launchd) or the journalctl command (systemd) that shows its output."""
    directory = log_dir(target)
    if directory is not None:
        return str(directory / f"{name}.log")
    return shlex.join(
        ("journalctl", *(() if target.system else ("--user",)), "-u", unit_name(name))
    )


def installed_names(target: Target) -> list[str]:
    """Every aigloo service with a file in the unit directory, the broker first."""
    if not target.unit_dir.is_dir():
        return []
    found = [name_from_file(target.manager, entry.name) for entry in target.unit_dir.iterdir()]
    names = sorted({name for name in found if name is not None})
    return sorted(names, key=lambda name: name != BROKER)


def _launchd_status(target: Target, name: str, path: Path) -> ServiceStatus:
    outcome = target.machine.runner.run(_launchctl("print", _job(target, name)))
    logs = logs_hint(target, name)
    if outcome.returncode != 0:
        return ServiceStatus(name, label(name), path, installed=True, logs=logs)
    fields = _launchd_fields(outcome.stdout)
    pid = fields.get("pid")
    exit_code = fields.get("last exit code")
    return ServiceStatus(
        name,
        label(name),
        path,
        installed=True,
        loaded=True,
        running=fields.get("state") == "running",
        pid=int(pid) if pid and pid.isdigit() else None,
        detail=f"last exit code {exit_code}" if exit_code else fields.get("state", ""),
        logs=logs,
    )


def _launchd_fields(printed: str) -> dict[str, str]:
    """`key = value` lines of `launchctl print`; the job's own come before nested sections."""
    fields: dict[str, str] = {}
    for line in printed.splitlines():
        key, sep, value = line.strip().partition(" = ")
        if sep and key not in fields:
            fields[key] = value.strip()
    return fields


def _systemd_status(target: Target, name: str, path: Path) -> ServiceStatus:
    unit = unit_name(name)
    properties = "LoadState,ActiveState,SubState,MainPID,Result,UnitFileState"
    outcome = target.machine.runner.run(
        _systemctl(target, "show", unit, f"--property={properties}")
    )
    journal = logs_hint(target, name)
    if outcome.returncode != 0:
        detail = (outcome.stderr or outcome.stdout).strip()
        return ServiceStatus(name, unit, path, installed=True, detail=detail, logs=journal)
    fields = dict(line.partition("=")[::2] for line in outcome.stdout.splitlines() if "=" in line)
    pid = fields.get("MainPID", "0")
    active = fields.get("ActiveState", "")
    return ServiceStatus(
        name,
        unit,
        path,
        installed=True,
        loaded=fields.get("LoadState") == "loaded",
        running=active == "active",
        pid=int(pid) if pid.isdigit() and pid != "0" else None,
        detail=f"{active}/{fields.get('SubState', '')}, result {fields.get('Result', '?')}",
        logs=journal,
    )
