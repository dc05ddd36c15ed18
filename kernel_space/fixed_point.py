"""The fixed-point residual stream's conversions as one launch each on the GPU: a decode forward widens
the embedded tokens into the stream (to_fixed) and reads the stream back as fp32 at its end
(stream_values). The same in PyTorch (kernel_space._common, the reference and the CPU's path) is four
and six element-wise kernels, and in a batch-1 decode step of Qwen3-0.6B on an H200 those ten cost
2.2% of the step (benchmarks/README.md, thirtieth session).

The kernels are _gemm's own conversions (_to_fixed, _stream_value), the ones the residual sites' adds
and the norm ops' reads run: rounding to the nearest, ties away from zero, as _common.to_fixed does.
Not finite, or not under FIXED_MAX in magnitude: FIXED_NAN; FIXED_NAN_AT or more in magnitude reads
as NaN (see _common)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernel_space import _common, jit_keys
from kernel_space._gemm import FIXED_NAN, _stream_value, _to_fixed

BLOCK = 1024
WARPS = 4


@triton.jit
def _to_fixed_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    fixed, ok = _to_fixed(tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32))
    tl.store(out_ptr + offs, tl.where(ok, fixed, FIXED_NAN), mask=mask)


@triton.jit
def _from_fixed_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(out_ptr + offs, _stream_value(tl.load(x_ptr + offs, mask=mask, other=0)), mask=mask)


def _elementwise(kernel, t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if not t.is_contiguous():
        raise ValueError(f"the stream conversion needs a contiguous tensor, got strides {t.stride()}")
    n = t.numel()
    if n >= 2**31:  # the kernels' offsets are 32-bit (a decode step's stream is rows x hidden)
        raise ValueError(f"the stream conversion takes fewer than 2^31 elements, got {n}")
    out = torch.empty(t.shape, dtype=dtype, device=t.device)
    if n:
        kernel[(triton.cdiv(n, BLOCK),)](t, out, n, BLOCK=BLOCK, num_warps=WARPS)
    return out


def to_fixed(t: torch.Tensor, triton_kernel: bool | None = None) -> torch.Tensor:
    """t (floating) as a fixed-point stream, int64 in units of 2^-24: one kernel on the GPU (or with
    triton_kernel True: Triton's interpreter on the CPU), else _common.to_fixed."""
    if not (t.is_cuda if triton_kernel is None else triton_kernel):
        return _common.to_fixed(t)
    if not t.is_floating_point():
        raise ValueError(f"to_fixed widens a floating tensor, got {t.dtype}")
    return _elementwise(_to_fixed_kernel, t, torch.int64)


def stream_values(t: torch.Tensor, triton_kernel: bool | None = None) -> torch.Tensor:
    """A fixed-point stream's values in fp32 (NaN where it holds FIXED_NAN_AT or more in magnitude): one
    kernel on the GPU (or with triton_kernel True), else _common.stream_values."""
    if not (t.is_cuda if triton_kernel is None else triton_kernel):
        return _common.stream_values(t)
    if t.dtype != torch.int64:
        raise ValueError(f"stream_values reads a fixed-point (int64) stream, got {t.dtype}")
    return _elementwise(_from_fixed_kernel, t, torch.float32)

# Cache keys that do not depend on the order of first launches (kernel_space.jit_keys).
jit_keys.settle(globals())
