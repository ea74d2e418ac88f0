"""Service definitions, pure: the launchd plist and the systemd unit of an agent or the broker.

Nothing here touches the file system or runs a command (`manager` does). Every fact the files
depend on is in a `Placement` (where and as whom the service runs) and a `ServiceSpec` (what it
runs), so the files are tested by their content and by the platforms' own validators.
"""

from __future__ import annotations

import os
import plistlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, Final, Literal

from aigloo_edge.config import AgentConfig
from aigloo_edge.errors import ServiceError

Manager = Literal["launchd", "systemd"]

LABEL_PREFIX: Final = "io.aigloo."
UNIT_PREFIX: Final = "aigloo-"
BROKER: Final = "mosquitto"

# launchd and systemd start services with a bare PATH; the agent runs pmset, macmon,
# powermetrics, systemctl and `broker start` looks for Mosquitto (Homebrew on macOS).
MACOS_PATH: Final = (
    "/opt/homebrew/bin",
    "/opt/homebrew/sbin",
    "/usr/local/bin",
    "/usr/local/sbin",
    "/usr/bin",
    "/bin",
    "/usr/sbin",
    "/sbin",
)
LINUX_PATH: Final = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")

# Programs that gain privileges through a setuid bit: NoNewPrivileges would make them fail.
SETUID_HELPERS: Final = frozenset({"sudo", "doas", "pkexec", "su"})
# AF_UNIX: D-Bus (BlueZ for BLE, logind for `systemctl suspend`), nss-mdns for `mini.local`;
# AF_INET/AF_INET6: MQTT, HTTP, Wake-on-LAN; AF_NETLINK: glibc's getaddrinfo(AI_ADDRCONFIG)
# and nss-myhostname list the local addresses with it. No AF_BLUETOOTH: bleak talks to BlueZ.
ADDRESS_FAMILIES: Final = "AF_UNIX AF_INET AF_INET6 AF_NETLINK"
RESTART_DELAY_S: Final = 5
STOP_TIMEOUT_S: Final = 30
UMASK: Final = 0o077
HEADER: Final = (
    "# Written by `aigloo service install`; reinstall rather than edit (see docs/services.md)."
)


def label(name: str) -> str:
    """The launchd label of a service: `io.aigloo.<node>` or `io.aigloo.mosquitto`."""
    return LABEL_PREFIX + name


def unit_name(name: str) -> str:
    """The systemd unit of a service: `aigloo-<node>.service` or `aigloo-mosquitto.service`."""
    return f"{UNIT_PREFIX}{name}.service"


def file_name(manager: Manager, name: str) -> str:
    """The name of the service's file in the unit directory."""
    return f"{label(name)}.plist" if manager == "launchd" else unit_name(name)


def name_from_file(manager: Manager, filename: str) -> str | None:
    """The service name a file in the unit directory belongs to, or None if not ours."""
    prefix, suffix = (LABEL_PREFIX, ".plist") if manager == "launchd" else (UNIT_PREFIX, ".service")
    if filename.startswith(prefix) and filename.endswith(suffix):
        return filename[len(prefix) : -len(suffix)] or None
    return None


@dataclass(frozen=True)
class Placement:
    """Where and as whom a service runs; `manager` decides it from the machine."""

    manager: Manager
    system: bool
    aigloo: Path  # the console script of the environment the service runs from
    cache_dir: Path  # AIGLOO_CACHE as the service sees it (the demo model lands there)
    log_dir: Path | None = None  # launchd only: systemd services log to the journal
    cache_env: str | None = None  # AIGLOO_CACHE to pass on, when the installer set it
    run_as: str | None = None  # system services only: the account it runs as
    home: Path | None = None  # that account's home (launchd does not set HOME for daemons)
    sandbox: bool = True  # systemd's file-system namespaces (ProtectSystem, ProtectHome, ...)
    env_file: Path | None = None  # KEY=value secrets, read at start, never copied into a unit


@dataclass(frozen=True)
class ServiceSpec:
    """One long-running service, whatever manager runs it."""

    name: str
    description: str
    argv: tuple[str, ...]
    working_dir: Path
    placement: Placement
    writable_paths: tuple[Path, ...] = ()
    needs_setuid: bool = False  # a configured command runs sudo & co
    interactive: bool = False  # launchd: no CPU/I-O throttling (inference)
    reload_signal: bool = False  # SIGHUP reloads it (Mosquitto: passwd, acl)
    after: tuple[str, ...] = ()  # systemd units to start first when both start
    environment: Mapping[str, str] = field(default_factory=dict)

    @property
    def log_file(self) -> Path | None:
        log_dir = self.placement.log_dir
        return None if log_dir is None else log_dir / f"{self.name}.log"


def writable_paths(config: AgentConfig, cache_dir: Path) -> tuple[Path, ...]:
    """The directories a machine's components write to (the sandbox leaves only these writable)."""
    paths: set[Path] = set()
    if config.rules is not None:
        paths.add(config.rules.state_file.parent)  # SQLite adds a journal beside the file
    if config.inference is not None and config.inference.demo_model:
        paths.add(cache_dir / "models")  # the import stages a sibling, then renames it
    # systemd ignores a path with `..` in it ("not normalized"); config paths often have one.
    return tuple(sorted({Path(os.path.normpath(path)) for path in paths}))


def configured_commands(config: AgentConfig) -> list[list[str]]:
    """Command lines from the config the agent runs on Linux (powermetrics and macmon are macOS
    tools, absent on Linux whatever the hardening)."""
    commands: list[list[str]] = []
    if config.power.sleep_command:
        commands.append(list(config.power.sleep_command))
    if config.fans is not None and config.fans.commands:
        commands.extend(list(argv) for argv in config.fans.commands.values())
    return commands


def needs_setuid(config: AgentConfig) -> bool:
    """True if a configured command gains privileges with a setuid helper such as sudo."""
    return any(
        argv and PurePath(argv[0]).name in SETUID_HELPERS for argv in configured_commands(config)
    )


def secret_env_names(config: AgentConfig) -> list[str]:
    """Environment variables the config reads secrets from (the service must be given them)."""
    names: list[str] = []
    upstream = config.inference.upstream if config.inference else None
    if upstream is not None and upstream.api_key_env:
        names.append(upstream.api_key_env)
    cloud = config.sensors.ecoflow_cloud if config.sensors else None
    if cloud is not None:
        names.extend([cloud.access_key_env, cloud.secret_key_env])
    return names


def service_environment(placement: Placement) -> dict[str, str]:
    """What every service gets: a PATH with its own environment first, unbuffered output."""
    system_path = MACOS_PATH if placement.manager == "launchd" else LINUX_PATH
    env = {
        "PATH": ":".join([str(placement.aigloo.parent), *system_path]),
        "PYTHONUNBUFFERED": "1",  # log lines reach the log file or journal at once
    }
    if placement.cache_env is not None:
        env["AIGLOO_CACHE"] = placement.cache_env
    if placement.manager == "launchd" and placement.home is not None:
        env["HOME"] = str(placement.home)  # systemd sets HOME for User=; launchd does not
    return env


def agent_spec(config: AgentConfig, config_path: Path, placement: Placement) -> ServiceSpec:
    """`aigloo run CONFIG` as a service: every component the machine's config enables."""
    if config.node == BROKER:
        raise ServiceError(f"node id {BROKER!r} is the broker's service name: rename the node")
    return ServiceSpec(
        name=config.node,
        description=f"Aigloo Edge {config.node} ({', '.join(config.components)})",
        argv=(str(placement.aigloo), "run", str(config_path)),
        working_dir=config_path.parent,
        placement=placement,
        writable_paths=writable_paths(config, placement.cache_dir),
        needs_setuid=needs_setuid(config),
        interactive="inference" in config.components,
        after=(unit_name(BROKER),),  # ordering only: harmless when the broker is elsewhere
        environment=service_environment(placement),
    )


def broker_spec(broker_dir: Path, placement: Placement) -> ServiceSpec:
    """`aigloo broker start DIR` as a service: Mosquitto on the project's config."""
    return ServiceSpec(
        name=BROKER,
        description=f"Aigloo Edge MQTT broker (Mosquitto, {broker_dir})",
        argv=(str(placement.aigloo), "broker", "start", str(broker_dir)),
        working_dir=broker_dir,
        placement=placement,
        writable_paths=(broker_dir,),  # mosquitto.conf is rendered at start; data/ persists
        reload_signal=True,
        environment=service_environment(placement),
    )


# --- launchd ----------------------------------------------------------------------------------


def launchd_plist(spec: ServiceSpec) -> dict[str, Any]:
    """The job as launchd reads it: kept alive after a failure, started at load, logged."""
    placement = spec.placement
    if spec.log_file is None:
        raise ServiceError("a launchd job needs a log directory")
    job: dict[str, Any] = {
        "Label": label(spec.name),
        "ProgramArguments": _program_arguments(spec),
        "WorkingDirectory": str(spec.working_dir),
        "EnvironmentVariables": dict(spec.environment),
        "RunAtLoad": True,
        # Restart after a crash or an error exit, not after a clean stop (like on-failure).
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": 10,
        "ExitTimeOut": STOP_TIMEOUT_S,
        "StandardOutPath": str(spec.log_file),
        "StandardErrorPath": str(spec.log_file),
        "Umask": UMASK,
        # Unset means light CPU and I/O throttling; inference is what the machine is for.
        "ProcessType": "Interactive" if spec.interactive else "Standard",
    }
    if placement.system and placement.run_as is not None:
        job["UserName"] = placement.run_as
    return job


def launchd_plist_bytes(spec: ServiceSpec) -> bytes:
    return plistlib.dumps(launchd_plist(spec), fmt=plistlib.FMT_XML, sort_keys=True)


def _program_arguments(spec: ServiceSpec) -> list[str]:
    env_file = spec.placement.env_file
    if env_file is None:
        return list(spec.argv)
    # launchd has no EnvironmentFile: a shell exports the file's KEY=value lines, then execs.
    return ["/bin/sh", "-c", 'set -a && . "$0" && exec "$@"', str(env_file), *spec.argv]


# --- systemd ----------------------------------------------------------------------------------


def systemd_unit(spec: ServiceSpec) -> str:
    """The unit file: restarted on failure, ordered after the network, sandboxed."""
    sections = [
        [HEADER, "[Unit]", *_unit_section(spec)],
        ["[Service]", *_service_section(spec), *_hardening(spec)],
        ["[Install]", f"WantedBy={_wanted_by(spec.placement)}"],
    ]
    return "\n\n".join("\n".join(lines) for lines in sections) + "\n"


def _unit_section(spec: ServiceSpec) -> list[str]:
    lines = [f"Description={_specifiers(spec.description)}"]
    after = list(spec.after)
    if spec.placement.system:
        # A user manager cannot see system targets: this ordering exists for system units only.
        after.insert(0, "network-online.target")
        lines.append("Wants=network-online.target")
    if after:
        lines.insert(1, "After=" + " ".join(after))
    return lines


def _service_section(spec: ServiceSpec) -> list[str]:
    placement = spec.placement
    lines = [
        "Type=exec",  # a missing program fails the start instead of the first restart
        "ExecStart=" + " ".join(_exec_word(arg) for arg in spec.argv),
        f"WorkingDirectory={_specifiers(_one_line(str(spec.working_dir)))}",
    ]
    lines.extend(
        f"Environment={_quoted(f'{key}={value}')}" for key, value in spec.environment.items()
    )
    if placement.env_file is not None:
        lines.append(f"EnvironmentFile={_specifiers(_one_line(str(placement.env_file)))}")
    if placement.system and placement.run_as is not None:
        lines.append(f"User={_specifiers(placement.run_as)}")
    if spec.reload_signal:
        lines.append("ExecReload=/bin/kill -HUP $MAINPID")
    lines += [
        "Restart=on-failure",
        f"RestartSec={RESTART_DELAY_S}s",
        f"TimeoutStopSec={STOP_TIMEOUT_S}s",
        f"SyslogIdentifier={UNIT_PREFIX}{spec.name}",
        f"UMask={UMASK:04o}",
    ]
    return lines


def _wanted_by(placement: Placement) -> str:
    return "multi-user.target" if placement.system else "default.target"


def _hardening(spec: ServiceSpec) -> list[str]:
    """Sandboxing that leaves what the components need: the network, D-Bus, their own files."""
    lines = ["", "# Hardening (docs/services.md#hardening)"]
    namespaces = spec.placement.sandbox and not (spec.needs_setuid and not spec.placement.system)
    if namespaces:
        lines += _file_system_sandbox(spec)
    if spec.needs_setuid:
        lines.append("# NoNewPrivileges and seccomp left out: a configured command uses sudo & co")
    else:
        lines += _privilege_limits(spec.placement, namespaces)
    return lines


def _file_system_sandbox(spec: ServiceSpec) -> list[str]:
    lines = []
    if not spec.placement.system:
        lines.append("PrivateUsers=yes")  # user managers need it for any namespacing below
    lines += ["ProtectSystem=strict", "ProtectHome=read-only"]
    # "-": a directory removed later must not stop the service before it can say why.
    lines += [f"ReadWritePaths={_quoted('-' + str(path))}" for path in spec.writable_paths]
    lines += ["PrivateTmp=yes", "ProtectControlGroups=yes"]
    return lines


def _privilege_limits(placement: Placement, namespaces: bool) -> list[str]:
    lines = [
        "NoNewPrivileges=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "RestrictRealtime=yes",
        "RestrictNamespaces=yes",
        f"RestrictAddressFamilies={ADDRESS_FAMILIES}",
        "SystemCallArchitectures=native",
        "SystemCallFilter=@system-service",
        "SystemCallErrorNumber=EPERM",
    ]
    if namespaces:
        lines += [
            "ProtectKernelTunables=yes",
            "ProtectKernelModules=yes",
            "ProtectKernelLogs=yes",
            "ProtectHostname=yes",
        ]
    if placement.system:
        lines.append("ProtectClock=yes")  # needs the device cgroup a user manager lacks
    if placement.system and placement.run_as not in (None, "root"):
        lines += ["CapabilityBoundingSet=", "AmbientCapabilities="]
    return lines


def _one_line(value: str) -> str:
    if any(ord(char) < 32 for char in value):
        raise ServiceError(f"{value!r}: control characters cannot go into a unit file")
    return value


def _specifiers(value: str) -> str:
    """systemd expands `%x` specifiers in most settings: a literal % is written `%%`."""
    return value.replace("%", "%%")


def _quoted(value: str) -> str:
    """A word of a space-separated setting, quoted when it holds blanks, quotes or backslashes."""
    value = _specifiers(_one_line(value))
    if not any(char in value for char in " \t\"'\\"):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _exec_word(arg: str) -> str:
    """A word of ExecStart, where `$NAME` is also expanded: a literal $ is written `$$`."""
    return _quoted(arg).replace("$", "$$")


def unit_text(spec: ServiceSpec) -> bytes:
    """The file the manager writes for the spec's platform."""
    if spec.placement.manager == "launchd":
        return launchd_plist_bytes(spec)
    return systemd_unit(spec).encode()
