"""Issue 10, item 4, measured before it is built: does one launch for a whole decode step's GEMVs beat
one launch per GEMM?

    python3 benchmarks/persistent_probe.py OUT.json [--model qwen3-0.6b] [--table FILE] [--programs 132,264]
        [--warps 4,8] [--block-k 256,512] [--block-n 16] [--prefetch on,off] [--layer --context 256]

Measured on an H100 (thirteenth session, benchmarks/README.md): it lost everywhere, so it stays a probe.

Qwen3-0.6B's batch-1 step runs about 170 kernels (six a layer) and sits at 44% of its bandwidth floor:
each kernel pays a fixed cost of a few microseconds (launch, ramp, tail, PDL's wait) next to a weight
stream of 1.4-4.3 us. A persistent kernel (Mirage's and Hazy's megakernels) keeps one program a SM for
the whole step and separates the dependent stages by grid barriers, prefetching the next stage's
weights into L2 while the current one runs. Before building that into the runtime (attention, the
norms, the dispatcher), this probe times its core: a layer's four GEMVs at batch 1 with the model's
shapes and data dependencies, over every layer, as

- `persistent`: chain_kernel, one cooperative launch (every program resident), a grid barrier
  between stages, the next stage's weight rows prefetched into L2 at the start of each stage;
- `launches`: the same four GEMVs a layer as today's fused ops, one launch each (the table's M = 1
  configs, PDL as the runtime launches them): rmsnorm_qkv, o_proj_residual, rmsnorm_gate_up_silu,
  down_residual;
- `floor`: the weight bytes over the measured copy bandwidth.

The layer's attention is left out of both arms (o_proj reads the q part of the qkv row in its place),
so both do the same GEMV work: the difference is what one launch per step saves over four a layer.

With --layer the layers are whole: layer_kernel adds a stage of decode attention (its q/k norm, RoPE
and cache write inside, decode attention's own jit helpers, KV heads x splits items, the last split of
a head combining) between qkv and o_proj, five barriers a layer; the launches arm runs today's kernels
for it (decode_attention_prep with the default plan), and the floor counts the K/V cache too.
Correct first: both arms' final residual rows against an fp32 torch reference. Timed as the tuner times
an op (tuner.measure.time_graph: a CUDA graph of 32 steps, median of replays); every layer has its
own weights, so they stream from memory.

chain_kernel also runs one stage a launch (STAGE >= 0, no barrier): Triton's interpreter runs a grid's
programs one after another, so a barrier would never open there; the CPU tests check that mode's
arithmetic and compile the persistent one for sm_90 ahead of time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import math
import statistics
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
import triton
import triton.language as tl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.e2e_matrix import int_list, name_list
from kernel_space._gemm import _prefetch_l2
from kernel_space.decode_attention import (
    _add_slot,
    _attend,
    _finish,
    _length,
    _prep_k,
    _prep_q,
    _rope_row,
    _split_bounds,
    _unit_heads,
    _write_slot,
)
from tuner import measure

STAGES = 4  # qkv, o_proj, gate_up, down
LOG2E = 1.4426950408889634  # decode attention's softmax runs in base 2


@triton.jit
def _grid_sync(count_ptr, gen_ptr, P):
    """Every program of the grid arrives before any leaves (sense by generation: the last to arrive
    zeroes the count and advances the generation the others spin on). Needs every program resident
    (a cooperative launch). The block barriers put all of a program's stores before its arrival and
    all of its later loads after the release."""
    tl.debug_barrier()
    gen = tl.atomic_add(gen_ptr, 0, sem="relaxed", scope="gpu")
    arrived = tl.atomic_add(count_ptr, 1, sem="acq_rel", scope="gpu")
    if arrived == P - 1:
        tl.atomic_xchg(count_ptr, 0, sem="relaxed", scope="gpu")
        tl.atomic_add(gen_ptr, 1, sem="release", scope="gpu")
    else:
        cur = tl.atomic_add(gen_ptr, 0, sem="acquire", scope="gpu")
        while cur == gen:
            cur = tl.atomic_add(gen_ptr, 0, sem="acquire", scope="gpu")
    tl.debug_barrier()


@triton.jit
def barrier_kernel(count_ptr, gen_ptr, N):
    """N grid barriers and nothing else: what the persistent arms pay for their stage boundaries."""
    P = tl.num_programs(0)
    for _ in range(N):
        _grid_sync(count_ptr, gen_ptr, P)


def time_barriers(n: int, programs: int, num_warps: int) -> float:
    """Milliseconds of one cooperative launch of n grid barriers (timed as the arms are)."""
    sync = torch.zeros(2, dtype=torch.int32, device="cuda")
    return _graph_ms(lambda: barrier_kernel[(programs,)](sync, sync[1:], n, num_warps=num_warps,
                                                         launch_cooperative_grid=True))


@triton.jit
def _rstd(h_ptr, D, eps, BLOCK_D: tl.constexpr):
    """rsqrt(mean(h^2) + eps) of the residual row (every program computes it: D values from L2)."""
    offs = tl.arange(0, BLOCK_D)
    h = tl.load(h_ptr + offs, mask=offs < D, other=0.0, cache_modifier=".cg").to(tl.float32)
    return tl.rsqrt(tl.sum(h * h, axis=0) / D + eps)


@triton.jit
def _prefetch_rows(w_ptr, pid, P, N, K, ROWS: tl.constexpr, BLOCK_N: tl.constexpr, LINES: tl.constexpr):
    """This program's rows of a stage's weight (ROWS = N rows, or 2N when gated) into L2, one pointer per
    128-byte line of each row, BLOCK_N rows a step."""
    LINE: tl.constexpr = 1024 // w_ptr.dtype.element_ty.primitive_bitwidth
    lines = tl.minimum(tl.arange(0, LINES) * LINE, K - 1)
    for t in range(pid, tl.cdiv(N, BLOCK_N), P):
        rows = tl.minimum(t * BLOCK_N + tl.arange(0, BLOCK_N), N - 1)
        _prefetch_l2(w_ptr + rows[:, None] * K + lines[None, :])
        if ROWS == 2:
            _prefetch_l2(w_ptr + (rows[:, None] + N) * K + lines[None, :])


@triton.jit
def _gemv_stage(x_ptr, w_ptr, out_ptr, res_ptr, g_ptr, pid, P, N, K, rstd,
                NORM: tl.constexpr, GATED: tl.constexpr, RES: tl.constexpr,
                BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """out[n] = (x * rstd * g if NORM else x) . W[n] (silu(.W[n]) * .W[N + n] if GATED) (+ res[n] if RES)
    for this program's tiles of BLOCK_N outputs (tile t of program t % P), fp32 sums."""
    for t in range(pid, tl.cdiv(N, BLOCK_N), P):
        offs_n = t * BLOCK_N + tl.arange(0, BLOCK_N)
        n_mask = offs_n < N
        acc = tl.zeros((BLOCK_N,), tl.float32)
        acc2 = tl.zeros((BLOCK_N,), tl.float32)
        for k0 in range(0, K, BLOCK_K):
            offs_k = k0 + tl.arange(0, BLOCK_K)
            k_mask = offs_k < K
            x = tl.load(x_ptr + offs_k, mask=k_mask, other=0.0, cache_modifier=".cg").to(tl.float32)
            if NORM:
                # rmsnorm rounds to the row's dtype before the gain, as the model's norm does.
                x = (x * rstd).to(x_ptr.dtype.element_ty).to(tl.float32)
                x = (x * tl.load(g_ptr + offs_k, mask=k_mask, other=0.0).to(tl.float32)).to(
                    x_ptr.dtype.element_ty).to(tl.float32)
            mask = n_mask[:, None] & k_mask[None, :]
            w = tl.load(w_ptr + offs_n[:, None] * K + offs_k[None, :], mask=mask, other=0.0)
            acc += tl.sum(w.to(tl.float32) * x[None, :], axis=1)
            if GATED:
                w2 = tl.load(w_ptr + (offs_n[:, None] + N) * K + offs_k[None, :], mask=mask, other=0.0)
                acc2 += tl.sum(w2.to(tl.float32) * x[None, :], axis=1)
        if GATED:
            g = acc.to(out_ptr.dtype.element_ty).to(tl.float32)
            u = acc2.to(out_ptr.dtype.element_ty).to(tl.float32)
            acc = g * tl.sigmoid(g) * u
        if RES:
            acc = acc.to(out_ptr.dtype.element_ty).to(tl.float32)
            acc += tl.load(res_ptr + offs_n, mask=n_mask, other=0.0, cache_modifier=".cg").to(tl.float32)
        tl.store(out_ptr + offs_n, acc.to(out_ptr.dtype.element_ty), mask=n_mask)


@triton.jit
def _stage(S: tl.constexpr, layer, h_ptr, h2_ptr, qkv_ptr, o_ptr, a_ptr, wqkv_ptr, wo_ptr, wgu_ptr, wd_ptr, g1_ptr,
           g2_ptr, pid, P, D, NQKV, HHD, INTER, eps, BLOCK_D: tl.constexpr, BLOCK_K: tl.constexpr, BN0: tl.constexpr,
           BN1: tl.constexpr, BN2: tl.constexpr, BN3: tl.constexpr):
    """GEMV stage S of layer `layer`: 0 writes qkv, 1 reads o (attention's output; in the GEMV chain the
    q part of qkv), 2 and 3 as the names say. A layer's offset in a stacked weight can pass 2^31 (8B's
    gate_up)."""
    wide = tl.cast(layer, tl.int64)
    if S == 0:
        _gemv_stage(h_ptr, wqkv_ptr + wide * NQKV * D, qkv_ptr, h_ptr, g1_ptr + wide * D, pid, P, NQKV, D,
                    _rstd(h_ptr, D, eps, BLOCK_D), True, False, False, BN0, BLOCK_K)
    elif S == 1:
        _gemv_stage(o_ptr, wo_ptr + wide * D * HHD, h2_ptr, h_ptr, g1_ptr, pid, P, D, HHD, 1.0,
                    False, False, True, BN1, BLOCK_K)
    elif S == 2:
        _gemv_stage(h2_ptr, wgu_ptr + wide * 2 * INTER * D, a_ptr, h_ptr, g2_ptr + wide * D, pid, P, INTER, D,
                    _rstd(h2_ptr, D, eps, BLOCK_D), True, True, False, BN2, BLOCK_K)
    else:
        _gemv_stage(a_ptr, wd_ptr + wide * D * INTER, h_ptr, h2_ptr, g1_ptr, pid, P, D, INTER, 1.0,
                    False, False, True, BN3, BLOCK_K)


@triton.jit
def _prefetch_stage(S: tl.constexpr, layer, wqkv_ptr, wo_ptr, wgu_ptr, wd_ptr, pid, P, D, NQKV, HHD, INTER,
                    BN0: tl.constexpr, BN1: tl.constexpr, BN2: tl.constexpr, BN3: tl.constexpr,
                    LQ: tl.constexpr, LO: tl.constexpr, LG: tl.constexpr, LD: tl.constexpr):
    """This program's rows of stage S's weight of layer `layer` into L2."""
    wide = tl.cast(layer, tl.int64)
    if S == 0:
        _prefetch_rows(wqkv_ptr + wide * NQKV * D, pid, P, NQKV, D, 1, BN0, LQ)
    elif S == 1:
        _prefetch_rows(wo_ptr + wide * D * HHD, pid, P, D, HHD, 1, BN1, LO)
    elif S == 2:
        _prefetch_rows(wgu_ptr + wide * 2 * INTER * D, pid, P, INTER, D, 2, BN2, LG)
    else:
        _prefetch_rows(wd_ptr + wide * D * INTER, pid, P, D, INTER, 1, BN3, LD)


@triton.jit
def chain_kernel(h_ptr, h2_ptr, qkv_ptr, a_ptr, wqkv_ptr, wo_ptr, wgu_ptr, wd_ptr, g1_ptr, g2_ptr,
                 count_ptr, gen_ptr, LAYERS, LAYER, D, NQKV, HHD, INTER, eps,
                 STAGE: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_K: tl.constexpr,
                 BN0: tl.constexpr, BN1: tl.constexpr, BN2: tl.constexpr, BN3: tl.constexpr,
                 LQ: tl.constexpr, LO: tl.constexpr, LG: tl.constexpr, LD: tl.constexpr,
                 PF: tl.constexpr):
    """A layer's four GEMVs at batch 1 (see the module docstring), h updated in place:
        qkv = rmsnorm(h) g1 . Wqkv;  h2 = h + qkv[:HHD] . Wo;  a = silu(rmsnorm(h2) g2 . Wg) * (. Wu);
        h = h2 + a . Wd.
    STAGE < 0: every stage of layers 0..LAYERS-1 in this launch, a grid barrier after each stage, and
    with PF each stage first prefetches its program's rows of the next stage's weight (Lx: 128-byte
    lines a row, a power of two). STAGE >= 0: that stage of layer LAYER only, no barrier."""
    pid = tl.program_id(0)
    P = tl.num_programs(0)
    buffers = (h_ptr, h2_ptr, qkv_ptr, qkv_ptr, a_ptr, wqkv_ptr, wo_ptr, wgu_ptr, wd_ptr, g1_ptr, g2_ptr)
    weights = (wqkv_ptr, wo_ptr, wgu_ptr, wd_ptr)
    if STAGE < 0:
        if PF:
            _prefetch_stage(0, 0, *weights, pid, P, D, NQKV, HHD, INTER, BN0, BN1, BN2, BN3, LQ, LO, LG, LD)
        for layer in range(LAYERS):
            for s in tl.static_range(4):
                if PF:
                    if s < 3:
                        _prefetch_stage(s + 1, layer, *weights, pid, P, D, NQKV, HHD, INTER, BN0, BN1, BN2, BN3,
                                        LQ, LO, LG, LD)
                    elif layer + 1 < LAYERS:
                        _prefetch_stage(0, layer + 1, *weights, pid, P, D, NQKV, HHD, INTER, BN0, BN1, BN2, BN3,
                                        LQ, LO, LG, LD)
                _stage(s, layer, *buffers, pid, P, D, NQKV, HHD, INTER, eps, BLOCK_D, BLOCK_K, BN0, BN1, BN2, BN3)
                _grid_sync(count_ptr, gen_ptr, P)
    else:
        _stage(STAGE, LAYER, *buffers, pid, P, D, NQKV, HHD, INTER, eps, BLOCK_D, BLOCK_K, BN0, BN1, BN2, BN3)


@triton.jit
def _attention_item(unit, split, qkv_ptr, qw_ptr, kw_ptr, cos_ptr, sin_ptr, kc_ptr, vc_ptr, o_ptr, part_ptr, ml_ptr,
                    count_ptr, pos, L, qk_scale, eps, SPLITS, stride_cos, stride_kl, stride_kh,
                    H: tl.constexpr, KV: tl.constexpr, G: tl.constexpr, HP: tl.constexpr, HD: tl.constexpr,
                    BLOCK_N: tl.constexpr, HC: tl.constexpr, CS: tl.constexpr):
    """Decode attention's prep=fused program (decode_attention_prep_kernel's body, one sequence, pack=group,
    the last program of a KV head combining): KV head `unit`'s query group normed and rotated from the
    qkv row, online softmax over split `split` of slots 0..pos, the new key and value from registers
    (and written into the cache by the split that ends at pos)."""
    lo, hi, n_active = _split_bounds(_length(pos, L), split, SPLITS, BLOCK_N)
    if split < n_active:
        DT: tl.constexpr = o_ptr.dtype.element_ty
        heads, live_h = _unit_heads(unit, G, HP)
        fresh = (split == n_active - 1) & (pos >= 0) & (pos < L)
        p = tl.minimum(tl.maximum(pos, 0), L - 1).to(tl.int64)
        cos, sin = _rope_row(cos_ptr, sin_ptr, p, stride_cos, HD, DT)
        q = _prep_q(qkv_ptr, qw_ptr, heads, live_h, cos, sin, eps, HP, HD, DT)
        k_base = kc_ptr + unit * stride_kh
        v_base = vc_ptr + unit * stride_kh
        acc, m_i, l_i = _attend(q, k_base, v_base, lo, hi - fresh.to(hi.dtype), stride_kl, stride_kl, qk_scale,
                                HP, HD, BLOCK_N, True, "ieee" if DT == tl.float32 else "tf32")
        if fresh:
            k1, k2 = _prep_k(qkv_ptr, kw_ptr, H + unit, cos, sin, eps, HD, DT)
            v = tl.load(qkv_ptr + (H + KV + unit) * HD + tl.arange(0, HD))
            acc, m_i, l_i = _add_slot(q, k1, k2, v, acc, m_i, l_i, qk_scale, HD, True)
            _write_slot(k_base + p * stride_kl, v_base + p * stride_kl, k1, k2, v, HD)
        seq = tl.cast(unit, tl.int32) * 0  # one sequence (a tensor: the interpreter's loop index is an int)
        _finish(acc, m_i, l_i, o_ptr, part_ptr, ml_ptr, count_ptr, seq, unit, split, heads, live_h, n_active, SPLITS,
                H, G, HD, HC, CS, True)


@triton.jit
def layer_kernel(h_ptr, h2_ptr, qkv_ptr, o_ptr, a_ptr, part_ptr, ml_ptr, attn_count_ptr,
                 wqkv_ptr, wo_ptr, wgu_ptr, wd_ptr, g1_ptr, g2_ptr, qn_ptr, kn_ptr, cos_ptr, sin_ptr, kc_ptr, vc_ptr,
                 count_ptr, gen_ptr, pos_ptr, LAYERS, LAYER, D, NQKV, HHD, INTER, L, SPLITS, eps, qk_scale,
                 stride_cos, STAGE: tl.constexpr, H: tl.constexpr, KV: tl.constexpr, HD: tl.constexpr,
                 HP: tl.constexpr, HC: tl.constexpr, CS: tl.constexpr, BLOCK_ATT: tl.constexpr,
                 BLOCK_D: tl.constexpr, BLOCK_K: tl.constexpr, BN0: tl.constexpr, BN1: tl.constexpr,
                 BN2: tl.constexpr, BN3: tl.constexpr, LQ: tl.constexpr, LO: tl.constexpr, LG: tl.constexpr,
                 LD: tl.constexpr, PF: tl.constexpr):
    """A whole decoder layer at batch 1, every layer (STAGE < 0: one launch, a grid barrier after each
    of the five stages, and with PF each stage's program then prefetching its rows of the next GEMV's
    weight) or one stage of layer LAYER (STAGE >= 0). Stages: 0 qkv = rmsnorm(h) g1 . Wqkv; 1 attention
    (KV heads x SPLITS items, the q/k norm, RoPE and the cache write inside, the last split of a head
    combining); 2 h2 = h + o . Wo; 3 a = silu(rmsnorm(h2) g2 . Wg) * (. Wu); 4 h = h2 + a . Wd (the
    GEMVs are _stage's 0-3). Every layer has its own qkv, o, partial and counter rows (a layer's loads
    never meet what an SM's L1 kept of the layer before), the caches [layers, L, KV, HD]."""
    pid = tl.program_id(0)
    P = tl.num_programs(0)
    pos = tl.load(pos_ptr)
    weights = (wqkv_ptr, wo_ptr, wgu_ptr, wd_ptr)
    if STAGE < 0:
        first = 0
        last = LAYERS
    else:
        first = LAYER
        last = LAYER + 1
    for layer in range(first, last):
        wide = tl.cast(layer, tl.int64)
        qkv = qkv_ptr + wide * NQKV
        o = o_ptr + wide * HHD
        buffers = (h_ptr, h2_ptr, qkv, o, a_ptr, wqkv_ptr, wo_ptr, wgu_ptr, wd_ptr, g1_ptr, g2_ptr)
        for s in tl.static_range(5):
            if STAGE < 0 or STAGE == s:
                if s == 1:
                    for item in range(pid, KV * SPLITS, P):
                        _attention_item(item % KV, item // KV, qkv, qn_ptr + wide * HD, kn_ptr + wide * HD, cos_ptr,
                                        sin_ptr, kc_ptr + wide * L * KV * HD, vc_ptr + wide * L * KV * HD, o,
                                        part_ptr + wide * H * SPLITS * HD, ml_ptr + wide * H * SPLITS * 2,
                                        attn_count_ptr + wide * KV, pos, L, qk_scale, eps, SPLITS, stride_cos,
                                        KV * HD, HD, H, KV, H // KV, HP, HD, BLOCK_ATT, HC, CS)
                else:
                    _stage(s - (s > 1), layer, *buffers, pid, P, D, NQKV, HHD, INTER, eps, BLOCK_D, BLOCK_K,
                           BN0, BN1, BN2, BN3)
                if STAGE < 0:
                    if PF:
                        if s < 3:  # after stage s the GEMV two stages on: o_proj's after qkv, and so on
                            _prefetch_stage(s + 1, layer, *weights, pid, P, D, NQKV, HHD, INTER, BN0, BN1,
                                            BN2, BN3, LQ, LO, LG, LD)
                        elif s == 3 and layer + 1 < LAYERS:
                            _prefetch_stage(0, layer + 1, *weights, pid, P, D, NQKV, HHD, INTER, BN0, BN1, BN2,
                                            BN3, LQ, LO, LG, LD)
                    _grid_sync(count_ptr, gen_ptr, P)


def block_n(n: int, programs: int, most: int = 64) -> int:
    """The power-of-two tile of outputs that gives the busiest program the fewest rows (ties: the
    larger tile): cdiv(n / tile, programs) rounds of `tile` rows each."""
    best = None
    tile = 1
    while tile <= most:
        rows = math.ceil(math.ceil(n / tile) / programs) * tile
        if best is None or rows <= best[0]:
            best = (rows, tile)
        tile *= 2
    return best[1]


def lines(k: int, elem_bytes: int) -> int:
    """128-byte lines of a row of k elements, rounded up to a power of two (the prefetch tile's width)."""
    return triton.next_power_of_2(math.ceil(k * elem_bytes / 128))


def make_weights(d: int, heads_dim: int, nqkv: int, inter: int, layers: int, dtype, device, seed: int = 0) -> dict:
    """Random weights of `layers` layers, stacked, drawn on `device` (8B's are 14 GB), each layer's slice
    at a time in fp32: scaled so every row's activations stay near 1."""
    gen = torch.Generator(device=device).manual_seed(seed)

    def rand(*shape, scale=1.0, shift=0.0):
        out = torch.empty(shape, dtype=dtype, device=device)
        for layer in range(shape[0]):
            out[layer] = torch.randn(shape[1:], generator=gen, device=device) * scale + shift
        return out

    return {
        "wqkv": rand(layers, nqkv, d, scale=d**-0.5), "wo": rand(layers, d, heads_dim, scale=heads_dim**-0.5),
        "wgu": rand(layers, 2 * inter, d, scale=d**-0.5), "wd": rand(layers, d, inter, scale=inter**-0.5),
        "g1": rand(layers, d, scale=0.1, shift=1.0), "g2": rand(layers, d, scale=0.1, shift=1.0),
    }


def reference(h: torch.Tensor, w: dict, heads_dim: int, eps: float) -> torch.Tensor:
    """The chain in fp32 with the kernel's roundings to the weights' dtype: h [D] after every layer."""
    dt = w["wqkv"].dtype
    h = h.float()

    def norm(x, g):
        x = (x * torch.rsqrt(x.pow(2).mean() + eps)).to(dt).float()
        return (x * g.float()).to(dt).float()

    for layer in range(w["wqkv"].shape[0]):
        qkv = (w["wqkv"][layer].float() @ norm(h, w["g1"][layer])).to(dt).float()
        h2 = (h + (w["wo"][layer].float() @ qkv[:heads_dim]).to(dt).float()).to(dt).float()
        gu = (w["wgu"][layer].float() @ norm(h2, w["g2"][layer])).to(dt).float()
        inter = gu.shape[0] // 2
        a = (torch.nn.functional.silu(gu[:inter]) * gu[inter:]).to(dt).float()
        h = (h2 + (w["wd"][layer].float() @ a).to(dt).float()).to(dt).float()
    return h


class Chain:
    """chain_kernel's buffers and launch settings for one set of weights."""

    def __init__(self, w: dict, heads_dim: int, programs: int, eps: float = 1e-6, num_warps: int = 4,
                 block_k: int = 512, prefetch: bool = True, rows: int = 64):
        self.w, self.heads_dim, self.programs, self.eps = w, heads_dim, programs, eps
        self.layers, self.nqkv, self.d = w["wqkv"].shape
        self.inter = w["wd"].shape[2]
        like = w["wqkv"]
        self.h = torch.zeros(self.d, dtype=like.dtype, device=like.device)
        self.h2 = torch.empty_like(self.h)
        self.qkv = torch.empty(self.nqkv, dtype=like.dtype, device=like.device)
        self.a = torch.empty(self.inter, dtype=like.dtype, device=like.device)
        self.sync = torch.zeros(2, dtype=torch.int32, device=like.device)  # count, generation
        eb = like.element_size()
        p = programs
        self.meta = dict(BLOCK_D=triton.next_power_of_2(self.d), BLOCK_K=block_k,
                         BN0=block_n(self.nqkv, p, rows), BN1=block_n(self.d, p, rows),
                         BN2=block_n(self.inter, p, rows), BN3=block_n(self.d, p, rows),
                         LQ=lines(self.d, eb), LO=lines(heads_dim, eb),
                         LG=lines(self.d, eb), LD=lines(self.inter, eb), PF=prefetch, num_warps=num_warps)

    def _args(self, layer: int = 0) -> tuple:
        w = self.w
        return (self.h, self.h2, self.qkv, self.a, w["wqkv"], w["wo"], w["wgu"], w["wd"], w["g1"], w["g2"],
                self.sync, self.sync[1:], self.layers, layer, self.d, self.nqkv, self.heads_dim, self.inter,
                self.eps)

    def run_persistent(self) -> None:
        """Every layer in one cooperative launch (CUDA only)."""
        chain_kernel[(self.programs,)](*self._args(), STAGE=-1, launch_cooperative_grid=True, **self.meta)

    def run_stages(self) -> None:
        """One launch a stage (no barrier): what the interpreter can run."""
        for layer in range(self.layers):
            for stage in range(STAGES):
                chain_kernel[(self.programs,)](*self._args(layer), STAGE=stage, **self.meta)


def make_layer_inputs(d: int, heads: int, kv_heads: int, head_dim: int, inter: int, layers: int, context: int,
                      dtype, device, seed: int = 0) -> dict:
    """make_weights' weights, q/k norm gains [layers, head_dim], K/V caches [layers, context, KV, head_dim]
    and the RoPE tables of `context` positions."""
    from kernel_space.decode_attention import rope_tables

    nqkv = (heads + 2 * kv_heads) * head_dim
    w = make_weights(d, heads * head_dim, nqkv, inter, layers, dtype, device, seed)
    gen = torch.Generator(device=device).manual_seed(seed + 1)
    cache = (layers, context, kv_heads, head_dim)
    cos, sin = rope_tables(head_dim, context, 1_000_000.0)
    return {**w, "qn": (1 + 0.1 * torch.randn(layers, head_dim, generator=gen, device=device)).to(dtype),
            "kn": (1 + 0.1 * torch.randn(layers, head_dim, generator=gen, device=device)).to(dtype),
            "kc": torch.randn(cache, generator=gen, device=device).to(dtype),
            "vc": torch.randn(cache, generator=gen, device=device).to(dtype),
            "cos": cos.to(device), "sin": sin.to(device), "heads": heads, "kv_heads": kv_heads, "head_dim": head_dim}


def layer_reference(h: torch.Tensor, w: dict, pos: int, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor,
                                                                                        torch.Tensor]:
    """The decoder layers at batch 1 in fp32 / fp64 (attention: decode_attention_reference) with the
    kernels' roundings, over copies of the caches: (h after every layer, the caches with the new slot)."""
    from kernel_space.decode_attention import decode_attention_reference, prep_reference

    dt, kv, hd = w["wqkv"].dtype, w["kv_heads"], w["head_dim"]
    kc, vc = w["kc"].clone(), w["vc"].clone()
    positions = torch.tensor([pos], device=h.device)
    h = h.float()

    def norm(x, g):
        x = (x * torch.rsqrt(x.pow(2).mean() + eps)).to(dt).float()
        return (x * g.float()).to(dt).float()

    for layer in range(w["wqkv"].shape[0]):
        qkv = (w["wqkv"][layer].float() @ norm(h, w["g1"][layer])).to(dt)
        q, k, v = prep_reference(qkv[None], w["qn"][layer], w["kn"][layer], w["cos"], w["sin"], eps, positions, kv,
                                 kc.shape[1])
        kc[layer, pos], vc[layer, pos] = k[0], v[0]
        o = decode_attention_reference(q, kc[layer][None], vc[layer][None], positions, hd**-0.5)[0, 0].to(dt)
        h2 = (h + (w["wo"][layer].float() @ o.float()).to(dt).float()).to(dt).float()
        gu = (w["wgu"][layer].float() @ norm(h2, w["g2"][layer])).to(dt).float()
        half = gu.shape[0] // 2
        a = (torch.nn.functional.silu(gu[:half]) * gu[half:]).to(dt).float()
        h = (h2 + (w["wd"][layer].float() @ a).to(dt).float()).to(dt).float()
    return h, kc, vc


class Layer:
    """layer_kernel's buffers and launch settings: one sequence whose new token sits at `pos`, over the
    caches of w (make_layer_inputs), updated in place."""

    def __init__(self, w: dict, programs: int, pos: int, eps: float = 1e-6, num_warps: int = 4,
                 block_k: int = 512, prefetch: bool = True, splits: int | None = None, rows: int = 64):
        from kernel_space.decode_attention import SPLITS_VALUES, _rows, combine_splits

        self.w, self.programs, self.eps = w, programs, eps
        layers, nqkv, d = w["wqkv"].shape
        heads, kv, hd = w["heads"], w["kv_heads"], w["head_dim"]
        context, inter = w["kc"].shape[1], w["wd"].shape[2]
        like, dev = w["wqkv"], w["wqkv"].device
        block_att = min(64, max(16, triton.next_power_of_2(pos + 1)))
        blocks = math.ceil((pos + 1) / block_att)
        if splits is None:  # as many KV-head x split items as programs, each split at least one block
            splits = max(x for x in SPLITS_VALUES if x == 1 or (kv * x <= programs and x <= blocks))
        self.dims = (layers, d, nqkv, heads * hd, inter, context, splits)
        self.h = torch.zeros(d, dtype=like.dtype, device=dev)
        self.h2 = torch.empty_like(self.h)
        self.qkv = torch.empty(layers, nqkv, dtype=like.dtype, device=dev)
        self.o = torch.empty(layers, heads * hd, dtype=like.dtype, device=dev)
        self.a = torch.empty(inter, dtype=like.dtype, device=dev)
        self.part = torch.empty(layers, heads, splits, hd, dtype=torch.float32, device=dev)
        self.ml = torch.empty(layers, heads, splits, 2, dtype=torch.float32, device=dev)
        self.attn_count = torch.zeros(layers, kv, dtype=torch.int32, device=dev)
        self.sync = torch.zeros(2, dtype=torch.int32, device=dev)
        self.pos = torch.tensor([pos], dtype=torch.int64, device=dev)
        eb, group, p = like.element_size(), heads // kv, programs
        hc = triton.next_power_of_2(group)
        self.meta = dict(H=heads, KV=kv, HD=hd, HP=_rows(group, "group"), HC=hc,
                         CS=combine_splits(hc, hd, 32 * num_warps, splits), BLOCK_ATT=block_att,
                         BLOCK_D=triton.next_power_of_2(d), BLOCK_K=block_k, BN0=block_n(nqkv, p, rows),
                         BN1=block_n(d, p, rows), BN2=block_n(inter, p, rows), BN3=block_n(d, p, rows),
                         LQ=lines(d, eb), LO=lines(heads * hd, eb),
                         LG=lines(d, eb), LD=lines(inter, eb), PF=prefetch, num_warps=num_warps)

    def _args(self, layer: int = 0) -> tuple:
        w = self.w
        layers, d, nqkv, hhd, inter, context, splits = self.dims
        return (self.h, self.h2, self.qkv, self.o, self.a, self.part, self.ml, self.attn_count,
                w["wqkv"], w["wo"], w["wgu"], w["wd"], w["g1"], w["g2"], w["qn"], w["kn"], w["cos"], w["sin"],
                w["kc"], w["vc"], self.sync, self.sync[1:], self.pos, layers, layer, d, nqkv, hhd, inter, context,
                splits, self.eps, w["head_dim"] ** -0.5 * LOG2E, w["cos"].stride(0))

    def run_persistent(self) -> None:
        """Every layer in one cooperative launch (CUDA only)."""
        layer_kernel[(self.programs,)](*self._args(), STAGE=-1, launch_cooperative_grid=True, **self.meta)

    def run_stages(self) -> None:
        """One launch a stage (no barrier): what the interpreter can run."""
        for layer in range(self.dims[0]):
            for stage in range(5):
                layer_kernel[(self.programs,)](*self._args(layer), STAGE=stage, **self.meta)


def layer_launches_arm(w: dict, pos: int, table: dict, attention: dict | None = None, eps: float = 1e-6):
    """The same layers as today's kernels, one launch each (the table's M = 1 configs; decode attention
    with its q/k prep by `attention`, or the default plan): a function of h [1, D] returning the last h."""
    from kernel_space.decode_attention import decode_attention_prep
    from kernel_space.o_proj_residual import o_proj_residual
    from kernel_space.rmsnorm_gate_up_silu import rmsnorm_gate_up_silu
    from kernel_space.rmsnorm_qkv import rmsnorm_qkv

    positions = torch.tensor([[pos]], device=w["wqkv"].device)
    scale = w["head_dim"] ** -0.5

    def run(h):
        for layer in range(w["wqkv"].shape[0]):
            qkv = rmsnorm_qkv(h, w["g1"][layer], w["wqkv"][layer], table["rmsnorm_qkv"], eps)
            o = decode_attention_prep(qkv, w["qn"][layer], w["kn"][layer], w["cos"], w["sin"], eps,
                                      w["kc"][layer][None], w["vc"][layer][None], positions, scale, 0, attention)
            h2 = o_proj_residual(o.view(1, -1), h, w["wo"][layer], table["o_proj_residual"])
            a = rmsnorm_gate_up_silu(h2, w["g2"][layer], w["wgu"][layer], table["rmsnorm_gate_up_silu"], eps)
            h = o_proj_residual(a, h2, w["wd"][layer], table["down_residual"])
        return h

    return run


def launches_arm(w: dict, heads_dim: int, table: dict, eps: float = 1e-6):
    """The same chain as today's fused ops, one launch each (the table's M = 1 configs): a function of
    h [1, D] returning the last h."""
    from kernel_space.o_proj_residual import o_proj_residual
    from kernel_space.rmsnorm_gate_up_silu import rmsnorm_gate_up_silu
    from kernel_space.rmsnorm_qkv import rmsnorm_qkv

    def run(h):
        for layer in range(w["wqkv"].shape[0]):
            qkv = rmsnorm_qkv(h, w["g1"][layer], w["wqkv"][layer], table["rmsnorm_qkv"], eps)
            h2 = o_proj_residual(qkv[:, :heads_dim], h, w["wo"][layer], table["o_proj_residual"])
            a = rmsnorm_gate_up_silu(h2, w["g2"][layer], w["wgu"][layer], table["rmsnorm_gate_up_silu"], eps)
            h = o_proj_residual(a, h2, w["wd"][layer], table["down_residual"])
        return h

    return run


def _eager_ms(fn, runs: int = 20) -> list[float]:
    """ms of each of `runs` eager calls of fn (after three)."""
    times = []
    for _ in range(runs + 3):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return times[3:]


def _graph_ms(fn) -> float:
    """Median ms of one call of fn in a CUDA graph of several (tuner.measure.time_graph: as the tuner
    times an op)."""
    return measure.time_graph(lambda _: fn(), [{}]).median_us / 1e3


def _table_configs(path: str | None, ops: tuple[str, ...]) -> dict:
    """The table's M = 1 config of each op (a plain fma config where the table runs unfused there)."""
    plain = {"impl": "fused", "path": "fma", "BLOCK_M": 1, "BLOCK_N": 16, "BLOCK_K": 512, "SPLIT_K": 1,
             "split_reduce": "kernel", "num_warps": 4, "num_stages": 3, "GROUP_M": 1, "prologue": "inline"}
    configs = {op: dict(plain) for op in ops}
    if path:
        from storage.table import load_table

        for op, entry in load_table(path).ops.items():
            for bucket in entry.buckets:
                if op in configs and bucket.m == 1 and bucket.arm == "fused":
                    configs[op] = dict(bucket.config)
    return configs


def smoke() -> int:
    """Two layers of small shapes in one persistent launch at every grid size the sweep uses, checked."""
    w = make_weights(256, 128, 384, 320, 2, torch.bfloat16, "cuda")
    h0 = torch.randn(256, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16).cuda()
    want = reference(h0, w, 128, 1e-6)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    for grid in (sms, 2 * sms):
        chain = Chain(w, 128, grid)
        chain.h.copy_(h0)
        chain.run_persistent()
        torch.cuda.synchronize()
        err = ((chain.h.float() - want).abs().max() / want.abs().max()).item()
        print(f"smoke: {grid} programs, max error {err:.3g} of the largest value", flush=True)
        if err > 0.05:
            return 1
    return 0


GEMV_OPS = ("rmsnorm_qkv", "o_proj_residual", "rmsnorm_gate_up_silu", "down_residual")


def _setup(args, cfg, device="cuda", dtype=torch.bfloat16) -> tuple:
    """(inputs, h0, reference h, K/V bytes a step reads, the launches' configs, the launches arm (a
    function of h [1, D]), the persistent arm's factory of a sweep point) for --layer or the GEMV chain."""
    heads_dim = cfg.num_attention_heads * cfg.head_dim
    h0 = torch.randn(cfg.hidden_size, generator=torch.Generator().manual_seed(1)).to(dtype).to(device)
    table = _table_configs(args.table, GEMV_OPS)
    if args.layer:
        w = make_layer_inputs(cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim,
                              cfg.intermediate_size, cfg.num_hidden_layers, args.context, dtype, device)
        pos = args.context - 1
        want = layer_reference(h0, w, pos)[0]
        kv_bytes = 2 * w["kc"].numel() * w["kc"].element_size()
        return (w, h0, want, kv_bytes, table, layer_launches_arm(w, pos, table),
                lambda grid, warps, bk, pf, rows: Layer(w, grid, pos, num_warps=warps, block_k=bk, prefetch=pf,
                                                         rows=rows))
    nqkv = (cfg.num_attention_heads + 2 * cfg.num_key_value_heads) * cfg.head_dim
    w = make_weights(cfg.hidden_size, heads_dim, nqkv, cfg.intermediate_size, cfg.num_hidden_layers, dtype, device)
    return (w, h0, reference(h0, w, heads_dim, 1e-6), 0, table, launches_arm(w, heads_dim, table),
            lambda grid, warps, bk, pf, rows: Chain(w, heads_dim, grid, num_warps=warps, block_k=bk, prefetch=pf,
                                                     rows=rows))


def _time_persistent(runner, h0, check, detail: dict) -> dict:
    """One sweep point: run and check once, then time (a CUDA graph, eager launches where the capture
    refuses a cooperative launch); the error where it cannot run at all."""
    def step():
        runner.h.copy_(h0)
        runner.run_persistent()

    try:
        step()
        torch.cuda.synchronize()
        err = check(runner.h, f"persistent {detail}")
    except (RuntimeError, triton.CompilationError) as exc:  # e.g. not every program resident
        return {"arm": "persistent", **detail, "error": str(exc).splitlines()[0][:200]}
    global _GRAPH_REFUSED
    ms = None
    if _GRAPH_REFUSED is None:
        try:
            ms, timing = _graph_ms(step), "graph"
        except RuntimeError as exc:  # tried once a process: a refused capture is not retried
            _GRAPH_REFUSED = str(exc).splitlines()[0][:120]
            torch.cuda.synchronize()
    if ms is None:
        ms, timing = statistics.median(_eager_ms(step)), f"eager (the graph capture refused it: {_GRAPH_REFUSED})"
    return {"arm": "persistent", **detail, "ms": ms, "timing": timing, "max_rel_error": err}


_GRAPH_REFUSED: str | None = None  # why a CUDA graph could not capture a cooperative launch, once it could not


def start_run(args) -> SimpleNamespace:
    """What a probe's run begins with (this one's and resident_probe's): the model's inputs and arms
    (_setup), the floor row, the check of an arm's last h against the reference, the result that
    save() writes after every row (a run cut by a time limit keeps what it measured), and the launches
    arm, checked, timed and saved."""
    from benchmarks.attn_bench import copy_bandwidth
    from qwen3.config import resolve_model

    cfg = resolve_model(args.model)
    w, h0, want, kv_bytes, table, run, factory = _setup(args, cfg)
    weight_bytes = sum(w[k].numel() * w[k].element_size() for k in ("wqkv", "wo", "wgu", "wd"))
    bandwidth = copy_bandwidth()
    rows = [{"arm": "floor", "ms": (weight_bytes + kv_bytes) / bandwidth * 1e3}]

    def check(got, arm):
        err = ((got.float() - want).abs().max() / want.abs().max()).item()
        if err > 0.05:
            raise SystemExit(f"error: {arm} is wrong: max error {err:.3g} of the largest value")
        return err

    result = {"gpu": torch.cuda.get_device_name(), "date": dt.date.today().isoformat(), "model": args.model,
              "mode": "layer" if args.layer else "gemv chain", "context": args.context if args.layer else None,
              "layers": cfg.num_hidden_layers, "weight_bytes": weight_bytes, "kv_bytes": kv_bytes,
              "bandwidth": bandwidth, "rows": rows}

    def save():
        args.out.write_text(json.dumps(result, indent=1))

    h_in = h0[None].clone()
    err = check(run(h_in)[0], "launches")
    # Every arm starts each replay with the same copy of h0 into its input (a persistent one updates its
    # row in place, and every layer of a replay would drift it without bound).
    ms = _graph_ms(lambda: (h_in.copy_(h0[None]), run(h_in)))
    rows.append({"arm": "launches", "ms": ms, "max_rel_error": err, "configs": table})
    print(f"launches: {ms:.3f} ms (floor {rows[0]['ms']:.3f})", flush=True)
    save()
    return SimpleNamespace(cfg=cfg, w=w, h0=h0, factory=factory, rows=rows, check=check, save=save)


def common_args(p: argparse.ArgumentParser, warps: list[int], programs: str) -> None:
    """The options this probe and resident_probe share."""
    p.add_argument("out", type=Path)
    p.add_argument("--model", default="qwen3-0.6b")
    p.add_argument("--table", help="dispatch table whose M = 1 configs the launches arm runs")
    p.add_argument("--layer", action="store_true",
                   help="whole decoder layers (attention included) instead of the GEMV chain")
    p.add_argument("--context", type=int, default=256, help="with --layer: cache slots, the new token in the last")
    p.add_argument("--programs", type=int_list, default=None, help=f"comma list of grid sizes (default: {programs})")
    p.add_argument("--warps", type=int_list, default=warps, help="comma list of num_warps")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common_args(p, [4, 8], "SMs, 2 x SMs")
    p.add_argument("--block-k", type=int_list, default=[256, 512], help="comma list of BLOCK_K (powers of two)")
    p.add_argument("--block-n", type=int_list, default=[16],
                   help="comma list of the most output rows a GEMV tile holds (powers of two; the tuned M = 1 "
                        "configs hold 16)")
    p.add_argument("--prefetch", type=name_list(("on", "off")), default=["on", "off"],
                   help="comma list: on (each stage prefetches its rows of the next GEMV's weight into L2), off")
    p.add_argument("--smoke", action="store_true",
                   help="one persistent launch over 2 layers, checked, then exit (run it under a short timeout "
                        "first: a barrier that never opens hangs the GPU)")
    args = p.parse_args(argv)
    bad = [x for x in args.block_k + args.block_n if x & (x - 1)]
    bad += [x for x in args.warps if x not in (1, 2, 4, 8, 16)]
    if bad:
        raise SystemExit("error: BLOCK_K and BLOCK_N must be powers of two and num_warps one of 1, 2, 4, 8, 16; "
                         f"got {bad}")
    if args.context < 1:
        raise SystemExit(f"error: --context must be at least 1, got {args.context}")
    if not torch.cuda.is_available():
        raise SystemExit("error: the probe needs a CUDA GPU")
    if args.smoke:
        return smoke()
    run = start_run(args)
    cfg, h0, factory, rows, check, save = run.cfg, run.h0, run.factory, run.rows, run.check, run.save
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    grids = args.programs or [sms, 2 * sms]
    barriers = cfg.num_hidden_layers * (5 if args.layer else STAGES)
    for grid in grids:  # what the persistent arm's boundaries cost alone
        try:
            ms = time_barriers(barriers, grid, 4)
        except RuntimeError as exc:
            rows.append({"arm": "barriers", "programs": grid, "error": str(exc).splitlines()[0][:200]})
        else:
            rows.append({"arm": "barriers", "programs": grid, "barriers": barriers, "ms": ms,
                         "us_per_barrier": ms * 1e3 / barriers})
            print(f"{barriers} barriers alone, {grid} programs: {ms:.3f} ms", flush=True)
        save()
    for grid, warps, bk, bn, pf in itertools.product(grids, args.warps, args.block_k, args.block_n,
                                                        [x == "on" for x in args.prefetch]):
        detail = {"programs": grid, "num_warps": warps, "BLOCK_K": bk, "BLOCK_N_most": bn, "prefetch": pf}
        rows.append(_time_persistent(factory(grid, warps, bk, pf, bn), h0, check, detail))
        print(f"persistent {detail}: " + (f"{rows[-1]['ms']:.3f} ms ({rows[-1]['timing']})"
                                          if "ms" in rows[-1] else rows[-1]["error"]), flush=True)
        save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
