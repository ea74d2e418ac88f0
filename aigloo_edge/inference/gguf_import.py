"""Import a llama-architecture GGUF file as an mlx-lm model directory.

`mlx.core.load` reads a GGUF file into MLX arrays; its Q4_0, Q4_1 and Q8_0 tensors arrive already
in MLX's affine quantized layout (``weight`` packed into uint32, ``scales`` and ``biases`` per group
of 32), other types as float arrays. The import renames llama.cpp's tensors to the Hugging Face
names mlx-lm's ``llama`` model expects, derives ``config.json`` from the GGUF metadata (with
``rope_traditional``: llama.cpp stores the q/k rows permuted for interleaved rotary), and rebuilds
the byte-level BPE tokenizer from the vocabulary and merges in the metadata.

Everything is written to a staging directory beside ``out_dir`` and renamed into place, the
marker file last, so a crash never leaves a half model and importing again replaces the old one.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import struct
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import mlx.core as mx
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

from aigloo_edge.errors import AiglooError

log = logging.getLogger(__name__)

IMPORT_FORMAT: Final = 1
MARKER_NAME: Final = "aigloo-import.json"
GGUF_MAGIC: Final = b"GGUF"
# Every GGUF type MLX keeps quantized (Q4_0, Q4_1, Q8_0) packs blocks of 32 values.
GGUF_GROUP_SIZE: Final = 32
TOKEN_TYPE_CONTROL: Final = 3
TOKEN_TYPE_USER_DEFINED: Final = 4

_TENSOR: Final = re.compile(
    r"(?:blk\.(?P<layer>\d+)\.)?(?P<part>\w+)\.(?P<suffix>weight|scales|biases)"
)
_TOP_LEVEL: Final = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
}
_BLOCK_PARTS: Final = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
# llama.cpp's pre-tokenizer names whose regex is GPT-2's, alone or after splitting every digit.
_GPT2_PRE: Final = frozenset({"gpt2", "mpt", "olmo", "jais"})
_DIGIT_SPLIT_PRE: Final = frozenset(
    {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"}
)

T = TypeVar("T")


class ModelImportError(AiglooError):
    """A model file that cannot be imported; the message names the file and the reason."""


class GgufMetadata:
    """Typed access to a GGUF metadata mapping; every failure names the file and the key."""

    def __init__(self, raw: Mapping[str, object], source: str) -> None:
        self._raw = raw
        self.source = source

    def error(self, reason: str) -> ModelImportError:
        return ModelImportError(f"{self.source}: {reason}")

    def __contains__(self, key: object) -> bool:
        return key in self._raw

    def integer(self, key: str) -> int:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._wrong_type(key, value, "an integer")
        return value

    def number(self, key: str) -> float:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._wrong_type(key, value, "a number")
        return _shortest_float32(float(value))

    def flag(self, key: str, default: bool) -> bool:
        if key not in self._raw:
            return default
        value = self._get(key)
        if not isinstance(value, bool):
            raise self._wrong_type(key, value, "a boolean")
        return value

    def text(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str):
            raise self._wrong_type(key, value, "a string")
        return value

    def optional_text(self, key: str) -> str | None:
        return self.text(key) if key in self._raw else None

    def strings(self, key: str) -> list[str]:
        value = self._get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._wrong_type(key, value, "a list of strings")
        return value

    def integers(self, key: str) -> list[int]:
        value = self._get(key)
        if not isinstance(value, list) or not all(isinstance(v, int) for v in value):
            raise self._wrong_type(key, value, "a list of integers")
        return value

    def _get(self, key: str) -> object:
        if key not in self._raw:
            raise self.error(f"missing GGUF metadata key {key!r}")
        value = self._raw[key]
        tolist = getattr(value, "tolist", None)  # mlx arrays (scalars and int arrays)
        return tolist() if callable(tolist) else value

    def _wrong_type(self, key: str, value: object, expected: str) -> ModelImportError:
        return self.error(
            f"GGUF metadata key {key!r} is {type(value).__name__}, expected {expected}"
        )


def _shortest_float32(value: float) -> float:
    """The shortest decimal naming the same float32 (GGUF's 1e-5 reads as 9.99999974e-06)."""
    try:
        packed = struct.pack("<f", value)
    except OverflowError:
        return value
    for digits in range(1, 10):
        candidate = float(f"{value:.{digits}g}")
        if struct.pack("<f", candidate) == packed:
            return candidate
    return value


# --- tensors -------------------------------------------------------------------------------


def hf_tensor_name(name: str) -> str | None:
    """The Hugging Face llama name of a llama.cpp tensor (``blk.3.attn_q.scales`` →
    ``model.layers.3.self_attn.q_proj.scales``), or None for a tensor mlx-lm has no place for."""
    match = _TENSOR.fullmatch(name)
    if match is None:
        return None
    layer, part, suffix = match.group("layer", "part", "suffix")
    if layer is None:
        base = _TOP_LEVEL.get(part)
        return None if base is None else f"{base}.{suffix}"
    base = _BLOCK_PARTS.get(part)
    return None if base is None else f"model.layers.{layer}.{base}.{suffix}"


def rename_tensors(tensors: Mapping[str, T], source: str) -> dict[str, T]:
    """All tensors under their Hugging Face names; an unknown tensor is an error naming it."""
    renamed: dict[str, T] = {}
    for name, tensor in tensors.items():
        hf_name = hf_tensor_name(name)
        if hf_name is None:
            raise ModelImportError(f"{source}: tensor {name!r} is not part of a llama model")
        renamed[hf_name] = tensor
    return renamed


def quantization_config(shapes: Mapping[str, tuple[int, ...]]) -> dict[str, Any] | None:
    """mlx-lm's ``quantization`` entry for Hugging Face-named tensor shapes, or None.

    The most common bit width is the default; layers quantized otherwise (Q4_1 files keep the
    token embedding in 8 bits) are listed by path with their own ``{group_size, bits}``.
    """
    layers: dict[str, int] = {}
    for name, scales in shapes.items():
        if name.endswith(".scales"):
            layer = name.removesuffix(".scales")
            in_dims = scales[-1] * GGUF_GROUP_SIZE
            layers[layer] = shapes[f"{layer}.weight"][-1] * 32 // in_dims
    if not layers:
        return None
    default_bits = Counter(layers.values()).most_common(1)[0][0]
    config: dict[str, Any] = {"group_size": GGUF_GROUP_SIZE, "bits": default_bits}
    for layer, bits in sorted(layers.items()):
        if bits != default_bits:
            config[layer] = {"group_size": GGUF_GROUP_SIZE, "bits": bits}
    return config


# --- config.json -----------------------------------------------------------------------------


def model_config(meta: GgufMetadata) -> dict[str, Any]:
    """config.json for mlx-lm's llama model, from llama.cpp's metadata keys."""
    architecture = meta.text("general.architecture")
    if architecture != "llama":
        raise meta.error(
            f"architecture {architecture!r} (metadata key 'general.architecture') "
            "is not supported; only 'llama' is"
        )
    heads = meta.integer("llama.attention.head_count")
    config: dict[str, Any] = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": meta.integer("llama.embedding_length"),
        "num_hidden_layers": meta.integer("llama.block_count"),
        "intermediate_size": meta.integer("llama.feed_forward_length"),
        "num_attention_heads": heads,
        "num_key_value_heads": _integer_or(meta, "llama.attention.head_count_kv", heads),
        "rms_norm_eps": meta.number("llama.attention.layer_norm_rms_epsilon"),
        "rope_theta": _number_or(meta, "llama.rope.freq_base", 10000.0),
        "rope_traditional": True,
        "max_position_embeddings": meta.integer("llama.context_length"),
        "vocab_size": len(meta.strings("tokenizer.ggml.tokens")),
        "bos_token_id": meta.integer("tokenizer.ggml.bos_token_id"),
        "eos_token_id": meta.integer("tokenizer.ggml.eos_token_id"),
    }
    if "llama.attention.key_length" in meta:
        config["head_dim"] = meta.integer("llama.attention.key_length")
    if (scaling := _rope_scaling(meta)) is not None:
        config["rope_scaling"] = scaling
    return config


def _integer_or(meta: GgufMetadata, key: str, default: int) -> int:
    return meta.integer(key) if key in meta else default


def _number_or(meta: GgufMetadata, key: str, default: float) -> float:
    return meta.number(key) if key in meta else default


def _rope_scaling(meta: GgufMetadata) -> dict[str, Any] | None:
    kind = meta.optional_text("llama.rope.scaling.type")
    if kind is None or kind == "none":
        return None
    if kind == "linear":
        return {"type": "linear", "factor": meta.number("llama.rope.scaling.factor")}
    raise meta.error(
        f"rope scaling {kind!r} (metadata key 'llama.rope.scaling.type') is not supported"
    )


# --- tokenizer -------------------------------------------------------------------------------


def build_tokenizer(meta: GgufMetadata) -> Tokenizer:
    """The byte-level BPE tokenizer llama.cpp would run, as a `tokenizers.Tokenizer`."""
    kind = meta.text("tokenizer.ggml.model")
    if kind != "gpt2":
        raise meta.error(
            f"tokenizer {kind!r} (metadata key 'tokenizer.ggml.model') is not supported; "
            "only byte-level BPE ('gpt2') is"
        )
    tokens = meta.strings("tokenizer.ggml.tokens")
    vocab = {token: index for index, token in enumerate(tokens)}
    if len(vocab) != len(tokens):
        raise meta.error("metadata key 'tokenizer.ggml.tokens' repeats a token")
    merges = [_merge_pair(meta, merge) for merge in meta.strings("tokenizer.ggml.merges")]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    tokenizer.pre_tokenizer = pre_tokenizer(meta)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = _post_processor(meta)
    tokenizer.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in special_tokens(meta)]
    )
    user_defined = _tokens_of_type(meta, TOKEN_TYPE_USER_DEFINED)
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in user_defined])
    return tokenizer


def pre_tokenizer(meta: GgufMetadata) -> pre_tokenizers.PreTokenizer:
    """llama.cpp's pre-tokenizer named by ``tokenizer.ggml.pre``, as `tokenizers` components."""
    name = meta.text("tokenizer.ggml.pre")
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if name in _GPT2_PRE:
        return byte_level
    if name in _DIGIT_SPLIT_PRE:
        digits = pre_tokenizers.Digits(individual_digits=True)
        return pre_tokenizers.Sequence([digits, byte_level])
    known = ", ".join(sorted(_GPT2_PRE | _DIGIT_SPLIT_PRE))
    raise meta.error(
        f"pre-tokenizer {name!r} (metadata key 'tokenizer.ggml.pre') is not supported ({known})"
    )


def special_tokens(meta: GgufMetadata) -> list[str]:
    """Control tokens plus bos/eos: matched whole in text and skipped when decoding."""
    found = _tokens_of_type(meta, TOKEN_TYPE_CONTROL)
    for key in ("tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"):
        found.append(token_for(meta, key))
    return list(dict.fromkeys(found))


def token_for(meta: GgufMetadata, key: str) -> str:
    """The text of the token whose id the metadata key holds."""
    tokens = meta.strings("tokenizer.ggml.tokens")
    index = meta.integer(key)
    if not 0 <= index < len(tokens):
        raise meta.error(
            f"metadata key {key!r} is {index}, outside the {len(tokens)}-token vocabulary"
        )
    return tokens[index]


def _tokens_of_type(meta: GgufMetadata, token_type: int) -> list[str]:
    if "tokenizer.ggml.token_type" not in meta:
        return []
    tokens = meta.strings("tokenizer.ggml.tokens")
    types = meta.integers("tokenizer.ggml.token_type")
    return [token for token, kind in zip(tokens, types, strict=False) if kind == token_type]


def _merge_pair(meta: GgufMetadata, merge: str) -> tuple[str, str]:
    left, sep, right = merge.partition(" ")
    if not sep or not left or not right:
        raise meta.error(f"metadata key 'tokenizer.ggml.merges' holds a malformed merge {merge!r}")
    return left, right


def _post_processor(meta: GgufMetadata) -> processors.PostProcessor:
    if not meta.flag("tokenizer.ggml.add_bos_token", default=False):
        return processors.ByteLevel(trim_offsets=False)
    bos = token_for(meta, "tokenizer.ggml.bos_token_id")
    bos_id = meta.integer("tokenizer.ggml.bos_token_id")
    return processors.TemplateProcessing(
        single=[bos, "$A"], pair=[bos, "$A", bos, "$B:1"], special_tokens=[(bos, bos_id)]
    )


def tokenizer_config(meta: GgufMetadata) -> dict[str, Any]:
    """tokenizer_config.json: special tokens, chat template and limits for transformers."""
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": token_for(meta, "tokenizer.ggml.bos_token_id"),
        "eos_token": token_for(meta, "tokenizer.ggml.eos_token_id"),
        "add_bos_token": meta.flag("tokenizer.ggml.add_bos_token", default=False),
        "model_max_length": meta.integer("llama.context_length"),
        "clean_up_tokenization_spaces": False,
    }
    optional = (
        ("unk_token", "tokenizer.ggml.unknown_token_id"),
        ("pad_token", "tokenizer.ggml.padding_token_id"),
    )
    for field, key in optional:
        if key in meta:
            config[field] = token_for(meta, key)
    if (template := meta.optional_text("tokenizer.chat_template")) is not None:
        config["chat_template"] = template
    return config


# --- import ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ModelFiles:
    weights: dict[str, mx.array]
    tokenizer: Tokenizer
    json_files: dict[str, dict[str, Any]]
    marker: dict[str, Any]


def import_gguf(
    gguf_path: Path,
    out_dir: Path,
    *,
    name: str | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> Path:
    """Write an mlx-lm model directory for a llama GGUF file into `out_dir`, and return it.

    An existing import in `out_dir` is replaced; any other non-empty `out_dir` is refused.
    `on_stage` hears each step as it begins (for a progress display).
    """
    stage = on_stage or (lambda _: None)
    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    check_gguf_header(gguf_path)
    stage(f"reading {gguf_path.name}")
    tensors, raw = _load_gguf(gguf_path)
    meta = GgufMetadata(raw, str(gguf_path))
    title = name or meta.optional_text("general.name") or gguf_path.stem
    stage("converting tensors and tokenizer")
    files = _model_files(meta, tensors, import_marker(gguf_path, title))
    stage(f"writing {out_dir}")
    try:
        _publish(files, out_dir)
    except OSError as exc:
        raise ModelImportError(f"{gguf_path}: cannot write the model to {out_dir}: {exc}") from exc
    log.info("imported %s as %r into %s", gguf_path, title, out_dir)
    return out_dir


def check_gguf_header(path: Path) -> None:
    """Fail unless `path` is a readable file starting with the GGUF magic."""
    try:
        with path.open("rb") as handle:
            head = handle.read(len(GGUF_MAGIC))
    except OSError as exc:
        raise ModelImportError(f"{path}: cannot read the model file: {exc.strerror}") from exc
    if head != GGUF_MAGIC:
        raise ModelImportError(f"{path} is not a GGUF file (it starts with {head!r}, not b'GGUF')")


def _load_gguf(path: Path) -> tuple[dict[str, mx.array], dict[str, object]]:
    try:
        loaded = mx.load(str(path), format="gguf", return_metadata=True)
    except (RuntimeError, ValueError) as exc:
        raise ModelImportError(f"{path}: cannot read the GGUF file: {exc}") from exc
    if not isinstance(loaded, tuple):  # pragma: no cover - return_metadata always gives a pair
        raise ModelImportError(f"{path}: mlx returned no GGUF metadata")
    tensors, metadata = loaded
    return tensors, metadata


def _model_files(
    meta: GgufMetadata, tensors: Mapping[str, mx.array], marker: dict[str, Any]
) -> _ModelFiles:
    weights = rename_tensors(tensors, meta.source)
    config = model_config(meta)
    config["tie_word_embeddings"] = "lm_head.weight" not in weights
    quantization = quantization_config({k: tuple(v.shape) for k, v in weights.items()})
    if quantization is not None:
        config["quantization"] = quantization
    tokenizer = build_tokenizer(meta)
    json_files = {"config.json": config, "tokenizer_config.json": tokenizer_config(meta)}
    return _ModelFiles(weights, tokenizer, json_files, marker)


def import_marker(gguf_path: Path, name: str) -> dict[str, Any]:
    """The marker written last into an import: what it came from, to tell if it is current."""
    stat = gguf_path.stat()
    return {
        "format": IMPORT_FORMAT,
        "name": name,
        "source": str(gguf_path.resolve()),
        "source_size": stat.st_size,
        "source_mtime_ns": stat.st_mtime_ns,
    }


def read_marker(model_dir: Path) -> dict[str, Any] | None:
    """The import marker of `model_dir`, or None if it is not a complete import."""
    try:
        marker = json.loads((model_dir / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def is_current_import(model_dir: Path, gguf_path: Path) -> bool:
    """Whether `model_dir` holds a complete import of this very GGUF file (same size and mtime)."""
    marker = read_marker(model_dir)
    if marker is None:
        return False
    expected = import_marker(gguf_path, name="")
    keys = ("format", "source_size", "source_mtime_ns")
    return all(marker.get(key) == expected[key] for key in keys)


def _publish(files: _ModelFiles, out_dir: Path) -> None:
    if out_dir.exists() and read_marker(out_dir) is None and any(out_dir.iterdir()):
        raise ModelImportError(
            f"{out_dir} exists and is not a model import; refusing to replace it"
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.with_name(f".{out_dir.name}.importing-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    try:
        _write_files(files, staging)
        _swap(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_files(files: _ModelFiles, directory: Path) -> None:
    mx.save_safetensors(str(directory / "model.safetensors"), files.weights, {"format": "mlx"})
    files.tokenizer.save(str(directory / "tokenizer.json"))
    for filename, content in files.json_files.items():
        _write_json(directory / filename, content)
    _write_json(directory / MARKER_NAME, files.marker)  # last: it vouches for the rest


def _write_json(path: Path, content: dict[str, Any]) -> None:
    path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _swap(staging: Path, out_dir: Path) -> None:
    retired = None
    if out_dir.exists():
        retired = out_dir.with_name(f".{out_dir.name}.retired-{uuid.uuid4().hex[:8]}")
        out_dir.rename(retired)
    staging.rename(out_dir)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)
