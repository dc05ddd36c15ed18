#!/usr/bin/env bash
# Eighth session (2026-11-26), the nvidia-h100-x4 call: the 36-study Qwen3-0.6B decode table on 1 GPU
# (SQLite), 4 GPUs and 2 GPUs (PostgreSQL) of one host, in that order, each a fresh database and Triton
# cache, with this session's start-up changes (compile pool of one batch, warmed by a first compile, and
# building the launchers; workers that end without teardown). The 2-GPU run is last: if the 10-minute
# limit cuts it, the other two rows are written.
#   OUT=dir bash benchmarks/run_session8_x4.sh
set -u
OUT=${OUT:-benchmarks/results/new}
OUT=$OUT RUNS=1:sqlite,4:postgres,2:postgres NAME=x4s8 LIMIT=${LIMIT:-575} bash benchmarks/run_distributed_x4.sh \
  | python3 -c "
import json, sys
for line in sys.stdin:
    try:
        r = json.loads(line)
    except ValueError:
        print(line.rstrip()[:300]); continue
    ph = r.get('worker_phases', [])
    print(r['gpus'], r['storage'], 'wall', r['wall_s'], 'configs', r['configs_measured'], 'twice', r['measured_twice'],
          'ready', [p.get('ready_s') for p in ph], 'first', [p.get('first_result_s') for p in ph],
          'done', [p.get('done_s') for p in ph], 'last result', r.get('last_result_s'))
    for s in r.get('study_times', [])[:5]:
        print('   ', s['op'], s['m'], s['first_trial_s'], s['winner_s'])
"
