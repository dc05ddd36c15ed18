"""Compile GEMM configs for sm_90 ahead of time (no GPU) and print, per case, whether the kernel's tl.dot
became Hopper's warpgroup MMA, the depth of each shared-memory ring its K loop's pipeline allocated (the
weights', the activation's, and the gain's where there is one), whether the MMA reads x from its ring, and
the shared memory it asks for. Run by test_rings_compile.py in a
process without TRITON_INTERPRET."""

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.compile_survey import compile_launch, record_launches
from tests.kernel_space.ptx_only import ptx_only

BIG = dict(path="dot", BLOCK_M=128, BLOCK_N=128, BLOCK_K=64, SPLIT_K=2, split_reduce="kernel", num_warps=8,
           num_stages=3, GROUP_M=1, prologue="inline")
QKV = ("rmsnorm_qkv", 128, 4096, 1024)
CASES = {
    # Qwen3-0.6B's QKV at M = 128: the twenty-fourth session's wrong configs, a K loop of 8 blocks a split.
    "inline_wgmma": (*QKV, BIG),
    # The gated op at M = 32 on the 64-row tile, two stages: its x ring is one buffer deep.
    "inline_wgmma_gated_two_stages": ("rmsnorm_gate_up_silu", 32, 6144, 1024,
                                      {**BIG, "BLOCK_M": 64, "BLOCK_N": 64, "num_warps": 4, "num_stages": 2,
                                       "SPLIT_K": 4}),
    "rescan_wgmma": (*QKV, {**BIG, "prologue": "rescan"}),
    "prepass_wgmma": (*QKV, {**BIG, "prologue": "prepass"}),
    "inline_one_stage": (*QKV, {**BIG, "num_stages": 1}),
    "inline_mma_sync": ("rmsnorm_qkv", 32, 4096, 1024, {**BIG, "BLOCK_M": 32, "BLOCK_N": 64, "num_warps": 4}),
    "inline_two_warps": ("rmsnorm_qkv", 64, 4096, 1024, {**BIG, "BLOCK_M": 64, "BLOCK_N": 32, "num_warps": 2}),
    "o_proj_wgmma": ("o_proj_residual", 128, 1024, 2048, BIG),
    # One BLOCK_K block a split (no loop), gated, at three stages: one buffer of each tile.
    "one_block_gated": ("rmsnorm_gate_up_silu", 128, 6144, 1024, {**BIG, "BLOCK_K": 256, "SPLIT_K": 4,
                                                                  "BLOCK_N": 64, "prologue": "prepass"}),
    # The LM head keeps its norm's gain: x is scaled in registers and reaches the MMA from there, so its
    # ring may be short; the gain has a ring of its own.
    "lm_head_inline_wgmma": ("lm_head", 128, 151936, 1024, {**BIG, "SPLIT_K": 1, "GROUP_M": 8}),
    "lm_head_rescan_wide": ("lm_head", 128, 151936, 1024, {**BIG, "BLOCK_M": 64, "BLOCK_N": 32, "BLOCK_K": 512,
                                                           "SPLIT_K": 1, "GROUP_M": 8, "prologue": "rescan"}),
    # The FMA path with a K loop: no ring, only a reduction's scratch.
    "fma_loop": ("down_residual", 1, 1024, 3072, {**BIG, "path": "fma", "BLOCK_M": 1, "BLOCK_N": 16,
                                                  "BLOCK_K": 256, "SPLIT_K": 3, "num_warps": 4}),
}


def rings(op: str, m: int, n: int, k: int, cfg: dict) -> dict:
    launches = record_launches(op, m, n, k, {"impl": "fused", **cfg})
    kernel, args, kwargs = next(launch for launch in launches if "fused_linear_kernel" in repr(launch[0]))
    _, compiled = compile_launch(kernel, args, kwargs, 90)
    ttgir = compiled.asm["ttgir"]
    mma = next((line for line in ttgir.splitlines() if "ttng.warp_group_dot " in line), "")
    return {"wgmma": bool(mma), "shared": compiled.metadata.shared,
            # the MMA's first operand a shared-memory buffer (x's ring), not a register tensor
            "x_from_ring": " : !ttg.memdesc" in mma,
            "rings": [int(d) for d in re.findall(r"ttg\.local_alloc : \(\) -> !ttg\.memdesc<(\d+)x\d+x\d+x", ttgir)]}


def main() -> None:
    with ptx_only():  # what it reads is made before ptxas
        print(json.dumps({name: rings(*case) for name, case in CASES.items()}))


if __name__ == "__main__":
    main()
