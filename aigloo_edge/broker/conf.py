"""Renders the project's mosquitto.conf for one broker directory: ports, TLS, run-as user."""

from __future__ import annotations

import getpass
import logging
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

from aigloo_edge.errors import BrokerError

log = logging.getLogger(__name__)

DEFAULT_PORTS: Final = {"mqtt": 1883, "websockets": 9001, "tls": 8883}
TEMPLATE_NAME: Final = "mosquitto.conf"


def template_path() -> Path:
    """The project's mosquitto.conf: the repository's root file, else the packaged copy."""
    in_repo = Path(__file__).resolve().parents[2] / TEMPLATE_NAME
    if in_repo.is_file():
        return in_repo
    packaged = resources.files("aigloo_edge.broker").joinpath(TEMPLATE_NAME)
    return Path(str(packaged))


@dataclass(frozen=True, slots=True)
class Listener:
    """One `listener` block of the template, by the default port that names its kind."""

    kind: str
    lines: list[str]


def split_listeners(text: str) -> tuple[list[str], list[Listener]]:
    """The global lines, then each listener block with its kind (mqtt, websockets, tls)."""
    kind_by_port = {port: kind for kind, port in DEFAULT_PORTS.items()}
    head: list[str] = []
    blocks: list[Listener] = []
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["listener"]:
            port = int(words[1])
            if port not in kind_by_port:
                raise BrokerError(f"{TEMPLATE_NAME}: unexpected listener port {port}")
            blocks.append(Listener(kind_by_port[port], [line]))
        elif blocks:
            blocks[-1].lines.append(line)
        else:
            head.append(line)
    return head, blocks


def render_config(directory: Path, ports: dict[str, int], template: Path | None = None) -> str:
    """The template with the recorded ports, without TLS if no certs, run as this user."""
    text = (template or template_path()).read_text()
    head, blocks = split_listeners(text)
    out = list(head)
    if os.geteuid() == 0:
        # Mosquitto started as root drops to user `mosquitto`, which cannot read our 0600
        # files; stay the user who owns the broker directory instead.
        out.append(f"user {getpass.getuser()}")
    has_tls = (directory / "tls" / "server.crt").is_file()
    for block in blocks:
        if block.kind == "tls" and not has_tls:
            log.info(
                "TLS listener off: run `aigloo broker init %s --tls` to make certificates",
                directory,
            )
            continue
        if block.kind in ports:
            out.extend(_with_port(block, ports[block.kind]))
    return "\n".join(out) + "\n"


def _with_port(block: Listener, port: int) -> list[str]:
    first = block.lines[0].split()
    first[1] = str(port)
    return [" ".join(first), *block.lines[1:]]
