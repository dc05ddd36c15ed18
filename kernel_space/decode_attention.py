"""decode_attention: one new token per sequence attends its KV cache, softmax(q K^T * scale) V, GQA.

The cache is the runtime's: k_cache, v_cache [rows, L, kv_heads, head_dim] (a layer's view of the
model's [layers, rows, L, kv_heads, head_dim] cache), sequence b in row first_row + b, its new token
at positions[b], so it attends slots 0..positions[b]. Every sequence has its own length.

Who prepares the new token is the config's `prep`. With prep=separate, kernel_space.qk_norm_rope_cache
has already normed and rotated q and k and written k and v into the cache (decode_attention takes q).
With prep=fused, decode_attention_prep takes the raw qkv rows and the attention kernel does that work
itself, one launch fewer per layer: every program norms and rotates its own query heads (a group x
head_dim tile, with qk_norm_rope_cache's own rounding helper), and the program whose split ends at
the position uses the new key and value from registers for that slot, one of them per (sequence, KV
head) writing them into the cache. Splits are disjoint ranges of slots and no program reads the new
slot from memory, so that write races with no read.

Flash-decoding: program (unit, sequence, split) runs an online softmax in fp32 over one chunk of its
sequence's slots. A unit is a KV head with its whole query group (pack=group: each K/V tile is read
once and multiplied with tl.dot, the group padded to 16 rows) or one query head (pack=head: a
multiply and tl.sum, no padding, each K/V tile read by every head of the group, mostly from L2).
The chunk is derived per sequence inside the kernel, chunk = ceil(len / SPLITS) rounded up to
BLOCK_N, so a short sequence in a long cache uses few splits and the programs past its end exit at
once; the grid is the same for every length, as a captured CUDA graph needs. A sequence served by
one chunk writes its output directly; otherwise each split writes its partial (acc, max, sum) and a
second kernel combines them (combine=kernel), or the last program of the unit to arrive, counted
with an atomic, does (combine=last_program: one launch fewer).

A launcher asked for `partials` (batch 1, a config of 2..FOLD_MAX_SPLITS splits) combines nothing and
returns the SplitPartials instead of o: kernel_space.combine_o_proj's o_proj combines them in its own
prologue (the model's fold, issue 10), so the attention ends with its last partial store.

attention_plan picks the split count so that one to two waves of programs run at every batch size
(the default from a prepared q); plan_from_qkv is the runtime's default from the qkv rows (kv=early
with prep fused where a program a block fits up to three waves, else attention_plan's loop plan). A
tuned table may pass any config of SPACE instead. check_config says why a config cannot run, without
compiling.

SPEC (an AttentionOpSpec) is the op as the registry holds it: the tuner, the database and the dispatch
table key it by kernel_space.attention_shape's (m, n, k) (batch and context, head geometry), time it
with the KV caches filled to the context and cold in L2, and let a fused config win only where it
beats the unfused path (qk_norm_rope_cache, then SDPA). Every arm starts from the qkv rows, so the
prep's kernel is timed in each (see AttentionOpSpec).
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from kernel_space import _gemm
from kernel_space._common import FLOAT_DTYPES, norm_weight, randn
from kernel_space._gemm import _prefetch_l2, pdl_enter, pdl_launch_args
from kernel_space.attention_shape import ATTENTION_OP, attention_flops, decode_heads, decode_m, encode_heads
from kernel_space.qk_norm_rope_cache import _norm_rope_half, _qk_norm_rope_cache_kernel, qk_norm_rope_cache
from kernel_space.spec import DEFAULT_SMEM_LIMIT, DTYPE_BYTES, OpSpec, SearchSpace, next_pow2

LOG2E = 1.4426950408889634  # softmax in base 2: exp(x) = exp2(x * log2(e)), one multiply folded into the scale


@triton.jit
def _split_bounds(length, split, SPLITS, BLOCK_N: tl.constexpr):
    """This split's slots [lo, hi) of a sequence of `length` slots, and how many splits it uses."""
    chunk = tl.cdiv(tl.cdiv(length, BLOCK_N), SPLITS) * BLOCK_N
    lo = split * chunk
    return lo, tl.minimum(lo + chunk, length), tl.cdiv(length, chunk)


@triton.jit
def _unit_heads(unit, HPU: tl.constexpr, HP: tl.constexpr):
    """The query heads of a unit (HPU of them: a KV head's group, or one head), padded to HP rows."""
    r = tl.arange(0, HP)
    return unit * HPU + r, r < HPU


@triton.jit
def _combine(part_ptr, ml_ptr, o_ptr, seq, unit, n_active, SPLITS,
             H: tl.constexpr, HPU: tl.constexpr, HD: tl.constexpr, HC: tl.constexpr, CS: tl.constexpr):
    """o = sum_s 2^(m_s - m) acc_s / sum_s 2^(m_s - m) l_s over the sequence's active splits, for the
    unit's HPU heads (padded to HC rows). CS splits are read at once, as one [HC, CS, HD] tile: a
    loop of one split at a time was a chain of n_active dependent round trips to L2 at the end of
    every launch. More splits than CS are merged chunk by chunk with a running maximum (every active
    split holds at least one slot: its m is finite, so the first chunk's maximum is too)."""
    heads, live_h = _unit_heads(unit, HPU, HC)
    d = tl.arange(0, HD)
    base = (seq.to(tl.int64) * H + heads) * SPLITS  # [HC]
    m_run = tl.full([HC], float("-inf"), tl.float32)
    l_run = tl.zeros([HC], tl.float32)
    acc = tl.zeros([HC, HD], tl.float32)
    for c in range(0, n_active, CS):
        s = c + tl.arange(0, CS)
        live = live_h[:, None] & (s < n_active)[None, :]  # [HC, CS]
        idx = base[:, None] + s[None, :]
        # .cg: from L2, never from this SM's L1, where another program's partial cannot be.
        m_s = tl.load(ml_ptr + idx * 2, mask=live, other=float("-inf"), cache_modifier=".cg")
        l_s = tl.load(ml_ptr + idx * 2 + 1, mask=live, other=0.0, cache_modifier=".cg")
        a_s = tl.load(part_ptr + idx[:, :, None] * HD + d[None, None, :], mask=live[:, :, None], other=0.0,
                      cache_modifier=".cg")
        # A padding row's maxima are all -inf: it takes 0, so no -inf - -inf is ever computed.
        m_new = tl.where(live_h, tl.maximum(m_run, tl.max(m_s, axis=1)), 0.0)
        alpha = tl.exp2(m_run - m_new)
        w = tl.exp2(m_s - m_new[:, None])  # 0 where the split is not active
        l_run = l_run * alpha + tl.sum(l_s * w, axis=1)
        acc = acc * alpha[:, None] + tl.sum(a_s * w[:, :, None], axis=1)
        m_run = m_new
    l_run = tl.where(live_h, l_run, 1.0)
    out = o_ptr + seq.to(tl.int64) * (H * HD) + heads[:, None] * HD + d[None, :]
    tl.store(out, (acc / l_run[:, None]).to(o_ptr.dtype.element_ty), mask=live_h[:, None])


@triton.jit
def _attend(q, k_base, v_base, lo, hi, stride_kl, stride_vl, qk_scale,
            HP: tl.constexpr, HD: tl.constexpr, BLOCK_N: tl.constexpr, USE_DOT: tl.constexpr,
            PRECISION: tl.constexpr):
    """Online softmax of q [HP, HD] over slots [lo, hi): (acc [HP, HD], max [HP], sum [HP]), base 2."""
    d = tl.arange(0, HD)
    m_i = tl.full([HP], float("-inf"), tl.float32)
    l_i = tl.zeros([HP], tl.float32)
    acc = tl.zeros([HP, HD], tl.float32)
    return _attend_more(q, k_base, v_base, lo, hi, stride_kl, stride_vl, qk_scale, m_i, l_i, acc, d, BLOCK_N,
                        USE_DOT, PRECISION)


@triton.jit
def _attend_more(q, k_base, v_base, lo, hi, stride_kl, stride_vl, qk_scale, m_i, l_i, acc, d,
                 BLOCK_N: tl.constexpr, USE_DOT: tl.constexpr, PRECISION: tl.constexpr):
    """(acc, max, sum) of an online softmax advanced over slots [lo, hi), BLOCK_N a step (none if lo >= hi);
    d: tl.arange(0, head_dim)."""
    for start in range(lo, hi, BLOCK_N):
        n = start + tl.arange(0, BLOCK_N)
        live = n < hi  # every block holds at least one live slot: m_new is finite
        k = tl.load(k_base + n[:, None] * stride_kl + d[None, :], mask=live[:, None], other=0.0)
        v = tl.load(v_base + n[:, None] * stride_vl + d[None, :], mask=live[:, None], other=0.0)
        acc, m_i, l_i = _attend_tile(q, k, v, live, acc, m_i, l_i, qk_scale, USE_DOT, PRECISION)
    return acc, m_i, l_i


@triton.jit
def _attend_tile(q, k, v, live, acc, m_i, l_i, qk_scale, USE_DOT: tl.constexpr, PRECISION: tl.constexpr):
    """One step of the online softmax: q [HP, HD] against the K and V tiles [BLOCK_N, HD] of the slots
    marked live (at least one), into (acc, max, sum)."""
    if USE_DOT:
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION)
    else:
        s = tl.sum(q.to(tl.float32)[:, None, :] * k.to(tl.float32)[None, :, :], axis=2)
    s = tl.where(live[None, :], s * qk_scale, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, axis=1))
    alpha = tl.exp2(m_i - m_new)
    p = tl.exp2(s - m_new[:, None])
    l_i = l_i * alpha + tl.sum(p, axis=1)
    if USE_DOT:
        pv = tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
    else:
        pv = tl.sum(p[:, :, None] * v.to(tl.float32)[None, :, :], axis=1)
    acc = acc * alpha[:, None] + pv
    return acc, m_new, l_i


@triton.jit
def _length(pos, L):
    """Slots a sequence at position `pos` attends: pos + 1, clamped to [1, L]. A position outside the cache
    (a caller's bug the launcher cannot see without a sync) must not make a kernel read memory it does
    not own: past the cache it attends the whole cache, below 0 slot 0 (no split is then empty)."""
    return tl.minimum(tl.maximum(pos + 1, 1), L)


@triton.jit
def _finish(acc, m_i, l_i, o_ptr, part_ptr, ml_ptr, count_ptr, seq, unit, split, heads, live_h, n_active, SPLITS,
            H: tl.constexpr, HPU: tl.constexpr, HD: tl.constexpr, HC: tl.constexpr, CS: tl.constexpr,
            LAST_COMBINES: tl.constexpr):
    """A program's end: o itself where its sequence used one split, else its partial, combined by the
    unit's last program to arrive with combine=last_program (else by the combine kernel)."""
    d = tl.arange(0, HD)
    if n_active == 1:
        out = o_ptr + seq.to(tl.int64) * (H * HD) + heads[:, None] * HD + d[None, :]
        tl.store(out, (acc / l_i[:, None]).to(o_ptr.dtype.element_ty), mask=live_h[:, None])
    else:
        # Partials [B, H, SPLITS, HD] and [B, H, SPLITS, 2] (max, sum), fp32.
        part = (seq.to(tl.int64) * H + heads) * SPLITS + split
        tl.store(part_ptr + part[:, None] * HD + d[None, :], acc, mask=live_h[:, None])
        tl.store(ml_ptr + part * 2, m_i, mask=live_h)
        tl.store(ml_ptr + part * 2 + 1, l_i, mask=live_h)
        if LAST_COMBINES:
            # Every thread's partial stores precede the counter's release (as in _gemm's split-K).
            tl.debug_barrier()
            counter = count_ptr + seq * tl.num_programs(0) + unit
            arrived = tl.atomic_add(counter, 1, sem="acq_rel", scope="gpu")
            if arrived == n_active - 1:
                tl.store(counter, 0)  # zero again for the next launch (a graph replays it)
                _combine(part_ptr, ml_ptr, o_ptr, seq, unit, n_active, SPLITS, H, HPU, HD, HC, CS)


@triton.jit
def _prefetch_kv(k_base, v_base, lo, hi, stride_kl, stride_vl, BLOCK_N: tl.constexpr, KV_LINES: tl.constexpr):
    """K and V of slots [lo, hi) into L2 (a hint: nothing waits for it), one pointer per 128-byte line
    of a slot's head (KV_LINES of them), BLOCK_N slots a step, clamped into the range."""
    LINE: tl.constexpr = 1024 // k_base.dtype.element_ty.primitive_bitwidth
    c = tl.arange(0, KV_LINES) * LINE
    for start in range(lo, hi, BLOCK_N):
        n = tl.minimum(start + tl.arange(0, BLOCK_N), hi - 1)
        _prefetch_l2(k_base + n[:, None] * stride_kl + c[None, :])
        _prefetch_l2(v_base + n[:, None] * stride_vl + c[None, :])


@triton.jit
def _enter(kc_ptr, vc_ptr, pos_ptr, first_row, seq, unit, split, SPLITS, L, pf_slots,
           stride_kb, stride_kl, stride_kh, stride_vb, stride_vl, stride_vh,
           G: tl.constexpr, HPU: tl.constexpr, BLOCK_N: tl.constexpr, KV_LINES: tl.constexpr,
           PDL: tl.constexpr, PREFETCH: tl.constexpr):
    """A program's start under PDL: with PREFETCH, first the first pf_slots slots of its chunk into L2
    while the kernel before it still runs (the cache below the new token's slot was written steps
    ago; the position is read again after the wait, this early read only aims the hint), then
    griddepcontrol.wait (_gemm's pdl_enter)."""
    if PDL:
        if PREFETCH:
            lo, hi, n_active = _split_bounds(_length(tl.load(pos_ptr + seq), L), split, SPLITS, BLOCK_N)
            if split < n_active:
                kvh = (unit * HPU) // G
                row = (first_row + seq).to(tl.int64)
                _prefetch_kv(kc_ptr + row * stride_kb + kvh * stride_kh, vc_ptr + row * stride_vb + kvh * stride_vh,
                             lo, tl.minimum(hi, lo + pf_slots), stride_kl, stride_vl, BLOCK_N, KV_LINES)
        pdl_enter(PDL)


@triton.jit
def decode_attention_kernel(
    q_ptr, kc_ptr, vc_ptr, pos_ptr, o_ptr, part_ptr, ml_ptr, count_ptr,
    first_row, qk_scale, SPLITS, L, pf_slots,
    stride_kb, stride_kl, stride_kh, stride_vb, stride_vl, stride_vh,
    H: tl.constexpr, G: tl.constexpr, HPU: tl.constexpr, HP: tl.constexpr, HD: tl.constexpr,
    BLOCK_N: tl.constexpr, USE_DOT: tl.constexpr, LAST_COMBINES: tl.constexpr, PRECISION: tl.constexpr,
    HC: tl.constexpr, CS: tl.constexpr, KV_LINES: tl.constexpr = 1, PDL: tl.constexpr = False,
    PREFETCH: tl.constexpr = False, EARLY_KV: tl.constexpr = False, EARLY_REST: tl.constexpr = False,
):
    """Program (unit, sequence, split); see the module docstring. Units vary fastest, so with pack=head
    the heads that read one KV tile run side by side and share it in L2. EARLY_KV (and EARLY_REST):
    _attend_early."""
    unit = tl.program_id(0)
    seq = tl.program_id(1)
    split = tl.program_id(2)
    if EARLY_KV:
        _attend_early(q_ptr, kc_ptr, vc_ptr, pos_ptr, o_ptr, part_ptr, ml_ptr, count_ptr, first_row, qk_scale,
                      SPLITS, L, stride_kb, stride_kl, stride_kh, stride_vb, stride_vl, stride_vh, unit, seq, split,
                      H, G, HPU, HP, HD, BLOCK_N, USE_DOT, LAST_COMBINES, PRECISION, HC, CS, PDL, EARLY_REST)
    else:
        _enter(kc_ptr, vc_ptr, pos_ptr, first_row, seq, unit, split, SPLITS, L, pf_slots, stride_kb, stride_kl,
               stride_kh, stride_vb, stride_vl, stride_vh, G, HPU, BLOCK_N, KV_LINES, PDL, PREFETCH)
        lo, hi, n_active = _split_bounds(_length(tl.load(pos_ptr + seq), L), split, SPLITS, BLOCK_N)
        if split < n_active:
            heads, live_h = _unit_heads(unit, HPU, HP)
            kvh = (unit * HPU) // G  # the unit's one KV head
            d = tl.arange(0, HD)
            q = tl.load(q_ptr + seq.to(tl.int64) * (H * HD) + heads[:, None] * HD + d[None, :],
                        mask=live_h[:, None], other=0.0)
            row = (first_row + seq).to(tl.int64)
            k_base = kc_ptr + row * stride_kb + kvh * stride_kh
            v_base = vc_ptr + row * stride_vb + kvh * stride_vh
            acc, m_i, l_i = _attend(q, k_base, v_base, lo, hi, stride_kl, stride_vl, qk_scale,
                                    HP, HD, BLOCK_N, USE_DOT, PRECISION)
            _finish(acc, m_i, l_i, o_ptr, part_ptr, ml_ptr, count_ptr, seq, unit, split, heads, live_h, n_active,
                    SPLITS, H, HPU, HD, HC, CS, LAST_COMBINES)


@triton.jit
def _attend_early(q_ptr, kc_ptr, vc_ptr, pos_ptr, o_ptr, part_ptr, ml_ptr, count_ptr, first_row, qk_scale, SPLITS, L,
                  stride_kb, stride_kl, stride_kh, stride_vb, stride_vl, stride_vh, unit, seq, split,
                  H: tl.constexpr, G: tl.constexpr, HPU: tl.constexpr, HP: tl.constexpr, HD: tl.constexpr,
                  BLOCK_N: tl.constexpr, USE_DOT: tl.constexpr, LAST_COMBINES: tl.constexpr, PRECISION: tl.constexpr,
                  HC: tl.constexpr, CS: tl.constexpr, PDL: tl.constexpr, EARLY_REST: tl.constexpr = False):
    """A program of kv=early: its chunk's first block is loaded into registers before PDL's wait, as
    the GEMMs load their weights, so that after the wait only q and the new token's slot are still to
    come. EARLY_REST (the cache holds more than SPLITS x BLOCK_N slots): a chunk may hold more blocks,
    and the rest are walked after the wait, as kv=loop walks them. Every slot but the new one was
    written by an earlier step, whose kernels completed before this step's first kernel (a graph
    launch, or the embedding's plain launch) began, and so were the positions: they may be read while
    the kernels ahead of this one still run. The new slot, which qk_norm_rope_cache writes just
    before, is read after the wait. A position outside the cache reads its clamped slot after the wait
    too (nothing writes it: the same values)."""
    pos = tl.load(pos_ptr + seq)
    lo, hi, n_active = _split_bounds(_length(pos, L), split, SPLITS, BLOCK_N)
    fresh = tl.minimum(tl.maximum(pos, 0), L - 1)  # the slot the prep kernel writes (or would)
    kvh = (unit * HPU) // G
    row = (first_row + seq).to(tl.int64)
    k_base = kc_ptr + row * stride_kb + kvh * stride_kh
    v_base = vc_ptr + row * stride_vb + kvh * stride_vh
    d = tl.arange(0, HD)
    n = lo + tl.arange(0, BLOCK_N)
    live = (n < hi) & (split < n_active)
    old = (live & (n != fresh))[:, None]
    k = tl.load(k_base + n[:, None] * stride_kl + d[None, :], mask=old, other=0.0)
    v = tl.load(v_base + n[:, None] * stride_vl + d[None, :], mask=old, other=0.0)
    if PDL:
        pdl_enter(PDL)
    if split < n_active:
        new = (live & (n == fresh))[:, None]
        k = tl.where(new, tl.load(k_base + n[:, None] * stride_kl + d[None, :], mask=new, other=0.0), k)
        v = tl.where(new, tl.load(v_base + n[:, None] * stride_vl + d[None, :], mask=new, other=0.0), v)
        heads, live_h = _unit_heads(unit, HPU, HP)
        q = tl.load(q_ptr + seq.to(tl.int64) * (H * HD) + heads[:, None] * HD + d[None, :],
                    mask=live_h[:, None], other=0.0)
        acc, m_i, l_i = _attend_tile(q, k, v, n < hi, tl.zeros([HP, HD], tl.float32),
                                     tl.full([HP], float("-inf"), tl.float32), tl.zeros([HP], tl.float32), qk_scale,
                                     USE_DOT, PRECISION)
        if EARLY_REST:
            acc, m_i, l_i = _attend_more(q, k_base, v_base, lo + BLOCK_N, hi, stride_kl, stride_vl, qk_scale, m_i,
                                         l_i, acc, d, BLOCK_N, USE_DOT, PRECISION)
        _finish(acc, m_i, l_i, o_ptr, part_ptr, ml_ptr, count_ptr, seq, unit, split, heads, live_h, n_active,
                SPLITS, H, HPU, HD, HC, CS, LAST_COMBINES)


# ---- prep=fused: q/k RMSNorm + RoPE and the cache write inside the attention kernel ----------------

@triton.jit
def _rope_row(cos_ptr, sin_ptr, pos, stride_cos, HD: tl.constexpr, DT: tl.constexpr):
    """The RoPE row of a position, its first half (the table repeats per half), cast to DT then fp32
    as qk_norm_rope_cache loads it."""
    offs = tl.arange(0, HD // 2)
    cos = tl.load(cos_ptr + pos * stride_cos + offs).to(DT).to(tl.float32)
    sin = tl.load(sin_ptr + pos * stride_cos + offs).to(DT).to(tl.float32)
    return cos, sin


@triton.jit
def _prep_q(row, qw_ptr, heads, live_h, cos, sin, eps, HP: tl.constexpr, HD: tl.constexpr, DT: tl.constexpr):
    """The unit's query heads [HP, HD] (padding rows zero), normed and rotated by qk_norm_rope_cache's
    own _norm_rope_half: each head is a column of [HD/2, HP] halves, so its sums over axis 0 are per
    head and every step rounds as that kernel rounds."""
    HALF: tl.constexpr = HD // 2
    offs = tl.arange(0, HALF)
    cols = heads[None, :] * HD + offs[:, None]
    x1 = tl.load(row + cols, mask=live_h[None, :], other=0.0).to(tl.float32)
    x2 = tl.load(row + HALF + cols, mask=live_h[None, :], other=0.0).to(tl.float32)
    w1 = tl.load(qw_ptr + offs).to(tl.float32)[:, None]
    w2 = tl.load(qw_ptr + HALF + offs).to(tl.float32)[:, None]
    o1, o2 = _norm_rope_half(x1, x2, w1, w2, cos[:, None], sin[:, None], eps, HD, DT)
    return tl.reshape(tl.permute(tl.join(o1, o2), (1, 2, 0)), (HP, HD))  # [i, h, 2] -> [h, 2, i]: row h is o1 | o2


@triton.jit
def _prep_k(row, kw_ptr, col_head, cos, sin, eps, HD: tl.constexpr, DT: tl.constexpr):
    """The new token's key head (qkv column head col_head) normed and rotated, as its halves in DT:
    the same loads and steps as qk_norm_rope_cache's key path."""
    HALF: tl.constexpr = HD // 2
    offs = tl.arange(0, HALF)
    x1 = tl.load(row + col_head * HD + offs).to(tl.float32)
    x2 = tl.load(row + col_head * HD + HALF + offs).to(tl.float32)
    w1 = tl.load(kw_ptr + offs).to(tl.float32)
    w2 = tl.load(kw_ptr + HALF + offs).to(tl.float32)
    return _norm_rope_half(x1, x2, w1, w2, cos, sin, eps, HD, DT)


@triton.jit
def _add_slot(q, k1, k2, v, acc, m_i, l_i, qk_scale, HD: tl.constexpr, USE_DOT: tl.constexpr):
    """_attend's online softmax advanced by one slot whose key (halves k1 | k2) and value [HD] are in
    registers; p rounded to V's dtype where _attend's p.V is a tl.dot, as there."""
    k = tl.reshape(tl.permute(tl.join(k1, k2), (1, 0)), (HD,))
    s = tl.sum(q.to(tl.float32) * k.to(tl.float32)[None, :], axis=1) * qk_scale
    m_new = tl.maximum(m_i, s)
    alpha = tl.exp2(m_i - m_new)
    p = tl.exp2(s - m_new)
    l_i = l_i * alpha + p
    if USE_DOT:
        p = p.to(v.dtype).to(tl.float32)
    acc = acc * alpha[:, None] + p[:, None] * v.to(tl.float32)[None, :]
    return acc, m_new, l_i


@triton.jit
def _write_slot(k_out, v_out, k1, k2, v, HD: tl.constexpr):
    """The new token's key (halves k1 | k2) and value into its cache slot."""
    offs = tl.arange(0, HD // 2)
    tl.store(k_out + offs, k1.to(k_out.dtype.element_ty))
    tl.store(k_out + HD // 2 + offs, k2.to(k_out.dtype.element_ty))
    tl.store(v_out + tl.arange(0, HD), v)


@triton.jit
def decode_attention_prep_kernel(
    qkv_ptr, qw_ptr, kw_ptr, cos_ptr, sin_ptr, kc_ptr, vc_ptr, pos_ptr, o_ptr, part_ptr, ml_ptr, count_ptr,
    first_row, qk_scale, eps, SPLITS, L, L_ROPE, stride_qkv, stride_cos, pf_slots,
    stride_kb, stride_kl, stride_kh, stride_vb, stride_vl, stride_vh,
    H: tl.constexpr, KV: tl.constexpr, G: tl.constexpr, HPU: tl.constexpr, HP: tl.constexpr, HD: tl.constexpr,
    BLOCK_N: tl.constexpr, USE_DOT: tl.constexpr, LAST_COMBINES: tl.constexpr, PRECISION: tl.constexpr,
    HC: tl.constexpr, CS: tl.constexpr, KV_LINES: tl.constexpr = 1, PDL: tl.constexpr = False,
    PREFETCH: tl.constexpr = False, EARLY_KV: tl.constexpr = False, EARLY_REST: tl.constexpr = False,
):
    """decode_attention_kernel from the raw qkv row (prep=fused; see the module docstring): every
    program norms and rotates its own query heads; the program whose split ends at the new token's
    position (its sequence's last split) takes that slot's key and value from registers instead of
    the cache, and one such program per (sequence, KV head) writes them into the cache. No program
    reads that slot from memory, so the write races with no read; a position outside the cache or the
    RoPE table writes nothing (as qk_norm_rope_cache) and its slots are all read from the cache.
    EARLY_KV (kv=early): the chunk's first block, but the new slot, is loaded into registers before
    PDL's wait, as _attend_early loads it; the new slot is never read (it comes from the qkv row), so
    after the wait only the qkv row is still to come (with EARLY_REST, and the chunk's other blocks)."""
    unit = tl.program_id(0)
    seq = tl.program_id(1)
    split = tl.program_id(2)
    if EARLY_KV:
        # Positions and every slot but the new one were written before this step began (_attend_early).
        pos_in = tl.load(pos_ptr + seq)
        lo, hi, n_active = _split_bounds(_length(pos_in, L), split, SPLITS, BLOCK_N)
        new_here = (split == n_active - 1) & (pos_in >= 0) & (pos_in < L_ROPE)  # `fresh` below
        e_row = (first_row + seq).to(tl.int64)
        e_kvh = (unit * HPU) // G
        n = lo + tl.arange(0, BLOCK_N)
        old = (n < hi - new_here.to(hi.dtype)) & (split < n_active)
        d = tl.arange(0, HD)
        k_tile = tl.load(kc_ptr + e_row * stride_kb + e_kvh * stride_kh + n[:, None] * stride_kl + d[None, :],
                         mask=old[:, None], other=0.0)
        v_tile = tl.load(vc_ptr + e_row * stride_vb + e_kvh * stride_vh + n[:, None] * stride_vl + d[None, :],
                         mask=old[:, None], other=0.0)
        if PDL:
            pdl_enter(PDL)
    else:
        _enter(kc_ptr, vc_ptr, pos_ptr, first_row, seq, unit, split, SPLITS, L, pf_slots, stride_kb, stride_kl,
               stride_kh, stride_vb, stride_vl, stride_vh, G, HPU, BLOCK_N, KV_LINES, PDL, PREFETCH)
        pos_in = tl.load(pos_ptr + seq)
        lo, hi, n_active = _split_bounds(_length(pos_in, L), split, SPLITS, BLOCK_N)
    if split < n_active:
        DT: tl.constexpr = o_ptr.dtype.element_ty
        heads, live_h = _unit_heads(unit, HPU, HP)
        kvh = (unit * HPU) // G  # the unit's one KV head
        fresh = (split == n_active - 1) & (pos_in >= 0) & (pos_in < L_ROPE)  # then hi - 1 == pos_in
        pos = tl.minimum(tl.maximum(pos_in, 0), L_ROPE - 1).to(tl.int64)  # RoPE row, clamped as there
        row = qkv_ptr + seq.to(tl.int64) * stride_qkv  # q heads, k heads, v heads: column head * HD
        cos, sin = _rope_row(cos_ptr, sin_ptr, pos, stride_cos, HD, DT)
        q = _prep_q(row, qw_ptr, heads, live_h, cos, sin, eps, HP, HD, DT)
        b = (first_row + seq).to(tl.int64)
        k_base = kc_ptr + b * stride_kb + kvh * stride_kh
        v_base = vc_ptr + b * stride_vb + kvh * stride_vh
        if EARLY_KV:
            acc = tl.zeros([HP, HD], tl.float32)
            m_i = tl.full([HP], float("-inf"), tl.float32)
            l_i = tl.zeros([HP], tl.float32)
            if lo < hi - fresh.to(hi.dtype):  # a block of the new slot alone leaves the tile empty
                acc, m_i, l_i = _attend_tile(q, k_tile, v_tile, old, acc, m_i, l_i, qk_scale, USE_DOT, PRECISION)
            if EARLY_REST:  # the chunk's other blocks (none where it is one), but the new slot
                acc, m_i, l_i = _attend_more(q, k_base, v_base, lo + BLOCK_N, hi - fresh.to(hi.dtype), stride_kl,
                                             stride_vl, qk_scale, m_i, l_i, acc, d, BLOCK_N, USE_DOT, PRECISION)
        else:
            acc, m_i, l_i = _attend(q, k_base, v_base, lo, hi - fresh.to(hi.dtype), stride_kl, stride_vl, qk_scale,
                                    HP, HD, BLOCK_N, USE_DOT, PRECISION)
        if fresh:
            k1, k2 = _prep_k(row, kw_ptr, H + kvh, cos, sin, eps, HD, DT)
            v = tl.load(row + (H + KV + kvh) * HD + tl.arange(0, HD))  # v head j sits KV heads after k head j
            acc, m_i, l_i = _add_slot(q, k1, k2, v, acc, m_i, l_i, qk_scale, HD, USE_DOT)
            if (unit * HPU) % G == 0:  # the KV head's first unit: one writer per (sequence, KV head)
                _write_slot(k_base + pos * stride_kl, v_base + pos * stride_vl, k1, k2, v, HD)
        _finish(acc, m_i, l_i, o_ptr, part_ptr, ml_ptr, count_ptr, seq, unit, split, heads, live_h, n_active,
                SPLITS, H, HPU, HD, HC, CS, LAST_COMBINES)


@triton.jit
def decode_attention_combine_kernel(part_ptr, ml_ptr, o_ptr, pos_ptr, SPLITS, L,
                                    H: tl.constexpr, HD: tl.constexpr, SP: tl.constexpr, DC: tl.constexpr,
                                    BLOCK_N: tl.constexpr, PDL: tl.constexpr = False):
    """Program (head, sequence, DC-wide slice of head_dim): o = sum_s 2^(m_s - m) acc_s / sum_s 2^(m_s - m)
    l_s over the sequence's active splits (SPLITS <= SP), all read at once, where the sequence used
    several. Many small programs, one round trip to L2 each: the combine ends every split launch, and
    a program per (KV head, sequence) that walked every split of its group was 8 programs at batch 1,
    each reading up to 64 KB (the H100's batch 1 x 8k: 16.6 us against 17.4 with the last program
    combining, 18.8 at 8B; benchmarks/README.md, eleventh session)."""
    head = tl.program_id(0)
    seq = tl.program_id(1)
    if PDL:
        pdl_enter(PDL)
    _, _, n_active = _split_bounds(_length(tl.load(pos_ptr + seq), L), 0, SPLITS, BLOCK_N)
    if n_active > 1:
        s = tl.arange(0, SP)
        live = s < n_active  # every active split holds a slot: its m is finite
        idx = (seq.to(tl.int64) * H + head) * SPLITS + s
        d = tl.program_id(2) * DC + tl.arange(0, DC)
        # .cg: from L2, never from this SM's L1, where another program's partial cannot be.
        m_s = tl.load(ml_ptr + idx * 2, mask=live, other=float("-inf"), cache_modifier=".cg")
        l_s = tl.load(ml_ptr + idx * 2 + 1, mask=live, other=0.0, cache_modifier=".cg")
        a_s = tl.load(part_ptr + idx[:, None] * HD + d[None, :], mask=live[:, None], other=0.0, cache_modifier=".cg")
        w = tl.exp2(m_s - tl.max(m_s, axis=0))  # 0 where the split is not active
        out = tl.sum(a_s * w[:, None], axis=0) / tl.sum(l_s * w, axis=0)
        tl.store(o_ptr + seq.to(tl.int64) * (H * HD) + head * HD + d, out.to(o_ptr.dtype.element_ty))


KERNEL_SOURCES = (decode_attention_kernel, decode_attention_combine_kernel, decode_attention_prep_kernel, _attend,
                  _attend_more, _attend_tile, _attend_early,
                  _combine, _finish, _length, _split_bounds, _unit_heads, _rope_row, _prep_q, _prep_k, _add_slot,
                  _write_slot, _norm_rope_half, _qk_norm_rope_cache_kernel, pdl_enter, _prefetch_kv, _enter,
                  _prefetch_l2)


# ---- launchers ------------------------------------------------------------------------------------

class SplitPartials(NamedTuple):
    """A batch-1 decode attention left uncombined (a launcher's `partials`): the split partials acc [1,
    H, splits, hd] and (max, sum) [1, H, splits, 2] in fp32, base 2, of the sequence's active splits; o
    [1, 1, H * hd], which holds the output only where the sequence used one split (else it is not
    written); positions [1]; and what tells the active splits apart: the config's splits and BLOCK_N and
    the cache's slots (_split_bounds)."""

    o: torch.Tensor
    part: torch.Tensor
    ml: torch.Tensor
    positions: torch.Tensor
    splits: int
    block_n: int
    context: int


# The most splits a batch-1 launch leaves to o_proj (SplitPartials): the fold's programs hold every split
# of a head at once (kernel_space.combine_o_proj), 64 x head_dim fp32 values over 128 threads at most.
FOLD_MAX_SPLITS = 64


def leaves_partials(config: dict, problem: AttentionProblem) -> bool:
    """Whether a launch asked for partials returns them: batch 1 and 2..FOLD_MAX_SPLITS splits (else o)."""
    return problem.batch == 1 and 1 < config["SPLITS"] <= FOLD_MAX_SPLITS


def decode_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, positions: torch.Tensor,
                     scale: float, first_row: int = 0, config: dict | None = None,
                     partials: bool = False) -> torch.Tensor | SplitPartials:
    """q [B, 1, H, hd] (contiguous), caches [rows, L, KV, hd] (unit stride in hd), positions [B] or
    [B, 1] (integers in 0..L-1; not checked, which would synchronise with the GPU, but the kernel
    clamps them to the cache, so it never reads outside it) -> o [B, 1, H * hd] in q's dtype.
    config: a fused config of SPACE with prep=separate (q is already normed and rotated, its K/V
    written), or None for attention_plan's choice. partials: return the SplitPartials uncombined where
    leaves_partials says so (else o, combined as the config says)."""
    problem = _check_inputs(q, k_cache, v_cache, positions, scale, first_row)
    config = _resolve(config, problem, q.device)
    if prep_of(config) == "fused":
        raise ValueError("config prep=fused norms and rotates q and k itself: call decode_attention_prep with the "
                         "qkv rows")
    partials, config = _partials_config(partials, config, problem)
    positions = _flat(positions)
    grid, (o, part, ml, counts), pf_slots, meta = _launch_args(config, problem, q)
    _gemm._launcher(decode_attention_kernel, grid)(
        q, k_cache, v_cache, positions, o, part, ml, counts,
        first_row, scale * LOG2E, config["SPLITS"], problem.context, pf_slots,
        *k_cache.stride()[:3], *v_cache.stride()[:3], **meta,
    )
    return _end(grid, (o, part, ml), positions, problem, config, meta, partials)


def _partials_config(partials: bool, config: dict, problem: AttentionProblem) -> tuple[bool, dict]:
    """(whether the launch leaves its partials, the config it runs): where it does, no program combines
    and each ends with its partial (combine=kernel's binary, the combine kernel not launched)."""
    if partials and problem.batch != 1:
        raise ValueError(f"decode attention leaves its partials to o_proj at batch 1 only, got batch {problem.batch}")
    if partials and leaves_partials(config, problem):
        return True, {**config, "combine": "kernel"}
    return False, config


def _end(grid: tuple, buffers: tuple, positions: torch.Tensor, problem: AttentionProblem, config: dict, meta: dict,
         partials: bool) -> torch.Tensor | SplitPartials:
    """A launch's result: the SplitPartials where asked for (nothing combines them here), else o once
    the combine kernel ran (where the config has one)."""
    o, part, ml = buffers
    if partials:
        return SplitPartials(o, part, ml, positions, config["SPLITS"], config["BLOCK_N"], problem.context)
    _launch_combine(grid, buffers, positions, problem, config, meta)
    return o


def decode_attention_prep(qkv: torch.Tensor, q_norm_w: torch.Tensor, k_norm_w: torch.Tensor, cos: torch.Tensor,
                          sin: torch.Tensor, eps: float, k_cache: torch.Tensor, v_cache: torch.Tensor,
                          positions: torch.Tensor, scale: float, first_row: int = 0,
                          config: dict | None = None, partials: bool = False) -> torch.Tensor | SplitPartials:
    """Decode attention from the new tokens' raw qkv rows: q/k RMSNorm per head, RoPE, K/V written into
    the caches at each sequence's position, then attention over them, as qk_norm_rope_cache followed
    by decode_attention computes it. qkv [B, (H + 2 KV) * hd] (q heads, k heads, v heads; rmsnorm_qkv's
    output, unit column stride), q_norm_w / k_norm_w [hd], cos / sin [max_position, hd] (the model's
    RoPE tables, fp32), caches and positions as decode_attention's -> o [B, 1, H * hd] in qkv's dtype.
    A position outside the cache or the RoPE table writes no K/V (its q takes the table's last row).
    config prep=fused runs one kernel (plus the combine kernel with combine=kernel); prep=separate
    (and None: the default plan) runs qk_norm_rope_cache, then decode_attention. partials: as
    decode_attention's."""
    problem = _check_prep_inputs(qkv, q_norm_w, k_norm_w, cos, sin, eps, k_cache, v_cache, positions, scale,
                                 first_row)
    config = _resolve(config, problem, qkv.device, from_qkv=True)
    if prep_of(config) == "separate":
        q = _separate_prep(qkv, q_norm_w, k_norm_w, cos, sin, eps, k_cache, v_cache, positions, first_row, problem)
        return decode_attention(q, k_cache, v_cache, positions, scale, first_row, config, partials)
    partials, config = _partials_config(partials, config, problem)
    positions = _flat(positions)
    grid, (o, part, ml, counts), pf_slots, meta = _launch_args(config, problem, qkv)
    _gemm._launcher(decode_attention_prep_kernel, grid)(
        qkv, q_norm_w, k_norm_w, cos, sin, k_cache, v_cache, positions, o, part, ml, counts,
        first_row, scale * LOG2E, eps, config["SPLITS"], problem.context, min(problem.context, cos.shape[0]),
        qkv.stride(0), cos.stride(0), pf_slots, *k_cache.stride()[:3], *v_cache.stride()[:3], KV=problem.kv_heads,
        **meta,
    )
    return _end(grid, (o, part, ml), positions, problem, config, meta, partials)


def _separate_prep(qkv, q_norm_w, k_norm_w, cos, sin, eps, k_cache, v_cache, positions, first_row,
                   problem: AttentionProblem) -> torch.Tensor:
    """q of prep=separate: qk_norm_rope_cache's launch (it writes K/V too). The compile pool (inside
    _gemm.compile_only) only builds the attention kernel, so it launches nothing here: q is left empty."""
    b, h, hd = problem.batch, problem.heads, problem.head_dim
    if _gemm._COMPILE_ONLY:
        return torch.empty((b, 1, h, hd), dtype=qkv.dtype, device=qkv.device)
    return qk_norm_rope_cache(qkv, q_norm_w, k_norm_w, cos, sin, positions.reshape(b, 1), k_cache, v_cache, h,
                              problem.kv_heads, eps, first_row)


def prep_of(config: dict) -> str:
    """A fused config's prep: "separate" where it has none (tables written before prep was a key)."""
    return config.get("prep", DEFAULTS["prep"])


def kv_of(config: dict) -> str:
    """A fused config's kv: "loop" where it has none (tables written before kv was a key)."""
    return config.get("kv", DEFAULTS["kv"])


def _resolve(config: dict | None, problem: AttentionProblem, device: torch.device, from_qkv: bool = False) -> dict:
    """The config a launcher runs: for None the plan (plan_from_qkv where the launch starts from the
    qkv rows); ValueError for unfused or one check_config refuses."""
    if config is None:
        config = default_plan(problem, device, from_qkv)
    if config.get("impl") == "unfused":
        raise ValueError("config impl=unfused: call decode_attention_unfused (the launcher runs the kernel)")
    reason = check_config(config, problem)
    if reason:
        raise ValueError(f"decode_attention config {config}: {reason}")
    return config


def _flat(positions: torch.Tensor) -> torch.Tensor:
    positions = positions.reshape(-1)
    return positions if positions.is_contiguous() else positions.contiguous()


def _launch_args(config: dict, problem: AttentionProblem, like: torch.Tensor) -> tuple:
    """What both attention kernels take alike: the grid (unit, sequence, split), the buffers (o, the
    partials and the counters; o stands in for those a config does not use), the slots a program
    prefetches before PDL's wait, and the compile-time arguments."""
    b, h, hd = problem.batch, problem.heads, problem.head_dim
    group_pack = config["pack"] == "group"
    hpu = problem.group if group_pack else 1
    units = problem.kv_heads if group_pack else h
    splits = config["SPLITS"]
    last = splits > 1 and config["combine"] == "last_program"
    o = torch.empty((b, 1, h * hd), dtype=like.dtype, device=like.device)
    if splits > 1:
        part = torch.empty((b, h, splits, hd), dtype=torch.float32, device=like.device)
        ml = torch.empty((b, h, splits, 2), dtype=torch.float32, device=like.device)
    else:
        part = ml = o  # unused: one split writes o itself
    counts = _gemm._counters(like.device, b * units) if last else o
    programs = units * b * splits
    early = kv_of(config) == "early"
    pf_slots = 0 if early else prefetch_slots(problem, config, programs, like.device)
    pdl = pdl_launch_args(like.device)
    if pdl:
        pdl["PREFETCH"] = pf_slots > 0
    hc = next_pow2(hpu)
    meta = dict(H=h, G=problem.group, HPU=hpu, HP=_rows(problem.group, config["pack"]), HD=hd,
                BLOCK_N=config["BLOCK_N"], USE_DOT=group_pack, LAST_COMBINES=last,
                PRECISION="ieee" if like.dtype == torch.float32 else "tf32",
                HC=hc, CS=combine_splits(hc, hd, 32 * config["num_warps"], splits),
                KV_LINES=kv_lines(hd, problem.elem_bytes), num_warps=config["num_warps"],
                num_stages=config["num_stages"], **pdl)
    if early:  # only then: every other config builds the binary it always did
        meta["EARLY_KV"] = True
        if not one_block(config, problem.context):
            meta["EARLY_REST"] = True
    return (units, b, splits), (o, part, ml, counts), pf_slots, meta


def _launch_combine(grid: tuple, buffers: tuple, positions: torch.Tensor, problem: AttentionProblem, config: dict,
                    meta: dict) -> None:
    """The combine kernel, where the config splits and combine=kernel: a program per (head, sequence,
    COMBINE_DC-wide slice of head_dim)."""
    if config["SPLITS"] == 1 or meta["LAST_COMBINES"]:
        return
    o, part, ml = buffers
    pdl = {key: meta[key] for key in ("PDL", "launch_pdl") if key in meta}
    hd = problem.head_dim
    dc = min(COMBINE_DC, hd)
    _gemm._launcher(decode_attention_combine_kernel, (problem.heads, grid[1], hd // dc))(
        part, ml, o, positions, config["SPLITS"], problem.context,
        H=problem.heads, HD=hd, SP=next_pow2(config["SPLITS"]), DC=dc, BLOCK_N=config["BLOCK_N"],
        num_warps=COMBINE_WARPS, **pdl,
    )


COMBINE_WARPS = 4  # a combine program reads [SPLITS, COMBINE_DC] fp32 partials: at most 64 x 32, 16 a thread
COMBINE_DC = 32  # head_dim values a combine program writes (32 and 64 tied on the H100; 32 makes more programs)
COMBINE_VALUES = 32  # fp32 partial values a thread holds per combine step: CS = threads * this / (heads * hd)


def combine_splits(heads: int, head_dim: int, threads: int, splits: int) -> int:
    """CS: the splits a combine reads in one step, a power of two, at most the splits (rounded up)
    and at most COMBINE_VALUES partial values a thread, but at least one."""
    return max(1, min(next_pow2(splits), threads * COMBINE_VALUES // (heads * head_dim)))


def kv_lines(head_dim: int, elem_bytes: int) -> int:
    """128-byte lines of one slot's head in the cache (at least one): the L2 prefetch's pointers a slot."""
    return max(1, head_dim * elem_bytes // 128)


PREFETCH_L2_SHARE = 0.5  # of L2 that one launch's K/V prefetch may fill before PDL's wait


def prefetch_slots(problem: AttentionProblem, config: dict, programs: int, device: torch.device) -> int:
    """Slots a program prefetches into L2 before PDL's wait: its whole chunk (at the cache's full
    length) where all programs' chunks together fit in PREFETCH_L2_SHARE of L2, else 0 (none); and
    none off PDL or where the grid is more than two programs an SM (most programs then start after
    the wait anyway, as with _gemm's weight prefetch). On the H100 in the 0.6B decode step
    (benchmarks/README.md, ninth session) the prefetch made short caches faster (batch 8 x 256: 1.101
    against 1.143 ms a step) and a chunk prefetched in part slower (batch 1 x 8k, 32 splits: 1.343
    against 1.317 ms; batch 32 x 256, one split: 1.517 against 1.505). KERNEL_SEARCH_KV_PREFETCH=0
    turns it off (to measure without it, as KERNEL_SEARCH_PDL=0 does PDL)."""
    if not _gemm.pdl_enabled(device) or programs > 2 * _sm_count(device):
        return 0
    if os.environ.get("KERNEL_SEARCH_KV_PREFETCH", "1") == "0":  # to measure without it
        return 0
    bn = config["BLOCK_N"]
    chunk = math.ceil(math.ceil(problem.context / bn) / config["SPLITS"]) * bn
    fits = programs * chunk * 2 * problem.head_dim * problem.elem_bytes <= _gemm.l2_bytes(device) * PREFETCH_L2_SHARE
    return chunk if fits else 0


def _rows(group: int, pack: str) -> int:
    """Rows of a program's q tile: the group padded to tl.dot's 16 (pack=group), or one head."""
    return max(16, next_pow2(group)) if pack == "group" else 1


def _sm_count(device: torch.device) -> int:
    return _gemm.device_info(device)[1] if _gemm.on_gpu(device) else 132  # the interpreter: plan as for an H100


def _check_tensor(name: str, t, ndim: int) -> None:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(t.shape)}")
    if t.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{name} has dtype {t.dtype}; expected one of {FLOAT_DTYPES}")


def _check_caches(x: torch.Tensor, k_cache, v_cache, name: str = "q") -> None:
    """The caches: 4-D, x's dtype and device, unit stride in head_dim, one shape."""
    for cache_name, cache in (("k_cache", k_cache), ("v_cache", v_cache)):
        _check_tensor(cache_name, cache, 4)
        if cache.dtype != x.dtype or cache.device != x.device:
            raise ValueError(f"{cache_name} is {cache.dtype} on {cache.device}, but {name} is {x.dtype} on {x.device}")
        if cache.stride(-1) != 1:
            raise ValueError(f"{cache_name} needs a unit stride in head_dim, got strides {cache.stride()}")
    if k_cache.shape != v_cache.shape:
        raise ValueError(f"k_cache {tuple(k_cache.shape)} and v_cache {tuple(v_cache.shape)} differ in shape")


def _check_positions(positions, q: torch.Tensor) -> None:
    b = q.shape[0]
    if not isinstance(positions, torch.Tensor):
        raise ValueError(f"positions must be a torch.Tensor, got {type(positions).__name__}")
    if positions.dtype not in (torch.int32, torch.int64) or positions.numel() != b:
        raise ValueError(f"positions must be an int32/int64 tensor of {b} elements ([B] or [B, 1]), got "
                         f"{positions.dtype} of shape {tuple(positions.shape)}")
    if positions.device != q.device:
        raise ValueError(f"positions is on {positions.device}, but q is on {q.device}")


def _check_problem(x: torch.Tensor, heads: int, k_cache, positions, scale, first_row) -> AttentionProblem:
    """What both launchers check alike, once the caches passed: the head geometry, positions, first_row
    and scale. x: q, or the qkv rows (its first dim is the batch)."""
    b = x.shape[0]
    rows, length, kv, hd = k_cache.shape
    reason = unsupported_reason(heads, kv, hd)
    if reason:
        raise ValueError(reason)
    _check_positions(positions, x)
    if not isinstance(first_row, int) or first_row < 0 or first_row + b > rows:
        raise ValueError(f"first_row {first_row!r} + batch {b} must fit in the caches' {rows} rows")
    if not isinstance(scale, (int, float)) or not scale > 0:
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    return AttentionProblem(b, heads, kv, hd, length, str(x.dtype).removeprefix("torch."))


def _check_inputs(q, k_cache, v_cache, positions, scale, first_row) -> AttentionProblem:
    """decode_attention's checks: ValueError naming the bad value. Returns the problem they describe."""
    _check_tensor("q", q, 4)
    if q.shape[1] != 1:
        raise ValueError(f"decode_attention takes one token per sequence, got q of shape {tuple(q.shape)}")
    if not q.is_contiguous():
        raise ValueError(f"q must be contiguous, got strides {q.stride()}")
    _check_caches(q, k_cache, v_cache)
    if k_cache.shape[3] != q.shape[3]:
        raise ValueError(f"the caches' head_dim {k_cache.shape[3]} differs from q's {q.shape[3]}")
    return _check_problem(q, q.shape[2], k_cache, positions, scale, first_row)


def _check_prep_tables(q_norm_w, k_norm_w, cos, sin, eps, like: torch.Tensor, hd: int) -> None:
    """The norm gains [hd] and the RoPE tables [rows, hd] (unit stride in hd, one shape and stride)."""
    for name, w in (("q_norm_w", q_norm_w), ("k_norm_w", k_norm_w)):
        _check_tensor(name, w, 1)
        if w.shape != (hd,) or w.stride(0) != 1 or w.device != like.device:
            raise ValueError(f"{name} must be [{hd}] with unit stride on {like.device}, got {tuple(w.shape)} "
                             f"on {w.device}")
    for name, table in (("cos", cos), ("sin", sin)):
        _check_tensor(name, table, 2)
        if table.shape[0] < 1 or table.shape[1] != hd or table.stride(1) != 1 or table.device != like.device:
            raise ValueError(f"{name} must be [positions >= 1, {hd}] with unit stride in its last dim on "
                             f"{like.device}, got {tuple(table.shape)} on {table.device}")
    if sin.shape != cos.shape or sin.stride() != cos.stride():
        raise ValueError(f"sin {tuple(sin.shape)} and cos {tuple(cos.shape)} differ in shape or strides")
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not 0 <= eps < math.inf:
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")


def _check_prep_inputs(qkv, q_norm_w, k_norm_w, cos, sin, eps, k_cache, v_cache, positions, scale,
                       first_row) -> AttentionProblem:
    """decode_attention_prep's checks: ValueError naming the bad value. Returns the problem."""
    _check_tensor("qkv", qkv, 2)
    if qkv.stride(1) != 1:
        raise ValueError(f"qkv needs a unit column stride, got strides {qkv.stride()}")
    _check_caches(qkv, k_cache, v_cache, "qkv")
    kv, hd = k_cache.shape[2], k_cache.shape[3]
    heads, rest = divmod(qkv.shape[1], hd)
    heads -= 2 * kv
    if rest or heads < 1:
        raise ValueError(f"qkv's {qkv.shape[1]} columns are not (heads + 2 * {kv}) * {hd}: query heads, then the "
                         f"caches' {kv} key and {kv} value heads of {hd}")
    _check_prep_tables(q_norm_w, k_norm_w, cos, sin, eps, qkv, hd)
    return _check_problem(qkv, heads, k_cache, positions, scale, first_row)


# ---- unfused baseline and reference ---------------------------------------------------------------

def decode_attention_unfused(q, k_cache, v_cache, positions, scale: float, first_row: int = 0) -> torch.Tensor:
    """PyTorch SDPA over the cache rows with a mask of each sequence's slots, as a plain model runs
    decode with a static cache. GQA without copying K/V: a KV head's group of query heads becomes
    that head's query rows (head h reads KV head h // group, as transformers' repeat_kv)."""
    _check_inputs(q, k_cache, v_cache, positions, scale, first_row)
    b, _, h, hd = q.shape
    kv = k_cache.shape[2]
    keys = k_cache[first_row:first_row + b].transpose(1, 2)  # [B, KV, L, hd]
    values = v_cache[first_row:first_row + b].transpose(1, 2)
    slots = torch.arange(k_cache.shape[1], device=q.device)
    mask = (slots[None, :] <= positions.reshape(b, 1))[:, None, None, :]  # [B, 1, 1, L]
    o = F.scaled_dot_product_attention(q.view(b, kv, h // kv, hd), keys, values, attn_mask=mask, scale=scale)
    return o.reshape(b, 1, h * hd)


def decode_attention_reference(q, k_cache, v_cache, positions, scale: float, first_row: int = 0) -> torch.Tensor:
    """The same in fp64, slots past each sequence's position zeroed (so garbage there cannot leak in)."""
    b, _, h, hd = q.shape
    kv = k_cache.shape[2]
    live = torch.arange(k_cache.shape[1], device=q.device)[None, :] <= positions.reshape(b, 1)  # [B, L]
    keys = k_cache[first_row:first_row + b].to(torch.float64).transpose(1, 2)  # [B, KV, L, hd]
    values = v_cache[first_row:first_row + b].to(torch.float64).transpose(1, 2)
    keys = torch.where(live[:, None, :, None], keys, 0.0)
    values = torch.where(live[:, None, :, None], values, 0.0)
    qg = q.to(torch.float64).view(b, kv, h // kv, hd)
    s = (qg @ keys.transpose(-1, -2)) * scale
    s = s.masked_fill(~live[:, None, None, :], float("-inf"))
    return (s.softmax(-1) @ values).reshape(b, 1, h * hd)


# ---- problem, search space, check and plan --------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AttentionProblem:
    """One decode attention shape: batch sequences of up to `context` cache slots, dtype a name."""

    batch: int
    heads: int
    kv_heads: int
    head_dim: int
    context: int
    dtype: str = "bfloat16"

    def __post_init__(self):
        for name in ("batch", "heads", "kv_heads", "head_dim", "context"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"AttentionProblem.{name} must be a positive int, got {value!r}")
        if self.heads % self.kv_heads:
            raise ValueError(f"AttentionProblem: {self.heads} heads do not split into groups over "
                             f"{self.kv_heads} KV heads")
        if self.dtype not in DTYPE_BYTES:
            raise ValueError(f"AttentionProblem.dtype must be one of {', '.join(DTYPE_BYTES)}, got {self.dtype!r}")

    @property
    def group(self) -> int:
        return self.heads // self.kv_heads

    @property
    def elem_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    def kv_bytes(self) -> int:
        """K and V bytes a step reads with every sequence at the full context."""
        return 2 * self.batch * self.context * self.kv_heads * self.head_dim * self.elem_bytes


IMPLS = ("fused", "unfused")
SPLITS_VALUES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
PREPS = ("separate", "fused")
KV_LOADS = ("loop", "early")
# Keys a config may leave out, with the value it then means: prep and kv came after the first tables.
DEFAULTS = {"prep": "separate", "kv": "loop"}
SPACE = SearchSpace({
    "impl": IMPLS,
    "SPLITS": SPLITS_VALUES,  # chunks per sequence (each ceil(len / SPLITS) slots, BLOCK_N-rounded)
    "BLOCK_N": (16, 32, 64, 128, 256),  # cache slots per inner step
    "pack": ("group", "head"),
    "combine": ("kernel", "last_program"),
    "num_warps": (1, 2, 4, 8),
    "num_stages": (1, 2, 3, 4),
    # Who norms and rotates q/k and writes the new K/V: qk_norm_rope_cache before the attention kernel
    # (separate), or the attention kernel itself from the qkv row (fused: one launch fewer a layer).
    "prep": PREPS,
    # Where a program reads its K/V: in its loop after PDL's wait (loop), or its chunk's first block into
    # registers before the wait and any other blocks in the loop after it (early: _attend_early, or the
    # prep kernel's EARLY_KV path with prep=fused, where the new slot comes from the qkv row).
    "kv": KV_LOADS,
})
HEAD_DIMS = (16, 32, 64, 128, 256)
MAX_GROUP = 16  # query heads per KV head: Qwen3 has 2 (0.6B) to 8 (32B)
REGISTER_BUDGET = 128  # fp32 registers a thread may spend on a program's tiles before it spills (255 max)


def unsupported_reason(heads: int, kv_heads: int, head_dim: int) -> str | None:
    """Why the kernel cannot serve these head shapes (the runtime then runs PyTorch), or None."""
    if head_dim not in HEAD_DIMS:
        kind = "not a power of two" if head_dim & (head_dim - 1) else "outside the supported range"
        return (f"head_dim {head_dim} is {kind}: the Triton attention kernels take head_dim in "
                f"{HEAD_DIMS} (tl.arange spans a power of two)")
    if heads % kv_heads:
        return f"{heads} query heads do not split into groups over {kv_heads} KV heads"
    if heads // kv_heads > MAX_GROUP:
        return f"a group of {heads // kv_heads} query heads per KV head exceeds {MAX_GROUP}"
    return None


# Fitted to Triton 3.6's sm_90 compiles of this kernel (40 configs, bf16/fp16/fp32, hd 64/128, groups
# 2-8, exact or above in every one): pack=group pipelines its K and V loads (they feed tl.dot) in
# num_stages - 1 buffers each (num_stages 1: the K tile alone, for its transpose), beside the q tile
# and up to 8 KB of scratch; pack=head feeds no tl.dot, so Triton pipelines nothing and only
# reduction scratch (<= 8 KB) is used, whatever num_stages says.
SMEM_SCRATCH = 8192


def smem_bytes(cfg: dict, problem: AttentionProblem) -> int:
    """Shared memory a program of cfg holds (see SMEM_SCRATCH's note)."""
    if cfg["pack"] == "head":
        return SMEM_SCRATCH
    tile = cfg["BLOCK_N"] * problem.head_dim * problem.elem_bytes
    buffers = 2 * (cfg["num_stages"] - 1) if cfg["num_stages"] > 1 else 1
    return buffers * tile + _rows(problem.group, "group") * problem.head_dim * problem.elem_bytes + SMEM_SCRATCH


def _check_keys(cfg: dict) -> str | None:
    missing = [key for key in SPACE.values if key not in cfg and key not in DEFAULTS]
    if missing:
        return f"config lacks {', '.join(missing)}"
    for key, value in cfg.items():
        if key not in SPACE.values:
            return f"{key} is not a parameter of decode_attention ({', '.join(SPACE.values)})"
        if value not in SPACE.values[key]:
            return f"{key}={value!r} is not in the search space {SPACE.values[key]}"
    return None


def _check_registers(cfg: dict, problem: AttentionProblem) -> str | None:
    threads = 32 * cfg["num_warps"]
    hd, bn = problem.head_dim, cfg["BLOCK_N"]
    if cfg["pack"] == "head":
        # The [1, BLOCK_N, hd] products of q.k and p.v are spread over the program's threads.
        regs = bn * hd // threads
        what = "pack=head holds BLOCK_N*head_dim/threads"
    else:
        regs = _rows(problem.group, "group") * (bn + hd) // threads
        what = "pack=group holds rows*(BLOCK_N+head_dim)/threads"
    if kv_of(cfg) == "early":
        # Its K and V tiles are held from before the wait to the product.
        regs += 2 * bn * hd * problem.elem_bytes // (4 * threads)
        what += " plus its K and V tiles (kv=early)"
    if regs > REGISTER_BUDGET:
        return f"{what} = {regs} fp32 registers per thread (> {REGISTER_BUDGET}: it would spill)"
    return None


def one_block(cfg: dict, context: int) -> bool:
    """Whether every program's chunk is at most one block at every length of a cache of `context` slots
    (context <= SPLITS x BLOCK_N): kv=early then loads all its K/V before PDL's wait and has no loop."""
    return context <= cfg["SPLITS"] * cfg["BLOCK_N"]


def check_config(cfg: dict, problem: AttentionProblem, smem_limit: int = DEFAULT_SMEM_LIMIT) -> str | None:
    """Why `cfg` cannot run on `problem`, or None if it can. Compiles nothing, never raises."""
    impl = cfg.get("impl")
    if impl not in IMPLS:
        return f"impl must be one of {IMPLS}, got {impl!r}"
    if impl == "unfused":
        return None
    reason = (unsupported_reason(problem.heads, problem.kv_heads, problem.head_dim) or _check_keys(cfg)
              or _check_registers(cfg, problem))
    if reason:
        return reason
    smem = smem_bytes(cfg, problem)
    if smem > smem_limit:
        return f"shared memory estimate {smem} B exceeds the device limit {smem_limit} B"
    return None


def redundant_reason(cfg: dict, problem: AttentionProblem) -> str | None:
    """Why a runnable cfg need not be searched at this problem (it repeats another config), or None.
    prep is never redundant: fused and separate run different launches at every problem."""
    if cfg.get("impl") == "unfused":
        return None
    if cfg["SPLITS"] == 1 and cfg["combine"] != "kernel":
        return "combine only matters with SPLITS > 1 (use 'kernel' there: one config, not two)"
    if cfg["pack"] == "head" and cfg["num_stages"] != 1:
        return "pack=head has no tl.dot, so Triton pipelines none of its loads: num_stages > 1 is num_stages=1"
    if kv_of(cfg) == "early" and cfg["num_stages"] != 1 and one_block(cfg, problem.context):
        return ("kv=early of one block a program has no loop, so Triton pipelines none of its loads: "
                "num_stages > 1 is num_stages=1")
    blocks = math.ceil(problem.context / cfg["BLOCK_N"])
    fewer = [s for s in SPLITS_VALUES if blocks <= s < cfg["SPLITS"]]
    if fewer:
        # Every SPLITS >= blocks runs one block a split; the smallest of them (12 for 10 blocks: there is
        # no 10) is the one config of those.
        return (f"SPLITS={cfg['SPLITS']} leaves empty splits: context {problem.context} has {blocks} blocks "
                f"(SPLITS={fewer[0]} runs the same chunks)")
    if cfg["BLOCK_N"] > max(16, next_pow2(problem.context)):
        return f"BLOCK_N={cfg['BLOCK_N']} exceeds the padded context {max(16, next_pow2(problem.context))}"
    return None


def sample_configs(problem: AttentionProblem, count: int, seed: int = 0, sm_count: int = 132,
                   smem_limit: int = DEFAULT_SMEM_LIMIT, prep: str | None = None) -> list[dict]:
    """The default plan from the qkv rows (plan_from_qkv), then up to count - 1 distinct random configs
    of SPACE that can run and are not redundant at this problem. prep: every config's prep (the plan's
    too), or None: drawn. A caller that hands the kernel a prepared q (decode_attention) asks for
    "separate"."""
    plan = plan_from_qkv(problem.batch, problem.heads, problem.kv_heads, problem.head_dim, problem.context,
                         sm_count, problem.elem_bytes)
    fixed = {} if prep is None else {"prep": prep}
    configs, rng = [{**plan, **fixed}], random.Random(seed)
    for _ in range(200 * count):
        if len(configs) >= count:
            break
        cfg = {**SPACE.sample(rng), "impl": "fused", **fixed}
        if cfg not in configs and not check_config(cfg, problem, smem_limit) and not redundant_reason(cfg, problem):
            configs.append(cfg)
    return configs


# The plan, from the H100 sweep at 256 cache slots (benchmarks/results/attn_sweep_H100_2026-11-24.json:
# BLOCK_N 64, 4 warps, 2 stages best at batch 1 and within 4% at batch 32) and the wave rule below.
PLAN_BLOCK_N, PLAN_WARPS, PLAN_STAGES = 64, 4, 2
MIN_CHUNK = 64  # at 256 slots, batch 1, 64-slot chunks ran in 3.6 us against 4.8 with 128
LONG_CONTEXT = 1024  # past this a program walks >= 512 KB of K/V (hd 128, bf16): wave quantisation shows
WAVE_EFFICIENCY = 0.85  # splits whose waves are this close to the best-filled (FlashAttention's rule)
# From this many splits the plan combines by the kernel: at batch 1 x 8k (32 splits) the last program
# of a KV head's group combined 32 partials alone after everyone else had finished, 0.7 us (0.6B) and
# 2.1 us (8B) slower than the combine kernel; at batch 8 x 8k (4 splits) it was 0.6 us faster (H100).
KERNEL_COMBINE_SPLITS = 16
PLAN_PROGRAMS_PER_SM = 2  # a wave of the plan, per SM (attention_plan's docstring: the sweep's best splits)
_DTYPE_OF_BYTES = {2: "bfloat16", 4: "float32"}


def _used_splits(splits: int, blocks: int) -> int:
    """Splits that hold slots when `blocks` BLOCK_N blocks are cut in chunks of whole blocks."""
    return math.ceil(blocks / math.ceil(blocks / splits))


def attention_plan(batch: int, heads: int, kv_heads: int, head_dim: int, context: int, sm_count: int,
                   elem_bytes: int = 2, early: bool = True, fused_prep: bool = False) -> dict:
    """The default config from a prepared q: pack=group (each K/V tile read once), BLOCK_N 64, 4 warps,
    2 stages, prep separate (qk_norm_rope_cache, as before prep was a choice), SPLITS
    so that one to two waves of programs run, and where it splits a few ways (fewer than
    KERNEL_COMBINE_SPLITS) combine=last_program, else the combine kernel. A wave is
    sm_count x PLAN_PROGRAMS_PER_SM (264 on an H100). The first rule split only while (sequence, KV
    head) pairs were fewer than the SMs, so at 8k x batch 8 (64 pairs) 128 programs each walked 4k
    slots; the second counted a wave as the
    programs an SM can hold (5: 660 on an H100) and over-split: 64 splits at batch 1 from 4k slots on,
    8 at batch 8, 2 at batch 32, where the H100 sweep of 2026-11-26 (benchmarks/results/
    attn_bench_qwen3-0.6b_H100_2026-11-26.json) measured 32, 4 and 1 fastest at every context of
    2k-32k it tried (batch 1, 8k: 23.2 us against 29.0; batch 8, 8k: 93.6 against 95.4; batch 32, 8k:
    347.1 against 355.3) and a probe at 4k slots, batch 1, 16.5 us with 6 splits against 23.6 with 64.

    Short contexts (<= LONG_CONTEXT) split to fill one wave. Longer ones take the most splits that run
    at most two waves. Until the twenty-fourth session they took the fewest of those whose last wave
    is within WAVE_EFFICIENCY of the best-filled one (FlashAttention's num_splits rule: a last wave
    partly empty idles SMs for long), which KERNEL_SEARCH_ATTN_SPLITS=fewest gives back (to measure).
    With the combine kernel of the eleventh session, more programs (up to four an SM: 16 warps keeping
    loads in flight) ran faster even where their last wave was partly empty, in the 0.6B decode step
    on an H200 (benchmarks/README.md, 8k + 32 slots: batch 1, 64 splits (43 used, 1.3 waves) 1.063 ms a
    step against 32 (26 used) 1.113; batch 1 x 16k 1.327 against 1.456; batch 8, 8 splits 2.672
    against 4 splits 2.892). The H100 sweep above timed the attention alone with the older combine.

    Then, unless early is False, kv=early where a program a block fits EARLY_SEPARATE's rules (see
    _early_plan); with fused_prep (plan_from_qkv, work from the qkv rows) by EARLY_FUSED's rules and
    with prep fused there."""
    block_n = min(PLAN_BLOCK_N, max(16, next_pow2(context)))
    cfg = {"impl": "fused", "SPLITS": 1, "BLOCK_N": block_n, "pack": "group", "combine": "kernel",
           "num_warps": PLAN_WARPS, "num_stages": PLAN_STAGES, "prep": "separate", "kv": "loop"}
    pairs = batch * kv_heads
    wave = sm_count * PLAN_PROGRAMS_PER_SM
    blocks = math.ceil(context / block_n)
    most = min(math.ceil(context / MIN_CHUNK), SPLITS_VALUES[-1])
    fill = min(max(1, wave // pairs), most)
    splits = max(s for s in SPLITS_VALUES if s <= fill)
    if context > LONG_CONTEXT:
        def efficiency(s: int) -> float:
            waves = pairs * _used_splits(s, blocks) / wave
            return waves / math.ceil(waves)

        candidates = [s for s in SPLITS_VALUES if splits <= s <= most and pairs * s <= max(2 * wave, pairs * splits)]
        if os.environ.get("KERNEL_SEARCH_ATTN_SPLITS", "most") == "fewest":
            best = max(efficiency(s) for s in candidates)
            splits = min(s for s in candidates if efficiency(s) >= WAVE_EFFICIENCY * best)
        else:
            splits = max(candidates)
    # Split a few ways, the last program to arrive combines (one launch fewer): in the H100's 0.6B decode
    # step it tied or beat the combine kernel of the time at every batch and context the ninth session
    # probed. Split many ways, the combine kernel's many small programs do (eleventh session).
    plan = {**cfg, "SPLITS": splits, "combine": _plan_combine(splits)}
    if not early:
        return plan
    problem = AttentionProblem(batch, heads, kv_heads, head_dim, context, _DTYPE_OF_BYTES.get(elem_bytes, "bfloat16"))
    # fused_prep (plan_from_qkv): the early plan with the prep in the attention kernel, by its own rules.
    early_plan = {**plan, "prep": "fused"} if fused_prep else plan
    return _early_plan(early_plan, problem, wave, EARLY_FUSED if fused_prep else EARLY_SEPARATE) or plan


def plan_from_qkv(batch: int, heads: int, kv_heads: int, head_dim: int, context: int, sm_count: int,
                  elem_bytes: int = 2) -> dict:
    """The default config where the work starts from the new tokens' qkv rows (the model's decode step,
    the tuner's op): kv=early with prep=fused where a program a block fits EARLY_FUSED's rule, else the
    loop plan of attention_plan (prep separate). The attention kernel then loads the old K/V before
    PDL's wait and norms, rotates and writes the new token itself: one launch fewer a layer, and the
    K/V loads overlap the QKV GEMM instead of the prep kernel. In the 0.6B decode step on an H200
    (benchmarks/README.md, twenty-third session), ms a step against the plan from q (prep separate):
    batch 1 x 256 0.759 -> 0.747, batch 2 0.854 -> 0.790, batch 4 0.899 -> 0.790 (64-slot blocks), batch 8
    0.938 -> 0.828, batch 8 x 512 1.052 -> 0.917 (2.9 waves); 1.7B batch 1 1.394 -> 1.382, batch 2 1.471 ->
    1.447. Prep fused in the loop plan lost at batch 1 x 900 and 8k, at batch 32 x 256 and at 8B's longer
    contexts; it is the plan where a KV head serves at most two q heads, from LOOP_PREP_FUSED_MIN_BATCH
    sequences, past LONG_CONTEXT up to LOOP_PREP_FUSED_MAX_CONTEXT slots (_loop_prep_fused).
    KERNEL_SEARCH_ATTN_PREP=separate gives attention_plan's config (to measure), KERNEL_SEARCH_ATTN_EARLY=0
    the loop plan, KERNEL_SEARCH_ATTN_LOOP_PREP=separate the loop plan with its prep separate everywhere."""
    fused = os.environ.get("KERNEL_SEARCH_ATTN_PREP", "fused") != "separate"
    plan = attention_plan(batch, heads, kv_heads, head_dim, context, sm_count, elem_bytes, fused_prep=fused)
    if fused and _loop_prep_fused(plan, batch, heads, kv_heads, context):
        dtype = _DTYPE_OF_BYTES.get(elem_bytes, "bfloat16")
        problem = AttentionProblem(batch, heads, kv_heads, head_dim, context, dtype)
        loop_fused = {**plan, "prep": "fused"}
        if check_config(loop_fused, problem) is None:
            return loop_fused
    return plan


# Where a KV head serves at most LOOP_PREP_FUSED_MAX_GROUP q heads, from LOOP_PREP_FUSED_MIN_BATCH sequences and
# past LONG_CONTEXT slots up to LOOP_PREP_FUSED_MAX_CONTEXT, the loop plan runs the q/k prep inside the
# attention kernel. Decode tok/s, prep separate -> fused, one H200 (twenty-sixth session, env_ab.py ABAB,
# benchmarks/README.md; the mean of two rounds). Qwen3-0.6B (2 q heads a KV head): batch 4 / 8 / 16 / 32 x 2k
# +1.2% / +6.4% / +4.6% / +1.1%, 4 / 8 / 16 x 4k +1.2% / +0.9% / +5.2%; at 8k 4 / 8 / 32 +2.2% / +0.2% / +1.3%.
# Qwen3-8B (4 q heads a KV head): 8 / 32 x 2k -3.7% / -0.2%, 4 / 16 x 4k -1.5% / +1.0%, 8 x 8k -8.5%. At
# batch 1 x 900 and 8k and at batch 32 x 256 (0.6B) it lost too (twenty-third session). The longest cells
# measured held 8,256 slots.
LOOP_PREP_FUSED_MIN_BATCH = 4
LOOP_PREP_FUSED_MAX_CONTEXT = 9216
LOOP_PREP_FUSED_MAX_GROUP = 2


def _loop_prep_fused(plan: dict, batch: int, heads: int, kv_heads: int, context: int) -> bool:
    """Whether the loop plan from the qkv rows fuses the prep (see LOOP_PREP_FUSED_MIN_BATCH)."""
    if os.environ.get("KERNEL_SEARCH_ATTN_LOOP_PREP", "fused") == "separate":
        return False
    return (kv_of(plan) == "loop" and prep_of(plan) == "separate" and batch >= LOOP_PREP_FUSED_MIN_BATCH
            and heads <= LOOP_PREP_FUSED_MAX_GROUP * kv_heads and LONG_CONTEXT < context <= LOOP_PREP_FUSED_MAX_CONTEXT)


def default_plan(problem: AttentionProblem, device: torch.device, from_qkv: bool) -> dict:
    """What runs where no config is given: plan_from_qkv for work from the qkv rows, else (a prepared q)
    attention_plan, on this device's SMs."""
    plan = plan_from_qkv if from_qkv else attention_plan
    return plan(problem.batch, problem.heads, problem.kv_heads, problem.head_dim, problem.context,
                _sm_count(device), problem.elem_bytes)


def _plan_combine(splits: int) -> str:
    """The plan's combine: none for one split, the last program for a few, the combine kernel for many."""
    return "kernel" if splits == 1 or splits >= KERNEL_COMBINE_SPLITS else "last_program"


# The kv=early plans: (BLOCK_N, waves) in order of preference; the first whose grid of a program a block
# fits that many waves (sm_count x PLAN_PROGRAMS_PER_SM programs each) is taken. With prep separate
# (attention_plan, from a prepared q; H200, twenty-second session): 32-slot blocks beat 64 and 128 at 0.6B
# batch 1 x 256, and at batch 8 x 256, two waves of them, lost 1.4% to the loop plan. With prep fused
# (plan_from_qkv; twenty-third session, 0.6B): 64-slot blocks beat the loop plan by 12% at batch 4 and 8
# x 256 (192 and 384 programs), 13% at 8 x 512, 10% at 4 x 1k and 5% at 16 x 256 (768 programs, 2.9
# waves), and lost 1-15% at 1,536 programs (32 x 256, 8 x 1k, 4 x 2k); 128-slot blocks (8 warps) did no
# better than 64 anywhere.
EARLY_SEPARATE = ((32, 1.0),)
EARLY_FUSED = ((32, 1.0), (64, 3.0))


def _early_plan(plan: dict, problem: AttentionProblem, wave: int, rules: tuple) -> dict | None:
    """The plan with kv=early by the first (BLOCK_N, waves) of `rules` whose programs, one a block, number
    at most waves x wave, and whose config can hold its tiles; else None. KERNEL_SEARCH_ATTN_EARLY=0:
    None always (the loop plan everywhere, to measure)."""
    if os.environ.get("KERNEL_SEARCH_ATTN_EARLY", "1") == "0":
        return None
    for block_n, waves in rules:
        blocks = math.ceil(problem.context / block_n)
        fitting = [s for s in SPLITS_VALUES if s >= blocks]
        if not fitting or problem.batch * problem.kv_heads * fitting[0] > waves * wave:
            continue
        splits = fitting[0]
        early = {**plan, "SPLITS": splits, "BLOCK_N": block_n, "num_stages": 1, "kv": "early",
                 "combine": _plan_combine(splits)}
        # SPLITS >= blocks: every program's chunk is one block (one_block holds).
        if not check_config(early, problem):
            return early
    return None


def make_inputs(problem: AttentionProblem, device, gen: torch.Generator, lengths=None) -> dict:
    """q, caches of `context` slots (one row per sequence), positions (length - 1; default every
    sequence at the full context) and the scale 1/sqrt(head_dim)."""
    dtype = getattr(torch, problem.dtype)
    b, hd = problem.batch, problem.head_dim
    cache = (b, problem.context, problem.kv_heads, hd)
    lengths = [problem.context] * b if lengths is None else list(lengths)
    if len(lengths) != b or not all(1 <= n <= problem.context for n in lengths):
        raise ValueError(f"lengths must be {b} values in 1..{problem.context}, got {lengths}")
    return {
        "q": randn((b, 1, problem.heads, hd), dtype, device, gen),
        "k_cache": randn(cache, dtype, device, gen),
        "v_cache": randn(cache, dtype, device, gen),
        # Not tensor - 1: arithmetic on a meta tensor imports torch._dynamo (seconds in a compile process).
        "positions": torch.tensor([n - 1 for n in lengths], device=device)[:, None],
        "scale": hd**-0.5,
    }


ROPE_THETA = 1_000_000.0  # Qwen3's rope_theta: make_prep_inputs' tables


def rope_tables(head_dim: int, positions: int, theta: float, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin [positions, head_dim] in fp32 for RoPE over the whole head, rotate-half layout (each row
    is its head_dim / 2 frequencies twice), as transformers tabulates them (qwen3.layers.RotaryEmbedding's)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float, device=device) / head_dim))
    freqs = torch.arange(positions, dtype=torch.float, device=device)[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def make_prep_inputs(problem: AttentionProblem, device, gen: torch.Generator, lengths=None,
                     theta: float = ROPE_THETA) -> dict:
    """decode_attention_prep's inputs: make_inputs' caches, positions and scale and, in place of q, the
    new tokens' qkv rows [B, (H + 2 KV) * hd], q/k norm gains near 1, RoPE tables of `context` rows
    (tabulated on the CPU, so every device gets the same values) and eps."""
    inputs = make_inputs(problem, device, gen, lengths)
    del inputs["q"]
    dtype, hd = getattr(torch, problem.dtype), problem.head_dim
    cos, sin = rope_tables(hd, problem.context, theta)
    return {
        "qkv": randn((problem.batch, (problem.heads + 2 * problem.kv_heads) * hd), dtype, device, gen),
        "q_norm_w": norm_weight(hd, dtype, device, gen),
        "k_norm_w": norm_weight(hd, dtype, device, gen),
        "cos": cos.to(device),
        "sin": sin.to(device),
        "eps": 1e-6,
        **inputs,
    }


def prep_reference(qkv, q_norm_w, k_norm_w, cos, sin, eps: float, positions, kv_heads: int,
                   slots: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q [B, 1, H, hd] and the new tokens' k and v [B, KV, hd] from qkv rows [B, (H + 2 KV) * hd], as
    transformers' Qwen3 computes them in the model's dtype (qwen3.layers' PyTorch path): RMSNorm
    statistics in fp32, the normed head cast and scaled by the gain, each RoPE product and the sum in
    the dtype. Positions are clamped to the RoPE table and the cache's `slots`, as the kernels clamp."""
    b, hd = qkv.shape[0], q_norm_w.shape[0]
    heads = qkv.shape[1] // hd - 2 * kv_heads
    q, k, v = qkv.view(b, -1, hd).split([heads, kv_heads, kv_heads], dim=1)
    pos = positions.reshape(b).clamp(0, min(slots, cos.shape[0]) - 1)
    c, s = cos[pos].to(qkv.dtype)[:, None], sin[pos].to(qkv.dtype)[:, None]

    def norm_rope(x, w):
        x32 = x.float()
        y = ((x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * w).to(x.dtype)
        y1, y2 = y.chunk(2, dim=-1)
        return y * c + torch.cat((-y2, y1), dim=-1) * s

    return norm_rope(q, q_norm_w)[:, None], norm_rope(k, k_norm_w), v


# ---- the op as the tuner, the database and the dispatch table see it ------------------------------

def problem_of(m: int, n: int, k: int, dtype) -> AttentionProblem:
    """The AttentionProblem of a study's keys (kernel_space.attention_shape: batch and context in m,
    the head geometry in n and k). dtype: a name, a torch dtype, or the element size (2: bfloat16,
    which checks exactly as float16). ValueError for keys that are not decode attention's."""
    batch, context = decode_m(m)
    heads, kv_heads, head_dim = decode_heads(n, k)
    if isinstance(dtype, int):
        dtype = _DTYPE_OF_BYTES[dtype]
    elif isinstance(dtype, torch.dtype):
        dtype = str(dtype).removeprefix("torch.")
    return AttentionProblem(batch, heads, kv_heads, head_dim, context, dtype)


def default_configs(problem: AttentionProblem, sm_count: int = 132, smem_limit: int = DEFAULT_SMEM_LIMIT) -> list[dict]:
    """The tune's starting points: the default plan from the qkv rows (plan_from_qkv), and where that
    is kv=early the plan without it (the loop plan); each with the other prep (fused: the norms, RoPE
    and the cache write inside the attention kernel, one launch fewer); the loop plan with the combine
    kernel (the plan's splits combine in their last program), and with one query head a program
    (pack=head); each runnable and not redundant."""
    args = (problem.batch, problem.heads, problem.kv_heads, problem.head_dim, problem.context, sm_count,
            problem.elem_bytes)
    plan, loop = plan_from_qkv(*args), attention_plan(*args, early=False)
    other = "separate" if prep_of(plan) == "fused" else "fused"
    out = []
    for cfg in (plan, loop, {**plan, "prep": other}, {**loop, "prep": "fused"}, {**loop, "combine": "kernel"},
                {**loop, "pack": "head", "num_stages": 1}):
        if cfg not in out and not check_config(cfg, problem, smem_limit) and not redundant_reason(cfg, problem):
            out.append(cfg)
    return out


def _spec_inputs(m, n, k, dtype, device, gen) -> dict:
    return make_prep_inputs(problem_of(m, n, k, dtype), device, gen)


def _prep_args(inputs: dict) -> tuple:
    """decode_attention_prep's first arguments from an inputs dict of make_prep_inputs."""
    i = inputs
    return i["qkv"], i["q_norm_w"], i["k_norm_w"], i["cos"], i["sin"], i["eps"]


def _fused(inputs: dict, cfg: dict) -> tuple:
    """A fused config, from the qkv rows: prep=fused one kernel, prep=separate qk_norm_rope_cache and
    then the attention kernel (see AttentionOpSpec: every arm times the same work)."""
    i = inputs
    return (decode_attention_prep(*_prep_args(i), i["k_cache"], i["v_cache"], i["positions"], i["scale"], 0, cfg),)


def _unfused(inputs: dict) -> tuple:
    """What the model runs where the table says unfused: qk_norm_rope_cache, then SDPA over the cache."""
    i = inputs
    kc = i["k_cache"]
    b, kv, hd = kc.shape[0], kc.shape[2], kc.shape[3]
    qkv, q_norm_w, k_norm_w, cos, sin, eps = _prep_args(i)
    q = qk_norm_rope_cache(qkv, q_norm_w, k_norm_w, cos, sin, i["positions"].reshape(b, 1), kc, i["v_cache"],
                           qkv.shape[1] // hd - 2 * kv, kv, eps)
    return (decode_attention_unfused(q, kc, i["v_cache"], i["positions"], i["scale"]),)


def _reference(inputs: dict) -> tuple:
    """prep_reference's q, k and v (the model's rounding), then attention in fp64 a sequence at a time,
    over a copy of its cache row holding the new token's k and v in its slot (the reference never reads
    what a kernel wrote there). A sequence at a time: at 40,960 slots x batch 8 (qwen3-0.6b) the whole
    batch's K and V in fp64 would hold 11 GB, twice over; one sequence's hold a batch-th of that."""
    i = inputs
    k_cache, v_cache, positions = i["k_cache"], i["v_cache"], i["positions"]
    slots = k_cache.shape[1]
    q, k_new, v_new = prep_reference(*_prep_args(i), positions, k_cache.shape[2], slots)
    out = []
    for b, pos in enumerate(positions.reshape(-1).tolist()):
        k, v = k_cache[b:b + 1].clone(), v_cache[b:b + 1].clone()
        if 0 <= pos < min(slots, i["cos"].shape[0]):
            k[0, pos], v[0, pos] = k_new[b], v_new[b]
        out.append(decode_attention_reference(q[b:b + 1], k, v, positions[b:b + 1], i["scale"]))
    return (torch.cat(out),)


# Compiling a config needs no full cache: Triton specializes the cache length and its strides only on
# divisibility by 16 (and on 1), so a short cache of the same kind compiles the same binary.
COMPILE_CONTEXT = 256


def _compile_inputs(m, n, k, dtype, device, gen) -> dict:
    p = problem_of(m, n, k, dtype)
    context = p.context if p.context <= COMPILE_CONTEXT else COMPILE_CONTEXT + (p.context % 16 != 0)
    if torch.device(device).type == "meta":  # ahead of time: no memory, so the whole cache (the prefetch
        context = p.context                  # plan, a constexpr, depends on its length)
    return make_prep_inputs(AttentionProblem(p.batch, p.heads, p.kv_heads, p.head_dim, context, p.dtype), device,
                            gen)


@dataclass(frozen=True)
class AttentionOpSpec(OpSpec):
    """decode_attention as an op of the registry: the same tuner, database and table as the GEMM sites,
    with (m, n, k) the keys of kernel_space.attention_shape. It has no cuBLAS arm (cublas is None).

    What is timed is the work from the new tokens' qkv rows to o, the cache write included, in every
    arm, because prep=fused moves qk_norm_rope_cache's work into the attention kernel: timing that
    kernel against the attention kernel alone would charge the fused arm for work the other does not
    show. So a prep=separate config times qk_norm_rope_cache and the attention kernel, prep=fused its
    one kernel, and the unfused arm (what the model runs where the table says unfused) times
    qk_norm_rope_cache and SDPA. The times and the speedups of decode_attention therefore include the
    prep's launch (a few microseconds): they are not comparable with tunes before prep was a key,
    whose arms timed attention alone (the kernel hash changed with it, so those rows are stale)."""

    kind = "attention"

    def check(self, cfg: dict, m: int, n: int, k: int, elem_bytes: int,
              smem_limit: int = DEFAULT_SMEM_LIMIT) -> str | None:
        try:
            problem = problem_of(m, n, k, elem_bytes)
        except ValueError as exc:
            return str(exc)
        return check_config(cfg, problem, smem_limit)

    def redundant(self, cfg: dict, m: int, n: int, k: int, elem_bytes: int) -> str | None:
        """redundant_reason at the study's problem: the search offers no config that repeats another."""
        return redundant_reason(cfg, problem_of(m, n, k, elem_bytes))

    def default_configs(self, m: int, n: int, k: int, elem_bytes: int, sm_count: int = 132,
                        smem_limit: int = DEFAULT_SMEM_LIMIT) -> list[dict]:
        return default_configs(problem_of(m, n, k, elem_bytes), sm_count, smem_limit)

    def compile_inputs(self, m: int, n: int, k: int, dtype, device, gen) -> dict:
        """Inputs that compile what make_inputs' would, over a cache of at most COMPILE_CONTEXT (+1) slots
        on a GPU (the compile pool's processes hold no full KV cache each) and of the full context on the
        meta device (ahead of time, where a cache costs no memory and the prefetch plan, which depends on
        the cache's length, comes out as the GPU process's: measured on an H100, the shortened cache made
        the GPU process compile 2 of 12 attention configs again)."""
        return _compile_inputs(m, n, k, dtype, device, gen)

    def cold_bytes(self, m: int, n: int, k: int, elem_bytes: int) -> int:
        """One input set's K and V caches: the timing rotates over copies of them (cold in L2)."""
        return problem_of(m, n, k, elem_bytes).kv_bytes()

    def traffic(self, m: int, n: int, k: int, elem_bytes: int) -> tuple[int, int]:
        """(bytes, flops) a launch must move and compute with every sequence at the full context: the
        K and V caches, the qkv rows in, the output and the new K/V out; q K^T and p V."""
        p = problem_of(m, n, k, elem_bytes)
        heads = p.batch * p.head_dim * p.elem_bytes  # one head of every sequence
        rows = (p.heads + 2 * p.kv_heads) * heads + p.heads * heads + 2 * p.kv_heads * heads
        return p.kv_bytes() + rows, attention_flops(p.batch, p.context, p.heads, p.head_dim)


def _shape(dims) -> tuple[int, int]:
    return encode_heads(dims.heads, dims.kv_heads, dims.head_dim)


SPEC = AttentionOpSpec(
    name=ATTENTION_OP,
    shape=_shape,
    gated=False,
    space=SPACE,
    make_inputs=_spec_inputs,
    fused=_fused,
    unfused=_unfused,
    cublas=None,
    reference=_reference,
    output_names=("o",),
    kernel_sources=KERNEL_SOURCES,
)
