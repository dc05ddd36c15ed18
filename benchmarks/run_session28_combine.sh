#!/usr/bin/env bash
# Twenty-eighth session (2026-11-29), one H200: attn_bench.py found the combine kernel 12-13% faster than
# the plan's last-program combine for decode attention alone at Qwen3-0.6B batch 8 x 8k-32k (8 splits),
# and 16 splits 8-10% faster at 8B. Here the same in the decode step (attn_step_probe.py: the plan, the
# plan with the other combine, and for 8B 16 splits with the combine kernel), committed GEMM tables.
. benchmarks/_session.sh
attn_probe combine_qwen3-0.6b_8k qwen3-0.6b 8192 8
attn_probe combine_qwen3-0.6b_32k qwen3-0.6b 32768 8
attn_probe combine_qwen3-8b_8k qwen3-8b 8192 8 '{"SPLITS": 16, "combine": "kernel"}'
attn_probe combine_qwen3-8b_32k qwen3-8b 32768 8 '{"SPLITS": 16, "combine": "kernel"}'
