"""fused_mlp: the whole MLP of a decoder layer in one launch, out = h + down(silu(g) * u) with
g, u = rmsnorm(h) @ [Wg; Wu]^T.

Two launches (rmsnorm_gate_up_silu, then down_residual) hand the [M, I] activation over through
memory and pay a second kernel's fixed cost. Here program (i, m) computes BLOCK_I columns of the
activation for its rows, exactly as rmsnorm_gate_up_silu does (whole K = hidden: the SiLU needs the
finished sum), rounds them to the model dtype as that op's output is, and multiplies them at once by
the matching BLOCK_I columns of Wd: that is a K-slice of the down projection, i.e. split-K over the
intermediate dimension with one split a program. The [M, hidden] fp32 partials are added into a
zeroed buffer with atomics; the last program of a row block to arrive (an arrival counter, as the
one-launch split-K of _gemm) adds the residual, writes the output in the model dtype and zeroes the
buffer again for the next launch.

What that costs: the order in which the programs' atomics land varies from run to run, so the fp32
sums can differ in the last bit and the output (after rounding to bf16) is not bitwise repeatable,
where two launches are. The buffer and counters are per device and left at zero by every launch, so
one of each serves every layer, CUDA-graph replays included (allocated before capture).

Wd is read as it is stored, [hidden, I] (stride_dh, stride_di), a BLOCK_I-wide column slice per
program; the kernel takes both strides, so a transposed copy [I, hidden] runs the same code.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernel_space import _gemm
from kernel_space._common import check_eps, check_matrix, check_vector
from kernel_space._gemm import _k_loop, _k_step, _mac, _prefetch_l2, _prefetch_weights, _w_tile, pdl_enter


@triton.jit
def _prefetch_down(wd_ptr, offs_i, i0, H, stride_dh, stride_di, BLOCK_H: tl.constexpr):
    """The program's Wd column slice (columns i0 ...) into L2: one pointer a row where a row's slice is
    one line (Wd as stored, [hidden, I]), else every line of each of its BLOCK_I rows (a transposed copy)."""
    if stride_di == 1:
        for h0 in range(0, H, BLOCK_H):
            offs_h = tl.minimum(h0 + tl.arange(0, BLOCK_H), H - 1)
            _prefetch_l2(wd_ptr + offs_h * stride_dh + i0)
    else:
        LINE: tl.constexpr = 1024 // wd_ptr.dtype.element_ty.primitive_bitwidth
        for h0 in range(0, H, 8 * LINE):
            offs_h = tl.minimum(h0 + tl.arange(0, 8) * LINE, H - 1)
            _prefetch_l2(wd_ptr + offs_i[:, None] * stride_di + offs_h[None, :])


@triton.jit
def fused_mlp_kernel(
    x_ptr, norm_w_ptr, wgu_ptr, wd_ptr, out_ptr, acc_ptr, count_ptr,
    M, H, INTER,
    stride_xm, stride_gu, stride_dh, stride_di, stride_om,
    eps,
    BLOCK_M: tl.constexpr, BLOCK_I: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_H: tl.constexpr,
    USE_DOT: tl.constexpr, DOT_PRECISION: tl.constexpr,
    PDL: tl.constexpr = False, PREFETCH: tl.constexpr = False, ONE_BLOCK: tl.constexpr = False,
):
    pid_i = tl.program_id(0)
    pid_m = tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_i = pid_i * BLOCK_I + tl.arange(0, BLOCK_I)
    acc = tl.zeros((BLOCK_M, BLOCK_I), dtype=tl.float32)
    acc2 = tl.zeros((BLOCK_M, BLOCK_I), dtype=tl.float32)
    ss = tl.zeros((BLOCK_M,), dtype=tl.float32)
    # gate and up over the whole hidden dimension, as rmsnorm_gate_up_silu's fused kernel runs them
    if ONE_BLOCK:
        offs_k = tl.arange(0, BLOCK_K)
        w, w2 = _w_tile(wgu_ptr, offs_i, offs_k, INTER, H, stride_gu, True)
        if PDL:
            if PREFETCH:
                _prefetch_down(wd_ptr, offs_i, pid_i * BLOCK_I, H, stride_dh, stride_di, BLOCK_H)
            pdl_enter()
        acc, acc2, ss = _k_step(acc, acc2, ss, x_ptr, norm_w_ptr, w, w2, offs_m, offs_k, M, H, stride_xm, True, True,
                                USE_DOT, DOT_PRECISION)
    else:
        if PDL:
            if PREFETCH:
                _prefetch_weights(wgu_ptr, offs_i, 0, INTER, H, H, stride_gu, True)
                _prefetch_down(wd_ptr, offs_i, pid_i * BLOCK_I, H, stride_dh, stride_di, BLOCK_H)
            pdl_enter()
        acc, acc2, ss = _k_loop(acc, acc2, ss, x_ptr, norm_w_ptr, wgu_ptr, offs_m, offs_i, 0, M, INTER, H, H, stride_xm,
                                stride_gu, True, True, BLOCK_K, USE_DOT, DOT_PRECISION)
    r = tl.rsqrt(ss / H + eps)
    g = acc * r[:, None]
    u = acc2 * r[:, None]
    # the activation as rmsnorm_gate_up_silu stores it: rounded to the model dtype
    a = (g * tl.sigmoid(g) * u).to(wd_ptr.dtype.element_ty)
    i_mask = offs_i < INTER
    m_mask = offs_m < M
    # this program's K-slice of the down projection, added into the fp32 buffer
    for h0 in range(0, H, BLOCK_H):
        offs_h = h0 + tl.arange(0, BLOCK_H)
        h_mask = offs_h < H
        wd = tl.load(wd_ptr + offs_h[None, :] * stride_dh + offs_i[:, None] * stride_di,
                     mask=i_mask[:, None] & h_mask[None, :], other=0.0)
        part = _mac(tl.zeros((BLOCK_M, BLOCK_H), dtype=tl.float32), a, wd, USE_DOT, DOT_PRECISION)
        tl.atomic_add(acc_ptr + offs_m[:, None] * H + offs_h[None, :], part,
                      mask=m_mask[:, None] & h_mask[None, :], sem="relaxed", scope="gpu")
    # the barrier makes every thread's atomics precede the release of the counter
    tl.debug_barrier()
    arrived = tl.atomic_add(count_ptr + pid_m, 1, sem="acq_rel", scope="gpu")
    if arrived == tl.num_programs(0) - 1:
        tl.store(count_ptr + pid_m, 0)  # reset for the next launch (the graph replays it)
        for h0 in range(0, H, BLOCK_H):
            offs_h = h0 + tl.arange(0, BLOCK_H)
            mask = m_mask[:, None] & (offs_h < H)[None, :]
            p = acc_ptr + offs_m[:, None] * H + offs_h[None, :]
            s = tl.load(p, mask=mask, other=0.0, cache_modifier=".cg")
            res = tl.load(x_ptr + offs_m[:, None] * stride_xm + offs_h[None, :], mask=mask, other=0.0)
            tl.store(out_ptr + offs_m[:, None] * stride_om + offs_h[None, :],
                     (s + res.to(tl.float32)).to(out_ptr.dtype.element_ty), mask=mask)
            tl.store(p, tl.zeros((BLOCK_M, BLOCK_H), dtype=tl.float32), mask=mask)


# fp32 accumulators [rows, hidden] per device: zero between launches (the last program of a row
# block zeroes what it read), grown like _gemm's counters, old ones kept for graphs that point at them.
_ACCUMULATORS: dict = {}
_RETIRED: list = []


def _accumulator(device: torch.device, elems: int) -> torch.Tensor:
    buf = _ACCUMULATORS.get(device)
    if buf is None or buf.numel() < elems:
        if device.type == "cuda" and torch.cuda.is_current_stream_capturing():
            raise RuntimeError("fused_mlp's accumulator must be allocated before CUDA-graph capture: run the op "
                               "once first")
        if buf is not None:
            _RETIRED.append(buf)
        buf = _ACCUMULATORS[device] = torch.zeros(max(elems, 2 * buf.numel() if buf is not None else 0),
                                                  dtype=torch.float32, device=device)
    return buf


def check_inputs(h, norm_w, w_gate_up, w_down, eps) -> None:
    """h [M, H], norm_w [H], w_gate_up [2I, H] (gate rows first), w_down [H, I]."""
    check_matrix("h", h)
    check_vector("norm_w", norm_w, size=h.shape[1], like=h)
    check_matrix("w_gate_up", w_gate_up, cols=h.shape[1], like=h)
    if w_gate_up.shape[0] % 2:
        raise ValueError(f"w_gate_up must stack gate and up rows ([2I, H]); got an odd row count "
                         f"{w_gate_up.shape[0]}")
    check_matrix("w_down", w_down, rows=h.shape[1], cols=w_gate_up.shape[0] // 2, like=h)
    check_eps(eps)


def fused_mlp(h, norm_w, w_gate_up, w_down, cfg: dict, eps: float = 1e-6, *, w_down_t=None):
    """h + down(silu(g) * u), g, u = rmsnorm(h) @ w_gate_up^T, in one launch: h [M, H] -> [M, H].
    w_down_t, when given, is w_down transposed and contiguous ([I, H]): the kernel reads it instead."""
    check_inputs(h, norm_w, w_gate_up, w_down, eps)
    m, hidden = h.shape
    inter = w_down.shape[1]
    out = torch.empty_like(h)
    if m == 0:
        return out
    bm, bi, bk, bh = cfg["BLOCK_M"], cfg["BLOCK_I"], cfg["BLOCK_K"], cfg["BLOCK_H"]
    grid = (triton.cdiv(inter, bi), triton.cdiv(m, bm))
    acc = _accumulator(h.device, triton.cdiv(m, bm) * bm * hidden)
    counts = _gemm._counters(h.device, grid[1])
    wd = w_down if w_down_t is None else w_down_t
    stride_dh, stride_di = (w_down.stride(0), 1) if w_down_t is None else (1, w_down_t.stride(0))
    one_block = bk >= hidden
    weight_bytes = (w_gate_up.numel() + w_down.numel()) * h.element_size()
    _gemm._launcher(fused_mlp_kernel, grid)(
        h, norm_w, w_gate_up, wd, out, acc, counts,
        m, hidden, inter,
        h.stride(0), w_gate_up.stride(0), stride_dh, stride_di, out.stride(0),
        eps,
        BLOCK_M=bm, BLOCK_I=bi, BLOCK_K=triton.next_power_of_2(hidden) if one_block else bk, BLOCK_H=bh,
        USE_DOT=cfg["path"] == "dot", DOT_PRECISION="ieee" if h.dtype == torch.float32 else "tf32",
        ONE_BLOCK=one_block, num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
        **_gemm.pdl_launch_args(h.device, grid[0] * grid[1], weight_bytes),
    )
    return out


def fused_mlp_reference(h, norm_w, w_gate_up, w_down, eps: float = 1e-6):
    """fp64: h + (silu(g) * u) @ w_down^T."""
    from kernel_space.rmsnorm_gate_up_silu import rmsnorm_gate_up_silu_reference

    act = rmsnorm_gate_up_silu_reference(h, norm_w, w_gate_up, eps)
    return h.to(torch.float64) + act @ w_down.to(torch.float64).T


KERNEL_SOURCES = (fused_mlp_kernel, _prefetch_down) + _gemm.KERNEL_SOURCES
