"""`aigloo service install|uninstall|status` end to end, with `--dir tmp_path` and a Runner that
records launchctl/systemctl command lines instead of changing this machine's services."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import aigloo_edge.service
from aigloo_edge.broker import init_broker
from aigloo_edge.errors import ServiceError
from aigloo_edge.service import (
    Machine,
    MakeDir,
    Outcome,
    Plan,
    RunCommand,
    WriteFile,
    apply,
    make_target,
    plan_agent_install,
)
from aigloo_edge.service.cli import service_app

AIGLOO = Path(sys.executable).parent / "aigloo"
DATA = Path(__file__).resolve().parents[1] / "data"
cli = CliRunner()

CONFIG = """\
node: studio
role: studio
broker:
  host: 127.0.0.1
  credentials_file: ../broker/credentials.yaml
components: [agent, rules]
power:
  driver: linux
rules:
  state_file: ../state/rules.sqlite3
"""
RUNNING = "LoadState=loaded\nActiveState=active\nSubState=running\nMainPID=4242\nResult=success\n"
FAILED = "LoadState=loaded\nActiveState=failed\nSubState=failed\nMainPID=0\nResult=exit-code\n"
LAUNCHCTL_PRINT = """\
gui/501/io.aigloo.studio = {
\tactive count = 1
\tpath = /Users/owner/Library/LaunchAgents/io.aigloo.studio.plist
\tstate = running
\tprogram = /Users/owner/aigloo/.venv/bin/aigloo
\tpid = 812
\tlast exit code = (never exited)
\tendpoints = {
\t\tstate = active
\t}
}
"""


@dataclass
class RecordingRunner:
    """Stands in for launchctl/systemctl: records every command line; answers with the scripted
    outcomes of the first matching argv prefix (in turn, the last one repeating), else success."""

    answers: dict[tuple[str, ...], list[Outcome]] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def run(self, argv: Sequence[str]) -> Outcome:
        call = tuple(argv)
        self.calls.append(call)
        for prefix, outcomes in self.answers.items():
            if call[: len(prefix)] == prefix:
                return outcomes.pop(0) if len(outcomes) > 1 else outcomes[0]
        return Outcome(0)


def machine(tmp_path: Path, manager: str = "systemd", **changes: object) -> Machine:
    values: dict[str, object] = {
        "manager": manager,
        "uid": 501 if manager == "launchd" else 1000,
        "user": "owner",
        "home": tmp_path / "home",
        "aigloo": AIGLOO,
        "runner": RecordingRunner(),
        "linger_dir": tmp_path / "linger",
    }
    values.update(changes)
    return Machine(**values)  # type: ignore[arg-type]


def calls(host: Machine) -> list[tuple[str, ...]]:
    assert isinstance(host.runner, RecordingRunner)
    return host.runner.calls


def write_config(tmp_path: Path, text: str = CONFIG) -> Path:
    agents = tmp_path / "rig" / "agents"
    agents.mkdir(parents=True, exist_ok=True)
    path = agents / "studio.yaml"
    path.write_text(text)
    return path


def invoke(host: Machine, *args: str) -> Result:
    return cli.invoke(service_app, list(args), obj=host)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- systemd ----------------------------------------------------------------------------------


def test_install_writes_the_unit_then_links_reloads_enables_and_restarts(tmp_path: Path) -> None:
    """A user unit (mode 0644) in --dir, then `systemctl --user` link (not the manager's own
    directory), daemon-reload, enable, restart, in that order."""
    host, units, config = machine(tmp_path), tmp_path / "units", write_config(tmp_path)
    result = invoke(host, "install", str(config), "--dir", str(units))
    assert result.exit_code == 0, result.output
    unit = units / "aigloo-studio.service"
    assert mode(unit) == 0o644
    assert f"ExecStart={AIGLOO} run {config}" in unit.read_text()
    assert calls(host) == [
        ("systemctl", "--user", "link", str(unit)),
        ("systemctl", "--user", "daemon-reload"),
        ("systemctl", "--user", "enable", "aigloo-studio.service"),
        ("systemctl", "--user", "restart", "aigloo-studio.service"),
    ]
    assert f"installed studio: {unit}" in result.stdout
    assert "journalctl --user -u aigloo-studio.service" in result.stdout


def test_install_into_the_default_directory_needs_no_link(tmp_path: Path) -> None:
    """Without --dir the unit goes to ~/.config/systemd/user, where systemctl finds it."""
    host = machine(tmp_path)
    assert invoke(host, "install", str(write_config(tmp_path))).exit_code == 0
    assert (tmp_path / "home/.config/systemd/user/aigloo-studio.service").is_file()
    assert calls(host)[0] == ("systemctl", "--user", "daemon-reload")


def test_install_creates_the_directories_the_sandbox_leaves_writable(tmp_path: Path) -> None:
    """ProtectSystem=strict cannot create a missing ReadWritePaths directory: install does."""
    host = machine(tmp_path)
    invoke(host, "install", str(write_config(tmp_path)), "--dir", str(tmp_path / "units"))
    assert (tmp_path / "rig/state").is_dir()
    assert (
        f"ReadWritePaths=-{tmp_path}/rig/state"
        in (tmp_path / "units/aigloo-studio.service").read_text()
    )


def test_install_twice_is_idempotent(tmp_path: Path) -> None:
    """A second install leaves the same single file and runs the same commands again."""
    host, units, config = machine(tmp_path), tmp_path / "units", write_config(tmp_path)
    invoke(host, "install", str(config), "--dir", str(units))
    first_text, first_calls = (units / "aigloo-studio.service").read_bytes(), list(calls(host))
    calls(host).clear()
    result = invoke(host, "install", str(config), "--dir", str(units))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in units.iterdir()) == ["aigloo-studio.service"]
    assert (units / "aigloo-studio.service").read_bytes() == first_text
    assert calls(host) == first_calls


def test_broken_config_gives_its_file_line_error_and_writes_nothing(tmp_path: Path) -> None:
    """A typo in the config: the ConfigError (file:line, field, why), exit 1, no file, no
    command."""
    host, units = machine(tmp_path), tmp_path / "units"
    result = invoke(host, "install", str(DATA / "configs/typo.yaml"), "--dir", str(units))
    assert result.exit_code == 1
    assert "typo.yaml:6: broker.prot: unknown setting" in result.stderr
    assert not units.exists()
    assert calls(host) == []


def test_dry_run_prints_the_file_and_commands_and_changes_nothing(tmp_path: Path) -> None:
    """--dry-run shows the unit's text and every command, writes nothing, runs nothing."""
    host, units = machine(tmp_path), tmp_path / "units"
    result = invoke(host, "install", str(write_config(tmp_path)), "--dir", str(units), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "[Service]" in result.stdout
    assert "Restart=on-failure" in result.stdout
    assert "systemctl --user enable aigloo-studio.service" in result.stdout
    assert not units.exists()
    assert not (tmp_path / "rig/state").exists()
    assert calls(host) == []


def test_uninstall_disables_then_removes_the_unit_then_reloads(tmp_path: Path) -> None:
    """`disable --now` while the file is there, then the file goes, then daemon-reload."""
    host, units, config = machine(tmp_path), tmp_path / "units", write_config(tmp_path)
    invoke(host, "install", str(config), "--dir", str(units))
    calls(host).clear()
    result = invoke(host, "uninstall", str(config), "--dir", str(units))
    assert result.exit_code == 0, result.output
    assert calls(host) == [
        ("systemctl", "--user", "disable", "--now", "aigloo-studio.service"),
        ("systemctl", "--user", "daemon-reload"),
    ]
    assert not (units / "aigloo-studio.service").exists()
    assert (tmp_path / "rig/state").is_dir()  # the rules' state survives an uninstall


def test_uninstall_orders_stop_before_removal(tmp_path: Path) -> None:
    """The plan stops the service before the file it runs from disappears."""
    host, units, config = machine(tmp_path), tmp_path / "units", write_config(tmp_path)
    invoke(host, "install", str(config), "--dir", str(units))
    result = invoke(host, "uninstall", str(config), "--dir", str(units), "--dry-run")
    lines = result.stdout.splitlines()
    disable = lines.index("systemctl --user disable --now aigloo-studio.service")
    assert lines.index(f"rm {units}/aigloo-studio.service") == disable + 1
    assert (units / "aigloo-studio.service").exists()  # dry run


def test_uninstall_when_not_installed_says_so_and_runs_nothing(tmp_path: Path) -> None:
    """Nothing installed: a message, exit 0, no command."""
    host = machine(tmp_path)
    result = invoke(host, "uninstall", str(write_config(tmp_path)), "--dir", str(tmp_path / "u"))
    assert result.exit_code == 0
    assert "studio: not installed" in result.stdout
    assert calls(host) == []


def test_status_reports_running_stopped_and_not_installed(tmp_path: Path) -> None:
    """Exit 0 and the pid when running, 3 when installed but failed, 4 when not installed."""
    host, units, config = machine(tmp_path), tmp_path / "units", write_config(tmp_path)
    missing = invoke(host, "status", str(config), "--dir", str(units))
    assert missing.exit_code == 4
    assert "aigloo-studio.service: not installed" in missing.stdout

    invoke(host, "install", str(config), "--dir", str(units))
    assert isinstance(host.runner, RecordingRunner)
    show = ("systemctl", "--user", "show", "aigloo-studio.service")
    host.runner.answers[show] = [Outcome(0, RUNNING)]
    running = invoke(host, "status", str(config), "--dir", str(units))
    assert running.exit_code == 0, running.output
    assert "aigloo-studio.service: running (pid 4242)" in running.stdout
    assert "logs: journalctl --user -u aigloo-studio.service" in running.stdout

    host.runner.answers[show] = [Outcome(0, FAILED)]
    stopped = invoke(host, "status", str(config), "--dir", str(units))
    assert stopped.exit_code == 3
    assert "stopped (failed/failed, result exit-code)" in stopped.stdout


def test_status_without_config_lists_every_aigloo_service_broker_first(tmp_path: Path) -> None:
    """`status` alone: each aigloo unit in the directory (none: exit 4), others ignored."""
    host, units = machine(tmp_path), tmp_path / "units"
    assert invoke(host, "status", "--dir", str(units)).exit_code == 4
    units.mkdir()
    for name in ("aigloo-studio.service", "aigloo-mosquitto.service", "other.service"):
        (units / name).write_text("[Service]\n")
    assert isinstance(host.runner, RecordingRunner)
    host.runner.answers[("systemctl", "--user", "show")] = [Outcome(0, RUNNING)]
    result = invoke(host, "status", "--dir", str(units))
    assert result.exit_code == 0, result.output
    services = [line.split(":")[0] for line in result.stdout.splitlines() if ": " in line[:40]]
    assert services[0] == "aigloo-mosquitto.service"
    assert "aigloo-studio.service" in services
    assert "other.service" not in result.stdout


def test_a_refused_command_is_reported_with_its_stderr(tmp_path: Path) -> None:
    """systemctl failing: its message and exit 1, and the commands after it are not run."""
    failing = RecordingRunner(
        answers={("systemctl", "--user", "enable"): [Outcome(1, "", "Unit file is masked.")]}
    )
    host = machine(tmp_path, runner=failing)
    result = invoke(host, "install", str(write_config(tmp_path)), "--dir", str(tmp_path / "u"))
    assert result.exit_code == 1
    assert "systemctl --user enable aigloo-studio.service` exited 1: Unit file is masked." in (
        result.stderr
    )
    assert calls(host)[-1][:3] == ("systemctl", "--user", "enable")


def test_root_installs_a_system_unit_running_as_the_sudo_user(tmp_path: Path) -> None:
    """As root: /etc/systemd/system, plain `systemctl`, User= the sudo user, whose home the
    config's `~` means; created state directories are handed to that user."""
    owner_home = tmp_path / "owner"
    host = machine(
        tmp_path,
        uid=0,
        user="root",
        environ={"SUDO_USER": "owner"},
        home_of=lambda user: owner_home,
    )
    config = write_config(tmp_path, CONFIG.replace("../state/", "~/state/"))
    plan = plan_agent_install(make_target(host), config)
    assert plan.unit_path == Path("/etc/systemd/system/aigloo-studio.service")
    unit = next(a for a in plan.actions if isinstance(a, WriteFile)).content.decode()
    assert "User=owner" in unit
    assert f"ReadWritePaths=-{owner_home}/state" in unit
    commands = [a.argv for a in plan.actions if isinstance(a, RunCommand)]
    assert commands[0] == ("systemctl", "daemon-reload")
    assert next(a.owner for a in plan.actions if isinstance(a, MakeDir)) == "owner"


def test_run_as_is_refused_for_user_services(tmp_path: Path) -> None:
    """--run-as needs root: a user manager cannot switch accounts."""
    result = invoke(machine(tmp_path), "install", str(write_config(tmp_path)), "--run-as", "x")
    assert result.exit_code == 1
    assert "--run-as is for system services" in result.stderr


def test_kernel_without_user_namespaces_gets_an_unsandboxed_user_unit(tmp_path: Path) -> None:
    """No unprivileged user namespaces: a warning, and no ProtectSystem that would stop the
    service from starting."""
    host = machine(tmp_path, user_namespaces=False)
    result = invoke(host, "install", str(write_config(tmp_path)), "--dir", str(tmp_path / "u"))
    assert result.exit_code == 0
    assert "forbids unprivileged user namespaces" in result.stderr
    assert "ProtectSystem" not in (tmp_path / "u/aigloo-studio.service").read_text()


def test_user_units_without_lingering_get_a_hint(tmp_path: Path) -> None:
    """User services stop at logout unless lingering: install says how to keep them running."""
    host = machine(tmp_path)
    result = invoke(host, "install", str(write_config(tmp_path)), "--dir", str(tmp_path / "u"))
    assert "loginctl enable-linger owner" in result.stderr
    (tmp_path / "linger").mkdir()
    (tmp_path / "linger/owner").touch()
    again = invoke(host, "install", str(write_config(tmp_path)), "--dir", str(tmp_path / "u"))
    assert "enable-linger" not in again.stderr


# --- secrets ----------------------------------------------------------------------------------


def test_no_password_or_secret_reaches_a_unit_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Broker passwords stay in credentials.yaml and EcoFlow keys in the env file: neither the
    agent's nor the broker's unit (systemd or launchd) contains any of them."""
    broker_dir = tmp_path / "rig/broker"
    creds = init_broker(broker_dir)
    passwords = [secret.get_secret_value() for secret in creds.users.values()]
    assert passwords
    monkeypatch.setenv("ECOFLOW_SECRET_KEY", "ecoflow-secret-from-the-shell")
    env_file = tmp_path / "aigloo.env"
    env_file.write_text("ECOFLOW_ACCESS_KEY=access-123\nECOFLOW_SECRET_KEY=secret-456\n")
    env_file.chmod(0o600)
    config = write_config(
        tmp_path,
        CONFIG.replace("components: [agent, rules]", "components: [agent, rules, sensors]")
        + "sensors:\n  ecoflow_cloud:\n    serial: R621ZEB4XXXXXXXX\n",
    )
    written: list[bytes] = []
    for manager in ("systemd", "launchd"):
        host, units = machine(tmp_path, manager), tmp_path / f"units-{manager}"
        agent = invoke(
            host, "install", str(config), "--dir", str(units), "--env-file", str(env_file)
        )
        assert agent.exit_code == 0, agent.output
        broker = invoke(host, "install-broker", str(broker_dir), "--dir", str(units))
        assert broker.exit_code == 0, broker.output
        written += [path.read_bytes() for path in units.iterdir()]
    assert len(written) == 4
    for secret in [*passwords, "ecoflow-secret-from-the-shell", "access-123", "secret-456"]:
        assert not any(secret.encode() in text for text in written), secret
    assert any(f"EnvironmentFile={env_file}".encode() in text for text in written)


def test_an_env_file_others_can_read_is_refused(tmp_path: Path) -> None:
    """Secrets in a world-readable file: install stops and says `chmod 600`."""
    env_file = tmp_path / "aigloo.env"
    env_file.write_text("X=1\n")
    env_file.chmod(0o644)
    host = machine(tmp_path)
    result = invoke(host, "install", str(write_config(tmp_path)), "--env-file", str(env_file))
    assert result.exit_code == 1
    assert f"chmod 600 {env_file}" in result.stderr
    assert calls(host) == []


def test_a_config_reading_secrets_from_the_environment_warns_without_env_file(
    tmp_path: Path,
) -> None:
    """The service does not inherit the shell: install names the variables to provide."""
    config = write_config(
        tmp_path,
        CONFIG.replace("components: [agent, rules]", "components: [agent, rules, sensors]")
        + "sensors:\n  ecoflow_cloud:\n    serial: R621ZEB4XXXXXXXX\n",
    )
    result = invoke(machine(tmp_path), "install", str(config), "--dir", str(tmp_path / "u"))
    assert "ECOFLOW_ACCESS_KEY, ECOFLOW_SECRET_KEY from the environment" in result.stderr


# --- the broker -------------------------------------------------------------------------------


def test_install_broker_runs_broker_start_on_an_initialized_directory(tmp_path: Path) -> None:
    """`install-broker DIR` writes aigloo-mosquitto.service running `aigloo broker start DIR`."""
    broker_dir = tmp_path / "broker"
    init_broker(broker_dir)
    host, units = machine(tmp_path), tmp_path / "units"
    result = invoke(host, "install-broker", str(broker_dir), "--dir", str(units))
    assert result.exit_code == 0, result.output
    unit = (units / "aigloo-mosquitto.service").read_text()
    assert f"ExecStart={AIGLOO} broker start {broker_dir}" in unit
    assert calls(host)[-1] == ("systemctl", "--user", "restart", "aigloo-mosquitto.service")
    removed = invoke(host, "uninstall-broker", "--dir", str(units))
    assert removed.exit_code == 0
    assert not (units / "aigloo-mosquitto.service").exists()
    assert (broker_dir / "credentials.yaml").is_file()  # the broker's files stay


def test_install_broker_needs_broker_init_first(tmp_path: Path) -> None:
    """A directory without credentials.yaml: an error naming `aigloo broker init`."""
    host = machine(tmp_path)
    result = invoke(host, "install-broker", str(tmp_path / "empty"), "--dir", str(tmp_path / "u"))
    assert result.exit_code == 1
    assert "run `aigloo broker init` first" in result.stderr
    assert calls(host) == []


# --- launchd ----------------------------------------------------------------------------------


def test_launchd_install_boots_out_enables_then_bootstraps(tmp_path: Path) -> None:
    """macOS: the plist (0644) and the log directory, then `launchctl bootout` (may fail: not
    loaded), `enable`, `bootstrap gui/<uid> PLIST`."""
    host, units = machine(tmp_path, "launchd"), tmp_path / "LaunchAgents"
    config = write_config(tmp_path)
    result = invoke(host, "install", str(config), "--dir", str(units))
    assert result.exit_code == 0, result.output
    plist = units / "io.aigloo.studio.plist"
    assert mode(plist) == 0o644
    assert (tmp_path / "home/Library/Logs/aigloo").is_dir()
    assert calls(host) == [
        ("launchctl", "bootout", "gui/501/io.aigloo.studio"),
        ("launchctl", "enable", "gui/501/io.aigloo.studio"),
        ("launchctl", "bootstrap", "gui/501", str(plist)),
    ]
    assert f"logs: {tmp_path}/home/Library/Logs/aigloo/studio.log" in result.stdout
    assert "launchd loads jobs at login or boot only from" in result.stderr  # a custom --dir


def test_launchd_bootout_of_a_job_not_loaded_does_not_stop_install_or_uninstall(
    tmp_path: Path,
) -> None:
    """`bootout` answering "no such service" (first install, or already stopped) is fine."""
    not_loaded = Outcome(113, "", "Could not find specified service")
    runner = RecordingRunner(answers={("launchctl", "bootout"): [not_loaded]})
    host, units = machine(tmp_path, "launchd", runner=runner), tmp_path / "LaunchAgents"
    config = write_config(tmp_path)
    assert invoke(host, "install", str(config), "--dir", str(units)).exit_code == 0
    result = invoke(host, "uninstall", str(config), "--dir", str(units))
    assert result.exit_code == 0, result.output
    assert not (units / "io.aigloo.studio.plist").exists()
    assert calls(host)[-1] == ("launchctl", "bootout", "gui/501/io.aigloo.studio")


def test_launchd_bootstrap_is_retried_while_the_old_job_exits(tmp_path: Path) -> None:
    """`bootstrap` right after `bootout` can fail with 5 (I/O error) until the old job is gone:
    tried again after a pause, up to three times."""
    busy = Outcome(5, "", "Bootstrap failed: 5: Input/output error")
    runner = RecordingRunner(answers={("launchctl", "bootstrap"): [busy, Outcome(0)]})
    host = machine(tmp_path, "launchd", runner=runner)
    plan = plan_agent_install(make_target(host, tmp_path / "LA"), write_config(tmp_path))
    pauses: list[float] = []
    apply(plan, runner, pause=pauses.append)
    assert [call[1] for call in runner.calls] == ["bootout", "enable", "bootstrap", "bootstrap"]
    assert pauses == [1.0]
    runner.answers[("launchctl", "bootstrap")] = [busy]
    with pytest.raises(ServiceError, match="exited 5: Bootstrap failed"):
        apply(plan, runner, pause=pauses.append)


def test_launchd_status_reads_launchctl_print(tmp_path: Path) -> None:
    """`launchctl print` of the job: its own state and pid (not a nested section's); a job
    launchd does not know is installed but not loaded (exit 3)."""
    runner = RecordingRunner(answers={("launchctl", "print"): [Outcome(0, LAUNCHCTL_PRINT)]})
    host, units = machine(tmp_path, "launchd", runner=runner), tmp_path / "LaunchAgents"
    config = write_config(tmp_path)
    invoke(host, "install", str(config), "--dir", str(units))
    result = invoke(host, "status", str(config), "--dir", str(units))
    assert result.exit_code == 0, result.output
    assert "io.aigloo.studio: running (pid 812)" in result.stdout
    assert calls(host)[-1] == ("launchctl", "print", "gui/501/io.aigloo.studio")
    runner.answers[("launchctl", "print")] = [Outcome(113, "", "Could not find service")]
    unloaded = invoke(host, "status", str(config), "--dir", str(units))
    assert unloaded.exit_code == 3
    assert "io.aigloo.studio: not loaded" in unloaded.stdout


def test_root_on_macos_installs_a_launch_daemon_in_the_system_domain(tmp_path: Path) -> None:
    """As root: /Library/LaunchDaemons, `bootstrap system`, UserName the sudo user."""
    host = machine(
        tmp_path,
        "launchd",
        uid=0,
        user="root",
        environ={"SUDO_USER": "owner"},
        home_of=lambda user: tmp_path / "Users/owner",
    )
    plan: Plan = plan_agent_install(make_target(host), write_config(tmp_path))
    assert plan.unit_path == Path("/Library/LaunchDaemons/io.aigloo.studio.plist")
    commands = [a.argv for a in plan.actions if isinstance(a, RunCommand)]
    assert commands[-1] == ("launchctl", "bootstrap", "system", str(plan.unit_path))
    content = next(a for a in plan.actions if isinstance(a, WriteFile)).content
    assert b"<key>UserName</key>\n\t<string>owner</string>" in content


# --- packaging --------------------------------------------------------------------------------


def test_importing_the_command_group_stays_light() -> None:
    """`aigloo` imports `service_app` for every command: that must not load the config models
    (pydantic) or the service machinery, so `aigloo --version` stays instant."""
    code = (
        "import sys, aigloo_edge.service.cli; "
        "print(sorted(m for m in ('aigloo_edge.config', 'aigloo_edge.service.manager', "
        "'pydantic') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    assert done.stdout.strip() == "[]"


def test_public_api_names_all_resolve() -> None:
    """Every name in `aigloo_edge.service.__all__` loads (they are imported on first use)."""
    for name in aigloo_edge.service.__all__:
        assert getattr(aigloo_edge.service, name) is not None, name


def test_documentation_describes_every_command() -> None:
    """docs/services.md covers each `aigloo service` command and the hardening choices."""
    text = (Path(__file__).resolve().parents[2] / "docs/services.md").read_text()
    for command in ("install", "install-broker", "uninstall", "uninstall-broker", "status"):
        assert f"aigloo service {command}" in text, command
    for word in ("ProtectSystem=strict", "NoNewPrivileges", "AF_BLUETOOTH", "KeepAlive"):
        assert word in text, word
