#!/usr/bin/env bash
# Twenty-second session (2026-11-28), one H200: does the tuner, with SPLIT_K 3, 6 and 12 now in the space,
# find the one-block down_residual configs at 0.6B M = 1? 60 configs, a fresh SQLite database (kept);
# the fastest ten fused trials printed with their K split.
#   OUT=dir bash benchmarks/run_session22_down_tune.sh
. benchmarks/_session.sh
timeout 300 python3 -m cli.app tune --model qwen3-0.6b --op down_residual --buckets 1 --trials 60 --no-bench \
  --db "sqlite:///$OUT/down_tune.db" 2>&1 | tail -4
python3 - "$OUT/down_tune.db" <<'PY'
import json, sqlite3, sys
rows = sqlite3.connect(sys.argv[1]).execute(
    "select arm, config, median_us from ks_trials where status = 'ok' order by median_us").fetchall()
for arm, config, us in rows[:10] + [r for r in rows if r[0] != "fused"]:
    c = json.loads(config)
    print(f"{arm:8s} {us:7.2f} us", {k: c.get(k) for k in ("path", "BLOCK_N", "BLOCK_K", "SPLIT_K", "split_reduce", "num_warps")})
PY
