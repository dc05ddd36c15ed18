"""Where a benchmarking child's seconds go, from a traced tune (tuner.trace: KERNEL_SEARCH_TRACE): for
each child, its trial tasks' check (correctness run, the config's first launch included), timing, and
the rest of each task until the next one starts (sending the answer, waiting for the next config), with
each study's tasks summed, so that a slow child shows which part grew.

    python3 benchmarks/child_timeline.py TRACE_FOLDER
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from trace_summary import load


def child_tasks(rows: list[dict]) -> list[dict]:
    """A child's tasks in order: kind, start, seconds to its check and to its timing, and until the next."""
    tasks: list[dict] = []
    for row in rows:
        if row["event"] == "child task":
            tasks.append({"kind": row.get("kind"), "arm": row.get("arm"), "t": row["t"]})
        elif tasks and row["event"] == "child checked":
            tasks[-1]["check_s"] = row["t"] - tasks[-1]["t"]
        elif tasks and row["event"] == "child timed":
            tasks[-1]["timed_s"] = row["t"] - tasks[-1]["t"]
    for task, following in zip(tasks, tasks[1:], strict=False):
        task["until_next_s"] = following["t"] - task["t"]
    return tasks


def _median_ms(tasks: list[dict], key: str) -> float | None:
    values = [t[key] for t in tasks if key in t]
    return round(statistics.median(values) * 1e3, 1) if values else None


def _total_s(tasks: list[dict], key: str) -> float:
    return round(sum(t.get(key, 0.0) for t in tasks), 2)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path)
    args = p.parse_args()
    procs = load(args.folder)
    # What the other processes (the compile pool) compiled, to set beside what a child compiled again.
    compiles = [r for rows in procs.values() if not any(r["event"] == "child ready" for r in rows)
                for r in rows if r["event"] == "triton compile" and not r.get("hit")]
    for pid, rows in procs.items():
        if not any(r["event"] == "child ready" for r in rows):
            continue
        tasks = [t for t in child_tasks(rows) if t["kind"] == "trial"]
        if not tasks:
            continue

        timing = [t["timed_s"] - t["check_s"] for t in tasks if "timed_s" in t and "check_s" in t]
        print(f"child {pid}: {len(tasks)} trials; ms median: check {_median_ms(tasks, 'check_s')}, "
              f"check + timing {_median_ms(tasks, 'timed_s')}, task to task {_median_ms(tasks, 'until_next_s')}; "
              f"s in all: check {_total_s(tasks, 'check_s')}, timing {round(sum(timing), 2)}, "
              f"task to task {_total_s(tasks, 'until_next_s')}")
        misses = [r for r in rows if r["event"] == "triton compile" and not r.get("hit")]
        hits = sum(1 for r in rows if r["event"] == "triton compile" and r.get("hit"))
        print(f"   Triton in the child: {hits} loaded from the cache, {len(misses)} compiled")
        for miss in misses[:4]:
            print("   compiled:", miss["kernel"], "attrs", miss.get("attrs"), "signature", miss.get("signature"),
                  "constants", miss.get("constants"))
            pool = [r for r in compiles
                    if r["kernel"] == miss["kernel"] and r.get("constants") == miss.get("constants")]
            for other in pool[:2]:
                print("      the pool's:", "attrs", other.get("attrs"), "signature", other.get("signature"))
        slow = sorted(tasks, key=lambda t: t.get("timed_s", t.get("check_s", 0.0)), reverse=True)[:5]
        print("   slowest:", [(t.get("arm"), round(t.get("check_s", 0) * 1e3), round(t.get("timed_s", 0) * 1e3))
                              for t in slow])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
