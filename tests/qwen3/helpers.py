"""A tiny Qwen3 saved by transformers itself, so that the loader and the logits are checked against it."""

from __future__ import annotations

import dataclasses

import torch

from kernel_space import kernel_hash
from kernel_space.fingerprint import current_fingerprint
from qwen3.config import PRESETS, Qwen3Config

# Smaller than qwen3-tiny (interpreted kernels are slow), still odd sizes, GQA 2:1, and a rope_theta
# other than the default, so that a theta read from the wrong config field shows.
TINY = dataclasses.replace(PRESETS["qwen3-tiny"], name="test-tiny", hidden_size=40, intermediate_size=56,
                           num_attention_heads=4, num_key_value_heads=2, head_dim=16, vocab_size=96,
                           rope_theta=10_000.0, max_position_embeddings=64)

# fma for decode (M = 1), split-K 2 reduced by a second kernel; dot for prefill-sized M. BLOCK_N 32 leaves
# a partial last tile at TINY's widths 40 and 56 (BLOCK_N 8 gave the interpreter 4x the programs: a decode
# step took 5 s instead of 1.9).
FMA_M1 = dict(impl="fused", path="fma", BLOCK_M=1, BLOCK_N=32, BLOCK_K=32, SPLIT_K=2, GROUP_M=1, num_warps=2,
              num_stages=1, split_reduce="kernel", prologue="inline")
DOT = dict(impl="fused", path="dot", BLOCK_M=16, BLOCK_N=16, BLOCK_K=32, SPLIT_K=1, GROUP_M=1, num_warps=4,
           num_stages=1, split_reduce="kernel", prologue="inline")


def hf_model(config: Qwen3Config, seed: int = 0):
    """transformers' Qwen3ForCausalLM for config, fp32, random weights (norm gains not all 1)."""
    import transformers

    hf_config = transformers.Qwen3Config(**config.to_hf_dict())
    torch.manual_seed(seed)
    model = transformers.Qwen3ForCausalLM(hf_config).to(torch.float32).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) * (1.0 if "embed" in name else p.shape[-1] ** -0.5))
    return model


def table_dict(shapes: dict[str, tuple[int, int]], buckets: list[tuple[int, str, dict]], dtype: str = "float32",
               fingerprint: dict | None = None) -> dict:
    """A dispatch table (storage.table's format) with the same buckets for every op in shapes."""
    fp = fingerprint or current_fingerprint()
    return {
        "format": 1,
        "created": "2026-11-24T00:00:00Z",
        "model": "test-tiny",
        "dtype": dtype,
        "fingerprint": fp,
        "ops": {
            op: {"N": n, "K": k, "kernel_hash": kernel_hash(op),
                 "buckets": [{"m": m, "arm": arm, "config": dict(cfg), "median_us": 1.0, "baseline_us": 2.0,
                              "speedup": 2.0} for m, arm, cfg in buckets]}
            for op, (n, k) in shapes.items()
        },
    }


WORDS = "the a cat dog sat on mat and ran far away big small red blue".split()


def save_with_tokenizer(config: Qwen3Config, folder, seed: int = 0):
    """Save a random transformers model and a word-level tokenizer (built here: nothing is downloaded)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {word: i for i, word in enumerate(["[UNK]", "<eos>", *WORDS])}
    vocab.update({f"w{i}": i for i in range(len(vocab), config.vocab_size)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", eos_token="<eos>").save_pretrained(folder)
    model = hf_model(config, seed)
    model.save_pretrained(folder)
    return model
