"""The layers of the Qwen3 model that are not fusion sites: embedding, RMSNorm (q/k norms and the
final norm), rotary embedding, attention over a preallocated KV cache, and the LM head.

Weights are allocated empty: the loader or random_weights fills them. Each layer rounds where
transformers' Qwen3 rounds (fp32 statistics, results cast back to the model dtype), so that the
logits match it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kernel_space.decode_attention import (
    AttentionProblem,
    SplitPartials,
    decode_attention,
    decode_attention_prep,
    default_plan,
    prep_of,
    rope_tables,
)
from kernel_space.qk_norm_rope_cache import qk_norm_rope_cache


def _weight(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.empty(*shape), requires_grad=False)


class Embedding(nn.Module):
    """Token id -> hidden vector."""

    def __init__(self, vocab_size: int, hidden_size: int):
        super().__init__()
        self.weight = _weight(vocab_size, hidden_size)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(input_ids, self.weight)


class Linear(nn.Module):
    """A bias-free linear layer, weight [out, in] as nn.Linear keeps it. The fusion sites pass
    `.weight` to the dispatcher; only the LM head calls forward."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.weight = _weight(out_features, in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight)


class RMSNorm(nn.Module):
    """x * rsqrt(mean(x^2) + eps) * weight over the last dim, statistics in fp32. The decoder's two
    norms keep their weight here too, but run inside the fused ops."""

    def __init__(self, size: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = _weight(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return x32.to(x.dtype) * self.weight


class RotaryEmbedding(nn.Module):
    """RoPE over the whole head (rotate-half layout), cos/sin tabulated in fp32 for every position."""

    def __init__(self, head_dim: int, max_position: int, theta: float):
        super().__init__()
        cos, sin = rope_tables(head_dim, max_position, theta)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, positions: torch.Tensor, q: torch.Tensor, k: torch.Tensor):
        """positions [..., T]; q, k [..., T, heads, head_dim]."""
        # Cast to the activations' dtype before multiplying, as transformers does.
        cos = self.cos[positions].to(q.dtype).unsqueeze(-2)
        sin = self.sin[positions].to(q.dtype).unsqueeze(-2)
        return q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def use_triton(impl: str, t: torch.Tensor) -> bool:
    """impl "auto": the Triton kernels on CUDA, PyTorch elsewhere; "triton" / "torch": always that."""
    return impl == "triton" or (impl == "auto" and t.is_cuda)


class QKNormRopeCache(nn.Module):
    """The attention block between the QKV projection and attention: q/k RMSNorm per head, RoPE, and
    the new keys and values written into the KV cache. Holds no weights (the norms stay where
    checkpoints keep them, on the attention module); impl picks the PyTorch ops or
    kernel_space.qk_norm_rope_cache's single kernel (see use_triton)."""

    def __init__(self, num_heads: int, num_kv_heads: int, head_dim: int, eps: float):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim, self.eps = num_heads, num_kv_heads, head_dim, eps
        self.impl = "auto"

    def forward(self, qkv: torch.Tensor, q_norm: RMSNorm, k_norm: RMSNorm, rotary: RotaryEmbedding,
                positions: torch.Tensor, attn: Attention, first_row: int = 0) -> torch.Tensor:
        """qkv [B*T, (H + 2 KV) * hd], positions [B, T] -> q [B, T, H, hd]; k and v go to attn's cache."""
        attn.check_cache()
        if use_triton(self.impl, qkv):
            return qk_norm_rope_cache(qkv, q_norm.weight, k_norm.weight, rotary.cos, rotary.sin, positions,
                                      attn.k_cache, attn.v_cache, self.num_heads, self.num_kv_heads, self.eps,
                                      first_row)
        b, t = positions.shape
        q_size, kv_size = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        q, k, v = qkv.view(b, t, -1).split([q_size, kv_size, kv_size], dim=-1)
        q = q_norm(q.reshape(b, t, self.num_heads, self.head_dim))
        k = k_norm(k.reshape(b, t, self.num_kv_heads, self.head_dim))
        q, k = rotary(positions, q, k)
        rows = torch.arange(first_row, first_row + b, device=positions.device)[:, None]
        attn.k_cache[rows, positions] = k
        attn.v_cache[rows, positions] = v.reshape(b, t, self.num_kv_heads, self.head_dim)
        return q


class Attention(nn.Module):
    """Causal attention of new tokens over a preallocated KV cache, with grouped-query heads.

    k_cache / v_cache are this layer's views [batch, max_len, kv_heads, head_dim] of the model's
    cache (Qwen3ForCausalLM.allocate_kv_cache sets them); the new tokens' keys and values are
    already in it (QKNormRopeCache wrote them). Every query attends to the cached positions <= its
    own. Decode (one token per sequence) runs kernel_space.decode_attention where impl allows, with
    `config`, else the dispatch table's choice through `lookup` (see decode_config); otherwise, or
    where the config says unfused, PyTorch's SDPA over the whole cache length with a mask (shapes
    stay static). Where the decode config says prep "fused" (fuses_prep), the layer skips
    QKNormRopeCache and hands forward the raw qkv rows with `prep`: one kernel then norms, rotates,
    writes the cache and attends (kernel_space.decode_attention.decode_attention_prep).
    """

    def __init__(self, num_heads: int, num_kv_heads: int, head_dim: int):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, head_dim
        self.scale = head_dim**-0.5
        self.k_cache = self.v_cache = None
        self.impl = "auto"
        self.config = None  # None, a decode_attention config, or a function AttentionProblem -> config
        self.lookup = None  # the dispatcher's attention_config (its table), used while config is None

    def check_cache(self) -> None:
        if self.k_cache is None:
            raise RuntimeError("no KV cache: call allocate_kv_cache on the model first")

    def problem(self, batch: int) -> AttentionProblem:
        """Decode attention of `batch` sequences over this layer's cache (its context: the cache's slots)."""
        self.check_cache()
        dtype = str(self.k_cache.dtype).removeprefix("torch.")
        return AttentionProblem(batch, self.num_heads, self.num_kv_heads, self.head_dim, self.k_cache.shape[1], dtype)

    def decode_config(self, batch: int) -> dict | None:
        """The decode kernel's config at this batch over this cache: self.config (or what it returns
        for the problem when it is a function), else the dispatch table's choice (self.lookup, keyed
        by batch and the cache's slots); None: the default plan."""
        source = self.config if self.config is not None else self.lookup
        return source(self.problem(batch)) if callable(source) else source

    def fuses_prep(self, positions: torch.Tensor, like: torch.Tensor) -> bool:
        """Whether this step's q/k norm + RoPE + cache write run inside the decode attention kernel:
        decode (one token per sequence), the Triton impl, and a fused decode config with prep "fused"
        (a config or table without the key means "separate")."""
        b, t = positions.shape
        if t != 1 or not use_triton(self.impl, like):
            return False
        config = self.decode_config(b)
        if config is None:  # the default plan from the qkv rows, as decode_attention_prep will take it
            config = default_plan(self.problem(b), like.device, from_qkv=True)
        return config.get("impl") != "unfused" and prep_of(config) == "fused"

    def forward(self, q: torch.Tensor, positions: torch.Tensor, first_row: int = 0,
                from_start: bool = False, prep: tuple | None = None,
                partials: bool = False) -> torch.Tensor | SplitPartials:
        """q [B, T, heads, hd]; positions [B, T] (each token's slot in its sequence); cache rows
        first_row .. first_row + B hold the B sequences. -> [B, T, heads * hd]. from_start: the caller
        knows that every row's positions are 0 .. T-1 (whole prompts), so the causal flash path runs.
        prep: (q_norm, k_norm, rotary, eps) where fuses_prep said so; q is then the raw qkv rows
        [B, (heads + 2 kv_heads) * hd] of one decode token per sequence. partials (batch 1): where the
        decode kernel splits the cache, return its SplitPartials uncombined, for o_proj to combine
        (kernel_space.combine_o_proj); every other path returns o."""
        self.check_cache()
        b, t = positions.shape
        partials = {"partials": True} if partials else {}  # passed only when asked: the other calls as before
        if prep is not None:
            q_norm, k_norm, rotary, eps = prep
            return decode_attention_prep(q, q_norm.weight, k_norm.weight, rotary.cos, rotary.sin, eps, self.k_cache,
                                         self.v_cache, positions, self.scale, first_row, self.decode_config(b),
                                         **partials)
        if t == 1 and use_triton(self.impl, q):
            config = self.decode_config(b)
            if config is None or config.get("impl") != "unfused":
                return decode_attention(q, self.k_cache, self.v_cache, positions, self.scale, first_row, config,
                                        **partials)
        if from_start and t > 1:
            return self._prompt_attention(q, first_row)
        k_cache = self.k_cache[first_row:first_row + b]
        v_cache = self.v_cache[first_row:first_row + b]
        # Grouped-query attention without copying K/V: the `groups` query heads that share a KV head
        # become extra query rows of it (head h reads KV head h // groups, as transformers' repeat_kv).
        groups = self.num_heads // self.num_kv_heads
        q = q.view(b, t, self.num_kv_heads, groups, self.head_dim).permute(0, 2, 3, 1, 4)
        q = q.reshape(b, self.num_kv_heads, groups * t, self.head_dim)
        keys, values = k_cache.transpose(1, 2), v_cache.transpose(1, 2)  # [B, kv_heads, max_len, hd]
        slots = torch.arange(k_cache.shape[1], device=positions.device)
        mask = (slots[None, None, :] <= positions[:, :, None]).repeat(1, groups, 1)[:, None]  # [B, 1, g*T, L]
        o = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=self.scale)
        o = o.view(b, self.num_kv_heads, groups, t, self.head_dim).permute(0, 3, 1, 2, 4)
        return o.reshape(b, t, self.num_heads * self.head_dim)

    def _prompt_attention(self, q: torch.Tensor, first_row: int) -> torch.Tensor:
        """Whole prompts (token i at slot i of every row): causal attention over the first T slots
        only, through SDPA's is_causal, which its flash backend serves on a GPU (GQA by enable_gqa,
        K/V read in place: no mask is built and no empty slot is read)."""
        b, t = q.shape[:2]
        keys = self.k_cache[first_row:first_row + b, :t].transpose(1, 2)  # [B, kv_heads, T, hd], a view
        values = self.v_cache[first_row:first_row + b, :t].transpose(1, 2)
        o = F.scaled_dot_product_attention(q.transpose(1, 2), keys, values, is_causal=True, scale=self.scale,
                                           enable_gqa=self.num_heads != self.num_kv_heads)
        return o.transpose(1, 2).reshape(b, t, self.num_heads * self.head_dim)
