"""The compile pool's job ahead of time, as a pool process runs it: tuner.compile._compile_one with a
target, on meta tensors, with Triton's driver pointed at that GPU. Run by test_compile_pool.py in a
process without TRITON_INTERPRET and with its own TRITON_CACHE_DIR; prints what the cache then holds."""

import json
import os
import pathlib
import sys

import torch

from kernel_space import _gemm
from kernel_space.attention_shape import encode_heads, encode_m
from kernel_space.spec import Problem
from tuner import compile as pool

H100 = _gemm.Target((9, 0), 132, 50 << 20, 232_448)
GEMV = {"impl": "fused", "path": "fma", "BLOCK_M": 1, "BLOCK_N": 16, "BLOCK_K": 256, "SPLIT_K": 1, "GROUP_M": 1,
        "split_reduce": "kernel", "prologue": "inline", "num_warps": 4, "num_stages": 3}
SPLIT = {**GEMV, "path": "dot", "BLOCK_M": 16, "BLOCK_N": 64, "BLOCK_K": 128, "SPLIT_K": 4}
BIG = {**SPLIT, "BLOCK_N": 256, "BLOCK_K": 512, "num_stages": 4, "SPLIT_K": 1}  # ~1 MB of shared memory asked
ATTN = {"impl": "fused", "SPLITS": 32, "BLOCK_N": 64, "pack": "group", "combine": "kernel", "num_warps": 4,
        "num_stages": 2, "prep": "separate"}


def main() -> None:
    errors = {
        "gemv": pool._compile_one(Problem("rmsnorm_qkv", 1, 4096, 1024, "bfloat16"), GEMV, H100)[1],
        "split": pool._compile_one(Problem("down_residual", 16, 1024, 3072, "bfloat16"), SPLIT, H100)[1],
        "attention": pool._compile_one(Problem("decode_attention", encode_m(1, 8192), *encode_heads(16, 8, 128),
                                               "bfloat16"), ATTN, H100)[1],
        "too_big": pool._compile_one(Problem("o_proj_residual", 16, 1024, 2048, "bfloat16"), BIG, H100)[1],
    }
    kernels = []
    for meta in pathlib.Path(os.environ["TRITON_CACHE_DIR"]).rglob("*.json"):
        data = json.loads(meta.read_text())
        if "target" in data and "name" in data:
            kernels.append({"name": data["name"], "arch": data["target"]["arch"],
                            "launch_pdl": data.get("launch_pdl"), "shared": data.get("shared")})
    print(json.dumps({"errors": errors, "kernels": kernels, "cuda_initialized": torch.cuda.is_initialized(),
                      "dynamo_imported": "torch._dynamo" in sys.modules}))


if __name__ == "__main__":
    main()
