"""A Mosquitto that a killed `aigloo up` left running on its broker directory.

`aigloo up` stops its broker when it ends, unless it is SIGKILLed: then the broker lives on,
keeps the ports, and the next `up` cannot start one. So `up` marks the broker it starts with
its own pid (environment `AIGLOO_UP_PID`), and the next `up` on the same directory stops a
marked broker whose `up` is gone. A broker started any other way (a service, `aigloo broker
start`) has no mark and is never touched; neither is one whose `up` still runs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Final

import psutil

log = logging.getLogger(__name__)

UP_PID_ENV: Final = "AIGLOO_UP_PID"
STOP_TIMEOUT_S: Final = 5.0


def orphaned_brokers(config: Path) -> list[psutil.Process]:
    """Mosquitto processes running `config` whose `aigloo up` has died."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if str(config) not in (process.info["cmdline"] or []):
            continue
        try:
            owner = process.environ().get(UP_PID_ENV)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        if owner is not None and owner.isdigit() and not psutil.pid_exists(int(owner)):
            found.append(process)
    return found


def stop_orphaned_brokers(config: Path) -> list[int]:
    """Stop (terminate, then kill) what `orphaned_brokers` finds; their pids."""
    orphans = orphaned_brokers(config)
    for process in orphans:
        log.warning("stopping Mosquitto pid %d, left running by a killed `aigloo up`", process.pid)
        process.terminate()
    _, alive = psutil.wait_procs(orphans, timeout=STOP_TIMEOUT_S)
    for process in alive:
        process.kill()
    psutil.wait_procs(alive, timeout=STOP_TIMEOUT_S)
    return [process.pid for process in orphans]
