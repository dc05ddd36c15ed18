"""Compile norm-op configs for sm_90 ahead of time (no GPU) and print, per case, whether the GEMM kernel's
tl.dot became Hopper's warpgroup MMA and the depth of each shared-memory ring its K loop's pipeline
allocated (the activation's and the weights'). Run by test_rings_compile.py in a process without
TRITON_INTERPRET."""

import json
import os
import re
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TRITON_CACHE_DIR", tempfile.mkdtemp(prefix="ks-rings-"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.compile_survey import compile_launch, record_launches

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
}


def rings(op: str, m: int, n: int, k: int, cfg: dict) -> dict:
    launches = record_launches(op, m, n, k, {"impl": "fused", **cfg})
    kernel, args, kwargs = next(launch for launch in launches if "fused_linear_kernel" in repr(launch[0]))
    _, compiled = compile_launch(kernel, args, kwargs, 90)
    ttgir = compiled.asm["ttgir"]
    return {"wgmma": "ttng.warp_group_dot " in ttgir,
            "rings": [int(d) for d in re.findall(r"ttg\.local_alloc : \(\) -> !ttg\.memdesc<(\d+)x\d+x\d+x", ttgir)]}


def main() -> None:
    print(json.dumps({name: rings(*case) for name, case in CASES.items()}))


if __name__ == "__main__":
    main()
