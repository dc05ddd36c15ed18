"""Wall time of one model's tune on 1, 2, 4, ... GPUs of this host, on SQLite and on PostgreSQL.

Each run tunes into a fresh database with `kernel-search tune --gpus LIST` (one worker process per
GPU, so one GPU runs the same code path as many), then counts from the database the configs measured
and those measured twice within a study. Writes (and rewrites after every run)

    {"gpu": ..., "model": ..., "studies": N, "trials": T, "rows": [{"gpus", "storage", "pinned", "pool", "wall_s",
     "configs_measured", "measured_twice", "winners", "fused"}]}

    python3 benchmarks/distributed_bench.py --model qwen3-0.6b --buckets decode --trials 16 \\
        --runs 1:sqlite,2:sqlite,4:sqlite,4:postgres,4:sqlite:ctx --out benchmarks/results/distributed_H100_<date>.json

PostgreSQL runs start a throwaway server (tests/postgres.py) for the whole script.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    args = _args()
    import torch

    from storage import Store, queue
    from storage.models import Shape, Study, Winner

    rows, server = [], None
    out = {"gpu": torch.cuda.get_device_name(0), "date": dt.date.today().isoformat(), "model": args.model,
           "buckets": args.buckets, "ops": args.ops or "all", "trials": args.trials, "rows": rows}
    try:
        for spec in args.runs.split(","):
            gpus, storage, *flags = spec.split(":")
            pinned = "pin" in flags
            # ctx: the compile pool's processes compile on the GPU, each with a CUDA context, as before the
            # nineteenth session (KERNEL_SEARCH_POOL_CONTEXT=1); else they compile ahead of time.
            pool = "context" if "ctx" in flags else "ahead"
            # bN: N configs in flight per worker (tune --batch, which also sizes its compile pool); else the default.
            batch = next((int(f[1:]) for f in flags if re.fullmatch(r"b\d+", f)), None)
            if storage == "postgres" and server is None:
                from tests.postgres import start

                server = start()
            url = _fresh_url(storage, server, len(rows))
            t0, started = time.perf_counter(), dt.datetime.now(dt.timezone.utc)
            # --no-bench: the wall time is the table's tune; its end-to-end check runs on one GPU
            # whatever the count, and benchmarks of the tables come after (--export-dir).
            cmd = [sys.executable, "-m", "cli.app", "tune", "--model", args.model, "--buckets", args.buckets,
                   "--trials", str(args.trials), "--gpus", ",".join(str(i) for i in range(int(gpus))), "--db", url,
                   "--no-bench"] + (["--batch", str(batch)] if batch else [])
            cmd += [flag for op in args.ops.split(",") if op for flag in ("--op", op)]
            logs = Path(args.out).parent / f"worker_logs_{Path(args.out).stem}_{len(rows)}"
            cmd += ["--worker-logs", str(logs)]
            # A fresh Triton cache per run: a run must not load the kernels an earlier run compiled.
            # before: the tune runs in _ab/ at the repository's root, an earlier commit's tree (an A/B of a
            # change on one machine; `python -m` puts its working directory first on the path); the row
            # says which code ran.
            code = "before" if "before" in flags else "this"
            tree = ROOT / "_ab" if code == "before" else ROOT
            if not (tree / "cli" / "app.py").is_file():
                raise SystemExit(f"run flag 'before' needs an earlier commit's tree in {tree}")
            env = {**os.environ, "TRITON_CACHE_DIR": tempfile.mkdtemp(prefix="ks-triton-"),
                   "KERNEL_SEARCH_PIN_CPUS": "1" if pinned else "0",
                   "KERNEL_SEARCH_POOL_CONTEXT": "1" if pool == "context" else "0"}
            if "trace" in flags:  # every process's timeline (tuner.trace), packed with the worker logs
                env["KERNEL_SEARCH_TRACE"] = str(logs / "trace")
            # orm: Optuna's own ORM read of a study's trials for its cache, not storage.optuna_rows'
            # Core read (thirty-sixth session), to measure one against the other.
            reads = "orm" if "orm" in flags else "core"
            env["KERNEL_SEARCH_ORM_TRIALS"] = "1" if reads == "orm" else "0"
            done = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, env=env)
            wall = time.perf_counter() - t0
            with Store(url) as store:
                from sqlalchemy import func, select

                with store.session(write=False) as s:
                    ids = list(s.scalars(select(Study.id)))
                    winners = s.scalar(select(func.count()).select_from(Winner))
                    fused = s.scalar(select(func.count()).select_from(Winner).where(Winner.arm == "fused"))
                    # Each study's winner against the unfused arm, timed in the same confirmation: runs of
                    # one host compare their search's outcome by these (a ratio cancels the host's drift).
                    speedups = {f"{op}:{m}": round(speedup, 4) for op, m, speedup in s.execute(
                        select(Shape.op, Study.m, Winner.speedup).join(Study, Winner.study_id == Study.id)
                        .join(Shape, Study.shape_id == Shape.id))}
                rows_n, distinct = queue.configs_measured(store, ids)
                timeline = _timeline(store, ids, started)
            row = {"gpus": int(gpus), "storage": storage, "pinned": pinned, "pool": pool, "batch": batch or 8,
                   "code": code, "trials_read": reads, "wall_s": round(wall, 1),
                   "studies": len(ids),
                   "configs_measured": distinct, "measured_twice": rows_n - distinct, "winners": winners,
                   "fused": fused, "winner_speedups": speedups, "rc": done.returncode, **timeline,
                   "worker_phases": _phases(logs, started)}
            trials = _trials(url)
            row["statuses"] = {str(k): int(v) for k, v in trials[trials.arm == "fused"].status.value_counts().items()}
            row["refused"] = _refused(trials)
            row["slowest_compiles"] = _slowest_compiles(trials)
            row["slowest_studies"] = _slowest_studies(trials, row["study_times"], started)
            if args.export_dir:
                flags_text = ("_pinned" if pinned else "") + ("_ctx" if pool == "context" else "") \
                    + (f"_b{batch}" if batch else "") + ("_before" if code == "before" else "") \
                    + ("_orm" if reads == "orm" else "")
                row["table"] = _export(url, args, f"{gpus}gpu_{storage}{flags_text}")
            rows.append(row)
            out["studies"] = len(ids)
            Path(args.out).write_text(json.dumps(out, indent=1))
            print(json.dumps(row), flush=True)
            if done.returncode:
                print(done.stdout[-2000:], done.stderr[-3000:], sep="\n", flush=True)
            if args.keep_db and storage == "sqlite":
                print(f"database: {url}")
    finally:
        if server is not None:
            server.stop()
    return 0


def _timeline(store, ids: list[int], started: dt.datetime) -> dict:
    """Seconds from the run's start: when each worker claimed its first and last config, when each
    study stored its first and last trial and its winner (the last finished last), and when the last
    result was stored (what the rest of the wall time went to: start-up before, exit after)."""
    from storage import queue

    def since(t: dt.datetime) -> float:
        return round((t - started).total_seconds(), 1)

    last = queue.last_result(store, ids)
    return {"last_result_s": since(last) if last else None,
            "workers": [{"owner": a.owner, "claims": a.claims, "first_claim_s": since(a.first),
                         "last_claim_s": since(a.last)} for a in queue.activity(store, ids)],
            "study_times": [{"op": t.op, "m": t.m, "first_trial_s": since(t.first), "last_trial_s": since(t.last),
                         "winner_s": since(t.winner) if t.winner else None} for t in queue.study_times(store, ids)]}


# The worker log lines whose first occurrence marks a phase (cli/worker.py's say()).
PHASES = {"start": "worker starting", "ready": "worker on ", "first_study": "claimed ",
          "first_result": "first config measured", "done": "worker done"}


CHILD_TIMING = re.compile(r"first config measured .*: sent to the benchmarking child ([\d.]+) s after it started, "
                          r"answered in ([\d.]+) s")
# Since the fifteenth session: the steps of a worker's own start-up, when its benchmarking child was
# ready, and how long its compile processes took to warm.
START_UP = re.compile(r"\(start-up ([\d.]+) s: (.*)\)$")
CHILD_READY = re.compile(r"the child was ready ([\d.]+) s after its start")
POOL_WARM = re.compile(r"compile processes (\d+) of (\d+) ready(?: in ([\d.]+)-([\d.]+) s)?")


def _phases(logs: Path, started: dt.datetime) -> list[dict]:
    """Per worker log: seconds from the run's start to each phase's first line, and the log's last
    lines (an error shows there)."""
    out = []
    for log in sorted(logs.glob("worker-gpu*.log")):
        lines, row = log.read_text().splitlines(), {"log": log.name}
        for name, text in PHASES.items():
            for line in lines:
                stamp, _, rest = line.partition(" ")
                if rest.startswith(text):
                    try:
                        row[f"{name}_s"] = round((dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
                                                  - started).total_seconds(), 2)
                    except ValueError:
                        continue
                    break
        for line in lines:  # where the first result's wait went (cli/worker.py, since the fourteenth session)
            first = CHILD_TIMING.search(line)
            if first:
                row["child_sent_after_start_s"], row["child_first_answer_s"] = map(float, first.groups())
                _first_result_detail(line, row)
                break
        for line in lines:
            start_up = START_UP.search(line)
            if start_up:
                row["start_up_s"] = float(start_up.group(1))
                row["start_up_steps"] = {name: float(sec) for name, _, sec in
                                         (step.rpartition(" ") for step in start_up.group(2).split(", "))}
                break
        spent = study_spent(lines)
        if spent:
            row["study_spent_s"] = spent
        row["tail"] = lines[-2:]
        out.append(row)
    return out


# A study's line in a worker's log (cli/worker.py, since the nineteenth session) ends in its seconds by
# part: "(40 trials; s: open 0.21, ask 0.93, ...)".
STUDY_SPENT = re.compile(r"\(\d+ trials; s: ([^)]*)\)$")


def study_spent(lines: list[str]) -> dict:
    """The seconds a worker's studies spent by part (tuner.search.SPENT_PARTS), summed over its log's
    study lines, with their count as "studies"; empty for a log without them."""
    total: dict = {}
    for line in lines:
        found = STUDY_SPENT.search(line)
        if not found:
            continue
        total["studies"] = total.get("studies", 0) + 1
        for item in found.group(1).split(", "):
            part, _, seconds = item.rpartition(" ")
            total[part] = round(total.get(part, 0.0) + float(seconds), 2)
    return total


def _first_result_detail(line: str, row: dict) -> None:
    ready, pool = CHILD_READY.search(line), POOL_WARM.search(line)
    if ready:
        row["child_ready_s"] = float(ready.group(1))
    if pool:
        row["pool_ready"] = f"{pool.group(1)}/{pool.group(2)}"
        if pool.group(3):
            row["pool_warm_s"] = [float(pool.group(3)), float(pool.group(4))]


def _trials(store_url: str):
    """Every stored trial of the run (storage.queries.trials_frame), read once for the summaries below."""
    from storage import Store
    from storage.queries import trials_frame

    with Store(store_url, readonly=store_url.startswith("sqlite")) as store:
        return trials_frame(store)


def _refused(trials) -> list[dict]:
    """The fused configs the tune refused as incorrect (over the tolerance against the fp64 reference):
    op, M, the relative error and the config, so that a run names them, not only counts them."""
    import pandas as pd

    frame = trials[(trials.arm == "fused") & (trials.status == "incorrect")]
    return [{"op": r.op, "m": int(r.m), "rel_error": None if pd.isna(r.rel_error) else float(r.rel_error),
             "reason": "" if pd.isna(r.reason) else str(r.reason)[:200], "config": r.config_key}
            for r in frame.itertuples()]


def _slowest_compiles(trials, count: int = 5) -> list[dict]:
    """The configs whose compile (pool and first launch) took longest: a long study shows why here."""
    frame = trials[trials.arm == "fused"].dropna(subset=["compile_s"])
    top = frame.sort_values("compile_s", ascending=False).head(count)
    return [{"op": r.op, "m": int(r.m), "compile_s": round(float(r.compile_s), 1), "status": r.status,
             "config": r.config_key} for r in top.itertuples()]


def _slowest_studies(trials, studies: list[dict], started: dt.datetime, count: int = 3) -> list[dict]:
    """The studies that took longest from first trial to winner, each with its trials in the order
    they were stored: seconds from the run's start, compile seconds, status and time. Whether a slow
    study waited on compiles, on the GPU or on the database shows in the gaps."""
    from storage.models import as_utc

    slow = sorted((s for s in studies if s.get("winner_s") is not None),
                  key=lambda s: s["winner_s"] - s["first_trial_s"], reverse=True)[:count]
    out = []
    for study in slow:
        rows = trials[(trials.op == study["op"]) & (trials.m == study["m"])].sort_values("created_at")
        out.append({**study, "trials": [
            {"at_s": round((as_utc(r.created_at.to_pydatetime()) - started).total_seconds(), 2),
             "compile_s": None if r.compile_s != r.compile_s else round(float(r.compile_s), 2),
             "status": r.status, "median_us": None if r.median_us != r.median_us else round(float(r.median_us), 2),
             "arm": r.arm} for r in rows.itertuples()]})
    return out


def _export(url: str, args, name: str) -> str:
    """The run's dispatch table (per-op winners: no end-to-end check ran) into --export-dir."""
    path = Path(args.export_dir) / f"dispatch_{args.model}_{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "cli.app", "export", "--model", args.model, "--per-op", "--db", url,
                    "-o", str(path)], cwd=ROOT, check=True)
    return str(path)


def _fresh_url(storage: str, server, n: int) -> str:
    if storage == "sqlite":
        path = Path(tempfile.mkdtemp(prefix="ks-dist-")) / "tune.db"
        return f"sqlite:///{path}"
    if storage == "postgres":
        return server.create_database(f"dist_{n}_{os.getpid()}")
    raise SystemExit(f"unknown storage {storage!r}: sqlite or postgres")


def _args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="qwen3-0.6b")
    p.add_argument("--buckets", default="decode")
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--ops", default="", help="comma list of ops (default: all)")
    p.add_argument("--runs", default="1:sqlite,2:sqlite,4:sqlite,4:postgres",
                   help="comma list of GPUS:STORAGE[:pin][:ctx][:bN][:before][:orm], run in order; pin: each worker on "
                        "its own share of this host's cores (KERNEL_SEARCH_PIN_CPUS=1, tuner.launch.cpu_shares); ctx: "
                        "compile pool with CUDA contexts; bN: N configs in flight per worker (tune --batch); before: "
                        "the tuner package in _ab/tuner (an earlier commit's); orm: Optuna's ORM read of a study's "
                        "trials (KERNEL_SEARCH_ORM_TRIALS=1), not the Core read")
    p.add_argument("--out", required=True)
    p.add_argument("--keep-db", action="store_true")
    p.add_argument("--export-dir", default="", help="write each run's dispatch table here (for an end-to-end bench)")
    return p.parse_args()


if __name__ == "__main__":
    raise SystemExit(main())
