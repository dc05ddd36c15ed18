"""The unfused arm at prefill sizes: what a GEMM site runs where no fused config serves it (M past
the dispatch table's last tuned bucket, a bucket that picked unfused, or no table) once M is at
least PREFILL_ROWS tokens and the tensors can run Triton.

Eagerly, the unfused arm's RMSNorm is six PyTorch kernels over fp32 copies of the activations
(cast, square, mean, rsqrt-scale, cast back, gain) and SiLU-and-multiply two more, each a full pass
over [M, hidden] or [M, intermediate]; at a 16k-token prefill of Qwen3-0.6B they add up to ~15 ms a
forward, which torch.compile fuses away. Here the GEMMs stay cuBLAS's and the rest is:

- RMSNorm: one Triton program a row, one read and one write. It rounds where rmsnorm_eager does
  (fp32 statistics, the normed row cast to the model dtype, then the gain's product rounded);
- SiLU(gate) * up: one pass over the GEMM's [M, 2I] output, silu rounded to the dtype first, as
  F.silu(gate) * up does;
- the residual sites: torch.addmm(residual, x, w^T), the residual added in cuBLAS's epilogue (in
  fp32, rounded once, where the eager arm rounds the product and then the sum).

Below PREFILL_ROWS (decode) the eager arm stays the unfused baseline: it is what the tuner's
speedups and the published unfused tok/s are measured against. The tuner times this path as the
unfused arm of any study at M >= PREFILL_ROWS (tuner.measure.arm_fn), so a fused winner there beat
what the runtime would run instead.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from kernel_space import jit_keys
from kernel_space._common import check_matrix, check_norm_op, stream_values

PREFILL_ROWS = 128  # tokens (rows) from which a site's unfused arm is this module's path


@triton.jit
def _rmsnorm_kernel(x_ptr, g_ptr, y_ptr, K, stride_x, stride_y, eps, BLOCK: tl.constexpr, GAIN: tl.constexpr = True):
    row = tl.program_id(0).to(tl.int64)
    offs = tl.arange(0, BLOCK)
    mask = offs < K
    x = tl.load(x_ptr + row * stride_x + offs, mask=mask, other=0.0).to(tl.float32)
    r = 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / K + eps)
    dt = y_ptr.dtype.element_ty
    y = (x * r).to(dt)
    if GAIN:
        y = (y.to(tl.float32) * tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)).to(dt)
    tl.store(y_ptr + row * stride_y + offs, y, mask=mask)


@triton.jit
def _silu_mul_kernel(gu_ptr, o_ptr, inter, stride_gu, stride_o, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    col = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = col < inter
    dt = o_ptr.dtype.element_ty
    gate = tl.load(gu_ptr + row * stride_gu + col, mask=mask, other=0.0).to(tl.float32)
    up = tl.load(gu_ptr + row * stride_gu + inter + col, mask=mask, other=0.0).to(tl.float32)
    silu = (gate / (1.0 + tl.exp(-gate))).to(dt).to(tl.float32)
    tl.store(o_ptr + row * stride_o + col, (silu * up).to(dt), mask=mask)


SILU_BLOCK = 1024


def runs_triton(t: torch.Tensor) -> bool:
    """Whether Triton kernels can take t: on a GPU, or on the CPU under Triton's interpreter."""
    return t.is_cuda or os.environ.get("TRITON_INTERPRET") == "1"


def serves(m: int, t: torch.Tensor) -> bool:
    """Whether the unfused arm at M rows of t is this module's path (else the eager baseline)."""
    return m >= PREFILL_ROWS and runs_triton(t)


def rmsnorm(h: torch.Tensor, g: torch.Tensor | None, eps: float) -> torch.Tensor:
    """RMSNorm of every row of h [M, K] with gain g [K] (None: none, it is folded into the next
    weight), in h's dtype (rmsnorm_eager's rounding)."""
    m, k = h.shape
    if h.stride(1) != 1:
        h = h.contiguous()
    y = torch.empty_like(h, memory_format=torch.contiguous_format)
    block = triton.next_power_of_2(k)
    gain = {} if g is not None else {"GAIN": False}
    _rmsnorm_kernel[(m,)](h, g if g is not None else h, y, k, h.stride(0), y.stride(0), float(eps), BLOCK=block,
                          num_warps=max(1, min(8, block // 512)), **gain)
    return y


def silu_mul(gate_up: torch.Tensor) -> torch.Tensor:
    """[M, 2I] (gate columns first) -> silu(gate) * up [M, I]."""
    m, two_i = gate_up.shape
    if two_i % 2:
        raise ValueError(f"gate_up must have an even column count (gate, then up); got {two_i}")
    if gate_up.stride(1) != 1:
        gate_up = gate_up.contiguous()
    i = two_i // 2
    out = torch.empty((m, i), dtype=gate_up.dtype, device=gate_up.device)
    _silu_mul_kernel[(m, triton.cdiv(i, SILU_BLOCK))](gate_up, out, i, gate_up.stride(0), out.stride(0),
                                                      BLOCK=SILU_BLOCK, num_warps=4)
    return out


def _check_residual(x, residual, w) -> None:
    check_matrix("x", x)
    check_matrix("w", w, cols=x.shape[1], like=x)
    check_matrix("residual", residual, like=x)
    if tuple(residual.shape) != (x.shape[0], w.shape[0]):
        raise ValueError(f"residual must be [M, N] = [{x.shape[0]}, {w.shape[0]}], got {list(residual.shape)}")


def rmsnorm_linear(h, norm_w, w, eps: float = 1e-6):
    """rmsnorm(h) @ w^T: rmsnorm_qkv, and lm_head (the final norm and the LM head)."""
    check_norm_op(h, norm_w, w, eps)
    return F.linear(rmsnorm(_floating(h), norm_w, eps).to(w.dtype), w)


def rmsnorm_gate_up_silu(h, norm_w, w, eps: float = 1e-6):
    """silu(g) * u with g, u = rmsnorm(h) @ w^T split in halves (gate rows first)."""
    check_norm_op(h, norm_w, w, eps)
    return silu_mul(F.linear(rmsnorm(_floating(h), norm_w, eps).to(w.dtype), w))


def _floating(h: torch.Tensor) -> torch.Tensor:
    """h, or a fixed-point stream's values in fp32 (qwen3.model.STREAM_ENV: decode forwards only, which
    never come here; a direct call still gets the right norm)."""
    return stream_values(h) if h.dtype == torch.int64 else h


def residual_linear(x, residual, w):
    """residual + x @ w^T, the sum in cuBLAS's epilogue (o_proj_residual and down_residual)."""
    _check_residual(x, residual, w)
    return torch.addmm(residual, x, w.t())


# Each site's path on the tuner's inputs dict (the keys of the op modules' make_inputs).
ARMS = {
    "rmsnorm_qkv": lambda i: (rmsnorm_linear(i["h"], i["norm_w"], i["w"]),),
    "o_proj_residual": lambda i: (residual_linear(i["x"], i["residual"], i["w"]),),
    "rmsnorm_gate_up_silu": lambda i: (rmsnorm_gate_up_silu(i["h"], i["norm_w"], i["w"]),),
    "down_residual": lambda i: (residual_linear(i["x"], i["residual"], i["w"]),),
    "lm_head": lambda i: (rmsnorm_linear(i["h"], i["norm_w"], i["w"]),),
}

# Cache keys that do not depend on the order of first launches (kernel_space.jit_keys).
jit_keys.settle(globals())
