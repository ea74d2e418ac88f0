"""Starting Mosquitto on a broker directory with the project's config."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from aigloo_edge.broker.conf import render_config
from aigloo_edge.broker.setup import credentials_path
from aigloo_edge.errors import BrokerError, ConfigError
from aigloo_edge.mqtt.settings import load_credentials

RENDERED_CONFIG = "mosquitto.conf"


def mosquitto_binary() -> str:
    for candidate in (
        "mosquitto",
        "/usr/sbin/mosquitto",
        "/opt/homebrew/sbin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ):
        found = shutil.which(candidate)
        if found:
            return found
    raise BrokerError("mosquitto not found: `make up` installs it (apt-get or brew)")


def prepare(directory: Path) -> list[str]:
    """Write DIR/mosquitto.conf for the ports recorded at init; return the command to run."""
    directory = directory.resolve()
    try:
        creds = load_credentials(credentials_path(directory))
    except ConfigError as exc:
        raise BrokerError(f"{exc}; run `aigloo broker init {directory}` first") from exc
    config = directory / RENDERED_CONFIG
    config.write_text(render_config(directory, creds.ports))
    return [mosquitto_binary(), "-c", str(config)]


def exec_foreground(directory: Path) -> None:
    """Replace this process with Mosquitto, run from DIR so the config's paths resolve."""
    argv = prepare(directory)
    os.chdir(directory)
    os.execv(argv[0], argv)  # noqa: S606 - becoming Mosquitto is the point
