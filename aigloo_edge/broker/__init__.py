"""The Mosquitto broker: config rendering, roles and ACLs, credentials, TLS, start."""

from aigloo_edge.broker.conf import DEFAULT_PORTS, render_config, template_path
from aigloo_edge.broker.roles import ALL_ROLES, NODE_ROLES, SERVICE_ROLES, Grant, role_grants
from aigloo_edge.broker.run import exec_foreground, prepare
from aigloo_edge.broker.setup import credentials_path, init_broker, refresh_broker

__all__ = [
    "ALL_ROLES",
    "DEFAULT_PORTS",
    "NODE_ROLES",
    "SERVICE_ROLES",
    "Grant",
    "credentials_path",
    "exec_foreground",
    "init_broker",
    "prepare",
    "refresh_broker",
    "render_config",
    "role_grants",
    "template_path",
]
