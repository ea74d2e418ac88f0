"""Shared fixtures: a real Mosquitto per test, started from the project's mosquitto.conf, and
the demo model imported once per session."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from aigloo_edge.inference.demo import DEMO_NAME, demo_model
from tests.support.broker import RunningBroker, make_broker

# Everything the tests load is local; make sure the Hugging Face libraries never reach out.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


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


@pytest.fixture(scope="session")
def demo_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An AIGLOO_CACHE holding the demo model (SmolLM2-135M-Instruct), imported once."""
    cache = tmp_path_factory.mktemp("cache")
    demo_model(cache / "models" / DEMO_NAME)
    return cache


@pytest.fixture(scope="session")
def demo_model_dir(demo_cache: Path) -> Path:
    """The demo model's mlx-lm directory."""
    return demo_cache / "models" / DEMO_NAME
