"""Where a tune's per-study CPU time goes when several workers share a host and a database, without a GPU.

Each process runs the study loop (tuner.search.tune_study) over its own op's decode studies with a fake
benchmarking child (a config's time drawn at random, answered at once) and compiles that are done at
once, so a study's seconds are all asking, storing and opening: the parts that grew from one worker to
four on an nvidia-h200-x4 host (benchmarks/results/session25_H200_2026-11-28/x4_a: ask 1.27 -> 2.05 s a
study, store 0.18 -> 0.44).
Cases (comma list, run in order):

    1:shared      one process                      4:shared    four processes, one database
    4:own         four processes, a database each  4:shared:burnN  the same with N processes spinning
    1:pg, 4:pg    the same on a PostgreSQL server started here (tests/postgres.py)

Prints one JSON line a process: the seconds by part (tuner.search.SPENT_PARTS) summed over its studies.

    python3 benchmarks/contention_probe.py --cases 1:shared,4:shared,4:own,4:shared:burn32,1:pg,4:pg
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.tuner.fakes import FP, FakeWorker  # noqa: E402 (after the path: the stand-ins the tests use)

# Qwen3-0.6B's four GEMM ops: (op, N, K).
OPS = [("rmsnorm_gate_up_silu", 6144, 1024), ("rmsnorm_qkv", 4096, 1024), ("o_proj_residual", 1024, 2048),
       ("down_residual", 1024, 3072)]


class FakeChild(FakeWorker):
    """The benchmarking child's answers, at once (tests/tuner/fakes.py), a fused config taking 4-9 us at
    random."""

    def __init__(self, seed: int):
        super().__init__()
        self.rng = random.Random(seed)

    def time_of(self, cfg):
        return 10.0 if cfg["impl"] == "unfused" else 4.0 + 5.0 * self.rng.random()


class InstantCompiles:
    """Stands in for tuner.compile.CompileStream: every compile is done at once, in the order submitted
    (the probe times the worker's own CPU work, not Triton's)."""

    def __init__(self, workers=None):
        self.jobs = []

    def __len__(self):
        return len(self.jobs)

    def submit(self, token, job):
        self.jobs.append(token)

    def ready(self):
        return bool(self.jobs)

    def next_done(self, give_up_after=None):
        return self.jobs.pop(0), 0.0, None


def _process(i: int, url: str, ms: list[int], trials: int, out) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from kernel_space.spec import Problem
    from storage import Store
    from tuner import search
    from tuner.search import TuneOptions, tune_study

    search.CompileStream = InstantCompiles

    op, n, k = OPS[i % len(OPS)]
    total: dict = {}
    with Store(url) as store:
        t0 = time.perf_counter()
        for m in ms:
            o = tune_study(store, FakeChild(i * 1000 + m), FP, f"probe{i}", Problem(op, m, n, k, "bfloat16"),
                           TuneOptions(trials=trials, batch=8))
            for part, s in o.spent.items():
                total[part] = round(total.get(part, 0.0) + s, 3)
        total["wall"] = round(time.perf_counter() - t0, 3)
    out.put((i, op, total))


def _spin() -> None:
    while True:
        pass


def run_case(case: str, ms: list[int], trials: int, server) -> list[dict]:
    procs_text, where, *flags = case.split(":")
    procs = int(procs_text)
    burn = next((int(f[4:]) for f in flags if f.startswith("burn")), 0)
    if where == "pg":
        name = f"probe_{case.replace(':', '_')}_{os.getpid()}"
        urls = [server.create_database(name)] * procs
    else:
        folder = tempfile.mkdtemp(prefix="ks-probe-")
        urls = [f"sqlite:///{folder}/{'shared' if where == 'shared' else i}.db" for i in range(procs)]
    burners = [mp.Process(target=_spin, daemon=True) for _ in range(burn)]
    for b in burners:
        b.start()
    queue = mp.Queue()
    workers = [mp.Process(target=_process, args=(i, urls[i], ms, trials, queue)) for i in range(procs)]
    for w in workers:
        w.start()
    results = [queue.get() for _ in workers]
    for w in workers:
        w.join()
    for b in burners:
        b.terminate()
    return [{"case": case, "process": i, "op": op, **total} for i, op, total in sorted(results)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default="1:shared,4:shared,4:own,4:shared:burn32,1:pg,4:pg")
    p.add_argument("--ms", default="1,2,4,8,16,32,64,128,256", help="the M buckets each process tunes")
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--out", default="", help="also write the rows here (JSON lines)")
    args = p.parse_args()
    ms = [int(m) for m in args.ms.split(",")]
    server = None
    if any(c.split(":")[1] == "pg" for c in args.cases.split(",")):
        from tests.postgres import start

        server = start()
    rows = []
    try:
        for case in args.cases.split(","):
            for row in run_case(case, ms, args.trials, server):
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        if server is not None:
            server.stop()
    if args.out:
        Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
