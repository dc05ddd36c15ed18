#!/usr/bin/env bash
# Thirty-third session (2026-11-29), one H200: two failures of the GPU test run, reproduced with their
# tracebacks: the interpreter's attention tune (tests/tuner/test_attention_tune.py's fixture, run with
# TRITON_INTERPRET=1 on a GPU host) and the compile stream's failed-future path (test_compile_pool.py).
#   OUT=dir bash benchmarks/run_session33_repro.sh
source benchmarks/_session.sh
timeout 60 python3 -m pytest -q -p no:cacheprovider tests/tuner/test_compile_pool.py 2>&1 | tail -3
db="sqlite:///$(mktemp -d)/ks.db"
TRITON_INTERPRET=1 KERNEL_SEARCH_DEBUG=1 COLUMNS=200 timeout 300 python3 -m cli.app tune --model qwen3-tiny \
  --op decode_attention --buckets 1,2 --contexts 32,64 --trials 4 --batch 4 --db "$db" > "$OUT/attn_tune_interp.log" 2>&1
echo "tune rc=$?"
grep -v "━" "$OUT/attn_tune_interp.log" | tail -40 | cut -c1-250
