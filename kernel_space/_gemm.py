"""The one Triton GEMM that all four fused ops are made of, and its split-K epilogue.

out = epilogue(prologue(x) @ W^T), with the prologue and epilogue chosen by constexpr flags:

- NORM:    rmsnorm(x) @ W^T = diag(r) ((x * g) @ W^T) with r = rsqrt(mean(x^2) + eps), so the row
           scale is applied to the accumulator after the K loop and the sum of squares is gathered
           from the x tiles the loop loads anyway (no extra pass over the activation).
- GATED:   W is [2N, K] = [Wg; Wu]; each program keeps two accumulators (rows n and N + n) so the
           epilogue can write silu(g) * u and the [M, 2N] intermediate never reaches memory.
- RES_OUT: the epilogue adds res_out[m, n].
- ACCUMULATE: out is the model's residual stream, fp32 or fixed point (qwen3.model.STREAM_ENV), and
           the product is added into it in place, each split by an atomic (no partials, no reduction).
           The norm ops read such a stream as x (_stream_value) and write their output in w's dtype.

Split-K: program (tile, s) reduces K-slice s into an fp32 partial; then either a second small kernel
sums the partials (and the partial sums of squares) and runs the same epilogue (split_reduce=kernel),
or the last program to arrive at the tile does it, counted with an atomic (split_reduce=last_program).
Decode at M <= 16 is weight streaming, and at N = 1024 or 4096 there are too few N tiles to keep
132 SMs busy without it.

Prologue placement (norm ops): `inline` does the norm inside the K loop of every tile; `rescan` too,
but takes the sum of squares from a second read of the program's activation slice after the loop,
so that nothing in the loop but the product reads the activation tile (a config with a K loop only);
`prepass` runs a one-row-per-program kernel first that writes rmsnorm(x) * g, so the GEMM's loop is
a plain load -> tl.dot pipeline (one more launch, M x K more bytes, both tiny at decode).

Folded gain (GAIN off): the model multiplies each norm's gain into the weight it feeds when it loads
(Qwen3ForCausalLM.fold_norm_gains), and the op gets norm_w None. The K loop then loads no gain and
feeds x to the product as it was loaded; the pre-pass writes rmsnorm(x). Measured on an H100
(benchmarks/README.md, eighteenth session): the gain alone 1.0-1.13x, with `rescan` up to 1.9x on
configs whose loop held the sum of squares.

Offsets: every kernel takes INDEX_64. Off, offsets are int32, which decode needs and is fastest; on
(the launcher turns it on when geometry.LinearLaunch's bound on any offset passes 2^31 - 1, e.g. a
split-K partial at a prefill M, or out at an lm_head-sized N), the tile and row indices are int64
before anything is multiplied by a row length. Scratch buffers are sized by the launch.

PDL (programmatic dependent launch, Hopper on): every kernel here is launched so that it may start
while the kernel before it in the stream is still running. A program first reads its weight slice
early (weights are never written: safe to read before the wait): into registers where the slice is
one K block (ONE_BLOCK, most decode configs; the kernel then has no K loop, in the interpreter too),
else into L2 by prefetch where the grid is small (PREFETCH). Then it waits (griddepcontrol.wait:
the previous kernel has finished and its writes are visible) before it reads an activation or
writes anything, and only then lets the next kernel launch. So one kernel's weight stream overlaps
the previous kernel's tail, and every kernel still completes after its predecessor (a kernel cannot
finish before its wait returns), which keeps longer dependencies (a residual written two kernels
back) ordered too. Kernels of other libraries in between launch normally and wait as usual. A GEMM
grid of more than two programs an SM over weights of more than half of L2 launches without PDL
(PDL_MAX_PROGRAMS_PER_SM: measured faster).

Paths: `dot` uses tl.dot (tensor cores; pads M to 16); `fma` multiplies and reduces with tl.sum,
which wastes nothing at M = 1 and allows BLOCK_N = 8.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass
from typing import NamedTuple

import torch
import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

from kernel_space import _common, jit_keys
from kernel_space.geometry import LinearLaunch


@triton.jit
def _prefetch_l2(ptrs):
    """Ask L2 for the line of every pointer (a hint: no value comes back, nothing waits for it)."""
    tl.inline_asm_elementwise("prefetch.global.L2 [$1];\n\tmov.u32 $0, 0;", "=r,l", [ptrs], dtype=tl.int32,
                              is_pure=False, pack=1)


@triton.jit
def warmup_kernel(x_ptr):
    """Does nothing useful: the compile pool compiles it first (tuner.compile), so that each of its
    processes has loaded the compiler before a config waits for it."""
    tl.store(x_ptr, tl.load(x_ptr) + 1.0)


# The PDL constexpr a launch passes (pdl_launch_args): True lets the next kernel launch after this one's
# wait; PDL_EARLY before it (KERNEL_SEARCH_PDL_TRIGGER=early).
PDL_EARLY: tl.constexpr = tl.constexpr(2)


@triton.jit
def pdl_enter(MODE: tl.constexpr = True):
    """Wait for the previous kernel (its writes visible) and let the next one launch: after the wait,
    or with MODE PDL_EARLY before it. Early, the next kernel's programs may start (and read their
    weights) while this one still waits; each still waits for the kernel before it, which completes
    only after its own wait returned, so completions stay in stream order."""
    if MODE == PDL_EARLY:
        gdc_launch_dependents()
        gdc_wait()
    else:
        gdc_wait()
        gdc_launch_dependents()


# A fixed-point residual stream (qwen3.model.STREAM_ENV=fixed) holds int64 values in units of 2^-24:
# integer adds are associative, so split-K programs adding into it with atomics give the same sum in
# any order (an fp32 stream's last bits depend on the order). _common.to_fixed / stream_values on the
# host; _common.FIXED_NAN is its NaN (set where a product is not finite or too large to add, read as
# NaN at FIXED_NAN_AT or more).
FIXED_ONE: tl.constexpr = tl.constexpr(_common.FIXED_ONE)
FIXED_STEP: tl.constexpr = tl.constexpr(1.0 / _common.FIXED_ONE)
FIXED_MAX_UNITS: tl.constexpr = tl.constexpr(_common.FIXED_MAX * _common.FIXED_ONE)
FIXED_NAN: tl.constexpr = tl.constexpr(_common.FIXED_NAN)
FIXED_NAN_AT: tl.constexpr = tl.constexpr(_common.FIXED_NAN_AT)
FIXED_EXACT: tl.constexpr = tl.constexpr(_common.FIXED_EXACT)
NAN_BITS: tl.constexpr = tl.constexpr(0x7FC00000)  # fp32's quiet NaN (a NaN constexpr: Triton's global check
# compares values, and NaN != NaN)


@triton.jit
def _stream_value(a):
    """A loaded activation tile as it is, or in fp32 where it came from a fixed-point stream (int64; NaN
    where it holds _common.FIXED_NAN_AT or more in magnitude)."""
    if a.dtype == tl.int64:
        nan = (a >= FIXED_NAN_AT) | (a <= -FIXED_NAN_AT)
        a = tl.where(nan, tl.full(a.shape, NAN_BITS, tl.int32).to(tl.float32, bitcast=True),
                     a.to(tl.float32) * FIXED_STEP)
    return a


@triton.jit
def _wide(i, INDEX_64: tl.constexpr):
    """i in int64 when the launch's offsets can pass 2^31 (geometry.LinearLaunch.needs_int64), else as
    it is: every offset derived from it is then computed in 64 bits. Off, the code is unchanged."""
    if INDEX_64:
        i = tl.cast(i, tl.int64)  # tl.cast, not .to: i may be a constexpr (Triton specializes M = 1)
    return i


@triton.jit
def _tile_of(pid, M, N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr):
    """(pid_m, pid_n) of program pid in grouped order: GROUP_M row blocks share each weight tile
    while it is in L2 (prefill)."""
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_in_group = GROUP_M * tl.cdiv(N, BLOCK_N)
    first_pid_m = (pid // num_pid_in_group) * GROUP_M
    group_size_m = min(num_pid_m - first_pid_m, GROUP_M)
    pid_m = first_pid_m + ((pid % num_pid_in_group) % group_size_m)
    pid_n = (pid % num_pid_in_group) // group_size_m
    return pid_m, pid_n


@triton.jit
def _prefetch_weights(w_ptr, offs_n, k_start, N, K, K_PER_SPLIT, stride_wn, GATED: tl.constexpr):
    """This program's weight rows over its K slice into L2, one pointer per 128-byte line (clamped
    into the matrix), eight lines of every row per step."""
    LINE: tl.constexpr = 1024 // w_ptr.dtype.element_ty.primitive_bitwidth
    rows = tl.minimum(offs_n, N - 1)
    for kk in range(0, K_PER_SPLIT, 8 * LINE):
        k_lines = tl.minimum(k_start + kk + tl.arange(0, 8) * LINE, K - 1)
        _prefetch_l2(w_ptr + rows[None, :] * stride_wn + k_lines[:, None])
        if GATED:
            _prefetch_l2(w_ptr + (rows[None, :] + N) * stride_wn + k_lines[:, None])


@triton.jit
def _mac(acc, a, w, USE_DOT: tl.constexpr, DOT_PRECISION: tl.constexpr):
    # a: [BLOCK_M, BLOCK_K] (fp32 after a norm), w: [BLOCK_K, BLOCK_N] in the weight dtype.
    if USE_DOT:
        acc = tl.dot(a.to(w.dtype), w, acc, input_precision=DOT_PRECISION)
    else:
        acc += tl.sum(a[:, :, None] * w.to(tl.float32)[None, :, :], axis=1)
    return acc


@triton.jit
def _w_tile(w_ptr, offs_n, offs_k, N, K, stride_wn, GATED: tl.constexpr):
    """The [BLOCK_K, BLOCK_N] weight tile at (offs_k, offs_n), and its up half's when gated (else w again)."""
    w_mask = (offs_k < K)[:, None] & (offs_n < N)[None, :]
    w = tl.load(w_ptr + offs_n[None, :] * stride_wn + offs_k[:, None], mask=w_mask, other=0.0)
    w2 = w
    if GATED:
        w2 = tl.load(w_ptr + (offs_n[None, :] + N) * stride_wn + offs_k[:, None], mask=w_mask, other=0.0)
    return w, w2


@triton.jit
def _k_step(acc, acc2, ss, x_ptr, norm_w_ptr, w, w2, offs_m, offs_k, M, K, stride_xm,
            NORM: tl.constexpr, GATED: tl.constexpr, USE_DOT: tl.constexpr, DOT_PRECISION: tl.constexpr,
            GAIN: tl.constexpr = True, SKIP_SS: tl.constexpr = False):
    """One K block: x's tile at offs_k (with NORM: its sum of squares added to ss unless SKIP_SS,
    then scaled by the gain unless GAIN is off) times the weight tiles w (and w2 when gated), into
    acc (and acc2). Without GAIN (the gain folded into w) x goes into the product as it was loaded."""
    k_mask = offs_k < K
    a = _stream_value(tl.load(x_ptr + offs_m[:, None] * stride_xm + offs_k[None, :],
                              mask=(offs_m < M)[:, None] & k_mask[None, :], other=0.0))
    if NORM:
        if GAIN:
            a = a.to(tl.float32)
            if not SKIP_SS:
                ss += tl.sum(a * a, axis=1)
            a = a * tl.load(norm_w_ptr + offs_k, mask=k_mask, other=0.0).to(tl.float32)[None, :]
        elif not SKIP_SS:
            a32 = a.to(tl.float32)
            ss += tl.sum(a32 * a32, axis=1)
    if x_ptr.dtype.element_ty != w.dtype and not (NORM and GAIN):
        # x is an fp32 or fixed-point residual stream under 16-bit weights: into the product in the
        # weight's dtype, as a stream in that dtype would be (same registers, same MMA operands).
        a = a.to(w.dtype)
    acc = _mac(acc, a, w, USE_DOT, DOT_PRECISION)
    if GATED:
        acc2 = _mac(acc2, a, w2, USE_DOT, DOT_PRECISION)
    return acc, acc2, ss


@triton.jit
def _ss_pass(ss, x_ptr, offs_m, k_start, M, K, K_PER_SPLIT, stride_xm, BLOCK_K: tl.constexpr):
    """ss plus the sum of squares of x's rows over this program's K slice, read again after the K loop
    (the activation is tiny and the loop just brought it into cache): the loop then feeds x to the
    product as loaded, with nothing else reading it."""
    for kk in range(0, K_PER_SPLIT, BLOCK_K):
        offs_k = k_start + kk + tl.arange(0, BLOCK_K)
        a = _stream_value(tl.load(x_ptr + offs_m[:, None] * stride_xm + offs_k[None, :],
                                  mask=(offs_m < M)[:, None] & (offs_k < K)[None, :], other=0.0)).to(tl.float32)
        ss += tl.sum(a * a, axis=1)
    return ss


@triton.jit
def _k_loop(acc, acc2, ss, x_ptr, norm_w_ptr, w_ptr, offs_m, offs_n, k_start, M, N, K, K_PER_SPLIT, stride_xm,
            stride_wn, NORM: tl.constexpr, GATED: tl.constexpr, BLOCK_K: tl.constexpr, USE_DOT: tl.constexpr,
            DOT_PRECISION: tl.constexpr, GAIN: tl.constexpr = True, SS_PASS: tl.constexpr = False):
    """(acc, acc2, ss) advanced over this program's K slice: x @ W^T for the N tile (and its up half
    when gated) and, with NORM, x's sum of squares from the tiles loaded anyway (or, with SS_PASS, from
    a second read of the slice after the loop)."""
    for kk in range(0, K_PER_SPLIT, BLOCK_K):
        offs_k = k_start + kk + tl.arange(0, BLOCK_K)
        w, w2 = _w_tile(w_ptr, offs_n, offs_k, N, K, stride_wn, GATED)
        acc, acc2, ss = _k_step(acc, acc2, ss, x_ptr, norm_w_ptr, w, w2, offs_m, offs_k, M, K, stride_xm, NORM, GATED,
                                USE_DOT, DOT_PRECISION, GAIN, SS_PASS)
    if NORM and SS_PASS:
        ss = _ss_pass(ss, x_ptr, offs_m, k_start, M, K, K_PER_SPLIT, stride_xm, BLOCK_K)
    return acc, acc2, ss


@triton.jit
def _epilogue(acc, acc2, ss, offs_m, offs_n, M, N, K, eps, res_out_ptr, stride_rom, out_ptr, stride_om,
              NORM: tl.constexpr, GATED: tl.constexpr, RES_OUT: tl.constexpr, pid_n=0, ARGMAX: tl.constexpr = False,
              BLOCK_N: tl.constexpr = 1):
    if NORM:
        r = tl.rsqrt(ss / K + eps)
        acc = acc * r[:, None]
        if GATED:
            acc2 = acc2 * r[:, None]
    if GATED:
        acc = acc * tl.sigmoid(acc) * acc2
    mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    if RES_OUT:
        res = tl.load(res_out_ptr + offs_m[:, None] * stride_rom + offs_n[None, :], mask=mask, other=0.0)
        acc = acc + res.to(tl.float32)
    if ARGMAX:
        # Greedy decoding: each row's largest value in this tile, as the logits would hold it (rounded to
        # out's dtype, the logits' dtype), and its first column, into column pid_n of out and of
        # res_out_ptr (an int32 [M, tiles] buffer: ARGMAX has no residual). The logits are never written.
        v = tl.where(mask, acc.to(out_ptr.dtype.element_ty).to(tl.float32), float("-inf"))
        best, arg = tl.max(v, axis=1, return_indices=True, return_indices_tie_break_left=True)
        rows = offs_m < M
        tl.store(out_ptr + offs_m * stride_om + pid_n, best.to(out_ptr.dtype.element_ty), mask=rows)
        tl.store(res_out_ptr + offs_m * stride_rom + pid_n, (pid_n * BLOCK_N + arg).to(tl.int32), mask=rows)
    else:
        tl.store(out_ptr + offs_m[:, None] * stride_om + offs_n[None, :], acc.to(out_ptr.dtype.element_ty),
                 mask=mask)


@triton.jit
def _store_partials(part_ptr, ss_ptr, acc, acc2, ss, split, pid_n, offs_m, offs_n, M, N,
                    NORM: tl.constexpr, GATED: tl.constexpr, BLOCK_N: tl.constexpr, INDEX_64: tl.constexpr):
    """Split `split`'s fp32 partials: its [M, width] slab of a [SPLIT_K, M, width] buffer. The slab's
    offset split * M * width alone passed 2^31 at M = 65,536: under INDEX_64 it is 64-bit."""
    width = 2 * N if GATED else N
    mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    p_off = _wide(split * M, INDEX_64) * width + offs_m[:, None] * width + offs_n[None, :]
    tl.store(part_ptr + p_off, acc, mask=mask)
    if GATED:
        tl.store(part_ptr + p_off + N, acc2, mask=mask)
    if NORM:
        # Every tile keeps its own copy of the partial sums of squares: a tile's reducer must
        # not wait on another tile's programs (one shared copy raced on the H100).
        tl.store(ss_ptr + (split * tl.cdiv(N, BLOCK_N) + pid_n) * M + offs_m, ss, mask=offs_m < M)


# The most partial values _reduce_tile loads unrolled (BLOCK_M x BLOCK_N, twice when gated, times the
# splits): every config a committed table ships is below it, and builds as before.
REDUCE_UNROLL_ELEMS: tl.constexpr = tl.constexpr(32768)


@triton.jit
def _add_split(acc, acc2, ss, part_ptr, ss_ptr, s, pid_n, num_pid_n, offs_m, offs_n, mask, M, N, width,
               NORM: tl.constexpr, GATED: tl.constexpr, INDEX_64: tl.constexpr):
    """Add split s's partials (and sums of squares) of a tile."""
    p_off = _wide(s * M, INDEX_64) * width + offs_m[:, None] * width + offs_n[None, :]
    # .cg: read from L2, never from this SM's L1, where another program's partial cannot be.
    acc += tl.load(part_ptr + p_off, mask=mask, other=0.0, cache_modifier=".cg")
    if GATED:
        acc2 += tl.load(part_ptr + p_off + N, mask=mask, other=0.0, cache_modifier=".cg")
    if NORM:
        ss += tl.load(ss_ptr + (s * num_pid_n + pid_n) * M + offs_m, mask=offs_m < M, other=0.0,
                      cache_modifier=".cg")
    return acc, acc2, ss


@triton.jit
def _reduce_tile(part_ptr, ss_ptr, res_out_ptr, out_ptr, pid_m, pid_n, M, N, K, stride_rom, stride_om, eps,
                 NORM: tl.constexpr, GATED: tl.constexpr, RES_OUT: tl.constexpr,
                 SPLIT_K: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, INDEX_64: tl.constexpr,
                 ARGMAX: tl.constexpr = False):
    """Sum a tile's SPLIT_K partials (and sums of squares), then run the epilogue. pid_m and pid_n
    arrive already widened when the launch indexes in 64 bits."""
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    width = 2 * N if GATED else N
    num_pid_n = tl.cdiv(N, BLOCK_N)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc2 = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    ss = tl.zeros((BLOCK_M,), dtype=tl.float32)
    # Unrolled, all SPLIT_K partials load at once. A large tile unrolled over many splits took Triton
    # 10-17 s to compile (64 x 128 gated, 16 splits: most of a study's end on the H100) for a kernel
    # that spills: past REDUCE_UNROLL_ELEMS loaded values it unrolls CHUNK splits at a time.
    TILE: tl.constexpr = BLOCK_M * BLOCK_N * (2 if GATED else 1)
    if TILE * SPLIT_K <= REDUCE_UNROLL_ELEMS:
        for s in tl.static_range(SPLIT_K):
            acc, acc2, ss = _add_split(acc, acc2, ss, part_ptr, ss_ptr, s, pid_n, num_pid_n, offs_m, offs_n, mask,
                                       M, N, width, NORM, GATED, INDEX_64)
    else:
        CHUNK: tl.constexpr = max(1, REDUCE_UNROLL_ELEMS // TILE)
        for s0 in range(0, SPLIT_K, CHUNK):
            for s1 in tl.static_range(CHUNK):
                if s0 + s1 < SPLIT_K:  # the space's SPLIT_K are powers of two, as CHUNK is: a guard for others
                    acc, acc2, ss = _add_split(acc, acc2, ss, part_ptr, ss_ptr, s0 + s1, pid_n, num_pid_n, offs_m,
                                               offs_n, mask, M, N, width, NORM, GATED, INDEX_64)
    _epilogue(acc, acc2, ss, offs_m, offs_n, M, N, K, eps, res_out_ptr, stride_rom, out_ptr, stride_om,
              NORM, GATED, RES_OUT, pid_n, ARGMAX, BLOCK_N)


@triton.jit
def _to_fixed(t):
    """fp32 values t in fixed point: (int64 units of 2^-24, ok). Rounded to the nearest, ties away from
    zero, exactly: below FIXED_EXACT units v + 0.5 is exact, and from it on v is a whole number already
    (fp32 would round v + 0.5 to even there). ok is False where t is not finite or not under
    _common.FIXED_MAX in magnitude; the units there are 0 (the caller puts FIXED_NAN in)."""
    v = t * FIXED_ONE
    ok = tl.abs(v) < FIXED_MAX_UNITS  # False for NaN
    v = tl.where(ok, v, 0.0)
    half = tl.where(tl.abs(v) < FIXED_EXACT, tl.where(v >= 0, 0.5, -0.5), 0.0)
    return (v + half).to(tl.int64), ok


@triton.jit
def _accumulate(acc, offs_m, offs_n, M, N, out_ptr, stride_om, SPLIT_K: tl.constexpr):
    """ACCUMULATE: out (an fp32 or fixed-point residual stream) += this program's product, in place. One
    split reads, adds and writes its tile; several add theirs with a relaxed atomic that nothing waits
    for (a `red`): no partials, no arrival counter, no reload by a last program. Into a fixed-point
    stream the product is rounded to units of 2^-24 (_to_fixed) first; where it is not finite or not
    under _common.FIXED_MAX, the element becomes at least FIXED_NAN (an atomic max, not an add: a
    stream that stays NaN for many layers never wraps around; like the add, a `red` nothing waits for)."""
    mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    ptrs = out_ptr + offs_m[:, None] * stride_om + offs_n[None, :]
    if out_ptr.dtype.element_ty == tl.int64:
        fixed, ok = _to_fixed(acc)  # where not ok, FIXED_NAN goes in instead, whatever was there
        if SPLIT_K == 1:
            total = tl.load(ptrs, mask=mask, other=0) + fixed
            tl.store(ptrs, tl.where(ok, total, FIXED_NAN), mask=mask)
        else:
            tl.atomic_add(ptrs, fixed, mask=mask & ok, sem="relaxed", scope="gpu")
            tl.atomic_max(ptrs, tl.where(ok, fixed, FIXED_NAN), mask=mask & (ok == 0), sem="relaxed", scope="gpu")
    elif SPLIT_K == 1:
        tl.store(ptrs, tl.load(ptrs, mask=mask, other=0.0) + acc, mask=mask)
    else:
        tl.atomic_add(ptrs, acc, mask=mask, sem="relaxed", scope="gpu")


@triton.jit
def fused_linear_kernel(
    x_ptr, norm_w_ptr, w_ptr, res_out_ptr, out_ptr, part_ptr, ss_ptr, count_ptr,
    M, N, K, K_PER_SPLIT,
    stride_xm, stride_wn, stride_rom, stride_om,
    eps,
    NORM: tl.constexpr, GATED: tl.constexpr, RES_OUT: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    SPLIT_K: tl.constexpr, GROUP_M: tl.constexpr,
    USE_DOT: tl.constexpr, DOT_PRECISION: tl.constexpr, LAST_REDUCES: tl.constexpr,
    INDEX_64: tl.constexpr = False, PDL: tl.constexpr = False, PREFETCH: tl.constexpr = False,
    ONE_BLOCK: tl.constexpr = False, GAIN: tl.constexpr = True, SS_PASS: tl.constexpr = False,
    ARGMAX: tl.constexpr = False, ACCUMULATE: tl.constexpr = False,
):
    pid_m, pid_n = _tile_of(tl.program_id(0), M, N, BLOCK_M, BLOCK_N, GROUP_M)
    pid_m = _wide(pid_m, INDEX_64)
    pid_n = _wide(pid_n, INDEX_64)
    pid_k = tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    k_start = pid_k * K_PER_SPLIT
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc2 = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    ss = tl.zeros((BLOCK_M,), dtype=tl.float32)
    if ONE_BLOCK:
        # The slice is one K block (most decode configs): its weights go into registers before PDL's
        # wait (weights are never written), so after the wait only the activation is still to come.
        offs_k = k_start + tl.arange(0, BLOCK_K)
        w, w2 = _w_tile(w_ptr, offs_n, offs_k, N, K, stride_wn, GATED)
        if PDL:
            pdl_enter(PDL)
        acc, acc2, ss = _k_step(acc, acc2, ss, x_ptr, norm_w_ptr, w, w2, offs_m, offs_k, M, K, stride_xm, NORM,
                                GATED, USE_DOT, DOT_PRECISION, GAIN)
    else:
        # Several blocks: the slice is prefetched into L2 before the wait and the loop is software
        # pipelined as it stands (a first block taken out of it started the pipeline a round trip late:
        # 3% slower at 0.6B batch 32 on the H100).
        if PDL:
            if PREFETCH:
                _prefetch_weights(w_ptr, offs_n, k_start, N, K, K_PER_SPLIT, stride_wn, GATED)
            pdl_enter(PDL)
        acc, acc2, ss = _k_loop(acc, acc2, ss, x_ptr, norm_w_ptr, w_ptr, offs_m, offs_n, k_start, M, N, K,
                                K_PER_SPLIT, stride_xm, stride_wn, NORM, GATED, BLOCK_K, USE_DOT, DOT_PRECISION,
                                GAIN, SS_PASS)
    if ACCUMULATE:
        _accumulate(acc, offs_m, offs_n, M, N, out_ptr, stride_om, SPLIT_K)
    elif SPLIT_K == 1:
        _epilogue(acc, acc2, ss, offs_m, offs_n, M, N, K, eps, res_out_ptr, stride_rom, out_ptr, stride_om,
                  NORM, GATED, RES_OUT, pid_n, ARGMAX, BLOCK_N)
    else:
        _store_partials(part_ptr, ss_ptr, acc, acc2, ss, pid_k, pid_n, offs_m, offs_n, M, N, NORM, GATED, BLOCK_N,
                        INDEX_64)
        if LAST_REDUCES:
            # Split-K in one launch: the last program to finish a tile sums the partials and runs the
            # epilogue (saves the second kernel: ~2 us of a 4 us decode GEMM at Qwen3-0.6B sizes).
            # The barrier makes every thread's partial stores precede the release of the counter.
            tl.debug_barrier()
            tile = pid_m * tl.cdiv(N, BLOCK_N) + pid_n
            arrived = tl.atomic_add(count_ptr + tile, 1, sem="acq_rel", scope="gpu")
            if arrived == SPLIT_K - 1:
                tl.store(count_ptr + tile, 0)  # reset for the next launch (the graph replays it)
                _reduce_tile(part_ptr, ss_ptr, res_out_ptr, out_ptr, pid_m, pid_n, M, N, K, stride_rom,
                             stride_om, eps, NORM, GATED, RES_OUT, SPLIT_K, BLOCK_M, BLOCK_N, INDEX_64, ARGMAX)


@triton.jit
def splitk_epilogue_kernel(
    part_ptr, ss_ptr, res_out_ptr, out_ptr,
    M, N, K,
    stride_rom, stride_om,
    eps,
    NORM: tl.constexpr, GATED: tl.constexpr, RES_OUT: tl.constexpr,
    SPLIT_K: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    INDEX_64: tl.constexpr = False, PDL: tl.constexpr = False, ARGMAX: tl.constexpr = False,
):
    if PDL:
        pdl_enter(PDL)
    _reduce_tile(part_ptr, ss_ptr, res_out_ptr, out_ptr, _wide(tl.program_id(0), INDEX_64),
                 _wide(tl.program_id(1), INDEX_64), M, N, K, stride_rom, stride_om, eps, NORM, GATED, RES_OUT,
                 SPLIT_K, BLOCK_M, BLOCK_N, INDEX_64, ARGMAX)


@triton.jit
def rmsnorm_prepass_kernel(
    x_ptr, g_ptr, a_ptr,
    K, stride_xm, stride_am, eps,
    BLOCK_K: tl.constexpr, INDEX_64: tl.constexpr = False, PDL: tl.constexpr = False, GAIN: tl.constexpr = True,
):
    """One row per program: a = rmsnorm(x) * g in x's dtype (without GAIN, the gain folded into the
    weight: a = rmsnorm(x)). The GEMM then reads `a` straight into
    tl.dot, with no per-tile prologue in its K loop."""
    row = _wide(tl.program_id(0), INDEX_64)
    if PDL:
        pdl_enter(PDL)
    ss = tl.zeros((BLOCK_K,), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        offs = k0 + tl.arange(0, BLOCK_K)
        h = _stream_value(tl.load(x_ptr + row * stride_xm + offs, mask=offs < K, other=0.0)).to(tl.float32)
        ss += h * h
    r = tl.rsqrt(tl.sum(ss, axis=0) / K + eps)
    for k0 in range(0, K, BLOCK_K):
        offs = k0 + tl.arange(0, BLOCK_K)
        mask = offs < K
        h = _stream_value(tl.load(x_ptr + row * stride_xm + offs, mask=mask, other=0.0)).to(tl.float32)
        if GAIN:
            g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            h = h * r * g
        else:
            h = h * r
        tl.store(a_ptr + row * stride_am + offs, h.to(a_ptr.dtype.element_ty), mask=mask)


# The pre-pass holds a whole row per program when it can: a K loop of small blocks there is a chain
# of dependent memory round trips (BLOCK_K = 128 at K = 4096 made it cost 20 us of a 45 us op on the
# H100). 8192 fp32 values over 16 warps is 16 registers a thread.
PREPASS_MAX_BLOCK = 8192
PREPASS_WARPS = 16


def prepass_block(k: int) -> int:
    return min(triton.next_power_of_2(k), PREPASS_MAX_BLOCK)


# Tile arrival counters for the one-launch split-K, per device. They start at zero and every launch
# leaves them at zero (the last program of a tile resets its counter), so one buffer serves all
# launches on a stream, CUDA-graph replays included. Sized by the launch: a prefill has far more
# tiles than COUNTER_SLOTS (the 8B gate_up M = 32 config at M = 65,536: 196,608).
_COUNTERS: dict = {}
_RETIRED: list = []  # outgrown buffers stay alive: a captured graph may still point at them
COUNTER_SLOTS = 1 << 16


def _counters(device: torch.device, tiles: int) -> torch.Tensor:
    """A zeroed int32 buffer of at least `tiles` counters on device (grown, at least doubling, when short)."""
    buf = _COUNTERS.get(device)
    if buf is None or buf.numel() < tiles:
        if device.type == "cuda" and torch.cuda.is_current_stream_capturing():
            raise RuntimeError("split-K counters must be allocated before CUDA-graph capture: run the op once first")
        size = max(tiles, COUNTER_SLOTS, 2 * buf.numel() if buf is not None else 0)
        if buf is not None:
            _RETIRED.append(buf)
        buf = _COUNTERS[device] = torch.zeros(size, dtype=torch.int32, device=device)
    return buf


_DEVICES: dict = {}


class Target(NamedTuple):
    """A CUDA GPU as a process that opens no CUDA context on it compiles for it (ahead_of_time)."""
    capability: tuple[int, int]
    sm_count: int
    l2_bytes: int
    smem_bytes: int  # the most shared memory a program may ask for


_AHEAD: Target | None = None


@contextlib.contextmanager
def ahead_of_time(target: Target):
    """Inside, launches on tensors of the meta device plan, specialize and compile as they would on a
    CUDA GPU like target, and (under compile_only) run nothing: the compile pool builds a config this
    way without a CUDA context (tuner.compile, which also points Triton's driver at the same target).
    Meta tensors have no memory; their data_ptr() is 0, which Triton specializes as 16-byte aligned,
    as every buffer the tuner allocates on a GPU is."""
    global _AHEAD
    previous, _AHEAD = _AHEAD, target
    try:
        yield
    finally:
        _AHEAD = previous


def on_gpu(device: torch.device) -> bool:
    """Whether launches on device run (or, ahead_of_time, compile) for a CUDA GPU."""
    return device.type == "cuda" or (_AHEAD is not None and device.type == "meta")


def device_info(device: torch.device) -> tuple[int, int]:
    """(compute capability major, SM count) of a CUDA device, looked up once per device."""
    return _properties(device)[:2]


def l2_bytes(device: torch.device) -> int:
    """The L2 cache's size of a CUDA device, in bytes."""
    return _properties(device)[2]


def _properties(device: torch.device) -> tuple[int, int, int]:
    if _AHEAD is not None and device.type == "meta":
        return _AHEAD.capability[0], _AHEAD.sm_count, _AHEAD.l2_bytes
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _DEVICES:
        props = torch.cuda.get_device_properties(index)
        _DEVICES[index] = (props.major, props.multi_processor_count, int(getattr(props, "L2_cache_size", 50 << 20)))
    return _DEVICES[index]


def pdl_enabled(device: torch.device) -> bool:
    """Launch with PDL on this device: a CUDA GPU of compute capability >= 9 (Hopper), not Triton's
    interpreter, and KERNEL_SEARCH_PDL not 0 (set it to 0 to measure without)."""
    if not on_gpu(device) or os.environ.get("TRITON_INTERPRET") == "1":
        return False
    if os.environ.get("KERNEL_SEARCH_PDL", "1") == "0":
        return False
    return device_info(device)[0] >= 9


def pdl_mode():
    """The PDL constexpr of a launch with PDL: True (the next kernel launches after this one's wait), or
    PDL_EARLY with KERNEL_SEARCH_PDL_TRIGGER=early (before it: see pdl_enter)."""
    trigger = os.environ.get("KERNEL_SEARCH_PDL_TRIGGER", "wait")
    if trigger not in ("wait", "early"):
        raise ValueError(f"KERNEL_SEARCH_PDL_TRIGGER must be wait or early, got {trigger!r}")
    return PDL_EARLY.value if trigger == "early" else True


# A GEMM launch of more than PDL_MAX_PROGRAMS_PER_SM programs an SM whose weights are more than
# PDL_BIG_WEIGHTS_L2_SHARE of L2 runs without PDL. Measured on an H100 (benchmarks/README.md, eleventh
# session; the cause is not known), against PDL on every launch: Qwen3-8B's decode step ran 5.3%
# faster at batch 32 x 256 (4,600 against 4,368 tok/s), 3.7% at 32 x 2k, 2.7% at 8 x 256 and 1.0% at
# batch 1; 0.6B within noise. Without the weight bound (every grid of more than 264 programs) 0.6B ran
# 12-16% slower at batch 8 and 32: its weight matrices (4-13 MB) are a fraction of the 8B's (34-201
# MB) and of L2 (50 MB).
PDL_MAX_PROGRAMS_PER_SM = 2
PDL_BIG_WEIGHTS_L2_SHARE = 0.5


def pdl_launch_args(device: torch.device, programs: int | None = None, weight_bytes: int = 0) -> dict:
    """Launch keywords for PDL (none off it, so the interpreter never sees them). With `programs` (a
    GEMM's grid) and its weight_bytes: none for a large grid over large weights (see
    PDL_MAX_PROGRAMS_PER_SM; KERNEL_SEARCH_PDL=all keeps PDL there too, to measure), and PREFETCH
    where the grid is at most two programs per SM: all of them start early, so their prefetch runs
    ahead (in a larger grid most programs would start after the wait anyway and only prefetch what
    they load next)."""
    if not pdl_enabled(device):
        return {}
    args = {"PDL": pdl_mode(), "launch_pdl": True}
    if programs is not None:
        wave = device_info(device)[1]
        large = (programs > PDL_MAX_PROGRAMS_PER_SM * wave
                 and weight_bytes > PDL_BIG_WEIGHTS_L2_SHARE * l2_bytes(device))
        if large and os.environ.get("KERNEL_SEARCH_PDL") != "all":
            return {}
        args["PREFETCH"] = programs <= 2 * wave
    return args


_COMPILE_ONLY = False


@contextlib.contextmanager
def compile_only():
    """Inside, launches compile their kernels (into Triton's cache) but run nothing: a process pool
    can build a batch of configs in parallel while the GPU process only loads the binaries."""
    global _COMPILE_ONLY
    previous, _COMPILE_ONLY = _COMPILE_ONLY, True
    try:
        yield
    finally:
        _COMPILE_ONLY = previous


def _launcher(kernel, grid):
    return (lambda *a, **kw: _load(kernel.warmup(*a, grid=grid, **kw))) if _COMPILE_ONLY else kernel[grid]


def _load(compiled) -> None:
    """Load a kernel compiled under compile_only into this process, as its first launch would: Triton
    then also builds the kernel's launcher, a small C module it compiles with the host's C compiler
    (about a second) once per argument signature and keeps in its cache. Built here, in the compile
    pool, the process that times the kernel finds it cached instead of compiling it between trials
    with the GPU idle; and a kernel that needs more shared memory than the GPU has is refused here."""
    if compiled is None or not hasattr(compiled, "_init_handles"):
        return
    if _AHEAD is None:
        compiled._init_handles()
        return
    # Ahead of time there is no context to load the binary into: refuse what the GPU could not load
    # for its shared memory, and build the launcher, as _init_handles would.
    if compiled.metadata.shared > _AHEAD.smem_bytes:
        from triton.runtime.errors import OutOfResources

        raise OutOfResources(compiled.metadata.shared, _AHEAD.smem_bytes, "shared memory")
    from triton.runtime import driver

    launcher = getattr(driver.active, "launcher_cls", None)
    if launcher is not None:
        launcher(compiled.src, compiled.metadata)


_FORCE_INDEX_64 = False


@contextlib.contextmanager
def force_index_64():
    """Inside, every launch indexes in 64 bits whatever its size: the tests check that path's
    arithmetic at shapes the interpreter can run (the shapes that need it hold gigabytes)."""
    global _FORCE_INDEX_64
    previous, _FORCE_INDEX_64 = _FORCE_INDEX_64, True
    try:
        yield
    finally:
        _FORCE_INDEX_64 = previous


@dataclass(frozen=True)
class _Plan:
    """One launch_fused_linear call, checked: its geometry and what the config makes of it."""

    launch: LinearLaunch
    cfg: dict
    prepass: bool  # the norm runs in the pre-pass kernel, so the GEMM's K loop has none
    norm: bool  # the GEMM's K loop applies the norm (inline)
    gain: bool  # the norm multiplies by its gain (off: the gain is folded into the weight)
    last_reduces: bool  # split-K reduced by the last program of each tile, not by a second kernel
    index_64: bool  # some offset can pass 2^31: the kernels index in 64 bits


class _Scratch(NamedTuple):
    a: torch.Tensor  # the GEMM's activation: x, or rmsnorm(x) * g from the pre-pass
    part: torch.Tensor  # fp32 split-K partials
    ss: torch.Tensor  # fp32 partial sums of squares
    counts: torch.Tensor  # tile arrival counters


def launch_fused_linear(
    x: torch.Tensor,
    w: torch.Tensor,
    cfg: dict,
    *,
    norm_w: torch.Tensor | None = None,
    norm: bool | None = None,
    res_out: torch.Tensor | None = None,
    gated: bool = False,
    eps: float = 1e-6,
    argmax: bool = False,
    accumulate: bool = False,
) -> torch.Tensor:
    """out = epilogue(prologue(x) @ w^T), [M, N] with N = w's rows (halved when gated): check the
    launch, allocate its output and scratch, launch its kernels. The op launchers validate the tensors;
    a launch beyond CUDA's grid limits raises ValueError here.

    norm: the prologue is an RMSNorm (None: when norm_w is given). norm=True without norm_w is the norm
    with its gain folded into w (w's column k already multiplied by g[k]): rmsnorm(x) @ w^T.

    argmax: return each row's argmax over the N columns instead of the [M, N] output ([M] int64, the
    first column of the largest value as rounded to x's dtype, as torch.argmax of the output would give),
    without writing the output: each tile writes its rows' best value and column, and torch picks among
    the tiles (no residual, not gated).

    accumulate: res_out is a residual stream [M, N], fp32 or fixed-point (int64, units of 2^-24), updated
    in place, res_out += x @ w^T, and returned (no norm, not gated): each split adds its product with an
    atomic (see _accumulate). Into fp32 the order of the adds, and so the last bits of the sum, may differ
    from run to run; into fixed point they cannot.

    x may be such a stream where w is 16-bit (a norm op reading it): the output is in w's dtype."""
    if norm is None:
        norm = norm_w is not None
    elif norm_w is not None and not norm:
        raise ValueError("norm_w given with norm=False")
    if argmax and (gated or res_out is not None):
        raise ValueError("argmax takes neither a residual nor a gated weight")
    if accumulate:
        return _accumulate_into(x, w, cfg, res_out, norm=norm, gated=gated, argmax=argmax)
    plan = _plan(x, w, cfg, norm=norm, gated=gated, gain=norm_w is not None)
    launch = plan.launch
    out = torch.empty((launch.m, launch.tiles_n if argmax else launch.n), device=x.device, dtype=w.dtype)
    # With argmax, the tiles' best columns ride in the residual's place (ARGMAX has no residual).
    best = torch.empty((launch.m, launch.tiles_n), device=x.device, dtype=torch.int32) if argmax else None
    if launch.m == 0:
        return torch.empty((0,), device=x.device, dtype=torch.long) if argmax else out
    scratch = _allocate(x, out, plan)
    if plan.prepass:
        _launch_prepass(x, norm_w, scratch.a, eps, plan.index_64)  # norm_w None: the gain is folded
    side = best if argmax else res_out
    _launch_gemm(plan, scratch, w, norm_w if plan.norm else None, side, out, eps, argmax)
    if launch.split > 1 and not plan.last_reduces:
        _launch_reduce(plan, scratch, side, out, eps, argmax)
    if argmax:
        return best.gather(1, out.argmax(1, keepdim=True)).squeeze(1).long()
    return out


def _accumulate_into(x: torch.Tensor, w: torch.Tensor, cfg: dict, stream: torch.Tensor | None, *, norm: bool,
                     gated: bool, argmax: bool) -> torch.Tensor:
    """launch_fused_linear(accumulate=True): stream += x @ w^T in one launch, whatever cfg's split_reduce."""
    if norm or gated or argmax:
        raise ValueError("accumulate takes no norm, no gated weight and no argmax")
    if stream is None or stream.dtype not in _common.STREAM_DTYPES:
        got = "none" if stream is None else stream.dtype
        raise ValueError(f"accumulate adds into an fp32 or fixed-point (int64) residual stream (res_out); got {got}")
    plan = dataclasses.replace(_plan(x, w, cfg, norm=False, gated=False), last_reduces=False)
    if tuple(stream.shape) != (plan.launch.m, plan.launch.n) or stream.stride(1) != 1:
        raise ValueError(f"the stream must be [M, N] = [{plan.launch.m}, {plan.launch.n}] with unit column stride, "
                         f"got shape {list(stream.shape)} strides {stream.stride()}")
    if plan.launch.m:
        _launch_gemm(plan, _Scratch(x, stream, stream, x), w, None, None, stream, 0.0, accumulate=True)
    return stream


def _plan(x: torch.Tensor, w: torch.Tensor, cfg: dict, *, norm: bool, gated: bool, gain: bool = True) -> _Plan:
    m, k = x.shape
    launch = LinearLaunch.of(cfg, m, w.shape[0] // 2 if gated else w.shape[0], k, gated)
    why = launch.grid_problem()
    if why:
        raise ValueError(f"cannot launch the fused linear at M={m}, N={launch.n}, K={k}: {why}")
    prepass = norm and cfg.get("prologue", "inline") == "prepass"
    last_reduces = launch.split > 1 and cfg.get("split_reduce", "kernel") == "last_program"
    return _Plan(launch, cfg, prepass, norm and not prepass, norm and gain, last_reduces,
                 _FORCE_INDEX_64 or launch.needs_int64)


def _allocate(x: torch.Tensor, out: torch.Tensor, plan: _Plan) -> _Scratch:
    """The launch's scratch, sized by its geometry. Absent buffers are stand-ins the kernels never touch."""
    launch, device = plan.launch, x.device
    a = torch.empty(x.shape, device=x.device, dtype=out.dtype) if plan.prepass else x  # the weight's dtype
    if launch.split == 1:
        return _Scratch(a, out, out, x)
    part = torch.empty(launch.partial_shape, device=device, dtype=torch.float32)
    ss = torch.empty(launch.sumsq_shape, device=device, dtype=torch.float32) if plan.norm else part
    counts = _counters(device, launch.tiles) if plan.last_reduces else x
    return _Scratch(a, part, ss, counts)


def _launch_prepass(x: torch.Tensor, norm_w: torch.Tensor | None, a: torch.Tensor, eps: float,
                    index_64: bool) -> None:
    m, k = x.shape
    gain = {} if norm_w is not None else {"GAIN": False}  # as before where there is a gain: the same binary
    _launcher(rmsnorm_prepass_kernel, (m,))(
        x, norm_w if norm_w is not None else x, a, k, x.stride(0), a.stride(0), eps,
        BLOCK_K=prepass_block(k), INDEX_64=index_64, num_warps=PREPASS_WARPS, **gain, **pdl_launch_args(x.device),
    )


def _launch_gemm(plan: _Plan, scratch: _Scratch, w: torch.Tensor, norm_w: torch.Tensor | None,
                 res_out: torch.Tensor | None, out: torch.Tensor, eps: float, argmax: bool = False,
                 accumulate: bool = False) -> None:
    launch, cfg, a = plan.launch, plan.cfg, scratch.a
    # Passed only where they differ from the defaults: every other launch builds the binary it always did.
    norm = {}
    if plan.norm and not plan.gain:
        norm["GAIN"] = False
    if plan.norm and cfg.get("prologue") == "rescan":
        norm["SS_PASS"] = True
    if argmax:
        norm["ARGMAX"] = True
    if accumulate:
        norm["ACCUMULATE"] = True
    _launcher(fused_linear_kernel, launch.grid)(
        a, norm_w if norm_w is not None else a, w, res_out if res_out is not None else a, out,
        scratch.part, scratch.ss, scratch.counts,
        launch.m, launch.n, launch.k, launch.k_per_split,
        a.stride(0), w.stride(0), res_out.stride(0) if res_out is not None else 0, out.stride(0),
        eps,
        NORM=plan.norm, GATED=launch.gated, RES_OUT=res_out is not None and not argmax,
        BLOCK_M=launch.block_m, BLOCK_N=launch.block_n, BLOCK_K=launch.block_k,
        SPLIT_K=launch.split, GROUP_M=cfg["GROUP_M"],
        USE_DOT=cfg["path"] == "dot", DOT_PRECISION="ieee" if w.dtype == torch.float32 else "tf32",
        LAST_REDUCES=plan.last_reduces, INDEX_64=plan.index_64, ONE_BLOCK=launch.k_per_split == launch.block_k,
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"], **norm,
        **pdl_launch_args(a.device, launch.tiles * launch.split, w.numel() * w.element_size()),
    )


def _launch_reduce(plan: _Plan, scratch: _Scratch, res_out: torch.Tensor | None, out: torch.Tensor,
                   eps: float, argmax: bool = False) -> None:
    launch = plan.launch
    extra = {"ARGMAX": True} if argmax else {}
    _launcher(splitk_epilogue_kernel, launch.reduce_grid)(
        scratch.part, scratch.ss, res_out if res_out is not None else out, out,
        launch.m, launch.n, launch.k,
        res_out.stride(0) if res_out is not None else 0, out.stride(0),
        eps,
        NORM=plan.norm, GATED=launch.gated, RES_OUT=res_out is not None and not argmax,
        SPLIT_K=launch.split, BLOCK_M=launch.block_m, BLOCK_N=launch.block_n, INDEX_64=plan.index_64,
        num_warps=plan.cfg["num_warps"], **extra, **pdl_launch_args(out.device),
    )


KERNEL_SOURCES = (fused_linear_kernel, splitk_epilogue_kernel, rmsnorm_prepass_kernel, _wide, _tile_of,
                  _prefetch_weights, _w_tile, _k_step, _ss_pass, _k_loop, _mac, _epilogue, _store_partials, _add_split,
                  _reduce_tile, _prefetch_l2, pdl_enter, _accumulate, _to_fixed, _stream_value)

# Cache keys that do not depend on the order of first launches (kernel_space.jit_keys).
jit_keys.settle(globals())
