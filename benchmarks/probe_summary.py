"""Summarize a probe_site log (benchmarks/probe_site/sitecustomize.py) beside its distributed_bench row:
per process, the C modules Triton built and the kernels it loaded (count, seconds, when), and the run's
first studies.   python3 benchmarks/probe_summary.py PROBE.jsonl DIST.json"""

from __future__ import annotations

import json
import sys
from collections import defaultdict


def main(log: str, dist: str) -> None:
    events = [json.loads(line) for line in open(log)] if log else []
    row = json.load(open(dist))["rows"][-1]
    t0 = min((e["t"] for e in events), default=0.0)
    by_pid = defaultdict(list)
    for e in events:
        by_pid[e["pid"]].append(e)
    phases = row.get("worker_phases") or [{}]
    print(f"wall {row['wall_s']} s, configs {row['configs_measured']}, worker ready {phases[0].get('ready_s')} s, "
          f"first result {phases[0].get('first_result_s')} s, last result {row.get('last_result_s')} s")
    for s in row.get("study_times", [])[:4]:
        print(f"  {s['op']:22s} M={s['m']:<4} first trial {s['first_trial_s']:6.1f} s  winner {s['winner_s']:6.1f} s")
    print(f"{'pid':>8} {'builds':>6} {'build s':>8} {'loads':>6} {'load s':>7} {'first':>6} {'last':>6}")
    for pid, evs in sorted(by_pid.items(), key=lambda kv: -sum(e["s"] for e in kv[1])):
        builds = [e for e in evs if e["what"] == "build"]
        loads = [e for e in evs if e["what"] == "load"]
        first, last = min(e["t"] for e in evs) - t0, max(e["t"] for e in evs) - t0
        print(f"{pid:>8} {len(builds):>6} {sum(e['s'] for e in builds):>8.2f} {len(loads):>6} "
              f"{sum(e['s'] for e in loads):>7.2f} {first:>6.1f} {last:>6.1f}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
