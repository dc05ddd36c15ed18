#!/usr/bin/env bash
# Twenty-sixth session (2026-11-28), one H200: the decode attention plan's combine where it splits a few
# ways (the last program combines below KERNEL_COMBINE_SPLITS = 16 splits) against the combine kernel, in
# the 0.6B decode step (attn_step_probe.py, committed GEMM table; its default arms include the plan with
# the other combine): batch 8 x 2k lost 2.4% when the twenty-fourth session's rule raised its splits
# from 4 to 8 (issue 13).
#   OUT=dir bash benchmarks/run_session26_combine.sh
. benchmarks/_session.sh
attn_probe combine_qwen3-0.6b_ctx2048 qwen3-0.6b 2048 4,8
attn_probe combine_qwen3-0.6b_ctx4096 qwen3-0.6b 4096 8,16
attn_probe combine_qwen3-0.6b_ctx8192 qwen3-0.6b 8192 4,8
