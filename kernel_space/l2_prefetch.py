"""Weights into L2 ahead of the kernels that read them, while the memory bus has nothing else to do.

At decode, short context and small batch, the span from the QKV projection's end to o_proj's start
(the q/k norm + RoPE + cache write, then decode attention over a few hundred slots) moves little data:
Qwen3-0.6B's batch-1 attention at 256 slots reads 0.5 MB of K/V a layer, while the layer's o_proj,
gate_up and down weights are 23 MB that their kernels then stream, each paying the ramp of a short
stream. `prefetch_l2` launches one small kernel that asks L2 for those weights' lines (a hint: no
value comes back, nothing waits for it), so that the loads can run while attention does, and the GEMMs
after it find them in L2 (50 MB on an H100).

The kernel is launched with PDL like the others: its programs start while the kernel ahead runs, ask
for their lines first and only then wait for it, so the prefetch adds no wait of its own; it still
completes after its predecessor, which keeps the stream's order for the kernels after it.

A hint has no effect on any value. Off the GPU (the interpreter, the CPU) nothing is launched.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernel_space._gemm import _launcher, _prefetch_l2, pdl_enter, pdl_launch_args

LINE_BYTES = 128  # an L2 line: one prefetch each
LINES = 1024  # lines a program asks for (128 KB)
MAX_RANGES = 4  # tensors one launch prefetches


@triton.jit(do_not_specialize=["n0", "n1", "n2", "n3"])  # a count of 1 would become a constant of another type
def l2_prefetch_kernel(w0_ptr, n0, w1_ptr, n1, w2_ptr, n2, w3_ptr, n3, LINE: tl.constexpr, LINES: tl.constexpr,
                       PDL: tl.constexpr = False):
    """Program (c, r) asks L2 for lines c * LINES .. of tensor r (n_r lines of LINE elements each)."""
    r = tl.program_id(1)
    base, n = w0_ptr, n0
    if r == 1:
        base, n = w1_ptr, n1
    elif r == 2:
        base, n = w2_ptr, n2
    elif r == 3:
        base, n = w3_ptr, n3
    first = tl.program_id(0) * LINES
    if first < n:
        lines = tl.minimum(first + tl.arange(0, LINES), n - 1)  # the last program's surplus asks again
        _prefetch_l2(base + lines.to(tl.int64) * LINE)
    if PDL:
        pdl_enter()


def plan_ranges(tensors: list[torch.Tensor], max_bytes: int) -> list[tuple[torch.Tensor, int]]:
    """(tensor, lines) to prefetch: the tensors in order, whole, until max_bytes; the first one past it
    in part (its leading lines). Every tensor is contiguous and of one dtype (weights are)."""
    out, left = [], max_bytes
    for t in tensors[:MAX_RANGES]:
        if left < LINE_BYTES:
            break
        if not t.is_contiguous():
            raise ValueError("prefetch_l2 takes contiguous tensors")
        lines = min(-(-t.numel() * t.element_size() // LINE_BYTES), left // LINE_BYTES)
        out.append((t, lines))
        left -= lines * LINE_BYTES
    return out


def prefetch_l2(tensors: list[torch.Tensor], max_bytes: int) -> None:
    """Ask L2 for up to max_bytes of `tensors` (in order; at most MAX_RANGES of them, one dtype), as one
    launch. Does nothing off CUDA or when there is nothing to ask for."""
    if not tensors or tensors[0].device.type != "cuda":
        return
    ranges = plan_ranges(tensors, max_bytes)
    if not ranges:
        return
    dtypes = {t.dtype for t, _ in ranges}
    if len(dtypes) != 1:
        raise ValueError(f"prefetch_l2 takes tensors of one dtype, got {sorted(map(str, dtypes))}")
    line = LINE_BYTES // ranges[0][0].element_size()
    args = []
    for t, lines in ranges + [(ranges[0][0], 0)] * (MAX_RANGES - len(ranges)):
        args += [t, lines]
    grid = (triton.cdiv(max(lines for _, lines in ranges), LINES), len(ranges))
    _launcher(l2_prefetch_kernel, grid)(*args, LINE=line, LINES=LINES, num_warps=4,
                                         **pdl_launch_args(tensors[0].device))


KERNEL_SOURCES = (l2_prefetch_kernel, _prefetch_l2, pdl_enter)
