"""The sizes of one fused-linear launch (kernel_space._gemm), in plain Python: its grids, its scratch
buffers and the largest element offset its kernels form.

The launcher sizes its buffers from it and switches the kernels to 64-bit offsets where that offset
can pass 2^31; check_config refuses from it what cannot run. One statement of the sizes for both, so
the check and the launch cannot disagree. Imports neither torch nor Triton (spec.py uses it).

Why it matters: the 8B table's M = 32 config for rmsnorm_gate_up_silu (SPLIT_K = 4, N = 12,288 gated)
run at a prefill of M = 65,536 forms the split-K partial offset 3 * 65,536 * 24,576 = 4.8e9, past
2^31: in int32 it wrapped negative and the launch faulted with an illegal memory access.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

INT32_MAX = 2**31 - 1
GRID_X_MAX = 2**31 - 1  # CUDA's limit on gridDim.x
GRID_YZ_MAX = 65_535  # and on gridDim.y and gridDim.z
FP32_BYTES = 4


@dataclass(frozen=True, slots=True)
class LinearLaunch:
    """One launch of fused_linear_kernel (and its split-K reduction) at (m, n, k) with a config's
    blocks. n counts output columns: half of W's rows when gated. Rows are contiguous (the op
    launchers refuse other strides), so a row of x is k elements and a row of out n."""

    m: int
    n: int
    k: int
    block_m: int
    block_n: int
    block_k: int
    split: int
    gated: bool = False

    @classmethod
    def of(cls, cfg: dict, m: int, n: int, k: int, gated: bool = False) -> LinearLaunch:
        return cls(m, n, k, cfg["BLOCK_M"], cfg["BLOCK_N"], cfg["BLOCK_K"], cfg["SPLIT_K"], gated)

    @property
    def tiles_m(self) -> int:
        return -(-self.m // self.block_m)

    @property
    def tiles_n(self) -> int:
        return -(-self.n // self.block_n)

    @property
    def tiles(self) -> int:
        return self.tiles_m * self.tiles_n

    @property
    def k_per_split(self) -> int:
        """K covered by one split: a whole number of BLOCK_K blocks (the last split may run short)."""
        return math.ceil(math.ceil(self.k / self.block_k) / self.split) * self.block_k

    @property
    def width(self) -> int:
        """Columns of a split-K partial row: the gate and the up halves side by side when gated."""
        return 2 * self.n if self.gated else self.n

    @property
    def grid(self) -> tuple[int, int]:
        """The GEMM's grid: every (M, N) tile in x, the K splits in y."""
        return self.tiles, self.split

    @property
    def reduce_grid(self) -> tuple[int, int]:
        """The split-K reduction kernel's grid: M tiles in x, N tiles in y (at most 65,535: N = 524,280
        at BLOCK_N = 8; a 1-D grid would cost the decode reduction a division per program)."""
        return self.tiles_m, self.tiles_n

    @property
    def partial_shape(self) -> tuple[int, int, int]:
        """fp32 split-K partials: one [M, width] slab per split (none without split-K)."""
        return (self.split, self.m, self.width) if self.split > 1 else (0, 0, 0)

    @property
    def sumsq_shape(self) -> tuple[int, int, int]:
        """fp32 partial sums of squares of the inline norm: one copy per (split, N tile)."""
        return (self.split, self.tiles_n, self.m) if self.split > 1 else (0, 0, 0)

    def scratch_bytes(self, norm: bool = True) -> int:
        """Bytes of the split-K scratch the launch allocates (partials, and sums of squares with a norm)."""
        count = math.prod(self.partial_shape) + (math.prod(self.sumsq_shape) if norm else 0)
        return count * FP32_BYTES

    def max_offset(self) -> int:
        """The largest element offset any kernel of the launch adds to a base pointer: rows and
        columns are padded to whole tiles (masked lanes form offsets too), so it is an upper bound."""
        m_pad, n_pad = self.tiles_m * self.block_m, self.tiles_n * self.block_n
        # The K loop's last block may run past K, and so may the norm pre-pass's one block per row.
        k_pad = max(self.split * self.k_per_split, 2 * self.k)
        spans = [
            m_pad * self.k + k_pad,  # x and the pre-pass output: rows of K
            (n_pad + (self.n if self.gated else 0)) * self.k + k_pad,  # W (gated: up rows sit N further)
            m_pad * self.n + n_pad,  # out and res_out: rows of N
            self.tiles,  # the tile arrival counters
        ]
        if self.split > 1:
            up = self.n if self.gated else 0  # the up half's partials sit N columns further
            spans.append(((self.split - 1) * self.m + m_pad) * self.width + n_pad + up)  # partials
            spans.append(self.split * self.tiles_n * self.m + m_pad)  # sums of squares
        return max(spans)

    @property
    def needs_int64(self) -> bool:
        """An offset of this launch can pass 2^31 - 1: its kernels must index in 64 bits."""
        return self.max_offset() > INT32_MAX

    def grid_problem(self) -> str | None:
        """Why one of the launch's grids exceeds CUDA's limits, or None: 2^31 - 1 programs along x
        (the GEMM's tiles, the pre-pass's rows, the reduction's M tiles), 65,535 along y (the GEMM's
        splits, the reduction's N tiles; counted for every split-K launch, though only split_reduce
        = kernel runs the reduction kernel)."""
        if self.tiles > GRID_X_MAX:
            return f"{self.tiles} tiles ({self.tiles_m} x {self.tiles_n}) exceed CUDA's grid limit of {GRID_X_MAX} in x"
        if self.m > GRID_X_MAX:
            return f"M={self.m} rows exceed CUDA's grid limit of {GRID_X_MAX} in x (the norm pre-pass runs one per row)"
        if self.split > GRID_YZ_MAX:
            return f"SPLIT_K={self.split} exceeds CUDA's grid limit of {GRID_YZ_MAX} in y"
        if self.split > 1 and self.tiles_n > GRID_YZ_MAX:
            return (f"the split-K reduction's {self.tiles_n} N tiles (N={self.n} / BLOCK_N={self.block_n}) exceed "
                    f"CUDA's grid limit of {GRID_YZ_MAX} in y")
        return None
