"""Compile the PDL variants of every kernel (and the GEMM's 64-bit offset variants) for sm_90 ahead of
time (ptxas, no GPU) and report what their PTX holds. Run by test_pdl_compile.py in a process without
TRITON_INTERPRET."""

import json
import sys

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from kernel_space import _gemm
from qwen3 import kernels

FP32 = {"part_ptr", "ss_ptr", "ml_ptr"}


def compile_ptx(fn, constexprs: dict, **options) -> str:
    sig = {}
    for name in fn.arg_names:
        if name in constexprs:
            sig[name] = "constexpr"
        elif name.endswith("_ptr"):
            sig[name] = ("*fp32" if name in FP32 else "*i32" if name == "count_ptr"
                         else "*i64" if name == "pos_ptr" else "*bf16")
        elif name in ("eps", "scale"):
            sig[name] = "fp32"
        else:
            sig[name] = "i32"
    src = ASTSource(fn=fn, signature=sig, constexprs={(fn.arg_names.index(k),): v for k, v in constexprs.items()})
    return triton.compile(src, target=GPUTarget("cuda", 90, 32), options=options).asm["ptx"]


def main() -> None:
    pdl = sys.argv[1] == "on"
    gemm = dict(NORM=True, GATED=True, RES_OUT=False, BLOCK_M=1, BLOCK_N=32, BLOCK_K=128, SPLIT_K=2,
                GROUP_M=1, USE_DOT=False, DOT_PRECISION="tf32", LAST_REDUCES=True, INDEX_64=False, PDL=pdl,
                PREFETCH=pdl)
    attn = dict(H=16, G=2, G_PAD=16, HD=128, BLOCK_N=64, CHUNK=128, SPLITS=2, PRECISION="tf32", PDL=pdl)
    epilogue = dict(NORM=True, GATED=False, RES_OUT=True, SPLIT_K=4, BLOCK_M=1, BLOCK_N=64, INDEX_64=False, PDL=pdl)
    ptx = {
        "fused_linear": compile_ptx(_gemm.fused_linear_kernel, gemm, num_warps=4, num_stages=3, launch_pdl=pdl),
        "splitk_epilogue": compile_ptx(_gemm.splitk_epilogue_kernel, epilogue),
        "prepass": compile_ptx(_gemm.rmsnorm_prepass_kernel, dict(BLOCK_K=1024, INDEX_64=False, PDL=pdl)),
        # The 64-bit offset variants (prefill sizes) compile too.
        "fused_linear_64": compile_ptx(_gemm.fused_linear_kernel, {**gemm, "INDEX_64": True}, num_warps=4,
                                       num_stages=3, launch_pdl=pdl),
        "splitk_epilogue_64": compile_ptx(_gemm.splitk_epilogue_kernel, {**epilogue, "INDEX_64": True}),
        "prepass_64": compile_ptx(_gemm.rmsnorm_prepass_kernel, dict(BLOCK_K=1024, INDEX_64=True, PDL=pdl)),
        "qk_norm_rope_cache": compile_ptx(kernels._qk_norm_rope_cache_kernel, dict(H=16, KV=8, HD=128, PDL=pdl)),
        "decode_attention": compile_ptx(kernels._decode_attention_kernel, attn),
        "combine": compile_ptx(kernels._combine_kernel, dict(H=16, HD=128, SPLITS=2, S_PAD=2, PDL=pdl)),
    }
    print(json.dumps({name: {"wait": "griddepcontrol.wait" in p, "launch": "griddepcontrol.launch_dependents" in p,
                             "prefetch": p.count("prefetch.global.L2"), "mul_s64": p.count("mul.lo.s64")}
                      for name, p in ptx.items()}))


if __name__ == "__main__":
    main()
