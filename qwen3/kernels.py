"""Triton kernels for the attention block's non-GEMM work, so a decode step is a few kernels per layer.

Unfused, q/k RMSNorm + RoPE + the KV-cache writes + the mask + attention are ~35 small PyTorch
kernels per layer; a CUDA graph replays each with ~1-2 us of launch latency, which at batch 1 costs
more than the layer's weight stream. Here they are two kernels:

- `qk_norm_rope_cache`: per token and head, RMSNorm of the q or k head, RoPE (rotate-half), q
  written out, k and v written into the KV cache at the token's position. It rounds where
  transformers' Qwen3 rounds (norm statistics in fp32, the normed head cast to the model dtype and
  then scaled by the gain, each RoPE product and the sum cast), so it reproduces the PyTorch path
  up to the order of one fp32 sum.
- `decode_attention`: one new token per sequence (T = 1) over its cached positions 0..pos
  (flash-decoding): one program per (sequence, KV head, chunk of the cache) serves that KV head's
  query group with an online softmax in fp32, and where the cache has several chunks a second
  kernel combines their partials.

Both launch with PDL on Hopper (see kernel_space._gemm): they wait for the kernel before them first.

Both are checked against the PyTorch path (qwen3.layers) under the interpreter in the tests.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernel_space._gemm import device_info, pdl_enter, pdl_launch_args


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
    H: tl.constexpr, KV: tl.constexpr, HD: tl.constexpr, PDL: tl.constexpr = False,
):
    tok = tl.program_id(0)
    head = tl.program_id(1)  # 0..H-1: a query head; H..H+KV-1: a key head (and its value head)
    HALF: tl.constexpr = HD // 2
    DT: tl.constexpr = q_ptr.dtype.element_ty
    if PDL:
        pdl_enter()
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
        H=num_heads, KV=num_kv_heads, HD=hd, num_warps=1 if hd <= 128 else 2, **pdl_launch_args(qkv.device),
    )
    return q


@triton.jit
def _decode_attention_kernel(
    q_ptr, kc_ptr, vc_ptr, pos_ptr, o_ptr, part_ptr, ml_ptr, first_row, scale,
    stride_kb, stride_kl, stride_kh, stride_vb, stride_vl, stride_vh,
    H: tl.constexpr, G: tl.constexpr, G_PAD: tl.constexpr, HD: tl.constexpr, BLOCK_N: tl.constexpr,
    CHUNK: tl.constexpr, SPLITS: tl.constexpr, PRECISION: tl.constexpr, PDL: tl.constexpr = False,
):
    """Program (sequence, KV head, split): the query group of that KV head over cache slots
    [split * CHUNK, (split + 1) * CHUNK) up to the sequence's position. One split writes o; several
    write their unnormalised partial (acc, running max, running sum) for _combine_kernel."""
    seq = tl.program_id(0)
    kvh = tl.program_id(1)
    split = tl.program_id(2)
    if PDL:
        pdl_enter()
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
    lo = split * CHUNK
    hi = tl.minimum(lo + CHUNK, pos + 1)
    for start in range(lo, hi, BLOCK_N):
        n = start + tl.arange(0, BLOCK_N)
        live = n < hi
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
    live_g = g < G
    if SPLITS == 1:
        o = acc / l_i[:, None]
        out = o_ptr + seq.to(tl.int64) * (H * HD) + heads[:, None] * HD + d[None, :]
        tl.store(out, o.to(o_ptr.dtype.element_ty), mask=live_g[:, None])
    else:
        # Partials [B, H, SPLITS, HD] and [B, H, SPLITS, 2]; a split past the position leaves
        # m = -inf, l = 0 (its weight in the combine is zero).
        part = (seq.to(tl.int64) * H + heads) * SPLITS + split
        tl.store(part_ptr + part[:, None] * HD + d[None, :], acc, mask=live_g[:, None])
        tl.store(ml_ptr + part * 2, m_i, mask=live_g)
        tl.store(ml_ptr + part * 2 + 1, l_i, mask=live_g)


@triton.jit
def _combine_kernel(part_ptr, ml_ptr, o_ptr, H: tl.constexpr, HD: tl.constexpr, SPLITS: tl.constexpr,
                    S_PAD: tl.constexpr, PDL: tl.constexpr = False):
    """Program (sequence, head): o = sum_s exp(m_s - m) acc_s / sum_s exp(m_s - m) l_s."""
    seq = tl.program_id(0)
    head = tl.program_id(1)
    if PDL:
        pdl_enter()
    s = tl.arange(0, S_PAD)
    d = tl.arange(0, HD)
    base = (seq.to(tl.int64) * H + head) * SPLITS
    live = s < SPLITS
    m = tl.load(ml_ptr + (base + s) * 2, mask=live, other=float("-inf"))
    l_s = tl.load(ml_ptr + (base + s) * 2 + 1, mask=live, other=0.0)
    m_all = tl.max(m, axis=0)  # split 0 always holds slot 0: finite
    w = tl.where(live & (m > float("-inf")), tl.exp(m - m_all), 0.0)
    acc = tl.load(part_ptr + (base + s)[:, None] * HD + d[None, :], mask=live[:, None], other=0.0)
    o = tl.sum(acc * w[:, None], axis=0) / tl.sum(l_s * w, axis=0)
    tl.store(o_ptr + (seq.to(tl.int64) * H + head) * HD + d, o.to(o_ptr.dtype.element_ty))


# Launch parameters (benchmarks/attn_sweep.py on the H100, 0.6B and 8B shapes, 256 cache slots):
# with few (sequence, KV head) pairs the cache is split so that about one wave of programs runs
# (batch 1: 64-slot chunks, 3.6 us a layer against 4.8 with 128-slot chunks); with enough pairs to
# fill the SMs one program walks its whole sequence and no combine kernel runs (batch 32: 12.4 us
# against 13.2).
ATTN_MIN_CHUNK = 64
ATTN_MAX_SPLITS = 64
def attention_plan(batch: int, kv_heads: int, length: int, sms: int) -> tuple[int, int, int, int]:
    """(chunk, block_n, num_warps, num_stages) for a decode step over caches of `length` slots."""
    pairs = batch * kv_heads
    splits = min(triton.cdiv(length, ATTN_MIN_CHUNK), max(1, triton.cdiv(sms, pairs)))
    chunk = max(ATTN_MIN_CHUNK, triton.next_power_of_2(triton.cdiv(length, splits)),
                triton.next_power_of_2(triton.cdiv(length, ATTN_MAX_SPLITS)))
    block_n = min(chunk, 128)
    return chunk, block_n, 4, 1 if block_n == 128 else 2


def _sm_count(device: torch.device) -> int:
    return device_info(device)[1] if device.type == "cuda" else 132  # the interpreter: plan as for an H100


def decode_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, positions: torch.Tensor,
                     scale: float, first_row: int = 0, *, chunk: int | None = None, block_n: int | None = None,
                     num_warps: int | None = None, num_stages: int | None = None) -> torch.Tensor:
    """q [B, 1, H, hd] (one new token per sequence, its k/v already in the cache), caches [rows, L, KV, hd],
    positions [B, 1] -> o [B, 1, H * hd]: each query head attends its KV head's slots 0..position.
    The cache length is split in chunks (flash-decoding) whose partials a second kernel combines.
    chunk (a multiple of block_n), block_n, num_warps and num_stages override attention_plan's
    choice (benchmarks/attn_sweep.py measures them)."""
    b, t, h, hd = q.shape
    kv, length = k_cache.shape[2], k_cache.shape[1]
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
    plan = attention_plan(b, kv, length, _sm_count(q.device))
    chunk, block_n = chunk or plan[0], block_n or min(chunk or plan[0], plan[1])
    num_warps, num_stages = num_warps or plan[2], num_stages or plan[3]
    if chunk % block_n:
        raise ValueError(f"chunk {chunk} must be a multiple of block_n {block_n}")
    splits = triton.cdiv(length, chunk)
    o = torch.empty((b, 1, h * hd), dtype=q.dtype, device=q.device)
    if splits > 1:
        part = torch.empty((b, h, splits, hd), dtype=torch.float32, device=q.device)
        ml = torch.empty((b, h, splits, 2), dtype=torch.float32, device=q.device)
    else:
        part = ml = o  # unused
    pdl = pdl_launch_args(q.device)
    _decode_attention_kernel[(b, kv, splits)](
        q, k_cache, v_cache, positions, o, part, ml, first_row, scale,
        *k_cache.stride()[:3], *v_cache.stride()[:3],
        H=h, G=group, G_PAD=max(16, triton.next_power_of_2(group)), HD=hd, BLOCK_N=block_n,
        CHUNK=chunk, SPLITS=splits, PRECISION="ieee" if q.dtype == torch.float32 else "tf32",
        num_warps=num_warps, num_stages=num_stages, **pdl,
    )
    if splits > 1:
        _combine_kernel[(b, h)](part, ml, o, H=h, HD=hd, SPLITS=splits, S_PAD=triton.next_power_of_2(splits),
                                num_warps=1 if hd <= 128 else 2, **pdl)
    return o
