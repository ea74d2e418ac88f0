"""Readings every OS has, through psutil: CPU, load, memory, disks, network, battery, sensors."""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Any

import psutil

from aigloo_edge.payloads import DiskUsage, NodeBattery

log = logging.getLogger(__name__)
_KEY = re.compile(r"[^a-z0-9_]+")


class PsutilSource:
    """Samples psutil; blocking calls, so the agent runs `sample` in a worker thread."""

    name = "psutil"

    def __init__(self, mounts: list[str]) -> None:
        self.mounts = mounts
        self._missing_mounts: set[str] = set()
        psutil.cpu_percent(percpu=True)  # prime: the first call has no interval to measure
        self._net = psutil.net_io_counters()
        self._net_at = time.monotonic()

    def sample(self) -> dict[str, Any]:
        """Fields of NodeTelemetry this source knows, as keyword arguments."""
        per_core = psutil.cpu_percent(percpu=True)
        memory = psutil.virtual_memory()
        return {
            "cpu_pct": round(sum(per_core) / max(1, len(per_core)), 1),
            "cpu_per_core_pct": [round(p, 1) for p in per_core],
            "load_avg": tuple(round(x, 2) for x in os.getloadavg()),
            "memory_used_bytes": memory.total - memory.available,
            "memory_available_bytes": memory.available,
            "memory_pct": round(memory.percent, 1),
            "swap_used_bytes": psutil.swap_memory().used,
            "disks": self._disks(),
            **self._net_rates(),
            "battery": _battery(),
            "temperatures_c": _temperatures(),
            "fans_rpm": _fans(),
            "uptime_s": round(time.time() - psutil.boot_time()),
            "process_count": len(psutil.pids()),
        }

    def _disks(self) -> list[DiskUsage]:
        disks = []
        for mount in self.mounts:
            try:
                usage = psutil.disk_usage(mount)
            except OSError as exc:
                if mount not in self._missing_mounts:
                    log.warning("disk %s skipped: %s", mount, exc.strerror)
                    self._missing_mounts.add(mount)
                continue
            disks.append(
                DiskUsage(
                    mount=mount,
                    used_bytes=usage.used,
                    total_bytes=usage.total,
                    used_pct=round(usage.percent, 1),
                )
            )
        return disks

    def _net_rates(self) -> dict[str, float]:
        now, counters = time.monotonic(), psutil.net_io_counters()
        elapsed = max(now - self._net_at, 1e-3)
        rates = {
            "net_rx_bps": max(0.0, (counters.bytes_recv - self._net.bytes_recv) / elapsed),
            "net_tx_bps": max(0.0, (counters.bytes_sent - self._net.bytes_sent) / elapsed),
        }
        self._net, self._net_at = counters, now
        return {key: round(value, 1) for key, value in rates.items()}


def _battery() -> NodeBattery | None:
    battery = psutil.sensors_battery() if hasattr(psutil, "sensors_battery") else None
    if battery is None:
        return None
    left = battery.secsleft
    remaining = float(left) if isinstance(left, int) and left >= 0 else None
    return NodeBattery(
        soc_pct=round(battery.percent, 1),
        plugged=bool(battery.power_plugged),
        remaining_s=remaining,
    )


def _temperatures() -> dict[str, float]:
    """Linux only (psutil has none on macOS): `<chip>_<label>` → °C."""
    if not hasattr(psutil, "sensors_temperatures"):
        return {}
    found: dict[str, float] = {}
    for chip, entries in psutil.sensors_temperatures().items():
        for index, entry in enumerate(entries):
            key = _KEY.sub("_", f"{chip}_{entry.label or index}".lower()).strip("_")
            if -80 <= entry.current <= 250:
                found[key] = round(entry.current, 1)
    return found


def _fans() -> dict[str, float]:
    if not hasattr(psutil, "sensors_fans"):
        return {}
    return {
        _KEY.sub("_", f"{chip}_{entry.label or index}".lower()).strip("_"): float(entry.current)
        for chip, entries in psutil.sensors_fans().items()
        for index, entry in enumerate(entries)
    }
