"""Host time a tune spends per config outside the GPU: the sampler, the database and the study loop.

    python3 benchmarks/host_overhead.py [--db URL] [--model qwen3-0.6b] [--buckets 1,2,4,8,16,32]
                                        [--trials 16] [--profile OUT.prof]

A whole decode tune of the model's five GEMM sites (30 studies at the default buckets) runs through
tuner.distributed.plan and work, one worker, with a benchmarking child that answers at once (a
config's "time" a function of its tile) and, without CUDA, no compiles: what is left is what every
trial costs the host between GPU measurements, where the GPU waits. Prints the wall time, the
milliseconds per config measured, and with --statements the SQL statements per config (Optuna's and
ours; counting them slows the run, so its milliseconds are not the ones to quote); --profile writes
cProfile's stats (sort them with pstats). Default database: a fresh SQLite file in a temporary
folder. No GPU needed.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import event
from sqlalchemy.engine import Engine

from kernel_space.spec import config_key
from qwen3.config import resolve_model
from storage import Store, queue
from tuner.distributed import plan, work
from tuner.search import TuneOptions
from tuner.trial import TrialResult

OPS = ["rmsnorm_qkv", "o_proj_residual", "rmsnorm_gate_up_silu", "down_residual", "lm_head"]
FP = {"device_name": "host-overhead fake GPU", "capability": [9, 0], "sm_count": 132, "total_memory": 1,
      "driver": "", "cuda": "", "torch": "", "triton": "", "kernel_hashes": {}}


class InstantWorker:
    """The benchmarking child's answers, at once: unfused 10 us, a fused config 4-9 us by its tile."""

    def __init__(self):
        self.trials = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def start(self):
        pass

    @staticmethod
    def time_of(cfg: dict) -> float:
        if cfg["impl"] == "unfused":
            return 10.0
        return 4.0 + cfg.get("BLOCK_N", 64) / 64 + cfg.get("SPLIT_K", 1) / 8 + (hash(config_key(cfg)) % 97) / 970

    def submit(self, task: dict) -> None:  # as tuner.worker.Worker: the answer waits for collect()
        self.sent = self.request(task)

    def collect(self) -> dict:
        reply, self.sent = self.sent, None
        return reply

    def request(self, task: dict) -> dict:
        if task["kind"] == "trial":
            self.trials += 1
            return {"ok": True, "result": TrialResult(task["arm"], task["config"], "ok", rel_error=0.0,
                                                      median_us=self.time_of(task["config"]))}
        pairs = [{"config": c, "speedup": 10.0 / self.time_of(c), "fused_us": self.time_of(c)}
                 for c in task["configs"]]
        return {"ok": True, "result": {"pairs": pairs, "unfused_us": 10.0, "cublas_us": 8.0, "floor_us": 2.0}}


class StatementCount:
    """SQL statements every SQLAlchemy engine of this process runs, split into Optuna's and the rest."""

    def __init__(self):
        self.optuna = self.ours = 0

    def __enter__(self):
        event.listen(Engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc):
        event.remove(Engine, "before_cursor_execute", self._count)
        return False

    def _count(self, conn, cursor, statement, parameters, context, executemany):
        frame, optuna = sys._getframe(1), False
        while frame is not None and not optuna:
            optuna = "/optuna/" in frame.f_code.co_filename
            frame = frame.f_back
        if optuna:
            self.optuna += 1
        else:
            self.ours += 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    p.add_argument("--model", default="qwen3-0.6b")
    p.add_argument("--buckets", default="1,2,4,8,16,32")
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--profile", type=Path, help="write cProfile stats here")
    p.add_argument("--statements", action="store_true", help="also count SQL statements (slower)")
    args = p.parse_args(argv)
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # no compiles: the host's own work only
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{tmp}/host_overhead.db"
        with Store(url) as store:
            ids = plan(store, [FP], resolve_model(args.model), OPS, [int(b) for b in args.buckets.split(",")],
                       "bfloat16", args.trials)
            profiler = cProfile.Profile() if args.profile else None
            statements = StatementCount()
            with statements if args.statements else contextlib.nullcontext():
                start = time.perf_counter()
                if profiler:
                    profiler.enable()
                report = work(store, FP, TuneOptions(trials=args.trials, batch=args.batch),
                              make_worker=InstantWorker, only=ids)
                if profiler:
                    profiler.disable()
                    profiler.dump_stats(str(args.profile))
                wall = time.perf_counter() - start
            rows, distinct = queue.configs_measured(store, ids)
    per = max(rows, 1)
    counted = (f", {(statements.optuna + statements.ours) / per:.0f} SQL statements (Optuna's "
               f"{statements.optuna / per:.0f}, ours {statements.ours / per:.0f})") if args.statements else ""
    print(f"{len(report.outcomes)} studies, {rows} configs measured ({rows - distinct} twice) in {wall:.1f} s: "
          f"{1000 * wall / per:.1f} ms of host time a config{counted} ({url.split(':')[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
