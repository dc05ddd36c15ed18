#!/usr/bin/env bash
# Thirty-third session (2026-11-29), one H200: after the fixes, the test files whose tests failed in the
# session's GPU run (the interpreter's tunes now run with the GPU hidden; a failed compile's outcome in a
# fresh process), and `tune` with TRITON_INTERPRET=1 beside the GPU, which now refuses at once.
#   OUT=dir bash benchmarks/run_session33_verify.sh
source benchmarks/_session.sh
timeout 400 python3 -m pytest -q -p no:cacheprovider -n 6 tests/tuner/test_attention_tune.py tests/tuner/test_compile_pool.py \
  tests/tuner/test_search.py tests/tuner/test_tune_loop.py > "$OUT/verify_tests.log" 2>&1
echo "pytest rc=$?"; tail -4 "$OUT/verify_tests.log" | cut -c1-250
db="sqlite:///$(mktemp -d)/ks.db"
start=$(date +%s)
TRITON_INTERPRET=1 COLUMNS=200 timeout 300 python3 -m cli.app tune --model qwen3-tiny --op decode_attention \
  --buckets 1,2 --contexts 32,64 --trials 4 --batch 4 --db "$db" > "$OUT/attn_tune_interp_after.log" 2>&1
echo "tune rc=$? after $(( $(date +%s) - start )) s"; grep -v "━" "$OUT/attn_tune_interp_after.log" | tail -3 | cut -c1-300
