#!/usr/bin/env bash
# Thirteenth session: a tune before and after the rolling ask (tuner.search._Flight: a new config asked
# for each one measured, instead of a batch at a time waiting for its slowest compile), same machine,
# same call. The code before the change travels as .whl/baseline (a `git archive` of the commit before
# it: cli, tuner, kernel_space, storage, qwen3, dashboards and distributed_bench.py). A subset of the
# 0.6B decode table: 4 GEMM ops x M = 1, 8, 32, 128 (16 studies, 16 configs each), a fresh database and
# a fresh Triton cache per run: before on 1 GPU, after on 1 GPU, after on 2 GPUs.
# A second call on the same machine ran the two one-GPU runs in reverse order, by hand with the same
# options (no --export-dir): after into rolling_after_first.json, then before into
# rolling_before_second.json.
#   OUT=dir bash benchmarks/run_session13_rolling.sh
. benchmarks/_session.sh
OUT=$(realpath "$OUT")  # the baseline run works from .whl/baseline
python3 -c "import torch, triton, optuna, sqlalchemy, kernel_space, tuner.search, cli.app"
common=(--model qwen3-0.6b --buckets 1,8,32,128 --trials 16
        --ops rmsnorm_qkv,o_proj_residual,rmsnorm_gate_up_silu,down_residual)
site=${PYTHONPATH%%:*}
summary() { python3 -c "
import json, sys
d = json.load(open(sys.argv[1]))
for r in d['rows']:
    print(sys.argv[2], r['gpus'], r['storage'], 'wall', r['wall_s'], 's, configs', r['configs_measured'],
          'twice', r['measured_twice'], 'rc', r.get('rc'))" "$@"; }
(cd .whl/baseline && PYTHONPATH=$site timeout 230 python3 benchmarks/distributed_bench.py "${common[@]}" \
  --runs 1:sqlite --out "$OUT/rolling_before.json" --export-dir "$OUT/before" 2>&1 | quiet | tail -3)
summary "$OUT/rolling_before.json" before
timeout 300 python3 benchmarks/distributed_bench.py "${common[@]}" --runs 1:sqlite,2:sqlite \
  --out "$OUT/rolling_after.json" --export-dir "$OUT/after" 2>&1 | quiet | tail -3
summary "$OUT/rolling_after.json" after
# The workers' timestamped logs in one archive ($OUT brings back 8 files).
(cd "$OUT" && tar czf worker_logs.tgz worker_logs_* && rm -rf worker_logs_rolling_*)
