"""Summarize distributed_bench.py's output for a device call's short output tail: each JSON row (one
run) as two lines (wall time, configs, winners; each worker's start-up phases), other lines passed
through, cut to 300 characters.

    python3 benchmarks/distributed_bench.py ... | python3 benchmarks/distributed_rows.py [--studies N]
"""

from __future__ import annotations

import argparse
import json
import math
import sys


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--studies", type=int, default=0, help="also the first N studies' first trial and winner times")
    args = p.parse_args()
    for line in sys.stdin:
        try:
            r = json.loads(line)
        except ValueError:
            print(line.rstrip()[:300])
            continue
        ph = r.get("worker_phases", [])
        print(r["gpus"], r["storage"], "pinned" if r.get("pinned") else "", r.get("pool", ""),
              "batch", r.get("batch", 8), r.get("code", ""), "reads", r.get("trials_read", "orm"), "wall", r["wall_s"],
              "configs",
              r["configs_measured"], "twice",
              r["measured_twice"], "winners", r.get("winners"), "fused", r.get("fused"), "rc", r.get("rc"))
        print("   ready", [p.get("ready_s") for p in ph], "first", [p.get("first_result_s") for p in ph],
              "done", [p.get("done_s") for p in ph], "last result", r.get("last_result_s"),
              "child (sent after its start, answered in)",
              [(p.get("child_sent_after_start_s"), p.get("child_first_answer_s")) for p in ph])
        print("   start-up", [p.get("start_up_s") for p in ph], "child ready", [p.get("child_ready_s") for p in ph],
              "compile processes warm", [p.get("pool_warm_s") for p in ph], "statuses", r.get("statuses"))
        spent = [p["study_spent_s"] for p in ph if p.get("study_spent_s")]
        if spent:  # each worker's study seconds by part, summed over its studies
            print("   study seconds by part", spent)
        speedups = [v for v in r.get("winner_speedups", {}).values() if v and v > 0]
        if speedups:  # the search's outcome: the winners' speedups over the unfused arm, geometric mean
            mean = math.prod(speedups) ** (1 / len(speedups))
            print("   winners' speedup over unfused, geometric mean", round(mean, 4), "of", len(speedups))
        if ph and ph[0].get("start_up_steps"):
            print("   worker 0's start-up steps", ph[0]["start_up_steps"])
        for s in r.get("study_times", [])[:args.studies]:
            print("   ", s["op"], s["m"], s["first_trial_s"], s["winner_s"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
