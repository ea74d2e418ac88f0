"""The `aigloo` console script.

A machine's long-running components (`aigloo run FILE`, `aigloo agent FILE`) start without the
CLI framework: typer, click and rich are about 2 MB of a 40 MB agent that runs for weeks.
Every other command, and any option beyond `--log-level`, goes to the full CLI (`cli.py`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from aigloo_edge.errors import AiglooError

# command → the components it runs (None: all the file enables)
COMPONENT_COMMANDS: dict[str, set[str] | None] = {
    "run": None,
    "agent": {"agent", "inference"},
    "dispatch": {"dispatcher"},
    "gateway": {"gateway"},
    "sensors": {"sensors", "fans"},
}


def main() -> None:
    plan = component_command(sys.argv[1:])
    if plan is None:
        from aigloo_edge.cli import main as cli_main  # noqa: PLC0415 - only when needed

        cli_main()
        return
    level, only, path = plan
    from aigloo_edge import logs  # noqa: PLC0415 - after the decision, for the same reason
    from aigloo_edge.app import run_config_file  # noqa: PLC0415

    logs.configure(level)
    try:
        run_config_file(path, only)
    except AiglooError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def component_command(args: list[str]) -> tuple[str, set[str] | None, Path] | None:
    """`[--log-level L] (run|agent|…) FILE` or `rules run FILE` → (level, components, file).

    Anything else → None (the full CLI).
    """
    level = "INFO"
    if args[:1] == ["--log-level"] and len(args) >= 2:
        level, args = args[1], args[2:]
    if len(args) == 2 and args[0] in COMPONENT_COMMANDS and not args[1].startswith("-"):
        return level, COMPONENT_COMMANDS[args[0]], Path(args[1])
    if len(args) == 3 and args[:2] == ["rules", "run"] and not args[2].startswith("-"):
        return level, {"rules"}, Path(args[2])
    return None
