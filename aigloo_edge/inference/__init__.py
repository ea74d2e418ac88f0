"""Inference: model import (GGUF → mlx-lm directory) and the bundled demo model.

Only inference code imports this subpackage; its modules pull in mlx and tokenizers.
"""
