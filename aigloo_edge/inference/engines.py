"""Opening the engine a node's `inference` section asks for."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aigloo_edge.config import InferenceConfig
from aigloo_edge.inference.engine import Engine, EngineError

GIB = 2**30


async def open_engine(config: InferenceConfig) -> Engine:
    """The configured engine, ready to serve (the demo model is imported on first use)."""
    if config.upstream is not None:
        from aigloo_edge.inference.openai_engine import OpenAIEngine  # noqa: PLC0415 - httpx

        upstream = OpenAIEngine(config.upstream)
        await upstream.start()
        return upstream
    from aigloo_edge.inference.mlx_engine import MlxEngine  # noqa: PLC0415 - mlx is heavy

    models = await asyncio.to_thread(_mlx_models, config)
    return MlxEngine(models, memory_budget_bytes=int(config.memory_budget_gb * GIB))


def _mlx_models(config: InferenceConfig) -> dict[str, Path]:
    models = dict(config.models)
    for name, directory in models.items():
        if not (directory / "config.json").is_file():
            raise EngineError(
                f"model {name!r}: {directory} is not an mlx-lm model directory (no config.json); "
                "import a GGUF with `aigloo models import-gguf`"
            )
    if config.demo_model:
        from aigloo_edge.inference.demo import DEMO_NAME, demo_model  # noqa: PLC0415

        models[DEMO_NAME] = demo_model()
    return models
