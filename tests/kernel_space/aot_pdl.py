"""Compile the PDL variants of every kernel (and the GEMM's 64-bit offset variants) for sm_90 ahead of
time (no GPU) and report what their PTX holds, a report per mode named on the command line (on, off,
early), in one process. Run by test_pdl_compile.py in a process without TRITON_INTERPRET.

The first mode's kernels go through ptxas too (they assemble for sm_90); the others stop at PTX, which
is all the report reads (ptx_only)."""

import contextlib
import json
import sys

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from kernel_space import _gemm, decode_attention, qk_norm_rope_cache
from tests.kernel_space.ptx_only import ptx_only

FP32 = {"part_ptr", "ss_ptr", "ml_ptr"}


def compile_ptx(fn, constexprs: dict, **options) -> str:
    sig = {}
    for name in fn.arg_names:
        if name in constexprs:
            sig[name] = "constexpr"
        elif name.endswith("_ptr"):
            sig[name] = ("*fp32" if name in FP32 else "*i32" if name == "count_ptr"
                         else "*i64" if name == "pos_ptr" else "*bf16")
        elif name in ("eps", "scale", "qk_scale"):
            sig[name] = "fp32"
        else:
            sig[name] = "i32"
    src = ASTSource(fn=fn, signature=sig, constexprs={(fn.arg_names.index(k),): v for k, v in constexprs.items()})
    return triton.compile(src, target=GPUTarget("cuda", 90, 32), options=options).asm["ptx"]


def main() -> None:
    reports = []
    for i, mode in enumerate(sys.argv[1:]):
        with ptx_only() if i else contextlib.nullcontext():
            reports.append(report(mode))
    print(json.dumps(reports))


def report(mode: str) -> dict:
    pdl = {"on": True, "off": False, "early": _gemm.PDL_EARLY.value}[mode]
    gemm = dict(NORM=True, GATED=True, RES_OUT=False, BLOCK_M=1, BLOCK_N=32, BLOCK_K=128, SPLIT_K=2,
                GROUP_M=1, USE_DOT=False, DOT_PRECISION="tf32", LAST_REDUCES=True, INDEX_64=False, PDL=pdl,
                PREFETCH=pdl, ONE_BLOCK=False, GAIN=True, SS_PASS=False)
    epilogue = dict(NORM=True, GATED=False, RES_OUT=True, SPLIT_K=4, BLOCK_M=1, BLOCK_N=64, INDEX_64=False, PDL=pdl)
    # pack=group with the combine kernel, and pack=head combined by the last program.
    # The first two prefetch their K/V chunk before the wait (as the launcher does where the grid is
    # small); the prep kernel's variant does not.
    wide_reduce = {**epilogue, "GATED": True, "RES_OUT": False, "SPLIT_K": 2, "BLOCK_M": 64, "BLOCK_N": 128}
    attn = dict(H=16, G=2, HPU=2, HP=16, HD=128, BLOCK_N=64, USE_DOT=True, LAST_COMBINES=False, PRECISION="tf32",
                HC=2, CS=16, KV_LINES=2, PDL=pdl, PREFETCH=pdl, EARLY_REST=False)
    attn_head = {**attn, "HPU": 1, "HP": 1, "HC": 1, "USE_DOT": False, "LAST_COMBINES": True}
    attn_prep = {**attn, "KV": 8, "PREFETCH": False, "EARLY_KV": False}
    ptx = {
        "fused_linear": compile_ptx(_gemm.fused_linear_kernel, gemm, num_warps=4, num_stages=3, launch_pdl=pdl),
        # A slice of one K block: its weights loaded before the wait, nothing prefetched.
        "fused_linear_one_block": compile_ptx(_gemm.fused_linear_kernel, {**gemm, "ONE_BLOCK": True}, num_warps=4,
                                              num_stages=3, launch_pdl=pdl),
        # The norm's gain folded into the weight, its sum of squares from a second read after the loop.
        "fused_linear_folded_rescan": compile_ptx(_gemm.fused_linear_kernel, {**gemm, "GAIN": False, "SS_PASS": True},
                                                  num_warps=4, num_stages=3, launch_pdl=pdl),
        "splitk_epilogue": compile_ptx(_gemm.splitk_epilogue_kernel, epilogue),
        "prepass": compile_ptx(_gemm.rmsnorm_prepass_kernel, dict(BLOCK_K=1024, INDEX_64=False, PDL=pdl, GAIN=True)),
        "prepass_folded": compile_ptx(_gemm.rmsnorm_prepass_kernel, dict(BLOCK_K=1024, INDEX_64=False, PDL=pdl,
                                                                         GAIN=False)),
        "qk_norm_rope_cache": compile_ptx(qk_norm_rope_cache._qk_norm_rope_cache_kernel,
                                          dict(H=16, KV=8, HD=128, PDL=pdl)),
        "decode_attention": compile_ptx(decode_attention.decode_attention_kernel, {**attn, "EARLY_KV": False},
                                        num_warps=4, num_stages=2),
        "decode_attention_head_last": compile_ptx(decode_attention.decode_attention_kernel,
                                                  {**attn_head, "EARLY_KV": False}, num_warps=4, num_stages=2),
        # kv=early: the chunk's one block loaded before the wait, into registers (no prefetch).
        "decode_attention_early": compile_ptx(decode_attention.decode_attention_kernel,
                                              {**attn, "PREFETCH": False, "EARLY_KV": True, "LAST_COMBINES": True},
                                              num_warps=4, num_stages=1),
        # kv=early past one block: the first block before the wait, the chunk's other blocks after it.
        "decode_attention_early_rest": compile_ptx(decode_attention.decode_attention_kernel,
                                                   {**attn, "PREFETCH": False, "EARLY_KV": True, "EARLY_REST": True},
                                                   num_warps=4, num_stages=2),
        "decode_attention_prep": compile_ptx(decode_attention.decode_attention_prep_kernel, attn_prep, num_warps=4,
                                             num_stages=2),
        # kv=early with prep=fused: the block but the new slot loaded before the wait.
        "decode_attention_prep_early": compile_ptx(decode_attention.decode_attention_prep_kernel,
                                                   {**attn_prep, "EARLY_KV": True, "LAST_COMBINES": True},
                                                   num_warps=4, num_stages=1),
        "decode_attention_prep_early_rest": compile_ptx(decode_attention.decode_attention_prep_kernel,
                                                        {**attn_prep, "EARLY_KV": True, "EARLY_REST": True},
                                                        num_warps=4, num_stages=2),
        "combine": compile_ptx(decode_attention.decode_attention_combine_kernel,
                               dict(H=16, HD=128, SP=32, DC=32, BLOCK_N=64, PDL=pdl), num_warps=4),
    }
    if pdl is True:
        # Compiled once, with PDL on: what they test does not depend on the PDL mode.
        ptx.update({
            # The 64-bit offset variants (prefill sizes) compile too.
            "fused_linear_64": compile_ptx(_gemm.fused_linear_kernel, {**gemm, "INDEX_64": True}, num_warps=4,
                                           num_stages=3, launch_pdl=pdl),
            "splitk_epilogue_64": compile_ptx(_gemm.splitk_epilogue_kernel, {**epilogue, "INDEX_64": True}),
            "prepass_64": compile_ptx(_gemm.rmsnorm_prepass_kernel,
                                      dict(BLOCK_K=1024, INDEX_64=True, PDL=pdl, GAIN=True)),
            # The split-K reducer of a 64 x 128 gated tile: 2 splits unrolled, 16 in a loop of 2-split chunks.
            "reduce_wide_2": compile_ptx(_gemm.splitk_epilogue_kernel, wide_reduce),
            "reduce_wide_16": compile_ptx(_gemm.splitk_epilogue_kernel, {**wide_reduce, "SPLIT_K": 16}),
        })
    return {name: {"wait": "griddepcontrol.wait" in p, "launch": "griddepcontrol.launch_dependents" in p,
                   "prefetch": p.count("prefetch.global.L2"),
                   "launch_first": -1 < p.find("griddepcontrol.launch_dependents") < p.find("griddepcontrol.wait"),
                   "mul_s64": p.count("mul.lo.s64"),
                   "cg_loads": p.count("ld.global.cg"),
                   "loads_first": p[:max(p.find("griddepcontrol.wait"), 0)].count("ld.global")}
            for name, p in ptx.items()}


if __name__ == "__main__":
    main()
