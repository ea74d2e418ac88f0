"""The project's only MQTT code: one session wrapper, its router and settings."""

from aigloo_edge.mqtt.backoff import Backoff
from aigloo_edge.mqtt.message import Inbound
from aigloo_edge.mqtt.rejections import RejectionLog
from aigloo_edge.mqtt.router import Handler, Route, Router
from aigloo_edge.mqtt.session import Session
from aigloo_edge.mqtt.settings import Credentials, MqttSettings, TlsSettings, load_credentials

__all__ = [
    "Backoff",
    "Credentials",
    "Handler",
    "Inbound",
    "MqttSettings",
    "RejectionLog",
    "Route",
    "Router",
    "Session",
    "TlsSettings",
    "load_credentials",
]
