"""The one Triton GEMM that all four fused ops are made of, and its split-K epilogue.

out = epilogue(prologue(x) @ W^T), with the prologue and epilogue chosen by constexpr flags:

- ADD_IN:  A = x + res_in, and the programs of the first N tile store A (the new residual).
- NORM:    rmsnorm(A) @ W^T = diag(r) ((A * g) @ W^T) with r = rsqrt(mean(A^2) + eps), so the row
           scale is applied to the accumulator after the K loop and the sum of squares is gathered
           from the A tiles the loop loads anyway (no extra pass over the activation).
- GATED:   W is [2N, K] = [Wg; Wu]; each program keeps two accumulators (rows n and N + n) so the
           epilogue can write silu(g) * u and the [M, 2N] intermediate never reaches memory.
- RES_OUT: the epilogue adds res_out[m, n].

Split-K: program (tile, s) reduces K-slice s into an fp32 partial; then either a second small kernel
sums the partials (and the partial sums of squares) and runs the same epilogue (split_reduce=kernel),
or the last program to arrive at the tile does it, counted with an atomic (split_reduce=last_program).
Decode at M <= 16 is weight streaming, and at N = 1024 or 4096 there are too few N tiles to keep
132 SMs busy without it.

Prologue placement (norm ops): `inline` does the norm inside the K loop of every tile; `prepass`
runs a one-row-per-program kernel first that writes rmsnorm(h) * g, so the GEMM's loop is a plain
load -> tl.dot pipeline (one more launch, M x K more bytes, both tiny at decode).

PDL (programmatic dependent launch, Hopper on): every kernel here is launched so that it may start
while the kernel before it in the stream is still running. A program first prefetches its own weight
slice into L2 (weights are never written: safe to read early), then waits (griddepcontrol.wait:
the previous kernel has finished and its writes are visible) before it reads an activation or
writes anything, and only then lets the next kernel launch. So one kernel's weight stream overlaps
the previous kernel's tail, and every kernel still completes after its predecessor (a kernel cannot
finish before its wait returns), which keeps longer dependencies (a residual written two kernels
back) ordered too. Kernels of other libraries in between launch normally and wait as usual.

Paths: `dot` uses tl.dot (tensor cores; pads M to 16); `fma` multiplies and reduces with tl.sum,
which wastes nothing at M = 1 and allows BLOCK_N = 8.
"""

from __future__ import annotations

import contextlib
import math
import os

import torch
import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait


@triton.jit
def _prefetch_l2(ptrs):
    """Ask L2 for the line of every pointer (a hint: no value comes back, nothing waits for it)."""
    tl.inline_asm_elementwise("prefetch.global.L2 [$1];\n\tmov.u32 $0, 0;", "=r,l", [ptrs], dtype=tl.int32,
                              is_pure=False, pack=1)


@triton.jit
def pdl_enter():
    """Wait for the previous kernel (its writes visible), then let the next one launch."""
    gdc_wait()
    gdc_launch_dependents()


@triton.jit
def _epilogue(acc, acc2, ss, offs_m, offs_n, M, N, K, eps, res_out_ptr, stride_rom, out_ptr, stride_om,
              NORM: tl.constexpr, GATED: tl.constexpr, RES_OUT: tl.constexpr):
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
    tl.store(out_ptr + offs_m[:, None] * stride_om + offs_n[None, :], acc.to(out_ptr.dtype.element_ty),
             mask=mask)


@triton.jit
def _mac(acc, a, w, USE_DOT: tl.constexpr, DOT_PRECISION: tl.constexpr):
    # a: [BLOCK_M, BLOCK_K] fp32, w: [BLOCK_K, BLOCK_N] in the weight dtype.
    if USE_DOT:
        acc = tl.dot(a.to(w.dtype), w, acc, input_precision=DOT_PRECISION)
    else:
        acc += tl.sum(a[:, :, None] * w.to(tl.float32)[None, :, :], axis=1)
    return acc


@triton.jit
def fused_linear_kernel(
    x_ptr, res_in_ptr, norm_w_ptr, w_ptr, res_out_ptr, h_ptr, out_ptr, part_ptr, ss_ptr, count_ptr,
    M, N, K, K_PER_SPLIT,
    stride_xm, stride_rim, stride_wn, stride_rom, stride_hm, stride_om,
    eps,
    ADD_IN: tl.constexpr, NORM: tl.constexpr, GATED: tl.constexpr, RES_OUT: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    SPLIT_K: tl.constexpr, GROUP_M: tl.constexpr,
    USE_DOT: tl.constexpr, DOT_PRECISION: tl.constexpr, LAST_REDUCES: tl.constexpr,
    PDL: tl.constexpr = False, PREFETCH: tl.constexpr = False,
):
    pid = tl.program_id(0)
    pid_k = tl.program_id(1)
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    # Grouped tile order: GROUP_M row-blocks share each weight tile while it is in L2 (prefill).
    num_pid_in_group = GROUP_M * num_pid_n
    group_id = pid // num_pid_in_group
    first_pid_m = group_id * GROUP_M
    group_size_m = min(num_pid_m - first_pid_m, GROUP_M)
    pid_m = first_pid_m + ((pid % num_pid_in_group) % group_size_m)
    pid_n = (pid % num_pid_in_group) // group_size_m

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    m_mask = offs_m < M
    n_mask = offs_n < N

    k_start = pid_k * K_PER_SPLIT
    if PDL:
        if PREFETCH:
            # This program's weight rows over its K slice, one pointer per 128-byte line (clamped
            # into the matrix), eight lines of every row per step.
            LINE: tl.constexpr = 1024 // w_ptr.dtype.element_ty.primitive_bitwidth
            rows = tl.minimum(offs_n, N - 1)
            for kk in range(0, K_PER_SPLIT, 8 * LINE):
                k_lines = tl.minimum(k_start + kk + tl.arange(0, 8) * LINE, K - 1)
                _prefetch_l2(w_ptr + rows[None, :] * stride_wn + k_lines[:, None])
                if GATED:
                    _prefetch_l2(w_ptr + (rows[None, :] + N) * stride_wn + k_lines[:, None])
        pdl_enter()

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc2 = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    ss = tl.zeros((BLOCK_M,), dtype=tl.float32)
    for kk in range(0, K_PER_SPLIT, BLOCK_K):
        offs_k = k_start + kk + rk
        k_mask = offs_k < K
        a_mask = m_mask[:, None] & k_mask[None, :]
        a = tl.load(x_ptr + offs_m[:, None] * stride_xm + offs_k[None, :], mask=a_mask, other=0.0)
        if ADD_IN or NORM:
            a = a.to(tl.float32)
        if ADD_IN:
            r_in = tl.load(res_in_ptr + offs_m[:, None] * stride_rim + offs_k[None, :], mask=a_mask, other=0.0)
            a = a + r_in.to(tl.float32)
            # The new residual: one N tile writes it, every split its own K slice.
            tl.store(h_ptr + offs_m[:, None] * stride_hm + offs_k[None, :], a.to(h_ptr.dtype.element_ty),
                     mask=a_mask & (pid_n == 0))
        if NORM:
            ss += tl.sum(a * a, axis=1)
            g = tl.load(norm_w_ptr + offs_k, mask=k_mask, other=0.0).to(tl.float32)
            a = a * g[None, :]
        w_mask = k_mask[:, None] & n_mask[None, :]
        w = tl.load(w_ptr + offs_n[None, :] * stride_wn + offs_k[:, None], mask=w_mask, other=0.0)
        acc = _mac(acc, a, w, USE_DOT, DOT_PRECISION)
        if GATED:
            w2 = tl.load(w_ptr + (offs_n[None, :] + N) * stride_wn + offs_k[:, None], mask=w_mask, other=0.0)
            acc2 = _mac(acc2, a, w2, USE_DOT, DOT_PRECISION)

    if SPLIT_K == 1:
        _epilogue(acc, acc2, ss, offs_m, offs_n, M, N, K, eps, res_out_ptr, stride_rom, out_ptr, stride_om,
                  NORM, GATED, RES_OUT)
    else:
        width = 2 * N if GATED else N
        p_off = pid_k * M * width + offs_m[:, None] * width + offs_n[None, :]
        p_mask = m_mask[:, None] & n_mask[None, :]
        tl.store(part_ptr + p_off, acc, mask=p_mask)
        if GATED:
            tl.store(part_ptr + p_off + N, acc2, mask=p_mask)
        if NORM:
            # Every tile keeps its own copy of the partial sums of squares: a tile's reducer must
            # not wait on another tile's programs (one shared copy raced on the H100).
            tl.store(ss_ptr + (pid_k * num_pid_n + pid_n) * M + offs_m, ss, mask=m_mask)
        if LAST_REDUCES:
            # Split-K in one launch: the last program to finish a tile sums the partials and runs the
            # epilogue (saves the second kernel: ~2 us of a 4 us decode GEMM at Qwen3-0.6B sizes).
            # The barrier makes every thread's partial stores precede the release of the counter.
            tl.debug_barrier()
            tile = pid_m * num_pid_n + pid_n
            arrived = tl.atomic_add(count_ptr + tile, 1, sem="acq_rel", scope="gpu")
            if arrived == SPLIT_K - 1:
                tl.store(count_ptr + tile, 0)  # reset for the next launch (the graph replays it)
                _reduce_tile(part_ptr, ss_ptr, res_out_ptr, out_ptr, pid_m, pid_n, M, N, K, stride_rom,
                             stride_om, eps, NORM, GATED, RES_OUT, SPLIT_K, BLOCK_M, BLOCK_N)


@triton.jit
def _reduce_tile(part_ptr, ss_ptr, res_out_ptr, out_ptr, pid_m, pid_n, M, N, K, stride_rom, stride_om, eps,
                 NORM: tl.constexpr, GATED: tl.constexpr, RES_OUT: tl.constexpr,
                 SPLIT_K: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    width = 2 * N if GATED else N
    num_pid_n = tl.cdiv(N, BLOCK_N)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc2 = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    ss = tl.zeros((BLOCK_M,), dtype=tl.float32)
    for s in tl.static_range(SPLIT_K):
        p_off = s * M * width + offs_m[:, None] * width + offs_n[None, :]
        # .cg: read from L2, never from this SM's L1, where another program's partial cannot be.
        acc += tl.load(part_ptr + p_off, mask=mask, other=0.0, cache_modifier=".cg")
        if GATED:
            acc2 += tl.load(part_ptr + p_off + N, mask=mask, other=0.0, cache_modifier=".cg")
        if NORM:
            ss += tl.load(ss_ptr + (s * num_pid_n + pid_n) * M + offs_m, mask=offs_m < M, other=0.0,
                          cache_modifier=".cg")
    _epilogue(acc, acc2, ss, offs_m, offs_n, M, N, K, eps, res_out_ptr, stride_rom, out_ptr, stride_om,
              NORM, GATED, RES_OUT)


@triton.jit
def splitk_epilogue_kernel(
    part_ptr, ss_ptr, res_out_ptr, out_ptr,
    M, N, K,
    stride_rom, stride_om,
    eps,
    NORM: tl.constexpr, GATED: tl.constexpr, RES_OUT: tl.constexpr,
    SPLIT_K: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, PDL: tl.constexpr = False,
):
    if PDL:
        pdl_enter()
    _reduce_tile(part_ptr, ss_ptr, res_out_ptr, out_ptr, tl.program_id(0), tl.program_id(1), M, N, K,
                 stride_rom, stride_om, eps, NORM, GATED, RES_OUT, SPLIT_K, BLOCK_M, BLOCK_N)


@triton.jit
def rmsnorm_prepass_kernel(
    x_ptr, res_ptr, g_ptr, h_ptr, a_ptr,
    K, stride_xm, stride_rm, stride_hm, stride_am, eps,
    ADD_IN: tl.constexpr, BLOCK_K: tl.constexpr, PDL: tl.constexpr = False,
):
    """One row per program: h = x (+ residual), written when added; a = rmsnorm(h) * g in x's dtype.
    The GEMM then reads `a` straight into tl.dot, with no per-tile prologue in its K loop."""
    row = tl.program_id(0)
    if PDL:
        pdl_enter()
    ss = tl.zeros((BLOCK_K,), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        offs = k0 + tl.arange(0, BLOCK_K)
        mask = offs < K
        h = tl.load(x_ptr + row * stride_xm + offs, mask=mask, other=0.0).to(tl.float32)
        if ADD_IN:
            h += tl.load(res_ptr + row * stride_rm + offs, mask=mask, other=0.0).to(tl.float32)
            tl.store(h_ptr + row * stride_hm + offs, h.to(h_ptr.dtype.element_ty), mask=mask)
        ss += h * h
    r = tl.rsqrt(tl.sum(ss, axis=0) / K + eps)
    for k0 in range(0, K, BLOCK_K):
        offs = k0 + tl.arange(0, BLOCK_K)
        mask = offs < K
        # Recomputed from the inputs rather than read back from h: no ordering between threads needed.
        h = tl.load(x_ptr + row * stride_xm + offs, mask=mask, other=0.0).to(tl.float32)
        if ADD_IN:
            h += tl.load(res_ptr + row * stride_rm + offs, mask=mask, other=0.0).to(tl.float32)
        g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        tl.store(a_ptr + row * stride_am + offs, (h * r * g).to(a_ptr.dtype.element_ty), mask=mask)


# The pre-pass holds a whole row per program when it can: a K loop of small blocks there is a chain
# of dependent memory round trips (BLOCK_K = 128 at K = 4096 made it cost 20 us of a 45 us op on the
# H100). 8192 fp32 values over 16 warps is 16 registers a thread.
PREPASS_MAX_BLOCK = 8192
PREPASS_WARPS = 16


def prepass_block(k: int) -> int:
    return min(triton.next_power_of_2(k), PREPASS_MAX_BLOCK)


# Tile arrival counters for the one-launch split-K, per device. They start at zero and every launch
# leaves them at zero (the last program of a tile resets its counter), so one buffer serves all
# launches on a stream, CUDA-graph replays included.
_COUNTERS: dict = {}
_RETIRED: list = []  # outgrown buffers stay alive: a captured graph may still point at them
COUNTER_SLOTS = 1 << 16


def _counters(device: torch.device, tiles: int) -> torch.Tensor:
    buf = _COUNTERS.get(device)
    if buf is None or buf.numel() < tiles:
        if device.type == "cuda" and torch.cuda.is_current_stream_capturing():
            raise RuntimeError("split-K counters must be allocated before CUDA-graph capture: run the op once first")
        if buf is not None:
            _RETIRED.append(buf)
        buf = torch.zeros(max(tiles, COUNTER_SLOTS), dtype=torch.int32, device=device)
        _COUNTERS[device] = buf
    return buf


_DEVICES: dict = {}


def device_info(device: torch.device) -> tuple[int, int]:
    """(compute capability major, SM count) of a CUDA device, looked up once per device."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _DEVICES:
        props = torch.cuda.get_device_properties(index)
        _DEVICES[index] = (props.major, props.multi_processor_count)
    return _DEVICES[index]


def pdl_enabled(device: torch.device) -> bool:
    """Launch with PDL on this device: a CUDA GPU of compute capability >= 9 (Hopper), not Triton's
    interpreter, and KERNEL_SEARCH_PDL not 0 (set it to 0 to measure without)."""
    if device.type != "cuda" or os.environ.get("TRITON_INTERPRET") == "1":
        return False
    if os.environ.get("KERNEL_SEARCH_PDL", "1") == "0":
        return False
    return device_info(device)[0] >= 9


def pdl_launch_args(device: torch.device, programs: int | None = None) -> dict:
    """Launch keywords for PDL (none off it, so the interpreter never sees them). PREFETCH when the
    grid is at most two programs per SM: all of them start early, so their prefetch runs ahead; in a
    larger grid most programs start after the wait anyway and would only prefetch what they load next."""
    if not pdl_enabled(device):
        return {}
    args = {"PDL": True, "launch_pdl": True}
    if programs is not None:
        args["PREFETCH"] = programs <= 2 * device_info(device)[1]
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
    return (lambda *a, **kw: kernel.warmup(*a, grid=grid, **kw)) if _COMPILE_ONLY else kernel[grid]


def launch_fused_linear(
    x: torch.Tensor,
    w: torch.Tensor,
    cfg: dict,
    *,
    res_in: torch.Tensor | None = None,
    norm_w: torch.Tensor | None = None,
    res_out: torch.Tensor | None = None,
    gated: bool = False,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Launch the fused GEMM (and its split-K epilogue). Inputs are trusted: op launchers validate.

    Returns (out, h): out is [M, N] (N = W rows, halved when gated); h is the new residual when
    res_in is given, else None.
    """
    m, k = x.shape
    n = w.shape[0] // 2 if gated else w.shape[0]
    out = torch.empty((m, n), device=x.device, dtype=x.dtype)
    h = torch.empty_like(x) if res_in is not None else None
    if m == 0:
        return out, h
    if norm_w is not None and cfg.get("prologue", "inline") == "prepass":
        a = torch.empty_like(x)
        _launcher(rmsnorm_prepass_kernel, (m,))(
            x, res_in if res_in is not None else x, norm_w, h if h is not None else x, a,
            k, x.stride(0), res_in.stride(0) if res_in is not None else 0, h.stride(0) if h is not None else 0,
            a.stride(0), eps,
            ADD_IN=res_in is not None, BLOCK_K=prepass_block(k), num_warps=PREPASS_WARPS, **pdl_launch_args(x.device),
        )
        out, _ = launch_fused_linear(a, w, {**cfg, "prologue": "inline"}, res_out=res_out, gated=gated, eps=eps)
        return out, h
    bm, bn, bk, split = cfg["BLOCK_M"], cfg["BLOCK_N"], cfg["BLOCK_K"], cfg["SPLIT_K"]
    # Each split covers a whole number of BLOCK_K blocks; the last one may run short.
    k_per_split = math.ceil(math.ceil(k / bk) / split) * bk
    norm = norm_w is not None
    if split > 1:
        part = torch.empty((split, m, 2 * n if gated else n), device=x.device, dtype=torch.float32)
        ss = torch.empty((split, triton.cdiv(n, bn), m), device=x.device, dtype=torch.float32) if norm else part
    else:
        part = ss = out  # unused placeholders: the kernel never touches them when SPLIT_K == 1
    dummy = x
    tiles = triton.cdiv(m, bm) * triton.cdiv(n, bn)
    last_reduces = split > 1 and cfg.get("split_reduce", "kernel") == "last_program"
    counts = _counters(x.device, tiles) if last_reduces else dummy
    grid = (tiles, split)
    _launcher(fused_linear_kernel, grid)(
        x, res_in if res_in is not None else dummy, norm_w if norm else dummy, w,
        res_out if res_out is not None else dummy, h if h is not None else dummy, out, part, ss, counts,
        m, n, k, k_per_split,
        x.stride(0), res_in.stride(0) if res_in is not None else 0, w.stride(0),
        res_out.stride(0) if res_out is not None else 0, h.stride(0) if h is not None else 0, out.stride(0),
        eps,
        ADD_IN=res_in is not None, NORM=norm, GATED=gated, RES_OUT=res_out is not None,
        BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, SPLIT_K=split, GROUP_M=cfg["GROUP_M"],
        USE_DOT=cfg["path"] == "dot",
        DOT_PRECISION="ieee" if x.dtype == torch.float32 else "tf32",
        LAST_REDUCES=last_reduces,
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"], **pdl_launch_args(x.device, tiles * split),
    )
    if split > 1 and not last_reduces:
        grid_r = (triton.cdiv(m, bm), triton.cdiv(n, bn))
        _launcher(splitk_epilogue_kernel, grid_r)(
            part, ss, res_out if res_out is not None else dummy, out,
            m, n, k,
            res_out.stride(0) if res_out is not None else 0, out.stride(0),
            eps,
            NORM=norm, GATED=gated, RES_OUT=res_out is not None,
            SPLIT_K=split, BLOCK_M=bm, BLOCK_N=bn,
            num_warps=cfg["num_warps"], **pdl_launch_args(x.device),
        )
    return out, h


KERNEL_SOURCES = (fused_linear_kernel, splitk_epilogue_kernel, rmsnorm_prepass_kernel, _reduce_tile, _epilogue, _mac,
                  _prefetch_l2, pdl_enter)
