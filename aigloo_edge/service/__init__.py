"""Run a machine's agent and the Mini's Mosquitto as launchd (macOS) or systemd (Linux) services.

`units` builds the files (pure), `manager` plans and applies installs, removals and status
queries through a `Runner`, `cli` is `aigloo service`. The names below load on first use: `aigloo`
imports this package for its command group, and `aigloo --version` should stay instant.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aigloo_edge.service.manager import (
        Action,
        Machine,
        MakeDir,
        Outcome,
        Plan,
        RemoveFile,
        RunCommand,
        Runner,
        ServiceStatus,
        SubprocessRunner,
        Target,
        WriteFile,
        agent_name,
        apply,
        default_unit_dir,
        describe,
        installed_names,
        make_target,
        plan_agent_install,
        plan_broker_install,
        plan_uninstall,
        query_status,
        this_machine,
        unit_path,
    )
    from aigloo_edge.service.units import (
        BROKER,
        Placement,
        ServiceSpec,
        agent_spec,
        broker_spec,
        label,
        launchd_plist,
        launchd_plist_bytes,
        systemd_unit,
        unit_name,
        writable_paths,
    )

_UNITS = (
    "BROKER",
    "Placement",
    "ServiceSpec",
    "agent_spec",
    "broker_spec",
    "label",
    "launchd_plist",
    "launchd_plist_bytes",
    "systemd_unit",
    "unit_name",
    "writable_paths",
)
_MANAGER = (
    "Action",
    "Machine",
    "MakeDir",
    "Outcome",
    "Plan",
    "RemoveFile",
    "RunCommand",
    "Runner",
    "ServiceStatus",
    "SubprocessRunner",
    "Target",
    "WriteFile",
    "agent_name",
    "apply",
    "default_unit_dir",
    "describe",
    "installed_names",
    "make_target",
    "plan_agent_install",
    "plan_broker_install",
    "plan_uninstall",
    "query_status",
    "this_machine",
    "unit_path",
)


def __getattr__(name: str) -> Any:
    for module, names in (("units", _UNITS), ("manager", _MANAGER)):
        if name in names:
            return getattr(importlib.import_module(f"aigloo_edge.service.{module}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BROKER",
    "Action",
    "Machine",
    "MakeDir",
    "Outcome",
    "Placement",
    "Plan",
    "RemoveFile",
    "RunCommand",
    "Runner",
    "ServiceSpec",
    "ServiceStatus",
    "SubprocessRunner",
    "Target",
    "WriteFile",
    "agent_name",
    "agent_spec",
    "apply",
    "broker_spec",
    "default_unit_dir",
    "describe",
    "installed_names",
    "label",
    "launchd_plist",
    "launchd_plist_bytes",
    "make_target",
    "plan_agent_install",
    "plan_broker_install",
    "plan_uninstall",
    "query_status",
    "systemd_unit",
    "this_machine",
    "unit_name",
    "unit_path",
    "writable_paths",
]
