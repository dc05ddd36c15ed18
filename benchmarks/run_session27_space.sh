#!/usr/bin/env bash
# Twenty-seventh session (2026-11-28), one H200: the GEMM space without redundant twins (OpSpec.redundant)
# on the GPU image: its tests, then a short tune of two 0.6B sites (M 1 and 8, 40 configs a study) whose
# database is searched for a kernel measured twice under two stage counts (benchmarks/space_dups.py).
#   OUT=dir bash benchmarks/run_session27_space.sh
. benchmarks/_session.sh
export TRITON_CACHE_DIR=${TRITON_CACHE_DIR:-/tmp/triton-s27s}
timeout 200 python3 -m pytest -q -p no:cacheprovider tests/kernel_space/test_stages_compile.py tests/tuner/test_space.py \
  2>&1 | tail -3
DB="sqlite:////tmp/s27s/tune.db"
mkdir -p /tmp/s27s
t0=$(date +%s)
timeout 300 python3 -m cli.app tune --model qwen3-0.6b --op o_proj_residual --op down_residual --buckets 1,8 \
  --trials 40 --no-bench --db "$DB" > "$OUT/tune_space.log" 2>&1
echo "tune rc $? in $(( $(date +%s) - t0 )) s"; quiet < "$OUT/tune_space.log" | grep 'M=' | cut -c1-160
python3 benchmarks/space_dups.py /tmp/s27s/tune.db | tee "$OUT/space_dups.txt"
gzip -c /tmp/s27s/tune.db > "$OUT/tune_space.db.gz"
