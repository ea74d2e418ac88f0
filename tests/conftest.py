"""Shared fixtures: a real Mosquitto per test, started from the project's mosquitto.conf."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.broker import RunningBroker, make_broker


def _need_mosquitto() -> None:
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.fail("mosquitto is not installed: run `make test`, which installs it")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RunningBroker]:
    """A running broker with every role's credentials and a unique base topic."""
    _need_mosquitto()
    running = make_broker(tmp_path / "broker")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[RunningBroker]:
    """Like `broker`, with the TLS listener (local CA from `broker init --tls`)."""
    _need_mosquitto()
    running = make_broker(tmp_path / "broker", tls=True)
    try:
        yield running
    finally:
        running.stop()
