"""What a node is: the retained `info` payload."""

from __future__ import annotations

import platform
import socket
import subprocess
import sys

import psutil

from aigloo_edge import __version__
from aigloo_edge.config import AgentConfig
from aigloo_edge.payloads import NodeInfo


def build_info(config: AgentConfig, models: list[str]) -> NodeInfo:
    return NodeInfo(
        node=config.node,
        role=config.role,
        hostname=socket.gethostname(),
        hardware=hardware_name(),
        os=platform.system(),
        os_version=platform.mac_ver()[0] or platform.release(),
        version=__version__,
        cpu_cores=psutil.cpu_count() or 1,
        memory_bytes=psutil.virtual_memory().total,
        components=list(config.components),
        models=models,
    )


def hardware_name() -> str:
    """`Mac14,14 (Apple M3 Ultra)` on a Mac; the CPU model elsewhere."""
    if sys.platform == "darwin":
        model = _sysctl("hw.model")
        chip = _sysctl("machdep.cpu.brand_string")
        return f"{model} ({chip})" if model and chip else model or chip or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return f"{platform.machine()} ({line.split(':', 1)[1].strip()})"
    except OSError:
        pass
    return platform.machine()


def _sysctl(name: str) -> str:
    try:
        out = subprocess.run(
            ["sysctl", "-n", name], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip()
