"""qk_norm_rope_cache: the attention block's work between the QKV projection and attention, one kernel.

Unfused, q/k RMSNorm + RoPE + the KV-cache writes are ~20 small PyTorch kernels per layer; a CUDA
graph replays each with ~1-2 us of launch latency, which at batch 1 costs more than the layer's
weight stream. Here one program per (token, head) does the RMSNorm of the q or k head, RoPE
(rotate-half), writes q out and k and v into the KV cache at the token's position. It rounds where
transformers' Qwen3 rounds (norm statistics in fp32, the normed head cast to the model dtype and
then scaled by the gain, each RoPE product and the sum cast), so it reproduces the PyTorch path (qwen3.layers) up
to the order of one fp32 sum. It has no tunables.

Two kernels do the same work. Decode (one token a sequence) runs one program per (token, head) with 1-2
warps: the kernel the decode attention op was tuned with (its prep "separate"). A prompt (several
tokens a sequence) runs one program per (block of ROWS_PER_PROGRAM tokens, head): at prefill sizes a
program per token and head is hundreds of thousands of tiny programs, and the kernel took 8x
torch.compile's fused equivalent (6.6 ms a forward against 0.8 at 32 prompts of 256 tokens on an H100,
benchmarks/results/prefill_profile_*).

It launches with PDL on Hopper (see kernel_space._gemm): it waits for the kernel before it first.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernel_space import jit_keys
from kernel_space._gemm import pdl_enter, pdl_launch_args

ROWS_PER_PROGRAM = 32  # tokens a program of the prompt kernel at head_dim 128 (4,096 elements of a head)


def prompt_rows(head_dim: int) -> int:
    """Tokens a program of the prompt kernel: ROWS_PER_PROGRAM at head_dim <= 128, fewer above, so that a
    program's tiles stay 4,096 elements (its registers do not spill at head_dim 256)."""
    return max(1, min(ROWS_PER_PROGRAM, 4096 // head_dim))


@triton.jit
def _norm_rope_half(x1, x2, w1, w2, cos, sin, eps, HD: tl.constexpr, DT: tl.constexpr):
    """RMSNorm over the head (x1 | x2: its halves, fp32), gain, then RoPE; every step rounded to DT."""
    var = (tl.sum(x1 * x1, axis=0) + tl.sum(x2 * x2, axis=0)) / HD
    r = 1.0 / tl.sqrt(var + eps)
    y1 = (w1 * (x1 * r).to(DT).to(tl.float32)).to(DT).to(tl.float32)
    y2 = (w2 * (x2 * r).to(DT).to(tl.float32)).to(DT).to(tl.float32)
    # rotate_half(y) = (-y2, y1): out = y * cos + rotate_half(y) * sin, products and sum in DT.
    o1 = ((y1 * cos).to(DT).to(tl.float32) + (-y2 * sin).to(DT).to(tl.float32)).to(DT)
    o2 = ((y2 * cos).to(DT).to(tl.float32) + (y1 * sin).to(DT).to(tl.float32)).to(DT)
    return o1, o2


@triton.jit
def _norm_rope_rows(x1, x2, w1, w2, cos, sin, eps, HD: tl.constexpr, DT: tl.constexpr):
    """_norm_rope_half over a block of rows: x1, x2, cos, sin [rows, HD / 2] (fp32), w1, w2 [HD / 2]. Not
    shared with the per-token kernel: that one's source is part of decode attention's kernel hash, and
    changing it would make every tuned attention row stale."""
    var = (tl.sum(x1 * x1, axis=1) + tl.sum(x2 * x2, axis=1)) / HD
    r = (1.0 / tl.sqrt(var + eps))[:, None]
    y1 = (w1[None, :] * (x1 * r).to(DT).to(tl.float32)).to(DT).to(tl.float32)
    y2 = (w2[None, :] * (x2 * r).to(DT).to(tl.float32)).to(DT).to(tl.float32)
    o1 = ((y1 * cos).to(DT).to(tl.float32) + (-y2 * sin).to(DT).to(tl.float32)).to(DT)
    o2 = ((y2 * cos).to(DT).to(tl.float32) + (y1 * sin).to(DT).to(tl.float32)).to(DT)
    return o1, o2


@triton.jit
def _qk_norm_rope_cache_rows_kernel(
    qkv_ptr, qw_ptr, kw_ptr, cos_ptr, sin_ptr, pos_ptr, q_ptr, kc_ptr, vc_ptr,
    N, T, first_row, L, eps, stride_qkv, stride_cos,
    stride_kb, stride_kl, stride_kh, stride_vb, stride_vl, stride_vh,
    H: tl.constexpr, KV: tl.constexpr, HD: tl.constexpr, ROWS: tl.constexpr, PDL: tl.constexpr = False,
):
    """_qk_norm_rope_cache_kernel for ROWS tokens (of the N = B * T) of one head a program."""
    head = tl.program_id(1)
    HALF: tl.constexpr = HD // 2
    DT: tl.constexpr = q_ptr.dtype.element_ty
    if PDL:
        pdl_enter(PDL)
    tok = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)
    live = tok < N
    offs = tl.arange(0, HALF)
    pos_in = tl.load(pos_ptr + tok, mask=live, other=0)
    inside = live & (pos_in >= 0) & (pos_in < L)  # as the per-token kernel: outside the cache, no K/V
    pos = tl.minimum(tl.maximum(pos_in, 0), L - 1).to(tl.int64)
    rows = live[:, None]
    row = qkv_ptr + tok[:, None] * stride_qkv + head * HD + offs[None, :]
    x1 = tl.load(row, mask=rows, other=0.0).to(tl.float32)
    x2 = tl.load(row + HALF, mask=rows, other=0.0).to(tl.float32)
    cos = tl.load(cos_ptr + pos[:, None] * stride_cos + offs[None, :], mask=rows, other=0.0).to(DT).to(tl.float32)
    sin = tl.load(sin_ptr + pos[:, None] * stride_cos + offs[None, :], mask=rows, other=0.0).to(DT).to(tl.float32)
    if head < H:
        w1 = tl.load(qw_ptr + offs).to(tl.float32)
        w2 = tl.load(qw_ptr + HALF + offs).to(tl.float32)
        o1, o2 = _norm_rope_rows(x1, x2, w1, w2, cos, sin, eps, HD, DT)
        out = q_ptr + tok[:, None] * (H * HD) + head * HD + offs[None, :]
        tl.store(out, o1, mask=rows)
        tl.store(out + HALF, o2, mask=rows)
    else:
        w1 = tl.load(kw_ptr + offs).to(tl.float32)
        w2 = tl.load(kw_ptr + HALF + offs).to(tl.float32)
        o1, o2 = _norm_rope_rows(x1, x2, w1, w2, cos, sin, eps, HD, DT)
        j = head - H
        b = first_row + tok // T
        written = inside[:, None]
        k_out = kc_ptr + b[:, None] * stride_kb + pos[:, None] * stride_kl + j * stride_kh + offs[None, :]
        tl.store(k_out, o1.to(kc_ptr.dtype.element_ty), mask=written)
        tl.store(k_out + HALF, o2.to(kc_ptr.dtype.element_ty), mask=written)
        full = tl.arange(0, HD)
        v = tl.load(qkv_ptr + tok[:, None] * stride_qkv + (head + KV) * HD + full[None, :], mask=rows)
        tl.store(vc_ptr + b[:, None] * stride_vb + pos[:, None] * stride_vl + j * stride_vh + full[None, :], v,
                 mask=written)


@triton.jit
def _qk_norm_rope_cache_kernel(
    qkv_ptr, qw_ptr, kw_ptr, cos_ptr, sin_ptr, pos_ptr, q_ptr, kc_ptr, vc_ptr,
    T, first_row, L, eps, stride_qkv, stride_cos,
    stride_kb, stride_kl, stride_kh, stride_vb, stride_vl, stride_vh,
    H: tl.constexpr, KV: tl.constexpr, HD: tl.constexpr, PDL: tl.constexpr = False,
):
    tok = tl.program_id(0)
    head = tl.program_id(1)  # 0..H-1: a query head; H..H+KV-1: a key head (and its value head)
    HALF: tl.constexpr = HD // 2
    DT: tl.constexpr = q_ptr.dtype.element_ty
    if PDL:
        pdl_enter(PDL)
    offs = tl.arange(0, HALF)
    # A position outside the cache (a caller's bug the launcher cannot see without a sync) must not
    # make the kernel touch memory it does not own: its RoPE row is clamped and its K/V not written.
    pos_in = tl.load(pos_ptr + tok)
    inside = (pos_in >= 0) & (pos_in < L)
    pos = tl.minimum(tl.maximum(pos_in, 0), L - 1).to(tl.int64)
    row = qkv_ptr + tok.to(tl.int64) * stride_qkv + head * HD  # q heads, then k heads: column head * HD
    x1 = tl.load(row + offs).to(tl.float32)
    x2 = tl.load(row + HALF + offs).to(tl.float32)
    cos = tl.load(cos_ptr + pos * stride_cos + offs).to(DT).to(tl.float32)  # the table repeats per half
    sin = tl.load(sin_ptr + pos * stride_cos + offs).to(DT).to(tl.float32)
    if head < H:
        w1 = tl.load(qw_ptr + offs).to(tl.float32)
        w2 = tl.load(qw_ptr + HALF + offs).to(tl.float32)
        o1, o2 = _norm_rope_half(x1, x2, w1, w2, cos, sin, eps, HD, DT)
        out = q_ptr + tok.to(tl.int64) * (H * HD) + head * HD
        tl.store(out + offs, o1)
        tl.store(out + HALF + offs, o2)
    else:
        w1 = tl.load(kw_ptr + offs).to(tl.float32)
        w2 = tl.load(kw_ptr + HALF + offs).to(tl.float32)
        o1, o2 = _norm_rope_half(x1, x2, w1, w2, cos, sin, eps, HD, DT)
        j = head - H
        b = (first_row + tok // T).to(tl.int64)
        k_out = kc_ptr + b * stride_kb + pos * stride_kl + j * stride_kh
        tl.store(k_out + offs, o1.to(kc_ptr.dtype.element_ty), mask=inside)
        tl.store(k_out + HALF + offs, o2.to(kc_ptr.dtype.element_ty), mask=inside)
        full = tl.arange(0, HD)
        v = tl.load(row + KV * HD + full)  # v head j sits KV heads after k head j
        tl.store(vc_ptr + b * stride_vb + pos * stride_vl + j * stride_vh + full, v, mask=inside)


def qk_norm_rope_cache(qkv: torch.Tensor, q_norm_w: torch.Tensor, k_norm_w: torch.Tensor, cos: torch.Tensor,
                       sin: torch.Tensor, positions: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                       num_heads: int, num_kv_heads: int, eps: float, first_row: int = 0) -> torch.Tensor:
    """qkv [B*T, (H + 2 KV) * hd] (q heads, k heads, v heads), positions [B, T], caches [rows, L, KV, hd]
    -> q [B, T, H, hd] normed and rotated; k (normed, rotated) and v written to cache rows first_row + b.
    A position outside the cache writes no K/V (and its q is rotated as the last slot's)."""
    b, t = positions.shape
    hd = q_norm_w.shape[0]
    if qkv.shape != (b * t, (num_heads + 2 * num_kv_heads) * hd) or qkv.stride(1) != 1:
        raise ValueError(f"qkv must be [{b * t}, {(num_heads + 2 * num_kv_heads) * hd}] with unit column stride, "
                         f"got {tuple(qkv.shape)}")
    if hd % 2 or hd & (hd - 1):
        raise ValueError(f"head_dim must be a power of two, got {hd}")
    if k_cache.stride(-1) != 1 or v_cache.stride(-1) != 1 or cos.stride(-1) != 1:
        raise ValueError("the caches and the RoPE tables need a unit stride in their last dim")
    if first_row < 0 or first_row + b > k_cache.shape[0] or k_cache.shape != v_cache.shape:
        raise ValueError(f"{b} sequences from cache row {first_row} do not fit caches {tuple(k_cache.shape)}, "
                         f"{tuple(v_cache.shape)}")
    positions = positions.reshape(-1)
    if not positions.is_contiguous():
        positions = positions.contiguous()
    q = torch.empty((b, t, num_heads, hd), dtype=qkv.dtype, device=qkv.device)
    tensors = (qkv, q_norm_w, k_norm_w, cos, sin, positions, q, k_cache, v_cache)
    shape = (t, first_row, min(k_cache.shape[1], cos.shape[0]), eps, qkv.stride(0), cos.stride(0),
             *k_cache.stride()[:3], *v_cache.stride()[:3])
    meta = dict(H=num_heads, KV=num_kv_heads, HD=hd, **pdl_launch_args(qkv.device))
    heads = num_heads + num_kv_heads
    if t > 1:  # a prompt: blocks of tokens a program (module docstring)
        rows = prompt_rows(hd)
        _qk_norm_rope_cache_rows_kernel[(triton.cdiv(b * t, rows), heads)](*tensors, b * t, *shape, ROWS=rows,
                                                                           num_warps=4, **meta)
    else:
        _qk_norm_rope_cache_kernel[(b, heads)](*tensors, *shape, num_warps=1 if hd <= 128 else 2, **meta)
    return q

# Cache keys that do not depend on the order of first launches (kernel_space.jit_keys).
jit_keys.settle(globals())
