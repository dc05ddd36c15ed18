"""Print the timeline a traced run left (tuner.trace: KERNEL_SEARCH_TRACE, or distributed_bench.py's run
flag `trace`): each process's first events in seconds from the tune's start, then when each worker's
first fused config reached its benchmarking child.

    python3 benchmarks/trace_summary.py FOLDER [--events 12]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# A process's kind, from the first of these events it wrote.
KINDS = {"tune starting": "tune", "worker starting": "worker", "fork server imported": "fork server",
         "child ready": "child", "warm start": "compile", "compile start": "compile"}
# Events shown once (their first) per process; the rest are counted.
REPEATED = {"compile submitted", "compile taken", "sent to child", "child task", "compile start", "compile done"}


def load(folder: Path) -> dict[int, list[dict]]:
    procs: dict[int, list[dict]] = {}
    for path in sorted(folder.glob("trace-*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                procs.setdefault(row["pid"], []).append(row)
    return {pid: sorted(rows, key=lambda r: r["t"]) for pid, rows in procs.items()}


def kind(rows: list[dict]) -> str:
    return next((KINDS[r["event"]] for r in rows if r["event"] in KINDS), "other")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--events", type=int, default=12, help="events shown per process")
    args = parser.parse_args()
    procs = load(args.folder)
    if not procs:
        raise SystemExit(f"no trace-*.jsonl in {args.folder}")
    starts = [r["t"] for rows in procs.values() for r in rows if r["event"] == "tune starting"]
    t0 = min(starts) if starts else min(rows[0]["t"] for rows in procs.values())
    for pid, rows in sorted(procs.items(), key=lambda item: item[1][0]["t"]):
        shown, seen, counts = [], set(), {}
        for r in rows:
            name = r["event"]
            counts[name] = counts.get(name, 0) + 1
            if name in REPEATED and name in seen:
                continue
            seen.add(name)
            extra = ",".join(f"{k}={v}" for k, v in r.items() if k not in ("t", "pid", "event"))
            shown.append(f"{r['t'] - t0:6.2f} {name}" + (f" ({extra})" if extra else ""))
        many = ", ".join(f"{name} x{n}" for name, n in counts.items() if name in REPEATED and n > 1)
        print(f"{kind(rows):11s} pid {pid}: " + "; ".join(shown[:args.events]) + (f"; {many}" if many else ""))
    for pid, rows in procs.items():
        if kind(rows) != "worker":
            continue
        claimed = next((r["t"] for r in rows if r["event"] == "study claimed"), None)
        fused = next((r["t"] for r in rows if r["event"] == "sent to child" and r.get("arm") == "fused"), None)
        taken = next((r["t"] for r in rows if r["event"] == "compile taken"), None)
        if claimed is not None and fused is not None:
            print(f"worker {pid}: first study claimed at {claimed - t0:.2f} s, first compile taken at "
                  f"{(taken or fused) - t0:.2f} s, first fused config sent to the child at {fused - t0:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
