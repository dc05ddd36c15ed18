#!/usr/bin/env bash
# Start-up of `tune --gpus 0` on a small tune (2 studies, 8 configs): the tree in $1 against this one,
# alternating, $2 rounds; each run a fresh database and Triton cache. Prints wall seconds and the
# worker's phases (seconds from the command's start) per run.
#   bash benchmarks/startup_ab.sh OLD_TREE_DIR 3
set -u
OLD=$1; ROUNDS=${2:-3}
for round in $(seq "$ROUNDS"); do
  for tree in "$OLD" .; do
    tmp=$(mktemp -d)
    t0=$(date +%s.%N)
    (cd "$tree" && TRITON_CACHE_DIR=$tmp/triton python3 -m cli.app tune --model qwen3-0.6b --op o_proj_residual \
      --buckets 1,2 --trials 8 --gpus 0 --no-bench --db "sqlite:///$tmp/t.db" --worker-logs "$tmp/logs" >/dev/null 2>&1)
    t1=$(date +%s.%N)
    python3 - "$t0" "$t1" "$tmp/logs" "$tree" <<'PY'
import datetime as dt, pathlib, sys
t0, t1, logs, tree = float(sys.argv[1]), float(sys.argv[2]), pathlib.Path(sys.argv[3]), sys.argv[4]
out = {"tree": tree, "wall_s": round(t1 - t0, 2)}
for log in sorted(logs.glob("*.log")):
    for line in log.read_text().splitlines():
        stamp, _, text = line.partition(" ")
        try:
            at = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() - t0
        except ValueError:
            continue
        for key, start in (("spawned", "1 workers started"), ("worker_start", "worker starting"),
                           ("ready", "worker on "), ("first_result", "first config measured"),
                           ("done", "worker done")):
            if text.startswith(start) and key not in out:
                out[key] = round(at, 2)
print(out, flush=True)
PY
    rm -rf "$tmp"
  done
done
