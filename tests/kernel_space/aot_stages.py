"""Compile configs of the GEMM ops for sm_90 ahead of time (no GPU) at two num_stages each and print
the hash of every kernel's PTX per stage count: whether the stages build different code. Run by
test_stages_compile.py in a process without TRITON_INTERPRET."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.compile_survey import compile_config
from tests.kernel_space.ptx_only import ptx_only

BASE = dict(path="dot", BLOCK_M=16, BLOCK_N=64, BLOCK_K=128, SPLIT_K=16, split_reduce="last_program", num_warps=4,
            GROUP_M=1, prologue="inline")
CASES = {
    # One K block a split, reduced by the last program (the unrolled reducer).
    "one_block": ("o_proj_residual", 1, 1024, 2048, BASE),
    # A 64 x 128 gated tile over 16 splits: the reducer loops over chunks of splits.
    "one_block_chunked_reduce": ("rmsnorm_gate_up_silu", 32, 6144, 1024,
                                 {**BASE, "BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 64, "num_warps": 8}),
    # The norm by a pre-pass kernel, split-K reduced by a second kernel.
    "one_block_prepass": ("rmsnorm_qkv", 8, 4096, 1024,
                          {**BASE, "BLOCK_N": 32, "SPLIT_K": 8, "split_reduce": "kernel", "prologue": "prepass"}),
    # The FMA path at M = 1, the LM head's shape.
    "one_block_fma": ("lm_head", 1, 151936, 1024,
                      {**BASE, "path": "fma", "BLOCK_M": 1, "BLOCK_N": 8, "BLOCK_K": 256, "SPLIT_K": 4}),
    # The FMA path with a K loop (four blocks a split): Triton pipelines only a tl.dot's loads.
    "fma_k_loop": ("rmsnorm_qkv", 1, 4096, 1024,
                   {**BASE, "path": "fma", "BLOCK_M": 1, "BLOCK_N": 16, "BLOCK_K": 128, "SPLIT_K": 2,
                    "split_reduce": "kernel"}),
    # Four K blocks a split: a loop, which the stages pipeline.
    "k_loop": ("o_proj_residual", 1, 1024, 2048, {**BASE, "SPLIT_K": 4}),
}


def main() -> None:
    out = {}
    with ptx_only():  # PTX is what it compares
        for name, (op, m, n, k, cfg) in CASES.items():
            out[name] = [compile_config(op, m, n, k, {"impl": "fused", **cfg, "num_stages": stages})["ptx"]
                         for stages in (1, 5)]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
