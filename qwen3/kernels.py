"""Triton kernels for the attention block's non-GEMM work, so a decode step is a few kernels per layer.

Unfused, q/k RMSNorm + RoPE + the KV-cache writes + the mask + attention are ~35 small PyTorch
kernels per layer; a CUDA graph replays each with ~1-2 us of launch latency, which at batch 1 costs
more than the layer's weight stream. Here they are two kernels:

- `qk_norm_rope_cache`: per token and head, RMSNorm of the q or k head, RoPE (rotate-half), q
  written out, k and v written into the KV cache at the token's position. It rounds where
  transformers' Qwen3 rounds (norm statistics in fp32, the normed head cast to the model dtype and
  then scaled by the gain, each RoPE product and the sum cast), so it reproduces the PyTorch path
  up to the order of one fp32 sum.
- `decode_attention`: one new token per sequence (T = 1) over its cached positions 0..pos, one
  program per (sequence, KV head) serving that head's query group, online softmax in fp32
  (flash-decoding without the split over the sequence: one program reads a whole sequence, fine
  for the short contexts decode is benchmarked at, slower for long ones).

Both are checked against the PyTorch path (qwen3.layers) under the interpreter in the tests.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


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
def _qk_norm_rope_cache_kernel(
    qkv_ptr, qw_ptr, kw_ptr, cos_ptr, sin_ptr, pos_ptr, q_ptr, kc_ptr, vc_ptr,
    T, first_row, eps, stride_qkv, stride_cos,
    stride_kb, stride_kl, stride_kh, stride_vb, stride_vl, stride_vh,
    H: tl.constexpr, KV: tl.constexpr, HD: tl.constexpr,
):
    tok = tl.program_id(0)
    head = tl.program_id(1)  # 0..H-1: a query head; H..H+KV-1: a key head (and its value head)
    HALF: tl.constexpr = HD // 2
    DT: tl.constexpr = q_ptr.dtype.element_ty
    offs = tl.arange(0, HALF)
    pos = tl.load(pos_ptr + tok)
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
        tl.store(k_out + offs, o1.to(kc_ptr.dtype.element_ty))
        tl.store(k_out + HALF + offs, o2.to(kc_ptr.dtype.element_ty))
        full = tl.arange(0, HD)
        v = tl.load(row + KV * HD + full)  # v head j sits KV heads after k head j
        tl.store(vc_ptr + b * stride_vb + pos * stride_vl + j * stride_vh + full, v)


def qk_norm_rope_cache(qkv: torch.Tensor, q_norm_w: torch.Tensor, k_norm_w: torch.Tensor, cos: torch.Tensor,
                       sin: torch.Tensor, positions: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                       num_heads: int, num_kv_heads: int, eps: float, first_row: int = 0) -> torch.Tensor:
    """qkv [B*T, (H + 2 KV) * hd] (q heads, k heads, v heads), positions [B, T], caches [rows, L, KV, hd]
    -> q [B, T, H, hd] normed and rotated; k (normed, rotated) and v written to cache rows first_row + b."""
    b, t = positions.shape
    hd = q_norm_w.shape[0]
    if qkv.shape != (b * t, (num_heads + 2 * num_kv_heads) * hd) or qkv.stride(1) != 1:
        raise ValueError(f"qkv must be [{b * t}, {(num_heads + 2 * num_kv_heads) * hd}] with unit column stride, "
                         f"got {tuple(qkv.shape)}")
    if hd % 2 or hd & (hd - 1):
        raise ValueError(f"head_dim must be a power of two, got {hd}")
    if k_cache.stride(-1) != 1 or v_cache.stride(-1) != 1 or cos.stride(-1) != 1:
        raise ValueError("the caches and the RoPE tables need a unit stride in their last dim")
    positions = positions.reshape(-1)
    if not positions.is_contiguous():
        positions = positions.contiguous()
    q = torch.empty((b, t, num_heads, hd), dtype=qkv.dtype, device=qkv.device)
    _qk_norm_rope_cache_kernel[(b * t, num_heads + num_kv_heads)](
        qkv, q_norm_w, k_norm_w, cos, sin, positions, q, k_cache, v_cache,
        t, first_row, eps, qkv.stride(0), cos.stride(0),
        *k_cache.stride()[:3], *v_cache.stride()[:3],
        H=num_heads, KV=num_kv_heads, HD=hd, num_warps=1 if hd <= 128 else 2,
    )
    return q


@triton.jit
def _decode_attention_kernel(
    q_ptr, kc_ptr, vc_ptr, pos_ptr, o_ptr, first_row, scale,
    stride_kb, stride_kl, stride_kh, stride_vb, stride_vl, stride_vh,
    H: tl.constexpr, G: tl.constexpr, G_PAD: tl.constexpr, HD: tl.constexpr, BLOCK_N: tl.constexpr,
    PRECISION: tl.constexpr,
):
    seq = tl.program_id(0)
    kvh = tl.program_id(1)
    g = tl.arange(0, G_PAD)
    d = tl.arange(0, HD)
    pos = tl.load(pos_ptr + seq)
    heads = kvh * G + g
    q_rows = q_ptr + seq.to(tl.int64) * (H * HD) + heads[:, None] * HD + d[None, :]
    q = tl.load(q_rows, mask=g[:, None] < G, other=0.0)
    row = (first_row + seq).to(tl.int64)
    k_base = kc_ptr + row * stride_kb + kvh * stride_kh
    v_base = vc_ptr + row * stride_vb + kvh * stride_vh
    m_i = tl.full([G_PAD], float("-inf"), tl.float32)
    l_i = tl.zeros([G_PAD], tl.float32)
    acc = tl.zeros([G_PAD, HD], tl.float32)
    for start in range(0, pos + 1, BLOCK_N):
        n = start + tl.arange(0, BLOCK_N)
        live = n <= pos
        k = tl.load(k_base + n[:, None] * stride_kl + d[None, :], mask=live[:, None], other=0.0)
        v = tl.load(v_base + n[:, None] * stride_vl + d[None, :], mask=live[:, None], other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * scale
        s = tl.where(live[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        alpha = tl.exp(m_i - m_new)
        p = tl.exp(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
        m_i = m_new
    o = acc / l_i[:, None]
    out = o_ptr + seq.to(tl.int64) * (H * HD) + heads[:, None] * HD + d[None, :]
    tl.store(out, o.to(o_ptr.dtype.element_ty), mask=g[:, None] < G)


def decode_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, positions: torch.Tensor,
                     scale: float, first_row: int = 0) -> torch.Tensor:
    """q [B, 1, H, hd] (one new token per sequence, its k/v already in the cache), caches [rows, L, KV, hd],
    positions [B, 1] -> o [B, 1, H * hd]: each query head attends its KV head's slots 0..position."""
    b, t, h, hd = q.shape
    kv = k_cache.shape[2]
    if t != 1:
        raise ValueError(f"decode_attention takes one token per sequence, got {t}")
    if h % kv:
        raise ValueError(f"{h} query heads do not split into groups over {kv} KV heads")
    if not q.is_contiguous() or k_cache.stride(-1) != 1 or v_cache.stride(-1) != 1:
        raise ValueError("q must be contiguous and the caches need a unit stride in their last dim")
    group = h // kv
    positions = positions.reshape(-1)
    if not positions.is_contiguous():
        positions = positions.contiguous()
    o = torch.empty((b, 1, h * hd), dtype=q.dtype, device=q.device)
    _decode_attention_kernel[(b, kv)](
        q, k_cache, v_cache, positions, o, first_row, scale,
        *k_cache.stride()[:3], *v_cache.stride()[:3],
        H=h, G=group, G_PAD=max(16, triton.next_power_of_2(group)), HD=hd, BLOCK_N=64,
        PRECISION="ieee" if q.dtype == torch.float32 else "tf32", num_warps=4, num_stages=2,
    )
    return o
