"""Weights into Qwen3ForCausalLM: from a local Hugging Face folder, or random for benchmarking.

A folder holds config.json and model.safetensors, or shards listed by model.safetensors.index.json.
Nothing is downloaded. q/k/v projections are stacked by rows into qkv_proj and gate/up into
gate_up_proj (gate rows first), the layouts the fused ops take.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from qwen3.config import Qwen3Config, from_hf_config
from qwen3.dispatch import Dispatcher
from qwen3.model import Qwen3ForCausalLM

# Our parameter -> the checkpoint tensors stacked (by rows) into it; {i} is the layer index.
MERGED = {
    "self_attn.qkv_proj.weight": ("self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"),
    "mlp.gate_up_proj.weight": ("mlp.gate_proj.weight", "mlp.up_proj.weight"),
}
INDEX_FILE = "model.safetensors.index.json"


def load_config(folder: str | Path) -> Qwen3Config:
    """The Qwen3Config of a model folder; ValueError for a folder this runtime cannot run."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"model folder {folder} does not exist (weights are read from a local folder: "
                         f"config.json and *.safetensors)")
    if not (folder / "config.json").is_file():
        raise ValueError(f"{folder} has no config.json: is it a Hugging Face model folder?")
    config = from_hf_config(folder)  # first: it checks that the file is a JSON object with sane sizes
    raw = json.loads((folder / "config.json").read_text())
    if raw.get("model_type", "qwen3") != "qwen3":
        raise ValueError(f"{folder} holds a {raw['model_type']!r} model; this runtime runs qwen3")
    rope = raw.get("rope_parameters") or raw.get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        raise ValueError(f"{folder}: rope type {rope.get('rope_type', rope.get('type'))!r} is not supported "
                         f"(only the default RoPE)")
    if raw.get("use_sliding_window"):
        raise ValueError(f"{folder}: sliding-window attention is not supported")
    if raw.get("attention_bias"):
        raise ValueError(f"{folder}: attention_bias is not supported (Qwen3 has none)")
    return config


def load_model(folder: str | Path, *, dtype: torch.dtype = torch.bfloat16, device="cuda",
               ops: Dispatcher | None = None, fold_gains: bool = True) -> Qwen3ForCausalLM:
    """Qwen3ForCausalLM with the weights of a local Hugging Face folder, in `dtype` on `device`, its
    layers' norm gains folded into the weights they feed unless fold_gains is False
    (Qwen3ForCausalLM.fold_norm_gains). ValueError names what is missing (files, tensors) or mis-shaped."""
    folder = Path(folder)
    config = load_config(folder)
    tensors = _read_safetensors(folder)
    model = _empty_model(config, ops, dtype, device)
    state = {}
    for name, param in model.state_dict().items():
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue  # the embedding's tensor
        state[name] = _source(name, tensors, folder)
        if tuple(state[name].shape) != tuple(param.shape):
            raise ValueError(f"{folder}: {name} has shape {tuple(state[name].shape)}, the config says "
                             f"{tuple(param.shape)}")
    _fill(model, state, dtype, device)
    if fold_gains:
        model.fold_norm_gains()
    return model


def random_weights(config: Qwen3Config, dtype: torch.dtype = torch.bfloat16, device="cuda", seed: int = 0,
                   ops: Dispatcher | None = None, fold_gains: bool = True) -> Qwen3ForCausalLM:
    """Qwen3ForCausalLM with random weights shaped like a trained model's: linear weights with
    variance 1/in_features (activations stay O(1) through the layers), norm gains near 1; the gains
    folded as load_model folds them unless fold_gains is False."""
    model = _empty_model(config, ops, dtype, device)
    gen = torch.Generator(device=device).manual_seed(seed)
    for name, param in model.state_dict().items():
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue
        # Drawn in fp32 on the target device (bf16 draws differ by device), then cast.
        if name.endswith("norm.weight"):
            t = 1 + 0.1 * torch.randn(param.shape, generator=gen, device=device)
        elif "embed_tokens" in name:
            t = torch.randn(param.shape, generator=gen, device=device)
        else:
            t = torch.randn(param.shape, generator=gen, device=device) * param.shape[1] ** -0.5
        _fill(model, {name: t}, dtype, device)  # one at a time: fp32 copies of 8B weights are 32 GB
    _fill(model, {}, dtype, device)
    if fold_gains:
        model.fold_norm_gains()
    return model


def _empty_model(config: Qwen3Config, ops, dtype: torch.dtype, device) -> Qwen3ForCausalLM:
    # Built on the target device in the target dtype: an fp32 staging copy of an 8B model is 32 GB.
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            return Qwen3ForCausalLM(config, ops)
    finally:
        torch.set_default_dtype(previous)


def _fill(model: Qwen3ForCausalLM, state: dict, dtype: torch.dtype, device) -> None:
    params = dict(model.named_parameters(remove_duplicate=False))
    for name, tensor in state.items():
        params[name].data = tensor.to(device=device, dtype=dtype).contiguous()
    if model.config.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    model.eval()


def _source(name: str, tensors: dict, folder: Path) -> torch.Tensor:
    """Our parameter `name` from the checkpoint tensors (a lazy name -> loader mapping)."""
    for ours, parts in MERGED.items():
        if name.endswith(ours):
            prefix = name[: -len(ours)]
            return torch.cat([_get(tensors, prefix + part, folder) for part in parts], dim=0)
    return _get(tensors, name, folder)


def _get(tensors: dict, name: str, folder: Path) -> torch.Tensor:
    if name not in tensors:
        raise ValueError(f"{folder}: the checkpoint lacks {name} (a partial or foreign checkpoint?)")
    return tensors[name]()


def _read_safetensors(folder: Path) -> dict:
    """name -> a callable that reads that tensor (on the CPU), over every shard of the folder."""
    from safetensors import safe_open

    index = folder / INDEX_FILE
    if index.is_file():
        try:
            raw = json.loads(index.read_text())
        except (ValueError, RecursionError):
            raw = None
        weight_map = raw.get("weight_map") if isinstance(raw, dict) else None
        if not isinstance(weight_map, dict) or not weight_map or not all(isinstance(f, str)
                                                                         for f in weight_map.values()):
            raise ValueError(f"{index} has no weight_map of tensor names to file names")
        files = sorted(set(weight_map.values()))
        missing = [f for f in files if not (folder / f).is_file()]
        if missing:
            raise ValueError(f"{folder} lacks shard(s) {', '.join(missing)} listed in {INDEX_FILE}")
    else:
        files = sorted(p.name for p in folder.glob("*.safetensors"))
        if not files:
            raise ValueError(f"{folder} has no *.safetensors files")
    tensors = {}
    for file in files:
        with safe_open(str(folder / file), framework="pt", device="cpu") as f:
            for key in f.keys():
                tensors[key] = _reader(folder / file, key)
    return tensors


def _reader(path: Path, key: str):
    def read() -> torch.Tensor:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt", device="cpu") as f:
            return f.get_tensor(key)

    return read
