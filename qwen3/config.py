"""Qwen3 model configurations: the presets and the reader for a Hugging Face config.json."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

from kernel_space.spec import ModelDims


@dataclass(frozen=True, slots=True)
class Qwen3Config:
    name: str
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    vocab_size: int
    tie_word_embeddings: bool
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1_000_000.0
    max_position_embeddings: int = 40960

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                raise ValueError(f"Qwen3Config.{f.name} must be a positive int, got {value!r}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                f"num_key_value_heads ({self.num_key_value_heads})"
            )
        if not self.rms_norm_eps > 0:
            raise ValueError(f"rms_norm_eps must be positive, got {self.rms_norm_eps!r}")

    def attention_unsupported(self) -> str | None:
        """Why the Triton decode attention kernels cannot take this model's heads (head_dim 80, say), or None.
        The model then runs PyTorch's attention (SDPA), and tune and check leave decode_attention out."""
        from kernel_space.decode_attention import unsupported_reason

        return unsupported_reason(self.num_attention_heads, self.num_key_value_heads, self.head_dim)

    def dims(self) -> ModelDims:
        return ModelDims(
            hidden=self.hidden_size,
            intermediate=self.intermediate_size,
            heads=self.num_attention_heads,
            kv_heads=self.num_key_value_heads,
            head_dim=self.head_dim,
            vocab=self.vocab_size,
        )

    def to_hf_dict(self) -> dict:
        """The config.json that transformers' Qwen3ForCausalLM reads for this model."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "name"}
        d.update(architectures=["Qwen3ForCausalLM"], model_type="qwen3", hidden_act="silu",
                 attention_bias=False, torch_dtype="bfloat16")
        return d


def _preset(name, hidden, inter, layers, heads, kv, head_dim=128, vocab=151936, tied=False):
    return Qwen3Config(name, hidden, inter, layers, heads, kv, head_dim, vocab, tied)


PRESETS: dict[str, Qwen3Config] = {
    c.name: c
    for c in (
        # Sizes from the published Qwen3 config.json files.
        _preset("qwen3-0.6b", 1024, 3072, 28, 16, 8, tied=True),
        _preset("qwen3-1.7b", 2048, 6144, 28, 16, 8, tied=True),
        _preset("qwen3-4b", 2560, 9728, 36, 32, 8, tied=True),
        _preset("qwen3-8b", 4096, 12288, 36, 32, 8),
        _preset("qwen3-14b", 5120, 17408, 40, 40, 8),
        _preset("qwen3-32b", 5120, 25600, 64, 64, 8),
        # For CPU runs through Triton's interpreter: odd sizes, so no dimension is a block multiple.
        _preset("qwen3-tiny", 72, 136, 2, 4, 2, head_dim=16, vocab=512, tied=True),
    )
}


def from_hf_config(path: str | Path, name: str | None = None) -> Qwen3Config:
    """Read a Hugging Face config.json (or the folder holding it). ValueError names a missing or bad field."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    raw = _read_config(path)
    required = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
    missing = [key for key in required if key not in raw]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}: is it a Qwen3 config.json?")
    size = {key: _positive_int(raw, key, path) for key in required}
    heads = size["num_attention_heads"]
    head_dim = _positive_int(raw, "head_dim", path) if raw.get("head_dim") is not None else None
    if head_dim is None and size["hidden_size"] % heads:
        raise ValueError(f"{path}: hidden_size {size['hidden_size']} is not a multiple of num_attention_heads "
                         f"{heads} (and no head_dim is given)")
    label = raw.get("_name_or_path")
    # The name is stored and printed: a label with control characters or of any length is not used.
    usable = isinstance(label, str) and label.strip() and label.isprintable() and len(label) <= 256
    # Unlabelled, a config.json is named after its folder (resolve(): in the working directory its parent
    # is '.', whose name is ''), any other file after itself: two configs in one folder are two models.
    named = path.resolve().parent.name if path.name == "config.json" else path.stem
    return Qwen3Config(
        name=name or (label if usable else named or "model"),
        hidden_size=size["hidden_size"],
        intermediate_size=size["intermediate_size"],
        num_hidden_layers=size["num_hidden_layers"],
        num_attention_heads=heads,
        num_key_value_heads=_positive_int(raw, "num_key_value_heads", path) if "num_key_value_heads" in raw else heads,
        head_dim=head_dim or size["hidden_size"] // heads,
        vocab_size=size["vocab_size"],
        tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
        rms_norm_eps=_number(raw, "rms_norm_eps", 1e-6, path),
        rope_theta=_rope_theta(raw, path),
        max_position_embeddings=int(_number(raw, "max_position_embeddings", 40960, path)),
    )


def _read_config(path: Path) -> dict:
    """The JSON object in `path`; ValueError in one line for anything else."""
    if path.exists() and not path.is_file():  # /dev/zero would be read forever
        raise ValueError(f"model config {path} is not a regular file")
    if path.is_file() and path.stat().st_size > MAX_CONFIG_BYTES:
        raise ValueError(f"model config {path} is over {MAX_CONFIG_BYTES // 2**20} MiB: not a config.json")
    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"cannot read model config {path}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not JSON: {exc}") from None
    except (ValueError, RecursionError) as exc:  # an int of over 4,300 digits, nesting past the recursion limit
        raise ValueError(f"{path} is not a usable config.json: {str(exc)[:200]}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path} holds a JSON {type(raw).__name__}, not an object: is it a Qwen3 config.json?")
    return raw


# A config.json is a few KB.
MAX_CONFIG_BYTES = 2**20
# Sizes beyond this are no Qwen3 (the largest hidden size is 5120, the vocabulary 151,936).
MAX_SIZE = 2**24


def _positive_int(raw: dict, key: str, path: Path) -> int:
    value = raw[key]
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_SIZE:
        shown = repr(value) if not isinstance(value, int) or value.bit_length() < 64 else "a huge int"
        raise ValueError(f"{path}: {key} must be an integer in [1, {MAX_SIZE}], got {shown[:100]}")
    return value


def _number(raw: dict, key: str, default: float, path: Path) -> float:
    value = raw.get(key, default)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < float("inf"):
        shown = repr(value) if not isinstance(value, int) or value.bit_length() < 64 else "a huge int"
        raise ValueError(f"{path}: {key} must be a positive finite number, got {shown[:100]}")
    return float(value)


def _rope_theta(raw: dict, path: Path) -> float:
    # transformers 5 writes it inside rope_parameters; 4.x (and the published files) at the top level.
    params = raw.get("rope_parameters")
    if isinstance(params, dict) and "rope_theta" in params:
        return _number(params, "rope_theta", 1_000_000.0, path)
    return _number(raw, "rope_theta", 1_000_000.0, path)


def resolve_model(spec: str) -> Qwen3Config:
    """A preset name, or a path to a config.json / model folder. ValueError lists the presets."""
    if spec in PRESETS:
        return PRESETS[spec]
    if not spec.strip():  # Path("") is the working directory, which exists
        raise ValueError(f"model must be a preset ({', '.join(PRESETS)}) or a config.json path, got {spec!r}")
    path = Path(spec)
    if path.exists():
        return from_hf_config(path)
    raise ValueError(f"unknown model {spec!r}: not a preset ({', '.join(PRESETS)}) nor an existing config.json")
