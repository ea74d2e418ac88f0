"""The dashboard's own link to the broker: connecting, connected, lost, or refused.

The Session reconnects by itself and only logs why a connection failed, so the dashboard reads
that reason from the Session's log records (its own component's only): it is the one place a
refused password surfaces.
"""

from __future__ import annotations

import logging
from typing import Final

import aiomqtt

from aigloo_edge.mqtt import Session
from aigloo_edge.tui.panels import Link

SESSION_LOGGER: Final = "aigloo_edge.mqtt.session"
# CONNACK reason codes that mean "these credentials will not do" (MQTT 3.1.1 and 5).
AUTH_REFUSED: Final = frozenset({4, 5, 134, 135})


class ConnectionProblems(logging.Handler):
    """Keeps the last connection error the Session logs for `component`."""

    def __init__(self, component: str) -> None:
        super().__init__(logging.WARNING)
        self.component = component
        self.last_error: aiomqtt.MqttError | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "component", None) != self.component:
            return
        args = record.args if isinstance(record.args, tuple) else ()
        for arg in args:
            if isinstance(arg, aiomqtt.MqttError):
                self.last_error = arg


def refused_credentials(error: aiomqtt.MqttError | None) -> bool:
    if not isinstance(error, aiomqtt.MqttCodeError):
        return False
    code = getattr(error.rc, "value", error.rc)
    return isinstance(code, int) and code in AUTH_REFUSED


class LinkWatch:
    """The link's phase from the session and the problems its log reported."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.problems = ConnectionProblems(session.component)
        self.ever_connected = False

    def attach(self) -> None:
        logging.getLogger(SESSION_LOGGER).addHandler(self.problems)

    def detach(self) -> None:
        logging.getLogger(SESSION_LOGGER).removeHandler(self.problems)

    def link(self) -> Link:
        if self.session.is_connected:
            self.ever_connected = True
            return Link("connected")
        error = self.problems.last_error
        if refused_credentials(error):
            user = self.session.settings.username
            return Link("refused", f"as {user!r}: {error}; check --as and its password")
        if self.ever_connected:
            return Link("lost", f"({error or 'connection dropped'}); reconnecting")
        if error is not None:
            s = self.session.settings
            return Link("connecting", f"to {s.host}:{s.port}: {error}; retrying")
        return Link("connecting")
