"""Inference fixtures: the demo model, imported once per test session into a temporary cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aigloo_edge.inference.demo import demo_model

# Everything these tests load is local; make sure the Hugging Face libraries never reach out.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def demo_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo model (SmolLM2-135M-Instruct) imported from its GGUF into a session tmp dir."""
    return demo_model(tmp_path_factory.mktemp("models") / "smollm2-135m-instruct")
