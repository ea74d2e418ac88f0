"""`aigloo models import-gguf` and `fetch-demo` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from aigloo_edge.cli import app
from aigloo_edge.inference.demo import demo_gguf_path

runner = CliRunner()


def test_fetch_demo_imports_the_packaged_model_and_reuses_it(tmp_path: Path) -> None:
    """The demo model lands in the cache once; a second fetch reuses the import."""
    cache = tmp_path / "demo"
    first = runner.invoke(app, ["models", "fetch-demo", "--cache", str(cache)])
    assert first.exit_code == 0, first.output
    assert json.loads((cache / "config.json").read_text())["model_type"] == "llama"
    stamp = (cache / "config.json").stat().st_mtime_ns
    again = runner.invoke(app, ["models", "fetch-demo", "--cache", str(cache)])
    assert again.exit_code == 0
    assert (cache / "config.json").stat().st_mtime_ns == stamp


def test_import_gguf_writes_an_mlx_lm_directory(tmp_path: Path) -> None:
    out = tmp_path / "model"
    result = runner.invoke(app, ["models", "import-gguf", str(demo_gguf_path()), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert {"config.json", "tokenizer.json", "tokenizer_config.json"} <= {
        p.name for p in out.iterdir()
    }


def test_import_gguf_of_a_non_gguf_file_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.gguf"
    bogus.write_text("hello")
    result = runner.invoke(app, ["models", "import-gguf", str(bogus), "--out", str(tmp_path / "m")])
    assert result.exit_code != 0
    assert "notes.gguf" in str(result.exception)
