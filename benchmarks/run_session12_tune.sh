#!/usr/bin/env bash
# Twelfth session (2026-11-27), on nvidia-h100-x2: two Qwen3-8B tunes side by side, one per GPU.
# GPU 0 re-tunes the five GEMM sites at M = 32 under the PDL rule of the eleventh session (large
# grids over large weights launch without PDL: what a trial measures changed); GPU 1 tunes decode
# attention, which the committed 8B table has no rows of. Each imports the committed table first and
# ends with its own step check; `merge` joins the parts afterwards.
#   OUT=dir bash benchmarks/run_session12_tune.sh 240
. benchmarks/_session.sh
secs=${1:-240}
(CUDA_VISIBLE_DEVICES=0 OUT=$OUT/gemm bash benchmarks/run_session10_tune.sh 8b $secs > "$OUT/gemm.out" 2>&1) &
(CUDA_VISIBLE_DEVICES=1 OUT=$OUT/attn bash benchmarks/run_session9_tune.sh 8b attn $secs > "$OUT/attn.out" 2>&1) &
wait
for part in gemm attn; do echo "== $part"; quiet < "$OUT/$part.out" | tail -14 | cut -c1-170; done
