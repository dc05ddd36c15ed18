"""Many workers on one database: studies claimed from the queue with a lease, shared when they are
fewer than the workers, taken over from a dead worker, and no config measured twice in a study."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import select

from qwen3.config import resolve_model
from storage import Store, queue
from storage.models import QueueEntry, Shape, Study
from storage.store import fingerprint_key
from tests.conftest import BACKENDS, child_env
from tests.tuner.fakes import FP, FakeWorker
from tuner import distributed
from tuner.distributed import plan, work
from tuner.search import TuneOptions

TINY = resolve_model("qwen3-tiny")
OPS = ["o_proj_residual", "down_residual"]


class QuietFake(FakeWorker):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture(params=BACKENDS)
def db_backend(request) -> str:
    """Every test here runs on a SQLite file and on a PostgreSQL database (claims use FOR UPDATE SKIP
    LOCKED there, IMMEDIATE transactions on SQLite)."""
    return request.param


@pytest.fixture
def db(new_db_url) -> str:
    return new_db_url("shared")


def _no_config_twice(store, ids):
    rows, distinct = queue.configs_measured(store, ids)
    assert rows == distinct, f"{rows - distinct} configs measured twice"


def test_two_workers_drain_the_queue_each_study_once(db):
    with Store(db) as store:
        ids = plan(store, [FP], TINY, OPS, [1, 2, 4], "float16", trials=6)
    reports = {}

    def run(name):
        with Store(db) as store:
            reports[name] = work(store, FP, TuneOptions(batch=3), owner=name, make_worker=QuietFake)

    threads = [threading.Thread(target=run, args=(name,)) for name in ("host-a:1", "host-b:2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    with Store(db) as store:
        assert queue.pending(store, only=ids) == {"queued": 0, "held": 0, "done": 6}
        assert all(store.winner(i) is not None for i in ids)
        _no_config_twice(store, ids)
    finished = [o for r in reports.values() for o in r.outcomes]
    assert sorted((o.op, o.m) for o in finished) == sorted((op, m) for op in OPS for m in (1, 2, 4))


def test_fewer_studies_than_workers_share_one_through_optuna(db):
    with Store(db) as store:
        ids = plan(store, [FP], TINY, OPS[:1], [8], "float16", trials=16)
    reports = {}

    def run(name):
        with Store(db) as store:
            reports[name] = work(store, FP, TuneOptions(batch=2), owner=name, make_worker=QuietFake)

    threads = [threading.Thread(target=run, args=(name,)) for name in ("host-a:1", "host-b:2", "host-c:3")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    with Store(db) as store:
        _no_config_twice(store, ids)
        rows, distinct = queue.configs_measured(store, ids)
        assert distinct <= 16 + 2 * 3  # the budget, overshot by at most one batch per worker
        assert store.winner(ids[0]) is not None
    assert sum(len(r.outcomes) for r in reports.values()) == 1  # one holder confirmed it
    assert sum(r.helped for r in reports.values()) >= 1  # and another helped measure


def test_a_dead_workers_study_is_taken_over_when_its_lease_runs_out(db):
    with Store(db) as store:
        ids = plan(store, [FP], TINY, OPS[:1], [1, 2], "float16", trials=4)
        lost = queue.claim(store, fingerprint_key(FP), "gone-host:99", lease_s=0.5, share=False)
        assert lost is not None and not lost.shared
        time.sleep(1.0)  # the other host never renews: its lease runs out
        report = work(store, FP, TuneOptions(batch=2), owner="host-a:1", make_worker=QuietFake, lease_s=30)
        assert {(o.op, o.m) for o in report.outcomes} == {("o_proj_residual", 1), ("o_proj_residual", 2)}
        assert queue.pending(store, only=ids)["done"] == 2


def test_a_live_lease_is_not_taken(db):
    with Store(db) as store:
        plan(store, [FP], TINY, OPS[:1], [1], "float16", trials=4)
        key = fingerprint_key(FP)
        assert queue.claim(store, key, "other-host:5", lease_s=60, share=False) is not None
        assert queue.claim(store, key, "host-a:1", lease_s=60, share=False) is None
        shared = queue.claim(store, key, "host-a:1", lease_s=60, share=True)
        assert shared is not None and shared.shared


def _cli(*args):
    return [sys.executable, "-m", "cli.app", *args]


@pytest.mark.timeout(900)
def test_killed_worker_process_loses_nothing_and_its_studies_finish_on_the_other(db):
    """Two real `kernel-search worker` processes (Triton's interpreter on the CPU); one is SIGKILLed
    mid-study. The survivor takes its study over (same host: the dead pid frees it at once), every
    study ends with a winner, and no config is measured twice."""
    url = db
    from kernel_space.fingerprint import interpreter_fingerprint

    # The workers run the interpreter with any GPU hidden (child_env), so they tune as the CPU: their
    # studies are the interpreter's, whatever this process sees.
    with Store(url) as store:
        ids = plan(store, [interpreter_fingerprint()], TINY, OPS, [1, 3], "float16", trials=5)
    env = child_env(TRITON_INTERPRET="1", KERNEL_SEARCH_POLL_S="0.5")
    procs = [subprocess.Popen(_cli("worker", "--db", url, "--batch", "2"), env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    victim = procs[0]
    deadline = time.monotonic() + 300
    with Store(url) as store:
        while time.monotonic() < deadline:  # kill it once it holds a study and has stored a trial
            held = store.session(write=False)
            with held as s:
                mine = s.scalars(select(QueueEntry).where(QueueEntry.owner.like(f"%:{victim.pid}"))).first()
            if mine is not None and queue.configs_measured(store, [mine.study_id])[0] > 0:
                break
            time.sleep(0.2)
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
        out, err = procs[1].communicate(timeout=600)
        assert procs[1].returncode == 0, err
        assert "Traceback" not in err
        assert queue.pending(store, only=ids) == {"queued": 0, "held": 0, "done": len(ids)}
        assert all(store.winner(i) is not None for i in ids)
        _no_config_twice(store, ids)


@pytest.mark.timeout(600)
def test_a_worker_given_the_plan_queues_its_studies_and_the_tune_reopens_none(tmp_path):
    """`tune --gpus` hands each worker it starts the plan (`worker --plan`): a worker that is ready first
    makes the database, queues its GPU kind's studies and works them, without waiting for the tune. The
    tune's own plan after it, under the same run id, re-opens none of the studies it finished. A plan
    with a bad option ends the worker with tune's one-line error, before it makes a database. (On SQLite:
    the queue's rule for a run's id is tested on both stores in tests/storage/test_store.py.)"""
    from cli.tune import PlanSpec
    from kernel_space.fingerprint import interpreter_fingerprint

    db = f"sqlite:///{tmp_path / 'ks.db'}"

    spec = PlanSpec("run-1", "qwen3-tiny", ["o_proj_residual"], "1,3", None, "bfloat16", 2)
    env = child_env(TRITON_INTERPRET="1")
    worker = subprocess.run(_cli("worker", "--db", db, "--batch", "2", "--plan", spec.to_json(), "--exit-at-once"),
                            env=env, capture_output=True, text=True, timeout=600)
    assert worker.returncode == 0, worker.stderr
    assert "worker done: 2 studies finished" in worker.stderr, worker.stderr
    with Store(db) as store:  # the interpreter's studies, in float16 (as tune plans them on the CPU)
        ids = plan(store, [interpreter_fingerprint()], TINY, ["o_proj_residual"], [1, 3], "float16", trials=2,
                   plan_id="run-1")
        assert queue.pending(store, only=ids) == {"queued": 0, "held": 0, "done": 2}
        assert all(store.winner(i) is not None for i in ids)
    bad = PlanSpec("run-2", "qwen3-tiny", ["o_proj_residual"], "1", None, "int3", 2)
    none = tmp_path / "none.db"
    worker = subprocess.run(_cli("worker", "--db", f"sqlite:///{none}", "--plan", bad.to_json()), env=env,
                            capture_output=True, text=True, timeout=600)
    assert worker.returncode != 0 and "unknown dtype 'int3'" in worker.stderr, worker.stderr
    assert "Traceback" not in worker.stderr and not none.exists()


class AttentionFake(QuietFake):
    """The fake child for decode attention: SDPA takes 10 us, a fused config 4-9 us by BLOCK_N and SPLITS."""

    @staticmethod
    def time_of(cfg):
        return 10.0 if cfg["impl"] == "unfused" else 4.0 + cfg["BLOCK_N"] / 64 + cfg["SPLITS"] / 8

    def request(self, task):
        reply = super().request(task)
        if task["kind"] == "confirm":
            reply["result"]["cublas_us"] = None  # as tuner.worker answers for an op without a cuBLAS arm
        return reply


BIG_FP = {**FP, "total_memory": 80 * 10**9}


def test_plan_queues_attention_per_batch_and_context_and_a_worker_tunes_them(db):
    """Decode attention's studies sit in the queue beside the linear ones, M (its batch) first, one per
    context, none at a prefill bucket; a worker drains them to winners with their keys intact."""
    ops = ["o_proj_residual", "decode_attention"]
    with Store(db) as store:
        ids = plan(store, [BIG_FP], TINY, ops, [1, 2, 512], "float16", trials=5, contexts=(32, 64))
        with store.session(write=False) as s:
            rows = s.execute(select(QueueEntry.priority, Study.m, Shape.op, Shape.n, Shape.k)
                             .join(Study, QueueEntry.study_id == Study.id).join(Shape, Study.shape_id == Shape.id)
                             .order_by(QueueEntry.priority)).all()
    assert [(op, m) for _, m, op, _, _ in rows] == [
        ("o_proj_residual", 1), ("decode_attention", 32001), ("decode_attention", 64001),
        ("o_proj_residual", 2), ("decode_attention", 32002), ("decode_attention", 64002),
        ("o_proj_residual", 512)]
    assert {(n, k) for _, _, op, n, k in rows if op == "decode_attention"} == {(4002, 16)}
    attention = [i for i, row in zip(ids, rows, strict=True) if row[2] == "decode_attention"]
    with Store(db) as store:
        report = work(store, BIG_FP, TuneOptions(batch=3), only=attention, make_worker=AttentionFake)
        assert queue.pending(store, only=attention) == {"queued": 0, "held": 0, "done": 4}
        winners = [store.winner(i) for i in attention]
    assert sorted(o.m for o in report.outcomes) == [32001, 32002, 64001, 64002]
    assert all(w is not None and w.arm == "fused" and w.cublas_us is None for w in winners)
    keys = {"impl", "SPLITS", "BLOCK_N", "pack", "combine", "num_warps", "num_stages", "prep", "kv"}
    assert all(set(w.config) == keys for w in winners)


def test_plan_leaves_out_kv_caches_past_half_the_memory(db):
    """qwen3-0.6b on a card of 16 GB: 8 GB of KV cache is 73,142 tokens, so 16 x 4096 is tuned, 32 x 4096 not."""
    small = {**FP, "total_memory": 16 * 10**9}
    with Store(db) as store:
        ids = plan(store, [small], resolve_model("qwen3-0.6b"), ["decode_attention"], [1, 16, 32], "bfloat16",
                   trials=4, contexts=(4096, 32768))
        with store.session(write=False) as s:
            ms = sorted(s.scalars(select(Study.m).where(Study.id.in_(ids))))
    assert ms == [4096001, 4096016, 32768001]


def test_a_worker_starts_its_benchmarking_child_before_the_first_trial(db):
    """work() starts the child (torch import, CUDA context) at once, in the background, instead of on
    the first request: the first study's setup overlaps it."""
    made = []

    def make():
        made.append(QuietFake())
        return made[-1]

    with Store(db) as store:
        ids = plan(store, [FP], TINY, ["o_proj_residual"], [1], "float16", trials=4)
        work(store, FP, TuneOptions(batch=2), only=ids, make_worker=make)
    assert made and made[0].trials, "the worker measured nothing"
    assert made[0].started_before_requests is True


def test_the_queue_tells_each_workers_claims_and_when_the_last_result_landed(db):
    """The distributed bench's timeline: per worker its config claims (all of them, no config twice),
    first and last in order, and the last stored result after every claim. (Threads of one process
    claim under one owner, its host:pid; worker processes each under their own.)"""
    with Store(db) as store:
        ids = plan(store, [FP], TINY, OPS, [1, 2], "float16", trials=5)
    threads = [threading.Thread(target=lambda name=name: _work_as(db, name)) for name in ("host-a:1", "host-b:2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    with Store(db) as store:
        rows = queue.activity(store, ids)
        _, distinct = queue.configs_measured(store, ids)
        last = queue.last_result(store, ids)
    assert rows and all(a.owner for a in rows)
    assert sum(a.claims for a in rows) == distinct
    assert all(a.first <= a.last <= last for a in rows)
    assert [a.first for a in rows] == sorted(a.first for a in rows)
    assert queue.activity(Store(db), []) == [] and queue.last_result(Store(db), []) is None
    with Store(db) as store:
        times = queue.study_times(store, ids)
    assert sorted((t.op, t.m) for t in times) == sorted((op, m) for op in OPS for m in (1, 2))
    assert all(t.first <= t.last and t.winner is not None and t.winner <= last for t in times)
    assert max(times[-1].last, times[-1].winner) == last  # ordered by their last result


def _work_as(db, name):
    with Store(db) as store:
        work(store, FP, TuneOptions(batch=2), owner=name, make_worker=QuietFake)


def test_a_worker_started_before_the_plan_waits_for_it(db, monkeypatch):
    """`tune --gpus` starts its workers before it queues the studies: a worker that finds the queue
    empty waits (wait_s) and then works it; without wait_s it ends at once, as before."""
    monkeypatch.setattr(distributed, "POLL_S", 0.05)
    with Store(db) as store:
        assert work(store, FP, TuneOptions(batch=2), make_worker=QuietFake).outcomes == []
    reports = []

    def worker():
        with Store(db) as store:
            reports.append(work(store, FP, TuneOptions(batch=2), make_worker=QuietFake, wait_s=60))

    thread = threading.Thread(target=worker)
    thread.start()
    time.sleep(0.5)
    with Store(db) as store:
        ids = plan(store, [FP], TINY, ["o_proj_residual"], [1, 2], "float16", trials=4)
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert sorted(o.m for o in reports[0].outcomes) == [1, 2]
    with Store(db) as store:
        assert queue.pending(store, only=ids)["done"] == 2


def test_a_worker_claims_a_study_whose_warm_start_is_known_before_one_whose_is_not(db):
    """Priority is M first, then op; but while o_proj_residual M=1 still runs on one worker, a second
    worker done with down_residual M=1 takes down_residual M=2 (its warm start, M=1's winner, is
    known) rather than o_proj_residual M=2. When only unready studies are left it takes one of them."""
    with Store(db) as store:
        ids = plan(store, [FP], TINY, OPS, [1, 2], "float16", trials=4)
        key = fingerprint_key(FP)
        first = queue.claim(store, key, "host-a:1", 300)
        second = queue.claim(store, key, "host-b:2", 300)
        assert (first.op, first.m, second.op, second.m) == ("o_proj_residual", 1, "down_residual", 1)
        queue.finish(store, second.queue_id, "host-b:2")
        third = queue.claim(store, key, "host-b:2", 300, share=False)
        assert (third.op, third.m) == ("down_residual", 2)
        fourth = queue.claim(store, key, "host-c:3", 300, share=False)
        assert (fourth.op, fourth.m) == ("o_proj_residual", 2)  # not ready, but the only one left
        assert set(ids) == {first.study_id, second.study_id, third.study_id, fourth.study_id}


def test_a_ctrl_c_is_what_a_worker_raises_even_when_releasing_its_study_fails(tmp_path, monkeypatch):
    # A Ctrl-C inside a SQLite write can leave this process's write lock held: the release on the way
    # out then fails with "database is locked" after the busy timeout. The interrupt must still be
    # what propagates (the CLI turns it into its one resume line and exit 130), not that error.
    from sqlalchemy.exc import OperationalError

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    def locked(*args, **kwargs):
        raise OperationalError("UPDATE ks_queue", {}, Exception("database is locked"))

    monkeypatch.setattr(distributed, "tune_study", interrupted)
    monkeypatch.setattr(queue, "release", locked)
    claim = queue.Claim(queue_id=1, study_id=1, model="m", trials=4, op="o_proj_residual", n=1024, k=2048,
                        dtype="bfloat16", m=16, shared=False)
    with Store(f"sqlite:///{tmp_path / 'ks.db'}") as store, pytest.raises(KeyboardInterrupt):
        distributed._run_claim(store, FakeWorker(), FP, fingerprint_key(FP), claim, TuneOptions(trials=4),
                               distributed.Callbacks(), "me", 60.0)
