"""The project's exception hierarchy: every error we raise on purpose is an AiglooError."""

from __future__ import annotations


class AiglooError(Exception):
    """Root of every error Aigloo Edge raises on purpose."""


class TopicError(AiglooError, ValueError):
    """A topic, id or base topic that breaks the topic contract."""


class PayloadError(AiglooError, ValueError):
    """A payload that does not validate against its wire model."""


class ConfigError(AiglooError):
    """A config, credentials or rule file that cannot be used; names file:line and why."""


class BrokerError(AiglooError):
    """Setting up or starting the Mosquitto broker failed."""


class NotConnectedError(AiglooError):
    """An MQTT operation needed a live connection and there was none."""


class SensorError(AiglooError):
    """A sensor or station link failed or refused (BLE, EcoFlow protocol, cloud API)."""


class ServiceError(AiglooError):
    """Installing, removing or querying a launchd/systemd service failed."""
