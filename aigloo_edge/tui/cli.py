"""`aigloo top`: the live dashboard, over SSH on the Air or on the Mini itself."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from aigloo_edge.ops.cli import (
    DEFAULT_CONFIG,
    ConfigOption,
    UnitOption,
    UserOption,
    broker_settings,
)


@contextlib.contextmanager
def _logs_off_screen() -> Iterator[None]:
    """Log lines written to the terminal would tear through the dashboard; the dashboard shows
    what matters (its link, every action's outcome) itself."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers[:] = [logging.NullHandler()]
    root.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def top(
    config: ConfigOption = DEFAULT_CONFIG,
    user: UserOption = "mobile",
    unit: UnitOption = None,
) -> None:
    """Live dashboard: nodes, station, probes, fans, rules, events; keys for the fans, sleep and
    wake, rules and the station's outputs (power actions ask first). q quits."""
    from aigloo_edge.tui.app import TopApp

    settings, config_unit = broker_settings(config, user)
    with _logs_off_screen():
        TopApp(settings, unit or config_unit).run()
