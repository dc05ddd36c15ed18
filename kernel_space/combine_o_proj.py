"""combine_o_proj: decode attention's combine folded into o_proj, at batch 1 (issue 10).

Where decode attention splits a sequence's cache, its programs write partials (acc, max, sum per
split) and the splits are combined by the last program of a unit to arrive (an arrival counter, then a
reload of every split from L2) or by a second kernel. Either way the attention ends a dependent round
trip or a launch after its last partial store. Here o_proj's programs combine instead: the attention
leaves its kernel_space.decode_attention.SplitPartials, and each program of this GEMV loads every
split's partial of its heads, weighs them by the softmax sums as the combine does (base 2), rounds the
result to the model's dtype as o would be stored, and multiplies it by its weight tile. Then the
residual is added as o_proj_residual adds it: _gemm's epilogues, the last program of a tile reducing
the splits, or an atomic add into a wide residual stream (accumulate).

Every program of a K slice repeats that slice's combine, once per N tile, so the tile is shaped for it:
one head a split (BLOCK_K = head_dim, SPLIT_K = heads) and FOLD_BLOCK_N columns. Tiles of four heads
(the tuned o_proj's at batch 1) made the step slower (0.79-0.90x on an H200); this one made Qwen3-0.6B's
batch-1 step 2.8-5.1% faster, 1.7B's no faster and 8B's 2.3-6.2% slower (benchmarks/README.md,
thirty-first session), so the model folds only where a step check measured it faster (storage.table's
"fold"). A sequence that used one split has o written by the attention, and the programs read it.

Batch 1 only: one row a program, multiply and tl.sum (the fma path). It launches with PDL on Hopper.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernel_space import _gemm, jit_keys
from kernel_space._common import STREAM_DTYPES, STREAM_INPUT_DTYPES, check_matrix
from kernel_space._gemm import _accumulate, _reduce_tile, _store_partials, _w_tile, pdl_enter
from kernel_space.decode_attention import SplitPartials, _length, _split_bounds

FOLD_BLOCK_N = 64  # columns a program: 0.6B's best of 32 / 64 / 128 in the fixed-point stream (128 in the model dtype)
FOLD_WARPS = 4


@triton.jit
def combine_o_proj_kernel(part_ptr, ml_ptr, o_ptr, pos_ptr, w_ptr, res_ptr, out_ptr, spart_ptr, count_ptr,
                          N, K, stride_wn, stride_rom, stride_om, SPLITS, L,
                          HD: tl.constexpr, SC: tl.constexpr, ATT_BLOCK_N: tl.constexpr, BLOCK_N: tl.constexpr,
                          SPLIT_K: tl.constexpr, ACCUMULATE: tl.constexpr, PDL: tl.constexpr = False,
                          PREFETCH: tl.constexpr = False):
    """Program (N tile, head): out = res + o @ W^T over the head's HD columns of W, o combined here from
    the SplitPartials of sequence 0 ([H, SPLITS, HD] and [H, SPLITS, 2]: at most SC splits), or read from
    o where the sequence used one split. PREFETCH (_gemm.pdl_launch_args) is unused: a program loads its
    one weight block before PDL's wait."""
    pid_n = tl.program_id(0)
    head = tl.program_id(1)
    offs_m = tl.arange(0, 1)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    d = tl.arange(0, HD)
    w, _ = _w_tile(w_ptr, offs_n, head * HD + d, N, K, stride_wn, False)  # weights are never written
    if PDL:
        pdl_enter(PDL)
    _, _, n_active = _split_bounds(_length(tl.load(pos_ptr), L), 0, SPLITS, ATT_BLOCK_N)
    if n_active == 1:
        a = tl.load(o_ptr + head * HD + d).to(tl.float32)
    else:
        s = tl.arange(0, SC)
        live = s < n_active  # every active split holds a slot: its max is finite
        idx = head * SPLITS + s
        # .cg: from L2, never from this SM's L1, where another program's partial cannot be.
        m_s = tl.load(ml_ptr + idx * 2, mask=live, other=float("-inf"), cache_modifier=".cg")
        l_s = tl.load(ml_ptr + idx * 2 + 1, mask=live, other=0.0, cache_modifier=".cg")
        a_s = tl.load(part_ptr + idx[:, None] * HD + d[None, :], mask=live[:, None], other=0.0, cache_modifier=".cg")
        wt = tl.exp2(m_s - tl.max(m_s, axis=0))  # 0 where the split is not active
        a = tl.sum(a_s * wt[:, None], axis=0) / tl.sum(l_s * wt, axis=0)
        a = a.to(o_ptr.dtype.element_ty).to(tl.float32)  # as the combine stores o
    acc = tl.sum(a[:, None] * w.to(tl.float32), axis=0)[None, :]
    if ACCUMULATE:
        _accumulate(acc, offs_m, offs_n, 1, N, out_ptr, stride_om, SPLIT_K)
    else:
        ss = tl.zeros((1,), tl.float32)
        _store_partials(spart_ptr, spart_ptr, acc, acc, ss, head, pid_n, offs_m, offs_n, 1, N, False, False, BLOCK_N,
                        False)
        # The last program of the tile to arrive adds the heads' partials and the residual (_gemm's
        # last-program split-K; the barrier orders every thread's stores before the counter's release).
        tl.debug_barrier()
        arrived = tl.atomic_add(count_ptr + pid_n, 1, sem="acq_rel", scope="gpu")
        if arrived == SPLIT_K - 1:
            tl.store(count_ptr + pid_n, 0)  # zero again for the next launch (a graph replays it)
            _reduce_tile(spart_ptr, spart_ptr, res_ptr, out_ptr, 0, pid_n, 1, N, K, stride_rom, stride_om, 0.0,
                         False, False, True, SPLIT_K, 1, BLOCK_N, False)


KERNEL_SOURCES = (combine_o_proj_kernel,)


def o_proj_residual_combined(parts: SplitPartials, residual: torch.Tensor, w: torch.Tensor,
                             accumulate: bool = False) -> torch.Tensor:
    """residual + combine(parts) @ w^T, [1, N]: o_proj_residual at batch 1 from decode attention's
    uncombined partials (decode_attention(..., partials=True)). w [N, heads * head_dim]. accumulate:
    residual is the model's fp32 or fixed-point stream, updated in place and returned (as
    o_proj_residual's accumulate)."""
    heads, hd = _check(parts, residual, w, accumulate)
    n, k = w.shape
    tiles = triton.cdiv(n, FOLD_BLOCK_N)
    out = residual if accumulate else torch.empty((1, n), dtype=w.dtype, device=w.device)
    if accumulate:
        spart = counts = out
    else:
        spart = torch.empty((heads, 1, n), dtype=torch.float32, device=w.device)
        counts = _gemm._counters(w.device, tiles)
    _gemm._launcher(combine_o_proj_kernel, (tiles, heads))(
        parts.part, parts.ml, parts.o, parts.positions, w, residual, out, spart, counts,
        n, k, w.stride(0), residual.stride(0), out.stride(0), parts.splits, parts.context,
        HD=hd, SC=triton.next_power_of_2(parts.splits), ATT_BLOCK_N=parts.block_n, BLOCK_N=FOLD_BLOCK_N,
        SPLIT_K=heads, ACCUMULATE=accumulate, num_warps=FOLD_WARPS, num_stages=1,
        **_gemm.pdl_launch_args(w.device, tiles * heads, w.numel() * w.element_size()),
    )
    return out


def _check(parts: SplitPartials, residual: torch.Tensor, w: torch.Tensor, accumulate: bool) -> tuple[int, int]:
    """(heads, head_dim) of parts; ValueError for anything the kernel cannot take."""
    if not isinstance(parts, SplitPartials):
        raise ValueError(f"parts must be decode attention's SplitPartials, got {type(parts).__name__}")
    if parts.part.ndim != 4 or parts.part.shape[0] != 1 or parts.part.shape[2] != parts.splits:
        raise ValueError(f"parts.part must be [1, heads, {parts.splits}, head_dim], got {tuple(parts.part.shape)}")
    _, heads, _, hd = parts.part.shape
    if hd & (hd - 1):
        raise ValueError(f"head_dim must be a power of two, got {hd}")
    check_matrix("w", w, cols=heads * hd)
    if w.device != parts.part.device:
        raise ValueError(f"w is on {w.device}, but the partials are on {parts.part.device}")
    if not accumulate:
        check_matrix("residual", residual, rows=1, cols=w.shape[0], like=w)
    else:
        check_matrix("residual", residual, rows=1, cols=w.shape[0], dtypes=STREAM_INPUT_DTYPES)
        if residual.dtype not in STREAM_DTYPES or residual.device != w.device:
            raise ValueError("accumulate adds into an fp32 or fixed-point (int64) residual stream on the weight's "
                             f"device; residual has dtype {residual.dtype} on {residual.device}")
    return heads, hd

# Cache keys that do not depend on the order of first launches (kernel_space.jit_keys).
jit_keys.settle(globals())
