"""The service files themselves, without a service manager: the systemd unit checked by
`systemd-analyze`, the launchd plist read back by plistlib (and `plutil -lint` on a Mac)."""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aigloo_edge.config import AgentConfig, load_config
from aigloo_edge.errors import ServiceError
from aigloo_edge.service.units import (
    Placement,
    ServiceSpec,
    agent_spec,
    broker_spec,
    label,
    launchd_plist,
    launchd_plist_bytes,
    name_from_file,
    needs_setuid,
    secret_env_names,
    systemd_unit,
    unit_name,
    writable_paths,
)

AIGLOO = Path(sys.executable).parent / "aigloo"  # the venv's real console script
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (not a systemd machine)"
)

CONFIG = """\
node: studio
role: studio
broker:
  host: 127.0.0.1
  credentials_file: ../broker/credentials.yaml
components: [agent, inference, rules]
power:
  driver: linux
inference:
  demo_model: true
rules:
  state_file: ../state/rules.sqlite3
"""


def write_config(root: Path, text: str = CONFIG, name: str = "studio.yaml") -> Path:
    agents = root / "agents"
    agents.mkdir(parents=True, exist_ok=True)
    path = agents / name
    path.write_text(text)
    return path


def placement(tmp_path: Path, **changes: object) -> Placement:
    values: dict[str, object] = {
        "manager": "systemd",
        "system": False,
        "aigloo": AIGLOO,
        "cache_dir": tmp_path / "cache",
        "log_dir": tmp_path / "logs",
    }
    values.update(changes)
    return Placement(**values)  # type: ignore[arg-type]


def studio_spec(tmp_path: Path, text: str = CONFIG, **changes: object) -> ServiceSpec:
    path = write_config(tmp_path / "rig", text)
    return agent_spec(load_config(path), path, placement(tmp_path, **changes))


def verify(unit_text: str, directory: Path, name: str, user: bool = False) -> str:
    """Run `systemd-analyze verify` on the unit; return its complaints (stderr)."""
    assert SYSTEMD_ANALYZE is not None
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(unit_text)
    env = dict(os.environ)
    args = [SYSTEMD_ANALYZE, "verify", str(path)]
    if user:
        runtime = directory / "runtime"  # a user manager needs a runtime directory to start
        runtime.mkdir(mode=0o700, exist_ok=True)
        env["XDG_RUNTIME_DIR"] = str(runtime)
        args.insert(2, "--user")
    done = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    return done.stderr.strip()


def unit_settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


# --- systemd, validated by systemd itself -----------------------------------------------------


@needs_systemd_analyze
def test_user_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """A user unit (the default without root) is one systemd's user manager accepts silently."""
    spec = studio_spec(tmp_path)
    assert verify(systemd_unit(spec), tmp_path / "units", unit_name("studio"), user=True) == ""


@needs_systemd_analyze
def test_system_unit_for_a_user_account_passes_verify(tmp_path: Path) -> None:
    """A system unit (installed as root) running as an account verifies without a warning."""
    spec = studio_spec(tmp_path, system=True, run_as="owner", home=tmp_path / "home")
    assert verify(systemd_unit(spec), tmp_path / "units", unit_name("studio")) == ""


@needs_systemd_analyze
def test_broker_unit_passes_verify(tmp_path: Path) -> None:
    """The Mosquitto unit (`aigloo broker start DIR`) verifies in both scopes."""
    broker_dir = tmp_path / "broker"
    for system in (False, True):
        spec = broker_spec(broker_dir, placement(tmp_path, system=system))
        text = systemd_unit(spec)
        assert verify(text, tmp_path / f"units{system}", unit_name("mosquitto"), not system) == ""


@needs_systemd_analyze
def test_paths_with_spaces_percent_and_dots_survive_systemd_parsing(tmp_path: Path) -> None:
    """Blanks, `%` and `..` in paths are quoted, escaped and normalized: systemd finds the
    program (verify checks it is executable) and takes every ReadWritePaths entry."""
    odd_venv = tmp_path / "venv 5%n mine" / "bin"  # %n: the unit name, if not escaped
    odd_venv.mkdir(parents=True)
    (odd_venv / "aigloo").symlink_to(AIGLOO)
    rig = tmp_path / "my rig"
    config = write_config(rig, CONFIG.replace("../state/", "../state dir/../state 2/"))
    spec = agent_spec(
        load_config(config), config, placement(tmp_path, aigloo=odd_venv / "aigloo", system=True)
    )
    text = systemd_unit(spec)
    assert verify(text, tmp_path / "units", unit_name("studio")) == ""
    assert f'ReadWritePaths="-{rig}/state 2"' in text
    assert '"' + str(odd_venv).replace("%", "%%") + '/aigloo"' in text


@needs_systemd_analyze
def test_hardened_system_unit_scores_ok_in_systemd_security(tmp_path: Path) -> None:
    """`systemd-analyze security` rates the agent's system unit 3.0 or better (of 10)."""
    assert SYSTEMD_ANALYZE is not None
    spec = studio_spec(tmp_path, system=True, run_as="owner", home=tmp_path / "home")
    path = tmp_path / unit_name("studio")
    path.write_text(systemd_unit(spec))
    done = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=yes", "--threshold=30", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-400:]


# --- systemd, by content ----------------------------------------------------------------------


def test_unit_restarts_on_failure_and_starts_after_the_broker(tmp_path: Path) -> None:
    """Restart=on-failure with a delay; ordered after the Mosquitto unit; WantedBy default."""
    settings = unit_settings(systemd_unit(studio_spec(tmp_path)))
    assert settings["Restart"] == ["on-failure"]
    assert settings["RestartSec"] == ["5s"]
    assert settings["After"] == ["aigloo-mosquitto.service"]  # user units: no system targets
    assert settings["WantedBy"] == ["default.target"]
    assert settings["ExecStart"] == [f"{AIGLOO} run {tmp_path}/rig/agents/studio.yaml"]
    assert settings["WorkingDirectory"] == [f"{tmp_path}/rig/agents"]
    assert f"PATH={AIGLOO.parent}:" in settings["Environment"][0]
    assert "PYTHONUNBUFFERED=1" in settings["Environment"]


def test_system_unit_waits_for_the_network_and_runs_as_its_account(tmp_path: Path) -> None:
    """As root: after network-online.target, User= the account, no capabilities kept."""
    spec = studio_spec(tmp_path, system=True, run_as="owner", home=tmp_path / "home")
    settings = unit_settings(systemd_unit(spec))
    assert settings["After"] == ["network-online.target aigloo-mosquitto.service"]
    assert settings["Wants"] == ["network-online.target"]
    assert settings["User"] == ["owner"]
    assert settings["CapabilityBoundingSet"] == [""]
    assert settings["WantedBy"] == ["multi-user.target"]


def test_sandbox_leaves_writable_only_the_state_the_config_names(tmp_path: Path) -> None:
    """ProtectSystem=strict, ProtectHome=read-only; writable: the rules state dir and the demo
    model cache; the user unit adds PrivateUsers, which user managers need to sandbox."""
    settings = unit_settings(systemd_unit(studio_spec(tmp_path)))
    assert settings["ProtectSystem"] == ["strict"]
    assert settings["ProtectHome"] == ["read-only"]
    assert settings["PrivateUsers"] == ["yes"]
    assert settings["PrivateTmp"] == ["yes"]
    assert sorted(settings["ReadWritePaths"]) == [
        f"-{tmp_path}/cache/models",
        f"-{tmp_path}/rig/state",
    ]


def test_hardening_keeps_what_sleep_and_ble_need(tmp_path: Path) -> None:
    """`systemctl suspend` and bleak reach logind and BlueZ over D-Bus (AF_UNIX): allowed; no
    raw Bluetooth, packet or other exotic sockets; no privilege gain; seccomp to service calls."""
    settings = unit_settings(systemd_unit(studio_spec(tmp_path)))
    assert settings["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6 AF_NETLINK"]
    for key in ("NoNewPrivileges", "RestrictSUIDSGID", "LockPersonality", "ProtectKernelTunables"):
        assert settings[key] == ["yes"], key
    assert settings["ProtectControlGroups"] == ["yes"]
    assert settings["SystemCallFilter"] == ["@system-service"]
    assert "MemoryDenyWriteExecute" not in settings  # libffi closures and JITs need W+X pages


def test_a_sudo_sleep_command_keeps_privilege_gain_possible(tmp_path: Path) -> None:
    """A sleep command run through sudo needs setuid: NoNewPrivileges and the options implying
    it are left out (with a comment saying why); as a user unit, so is the namespace sandbox."""
    text = CONFIG.replace(
        "  driver: linux", "  driver: command\n  sleep_command: [sudo, -n, systemctl, suspend]"
    )
    unit = systemd_unit(studio_spec(tmp_path, text))
    settings = unit_settings(unit)
    assert needs_setuid(load_config(tmp_path / "rig/agents/studio.yaml"))
    for key in ("NoNewPrivileges", "RestrictSUIDSGID", "SystemCallFilter", "PrivateUsers"):
        assert key not in settings, key
    assert "ProtectSystem" not in settings  # PrivateUsers would unmap root for sudo
    assert "configured command uses sudo" in unit
    system_settings = unit_settings(systemd_unit(studio_spec(tmp_path, text, system=True)))
    assert system_settings["ProtectSystem"] == ["strict"]  # no setuid bar without NNP
    assert "NoNewPrivileges" not in system_settings


def test_no_sandbox_leaves_out_the_namespaces_but_not_the_privilege_limits(tmp_path: Path) -> None:
    """`--no-sandbox` (or a kernel without user namespaces) drops the file-system sandbox only."""
    settings = unit_settings(systemd_unit(studio_spec(tmp_path, sandbox=False)))
    for key in ("PrivateUsers", "ProtectSystem", "ProtectHome", "ReadWritePaths", "PrivateTmp"):
        assert key not in settings, key
    assert settings["NoNewPrivileges"] == ["yes"]
    assert "ProtectKernelTunables" not in settings  # a mount option: needs the namespace


def test_broker_unit_reloads_with_sighup_and_may_write_its_directory(tmp_path: Path) -> None:
    """Mosquitto re-reads passwd and acl on SIGHUP (`systemctl reload`); its directory is
    writable (config rendered at start, persistence in data/)."""
    broker_dir = tmp_path / "broker"
    settings = unit_settings(systemd_unit(broker_spec(broker_dir, placement(tmp_path))))
    assert settings["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert settings["ExecStart"] == [f"{AIGLOO} broker start {broker_dir}"]
    assert settings["ReadWritePaths"] == [f"-{broker_dir}"]
    assert "After" not in settings  # a user unit; the broker waits for nothing of ours


def test_exec_start_and_environment_escape_dollar_and_percent(tmp_path: Path) -> None:
    """A `$` or `%` in a path is literal in the unit: `$$`, `%%` (not a variable or specifier)."""
    path = write_config(tmp_path / "rig $HOME 5%")
    spec = agent_spec(load_config(path), path, placement(tmp_path, cache_env="/c/100%"))
    settings = unit_settings(systemd_unit(spec))
    assert settings["ExecStart"][0].endswith('"' + f'{tmp_path}/rig $$HOME 5%%/agents/studio.yaml"')
    assert "AIGLOO_CACHE=/c/100%%" in settings["Environment"]


def test_control_characters_in_paths_are_refused(tmp_path: Path) -> None:
    """A newline in a path would start a new setting: refused, not written."""
    path = write_config(tmp_path / "rig\nExecStartPre=evil")
    spec = agent_spec(load_config(path), path, placement(tmp_path))
    with pytest.raises(ServiceError, match="control characters"):
        systemd_unit(spec)


def test_env_file_is_referenced_not_copied(tmp_path: Path) -> None:
    """Secrets stay in the env file: the unit names it (EnvironmentFile=), holds no value."""
    env_file = tmp_path / "secrets.env"
    unit = systemd_unit(studio_spec(tmp_path, env_file=env_file))
    assert unit_settings(unit)["EnvironmentFile"] == [str(env_file)]


# --- launchd ----------------------------------------------------------------------------------


def launchd_placement(tmp_path: Path, **changes: object) -> dict[str, object]:
    return {"manager": "launchd", "log_dir": tmp_path / "Library/Logs/aigloo", **changes}


def test_plist_parses_back_with_the_keys_launchd_needs(tmp_path: Path) -> None:
    """Label, absolute program and config, RunAtLoad, KeepAlive after failures only, a throttle,
    stdout and stderr to ~/Library/Logs/aigloo/<node>.log, no throttling for inference."""
    spec = studio_spec(tmp_path, CONFIG, **launchd_placement(tmp_path))
    job = plistlib.loads(launchd_plist_bytes(spec))
    assert job["Label"] == "io.aigloo.studio"
    assert job["ProgramArguments"] == [str(AIGLOO), "run", f"{tmp_path}/rig/agents/studio.yaml"]
    assert job["RunAtLoad"] is True
    assert job["KeepAlive"] == {"SuccessfulExit": False}
    assert job["ThrottleInterval"] == 10
    log_file = f"{tmp_path}/Library/Logs/aigloo/studio.log"
    assert job["StandardOutPath"] == job["StandardErrorPath"] == log_file
    assert job["WorkingDirectory"] == f"{tmp_path}/rig/agents"
    assert job["ProcessType"] == "Interactive"
    assert job["EnvironmentVariables"]["PATH"].startswith(f"{AIGLOO.parent}:/opt/homebrew/bin:")
    assert job["Umask"] == 0o077
    assert "UserName" not in job


def test_plist_without_inference_is_a_standard_job(tmp_path: Path) -> None:
    """Only inference asks for Interactive (no CPU/I-O throttling); the broker is Standard."""
    job = launchd_plist(broker_spec(tmp_path / "b", placement(tmp_path, manager="launchd")))
    assert job["ProcessType"] == "Standard"
    assert job["Label"] == "io.aigloo.mosquitto"
    assert job["ProgramArguments"][1:] == ["broker", "start", str(tmp_path / "b")]


def test_launch_daemon_runs_as_its_account_with_its_home(tmp_path: Path) -> None:
    """As root (/Library/LaunchDaemons): UserName and HOME, which launchd does not set."""
    home = tmp_path / "Users/owner"
    spec = studio_spec(
        tmp_path, CONFIG, **launchd_placement(tmp_path, system=True, run_as="owner", home=home)
    )
    job = launchd_plist(spec)
    assert job["UserName"] == "owner"
    assert job["EnvironmentVariables"]["HOME"] == str(home)


def test_launchd_env_file_goes_through_a_shell_that_execs(tmp_path: Path) -> None:
    """launchd has no EnvironmentFile: ProgramArguments export the file, then exec the program;
    run here, the program sees the secret, and the plist does not contain it."""
    env_file = tmp_path / "secrets.env"
    env_file.write_text("ECOFLOW_SECRET_KEY=s3cr3t-value\n")
    spec = ServiceSpec(
        name="probe",
        description="probe",
        argv=(sys.executable, "-c", "import os; print(os.environ['ECOFLOW_SECRET_KEY'])"),
        working_dir=tmp_path,
        placement=placement(tmp_path, manager="launchd", env_file=env_file),
    )
    arguments = launchd_plist(spec)["ProgramArguments"]
    done = subprocess.run(arguments, capture_output=True, text=True, env={}, check=True)
    assert done.stdout.strip() == "s3cr3t-value"
    assert b"s3cr3t" not in launchd_plist_bytes(spec)


@pytest.mark.skipif(shutil.which("plutil") is None, reason="plutil is macOS-only; this is Linux")
def test_plist_passes_plutil_lint(tmp_path: Path) -> None:
    """Apple's own checker accepts the job file."""
    path = tmp_path / "io.aigloo.studio.plist"
    path.write_bytes(
        launchd_plist_bytes(studio_spec(tmp_path, CONFIG, **launchd_placement(tmp_path)))
    )
    subprocess.run(["plutil", "-lint", str(path)], check=True, capture_output=True)


# --- names and what the config implies --------------------------------------------------------


def test_names_follow_reverse_dns_and_unit_conventions() -> None:
    """io.aigloo.<node> / aigloo-<node>.service, and only our files map back to a name."""
    assert label("studio") == "io.aigloo.studio"
    assert unit_name("mosquitto") == "aigloo-mosquitto.service"
    assert name_from_file("launchd", "io.aigloo.mbp.plist") == "mbp"
    assert name_from_file("systemd", "aigloo-mini.service") == "mini"
    assert name_from_file("systemd", "aigloo-mini.timer") is None
    assert name_from_file("launchd", "com.apple.foo.plist") is None


def test_a_node_named_like_the_broker_is_refused(tmp_path: Path) -> None:
    """Node `mosquitto` would share the broker's label and unit: a clear error instead."""
    path = write_config(tmp_path / "rig", CONFIG.replace("node: studio", "node: mosquitto"))
    with pytest.raises(ServiceError, match="broker's service name"):
        agent_spec(load_config(path), path, placement(tmp_path))


def test_writable_paths_are_normalized_and_only_what_is_written(tmp_path: Path) -> None:
    """An agent without rules or the demo model writes nothing: no ReadWritePaths at all."""
    config = AgentConfig.model_validate(
        {
            "node": "air",
            "role": "air",
            "broker": {"credentials_file": "/c.yaml"},
            "rules": {"state_file": "/a/b/../state/x.sqlite3"},
            "components": ["agent", "rules"],
        }
    )
    assert writable_paths(config, tmp_path) == (Path("/a/state"),)
    bare = config.model_copy(update={"rules": None, "components": ["agent"]})
    assert writable_paths(bare, tmp_path) == ()


def test_secret_environment_names_come_from_the_config(tmp_path: Path) -> None:
    """The EcoFlow cloud keys and an upstream API key are read from the environment."""
    text = CONFIG.replace(
        "  demo_model: true",
        textwrap.indent(
            "engine: openai\nupstream:\n  base_url: http://127.0.0.1:11434/v1\n"
            "  api_key_env: OLLAMA_KEY",
            "  ",
        ),
    )
    path = write_config(tmp_path / "rig", text)
    assert secret_env_names(load_config(path)) == ["OLLAMA_KEY"]
