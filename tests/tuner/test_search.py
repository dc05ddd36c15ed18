"""The study loop's ask accounting: a resumed study counts the asks it already made, so one that
ended at the ask cap (TPE proposing only configs it had measured) is not re-opened by every resume."""

import contextlib
import os
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from kernel_space.spec import Problem, config_key
from storage import Store
from tests.conftest import requires_interpreter
from tests.tuner.fakes import FP, FakeWorker
from tuner import search
from tuner.search import OWNER, TuneOptions, asks_made, choose_winner, top_configs, tune_study


def test_asks_made_counts_asked_trials_not_waiting_ones():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    study.enqueue_trial({"x": 1.0})
    study.enqueue_trial({"x": 2.0})
    assert asks_made(study) == 0  # enqueued, never asked
    for _ in range(3):
        trial = study.ask()
        study.tell(trial, trial.suggest_float("x", 0, 5))
    running = study.ask()  # asked and not yet told (an interrupted run leaves these)
    running.suggest_float("x", 0, 5)
    assert asks_made(study) == 4
    # The same study loaded again (a resumed run) sees the same count.
    assert asks_made(optuna.load_study(study_name=study.study_name, storage=study._storage)) == 4


# ---- the study loop with a fake worker: no kernels, no child process, fast -------------------------


PROBLEM = Problem("o_proj_residual", 16, 1024, 2048, "bfloat16")
# Tests of the order configs are asked and timed in: under the interpreter the compile pool has nothing to
# compile, so each config is ready at once. On a GPU machine the pool compiles for the GPU and configs are
# timed in the order their compiles finish (and some fail to compile there), which these do not model.
INSTANT_COMPILES = requires_interpreter


@pytest.fixture
def store(tmp_path):
    with Store(f"sqlite:///{tmp_path / 'fake.db'}") as s:
        yield s


def test_study_spends_its_budget_on_distinct_configs_and_confirms_the_fastest(store):
    worker = FakeWorker()
    out = tune_study(store, worker, FP, "m", PROBLEM, TuneOptions(trials=12, batch=4))
    assert len(worker.trials) == len(set(worker.trials)) <= 12  # no config measured twice
    assert out.winner_arm == "fused"
    best = min(FakeWorker.time_of(t.config) for t in store.trials(out_ref(store).id) if t.status == "ok")
    assert out.median_us == best and out.speedup == pytest.approx(10.0 / best)
    winner = store.winner(out_ref(store).id)
    assert winner.cublas_us == 8.0 and winner.speedup_vs_cublas == pytest.approx(8.0 / best)


def out_ref(store):
    return store.study(FP, PROBLEM, "m")


class UntimedUnfusedWorker(FakeWorker):
    """The confirmation could not time the unfused path alone (as on a GPU under Triton's interpreter)."""

    def request(self, task):
        reply = super().request(task)
        if task["kind"] == "confirm":
            reply["result"] |= {"unfused_us": None, "unfused_reason": "RuntimeError: capture failed"}
        return reply


def test_a_study_whose_unfused_arm_cannot_be_timed_ends_without_a_winner_and_says_why(store):
    """Until the thirty-third session set_winner was asked to store the unfused arm with no time; the
    database refused the row and the tune died with an unrelated 'No row was found'."""
    out = tune_study(store, UntimedUnfusedWorker(), FP, "m", PROBLEM, TuneOptions(trials=4, batch=2))
    assert out.winner_arm is None and out.note == "the unfused arm could not be timed: RuntimeError: capture failed"
    assert store.winner(out_ref(store).id) is None


def test_resumed_study_with_nothing_new_keeps_its_winner(store):
    tune_study(store, FakeWorker(), FP, "m", PROBLEM, TuneOptions(trials=6, batch=3))
    again = FakeWorker()
    out = tune_study(store, again, FP, "m", PROBLEM, TuneOptions(trials=6, batch=3))
    assert again.trials == [] and out.note == "resumed: winner already confirmed"


@INSTANT_COMPILES
def test_a_study_with_an_imported_winner_measures_that_config_before_it_replaces_it(store):
    imported = dict(impl="fused", path="dot", BLOCK_M=16, BLOCK_N=256, BLOCK_K=64, SPLIT_K=8, GROUP_M=1, num_warps=8,
                    num_stages=2, split_reduce="last_program", prologue="inline")
    ref = store.study(FP, PROBLEM, "m")  # what import_table leaves: a winner, no trials
    store.set_winner(ref.id, arm="fused", config=imported, median_us=5.0, unfused_us=10.0, cublas_us=None,
                     floor_us=None, speedup=2.0, speedup_vs_cublas=None)
    worker = FakeWorker()
    tune_study(store, worker, FP, "m", PROBLEM, TuneOptions(trials=6, batch=3))
    assert config_key(imported) in worker.trials[:2]  # the unfused arm, then the imported config


@INSTANT_COMPILES
def test_a_smaller_buckets_winner_is_also_seeded_grouped_where_it_leaves_several_row_blocks(store):
    small = dict(impl="fused", path="dot", BLOCK_M=16, BLOCK_N=256, BLOCK_K=64, SPLIT_K=8, GROUP_M=1, num_warps=8,
                 num_stages=2, split_reduce="last_program", prologue="inline")
    problem = Problem("o_proj_residual", 32, 1024, 2048, "bfloat16")
    worker = FakeWorker()
    tune_study(store, worker, FP, "m", problem, TuneOptions(trials=6, batch=3), warm_start=small)
    grouped = {**small, "GROUP_M": 8}
    assert worker.trials[1:3] == [config_key(grouped), config_key(small)]
    assert search.grouped_variants(grouped, 32) == [grouped]  # grouped already
    assert search.grouped_variants({**small, "BLOCK_M": 32}, 32) == [{**small, "BLOCK_M": 32}]  # one row block
    attention = {"impl": "fused", "SPLITS": 4, "BLOCK_N": 64, "pack": "group"}  # no row blocks to group
    assert search.grouped_variants(attention, 1008) == [attention]


def test_winner_choice_needs_the_noise_band():
    fast, slow = {"impl": "fused", "BLOCK_N": 16}, {"impl": "fused", "BLOCK_N": 64}
    pairs = [{"config": slow, "speedup": 1.01, "fused_us": 9.9}, {"config": fast, "speedup": 1.5, "fused_us": 6.0}]
    assert choose_winner(pairs, 9.0, 1.02).config == fast
    only_noise = choose_winner(pairs[:1], 9.0, 1.02)
    assert only_noise.arm == "unfused" and only_noise.median_us == 9.0 and only_noise.speedup == 1.0
    assert "only 1.010x" in only_noise.note
    assert choose_winner([], 9.0, 1.02).arm == "unfused"


def test_top_configs_are_distinct_correct_and_fastest_first():
    class Row:
        def __init__(self, key, us, status="ok", arm="fused"):
            self.config_key, self.median_us, self.status, self.arm, self.config = key, us, status, arm, {"k": key}

    rows = [Row("a", 5.0), Row("b", 3.0), Row("a", 2.0), Row("c", 1.0, status="incorrect"),
            Row("u", 0.5, arm="unfused"), Row("d", 4.0)]
    assert [c["k"] for c in top_configs(rows, 2)] == ["a", "b"]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_only_trials_of_dead_owners_are_settled_on_resume(store):
    """A killed run leaves RUNNING trials. On resume, those whose owner process is gone are settled
    (stored value if measured, else FAIL); one whose owner is alive (another tuner) is left alone."""
    opts = TuneOptions(trials=3, batch=3)
    tune_study(store, FakeWorker(), FP, "m", PROBLEM, opts)
    study = optuna.load_study(study_name=out_ref(store).name, storage=store.optuna_storage())
    host = OWNER.rpartition(":")[0]
    with search._quiet_heartbeat():
        dead, alive = study.ask(), study.ask()
    dead.set_user_attr("owner", f"{host}:{_dead_pid()}")
    alive.set_user_attr("owner", f"{host}:{os.getpid()}")
    search._settle_interrupted(store, out_ref(store).id, study, store.trials(out_ref(store).id))
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    assert states[dead.number] == TrialState.FAIL and states[alive.number] == TrialState.RUNNING
    assert search.owner_is_gone(f"another-host:{_dead_pid()}", None) is False  # not ours to judge


def test_heartbeats_are_written_once_per_new_trial_not_after_every_measurement(store, monkeypatch):
    """Each heartbeat is a write transaction that workers sharing a SQLite file queue on: a trial's
    first heartbeat is stored with its parameters, and it is beaten again only after half the
    heartbeat interval (every trial in flight after every measurement was ~45 writes a batch of 8)."""
    import sqlalchemy

    beats = []
    monkeypatch.setattr(optuna.storages.RDBStorage, "record_heartbeat",
                        lambda self, trial_id: beats.append(trial_id))
    renewals = []
    tune_study(store, FakeWorker(), FP, "m", PROBLEM, TuneOptions(trials=8, batch=8, heartbeat_s=3600),
               heartbeat=lambda: renewals.append(1) or True)
    measured = {t.trial_number for t in store.trials(out_ref(store).id)
                if not (t.reason or "").startswith("invalid")}
    study = optuna.load_study(study_name=out_ref(store).name, storage=store.optuna_storage())
    with store.engine.connect() as conn:
        beaten = {row[0] for row in conn.execute(sqlalchemy.text("SELECT trial_id FROM trial_heartbeats"))}
    assert len(measured) >= 8 and all(t._trial_id in beaten for t in study.trials if t.number in measured)
    assert beats == [] and len(renewals) <= 2  # nothing beaten again within half the interval


def test_a_helper_asks_nothing_when_the_rest_of_the_budget_is_in_flight_elsewhere(store):
    """The budget counts configs claimed by any worker, measured or not yet: a helper joining a study
    whose remaining configs are all being measured elsewhere leaves at once (it asked a whole batch
    before, and its cold-compiled batch outlived the study's confirmation)."""
    from storage import queue

    opts = TuneOptions(trials=4, batch=4)
    tune_study(store, FakeWorker(), FP, "m", PROBLEM, TuneOptions(trials=2, batch=2))  # 2 configs stored
    ref = out_ref(store)
    for i in range(2):  # two more claimed by a live worker elsewhere, still measuring
        assert queue.claim_config(store, ref.id, f"in-flight-{i}", None, "other-host:1")
    helper = FakeWorker()
    out = tune_study(store, helper, FP, "m", PROBLEM, opts, shared=True)
    assert helper.trials == [] and out.new_trials == 0
    assert queue.claimed_configs(store, ref.id) == 4


def test_a_holder_waiting_for_the_others_renews_its_lease_and_leaves_once_it_is_lost(store):
    """A holder whose remaining budget is being measured elsewhere waits for those results; it keeps
    renewing its lease meanwhile (every half heartbeat interval), and once a renewal fails (the study
    was taken over) it leaves without confirming."""
    from storage import queue

    tune_study(store, FakeWorker(), FP, "m", PROBLEM, TuneOptions(trials=2, batch=2))  # 2 configs stored
    ref = out_ref(store)
    for i in range(2):  # the rest of a budget of 4, claimed by a live worker elsewhere
        assert queue.claim_config(store, ref.id, f"in-flight-{i}", None, "other-host:1")
    renewals = []
    holder = FakeWorker()
    opts = TuneOptions(trials=4, batch=4, heartbeat_s=1, deadline=time.monotonic() + 20)  # no hang if broken
    out = tune_study(store, holder, FP, "m", PROBLEM, opts, heartbeat=lambda: renewals.append(1) or len(renewals) < 3)
    assert holder.trials == [] and len(renewals) >= 3 and out.note == "helped measure"


def test_a_walk_reads_the_trials_once_and_suggests_what_it_would_without(store):
    """TPE with constant_liar reads every trial from the database for each parameter it samples; one
    config's walk through the space reads them once, and proposes the same config as without."""
    from tuner.space import suggest

    p = PROBLEM

    def walk(once: bool):
        """Six told trials (past TPE's start-up: every parameter comes from its model), then one walk
        on a study of its own: both studies have the same history."""
        study = optuna.create_study(storage=store.optuna_storage(), sampler=optuna.samplers.TPESampler(
            seed=3, multivariate=True, constant_liar=True, n_startup_trials=2))
        for _ in range(6):
            trial = study.ask()
            study.tell(trial, FakeWorker.time_of(suggest(trial, p.op, p.m, p.n, p.k)))
        cached, reads = study._storage, []
        real = cached._backend._get_trials
        cached._backend._get_trials = lambda *a, **kw: reads.append(1) or real(*a, **kw)
        trial = study.ask()
        reads.clear()
        with search._trials_read_once(study) if once else contextlib.nullcontext():
            cfg = suggest(trial, p.op, p.m, p.n, p.k)
        assert "get_all_trials" not in vars(cached)  # the storage is itself again after the walk
        return cfg, len(reads)

    (plain, plain_reads), (once, once_reads) = walk(False), walk(True)
    assert once == plain and plain_reads > 3 and once_reads == 1


def test_a_walks_parameters_are_stored_in_one_transaction(store):
    """Every parameter of a suggest walk is stored at its end, in one write transaction (one each was
    ~8 writes a config on the file or server that every worker shares); the stored trial holds them
    all, and a walk on an in-memory study stores each as it comes."""
    import sqlalchemy

    from storage import engine
    from tuner.space import suggest

    p = PROBLEM
    study = optuna.create_study(storage=store.optuna_storage(), sampler=optuna.samplers.TPESampler(seed=3))
    writes = []
    sqlalchemy.event.listen(study._storage._backend.engine, "begin",  # a write: not under storage.engine.reading
                            lambda conn: None if engine._READING.get() else writes.append(1))
    for _ in range(20):  # until the sampler walks a fused config (the unfused arm has one parameter)
        trial = study.ask()
        writes.clear()
        with search._params_written_once(study, {}, "me:1"):
            cfg = suggest(trial, p.op, p.m, p.n, p.k)
            assert writes == []  # the trial has its parameters; the database not yet
        assert len(writes) == 1  # the parameters and the owner together
        stored = study._storage._backend.get_trial(trial._trial_id)
        assert stored.params == trial.params and stored.user_attrs == {"owner": "me:1"}
        study.tell(trial, FakeWorker.time_of(cfg))
        if len(trial.params) >= 5:
            break
    assert len(trial.params) >= 5
    assert "_set_trial_param" not in vars(study._storage._backend)  # the storage is itself again

    memory = optuna.create_study()
    trial = memory.ask()
    with search._params_written_once(memory):
        suggest(trial, p.op, p.m, p.n, p.k)
    assert memory.trials[0].params == trial.params


def test_the_constant_liars_relative_params_are_stored_with_the_walks_parameters(store):
    """TPE with constant_liar shares a trial's relative parameters with the other workers through a
    system attribute, set during the walk: it is stored in the walk's one transaction, not in a write
    of its own for every config asked."""
    import sqlalchemy
    from optuna.samplers._tpe.sampler import _RELATIVE_PARAMS_KEY

    from storage import engine
    from tuner.space import suggest

    p = PROBLEM
    study = optuna.create_study(storage=store.optuna_storage(), sampler=search.make_sampler(3))
    writes = []
    sqlalchemy.event.listen(study._storage._backend.engine, "begin",
                            lambda conn: None if engine._READING.get() else writes.append(1))
    shared = None
    for _ in range(30):  # past TPE's startup trials, until a relative sample is shared
        trial = study.ask()
        writes.clear()
        with search._params_written_once(study, {}, "me:1"):
            cfg = suggest(trial, p.op, p.m, p.n, p.k)
        stored = study._storage._backend.get_trial(trial._trial_id)
        shared = [key for key in stored.system_attrs if key.startswith(_RELATIVE_PARAMS_KEY)]
        if shared:
            assert len(writes) == 1  # parameters, owner and the liar's attribute together
            assert stored.params == trial.params
            break
        study.tell(trial, FakeWorker.time_of(cfg))
    assert shared
    assert "set_trial_system_attr" not in vars(study._storage._backend)  # the storage is itself again


class FakeStream:
    """Stands in for tuner.compile.CompileStream: every compile submitted is done at once (a test's
    subclass says in which order, and with what seconds or error)."""

    def __init__(self, workers=None):
        self.jobs = []

    def __len__(self):
        return len(self.jobs)

    def ready(self):
        return bool(self.jobs)


def test_configs_are_timed_as_their_compiles_finish_and_the_pool_is_kept_full(store, monkeypatch):
    """The worker times the unfused arm while the pool compiles, then each fused config as soon as its
    compile is done (here: last submitted, first done); each measurement makes room for a new ask, so
    the pool holds the batch less the config the child is timing while the budget lasts (a batch at a
    time held 2, then 1, then 3 ...).
    A compile error is stored without a timing, and each row keeps its compile seconds."""
    submitted, done, in_flight = [], [], []

    class LastDoneFirst(FakeStream):
        def submit(self, token, job):
            seconds, error = 1.5 + len(submitted), "ptxas died" if not submitted else None
            submitted.append(config_key(job[1]))
            self.jobs.append((token, submitted[-1], seconds, error))

        def next_done(self, give_up_after=None):
            in_flight.append(len(self.jobs))
            token, key, seconds, error = self.jobs.pop()
            done.append(key)
            return token, seconds, error

    monkeypatch.setattr(search, "CompileStream", LastDoneFirst)
    worker = FakeWorker()
    tune_study(store, worker, FP, "m", PROBLEM, TuneOptions(trials=9, batch=3))
    assert worker.trials[0] == "unfused" and worker.trials[1:] == done[:done.index(submitted[0])] + [
        key for key in done[done.index(submitted[0]) + 1:]]  # the failed compile is never timed
    assert sorted(done) == sorted(submitted) and len(submitted) == 8
    # The child holds one config while the next is picked: the pool compiles the rest of the batch, 2.
    # A batch at a time drained the pool to one compile before each new batch: [2, 1, 3, 2, 1, 3, 2, 1].
    assert in_flight.count(2) >= 5 and max(in_flight) == 2, in_flight
    rows = {t.config_key: t for t in store.trials(out_ref(store).id)}
    assert rows[submitted[0]].status == "failed" and rows[submitted[0]].reason == "compile: ptxas died"
    assert [rows[key].compile_s for key in submitted] == [1.5 + i for i in range(len(submitted))]


@INSTANT_COMPILES
def test_the_child_times_the_next_config_while_the_last_one_is_stored(store, monkeypatch):
    """A ready config goes to the child before the result of the one it timed last is stored (this
    process stores and asks meanwhile); every config sent is stored once, and the last one too."""
    events = []

    class Logged(FakeWorker):
        def submit(self, task):
            if task["kind"] == "trial":
                events.append(("sent", config_key(task["config"])))
            super().submit(task)

    record = search._record
    monkeypatch.setattr(search, "_record", lambda run, trial, result: events.append(
        ("stored", config_key(result.config))) or record(run, trial, result))
    tune_study(store, Logged(), FP, "m", PROBLEM, TuneOptions(trials=10, batch=4))
    sent = [key for kind, key in events if kind == "sent"]
    stored = [key for kind, key in events if kind == "stored"]
    assert len(sent) == len(set(sent)) and set(sent) <= set(stored) and len(stored) == len(set(stored)) == 10
    ahead = [i for i in range(1, len(events)) if events[i - 1][0] == "sent" and events[i][0] == "stored"
             and events[i][1] != events[i - 1][1]]  # sent j, then stored the i before it
    assert len(ahead) >= len(sent) - 2, events
    assert events[-1] == ("stored", sent[-1])  # the last one is collected before the study ends


def test_once_the_budget_is_spent_a_compile_far_slower_than_the_others_is_given_up(store, monkeypatch):
    """While the budget lasts every compile is waited for; once it is spent (only what is in flight
    is left) the stream may give up a compile that runs past max(10 s, 4 x the median compile): the
    study stores it as failed and ends without waiting for it."""
    asked_limits = []

    class Stream(FakeStream):
        def submit(self, token, job):
            self.jobs.append((token, config_key(job[1])))

        def next_done(self, give_up_after=None):
            asked_limits.append(give_up_after)
            token, key = self.jobs.pop(0)
            if give_up_after is not None and not self.jobs:  # the last compile of the study: stuck
                return token, give_up_after + 0.1, f"gave up: still compiling after {give_up_after:.0f} s"
            return token, 2.0 + len(asked_limits) % 3, None

    monkeypatch.setattr(search, "CompileStream", Stream)
    tune_study(store, FakeWorker(), FP, "m", PROBLEM, TuneOptions(trials=10, batch=4))
    limits = [x for x in asked_limits if x is not None]
    assert asked_limits[0] is None and limits and asked_limits[-len(limits):] == limits  # at the end only
    assert all(x == search.GIVE_UP_COMPILE_FACTOR * 3.0 for x in limits)  # 4 x the median compile (2-4 s)
    rows = store.trials(out_ref(store).id)
    gave_up = [t for t in rows if (t.reason or "").startswith("compile: gave up")]
    assert len(rows) == 10 and len(gave_up) == 1 and gave_up[0].status == "failed"


class _StuckSampler(optuna.samplers.BaseSampler):
    """Proposes the first choice of every parameter: TPE settled on one config, at its worst."""

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):
        return param_distribution.choices[0]


def test_a_repeated_proposal_makes_room_for_a_config_nobody_tried(store, monkeypatch):
    monkeypatch.setattr(search, "make_sampler", lambda seed: _StuckSampler())
    worker = FakeWorker()
    tune_study(store, worker, FP, "m", PROBLEM, TuneOptions(trials=12, batch=4))
    # The seeds, the stuck config, then an unseen config of the space for every repeat: the whole
    # budget of distinct configs, none twice (before, the study ended at the ask cap with ~5).
    assert len(worker.trials) == len(set(worker.trials)) == 12
    stored = store.trials(out_ref(store).id)
    assert all(t.status == "ok" for t in stored)  # drawn from the space: nothing check_config refuses


def test_unseen_config_draws_from_the_space_what_was_not_seen():
    import random

    from kernel_space.spec import DEFAULT_SMEM_LIMIT
    from tuner.space import _space, unseen_config

    args = ("o_proj_residual", 16, 1024, 2048, 2, DEFAULT_SMEM_LIMIT)
    every = {config_key({"impl": "fused", **dict(zip(search_params(), row, strict=True))}) for row in _space(*args)}
    seen, rng = set(), random.Random(0)
    for _ in range(len(every)):
        cfg = unseen_config(*args, seen, rng)
        assert config_key(cfg) in every and config_key(cfg) not in seen
        seen.add(config_key(cfg))
    assert seen == every and unseen_config(*args, seen, rng) is None


def search_params():
    from tuner.space import _params

    return _params("o_proj_residual")


def test_a_study_says_where_its_time_went_and_the_log_line_carries_it(store):
    """The outcome splits the study's time by part (SPENT_PARTS); the worker's log line carries the split
    and the distributed benchmark reads it back, summed over a worker's studies."""
    import time as _time

    from benchmarks.distributed_bench import study_spent
    from cli.worker import spent_text
    from tuner.search import SPENT_PARTS

    t0 = _time.perf_counter()
    out = tune_study(store, FakeWorker(), FP, "m", PROBLEM, TuneOptions(trials=8, batch=4))
    wall = _time.perf_counter() - t0
    assert set(out.spent) <= set(SPENT_PARTS)
    assert {"open", "ask", "child wait", "store", "confirm"} <= set(out.spent)
    assert all(s >= 0 for s in out.spent.values()) and sum(out.spent.values()) <= wall + 0.01
    assert list(out.spent) == [p for p in SPENT_PARTS if p in out.spent]  # in SPENT_PARTS' order
    line = f"2026-11-28T00:00:00.000Z rmsnorm_qkv M=1 fused 5.0 us x2.00 (8 trials{spent_text(out.spent)})"
    twice = study_spent([line, line, "2026-11-28T00:00:01.000Z worker done: 2 studies finished"])
    assert twice["studies"] == 2
    for part, seconds in out.spent.items():
        assert twice[part] == pytest.approx(2 * round(seconds, 2), abs=0.011)
    assert spent_text({}) == "" and study_spent(["... (8 trials)"]) == {}


# ---- the database work of a study: Optuna's reads and writes that the loop avoids --------------------


def _statements(store):
    """Every SQL statement run on the store's engines (ours and Optuna's), counted by its first word."""
    import collections

    import sqlalchemy

    counts = collections.Counter()

    def count(conn, cursor, statement, *args):
        counts[statement.split()[0].upper()] += 1

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", count)
    return counts, lambda: sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", count)


def test_a_study_runs_few_statements_per_config_asked(store):
    """Each asked config cost ~62 SQL statements and ~14 transactions (Optuna's reads of the trial
    around every tell, of the WAITING trials on every ask, of the trial and the study's first row of
    each parameter name for every parameter, a write each for the owner and the first heartbeat);
    now under 40 and 10 (measured here: ~32 and ~9)."""
    counts, stop = _statements(store)
    try:
        out = tune_study(store, FakeWorker(), FP, "m", PROBLEM, TuneOptions(trials=24, batch=8))
    finally:
        stop()
    study = optuna.load_study(study_name=out_ref(store).name, storage=store.optuna_storage())
    asked = sum(t.state != TrialState.WAITING for t in study.get_trials(deepcopy=False))
    assert out.trials == 24 and asked >= 24
    work = counts["SELECT"] + counts["INSERT"] + counts["UPDATE"] + counts["DELETE"]
    assert work < 40 * asked and counts["BEGIN"] < 10 * asked, (dict(counts), asked)


def test_a_trial_settled_by_another_worker_is_told_without_error(store):
    """A trial failed as stale by another worker (or told by the one that took the study over) between
    this worker's ask and its tell: the tell leaves it as it is, and raises nothing."""
    study = optuna.create_study(storage=store.optuna_storage(), sampler=optuna.samplers.TPESampler(seed=0))
    with search._quiet_heartbeat():
        trial = study.ask()
    trial.suggest_categorical("impl", ("fused", "unfused"))
    other = optuna.load_study(study_name=study.study_name, storage=store.optuna_storage())
    other.tell(trial.number, state=TrialState.FAIL)
    search._tell(study, trial, 5.0)
    assert study.trials[0].state == TrialState.FAIL and study.trials[0].value is None
    with search._quiet_heartbeat():
        mine = study.ask()
    mine.suggest_categorical("impl", ("fused", "unfused"))
    search._tell(study, mine, 4.0)
    search._tell(study, mine.number, 3.0)  # by number (a resume's), already told: left as it is
    assert study.trials[1].state == TrialState.COMPLETE and study.trials[1].value == 4.0
    search._tell(study, study.ask(), float("nan"))  # not a value Optuna takes: a failure, as study.tell
    assert study.trials[2].state == TrialState.FAIL


def test_an_ask_reads_the_waiting_trials_only_when_it_does_not_know_them(store, monkeypatch):
    """The seeds and a repeat's replacement are enqueued by this worker, which then knows the study's
    WAITING trials: its asks pop them in order without reading them from the database, and one that
    another worker popped first is passed over (Optuna's pop is atomic)."""
    reads = []
    real = optuna.storages._CachedStorage.get_all_trials

    def counted(self, study_id, deepcopy=True, states=None):
        if states is not None and tuple(states) == (TrialState.WAITING,):
            reads.append(self)
        return real(self, study_id, deepcopy=deepcopy, states=states)

    monkeypatch.setattr(optuna.storages._CachedStorage, "get_all_trials", counted)
    from tuner.search import _open

    run = _open(store, FakeWorker(), FP, "m", PROBLEM, TuneOptions(trials=8, batch=4))
    search._seed(run, None)
    seeds = [t.system_attrs["fixed_params"] for t in run.waiting]
    assert seeds[0] == {"impl": "unfused"} and len(seeds) >= 3
    other = optuna.load_study(study_name=run.study.study_name, storage=store.optuna_storage())
    with search._quiet_heartbeat():
        taken = other.ask()  # another worker pops the first seed
    asked = search._ask_batch(run, 2)
    assert [t.params for t in asked] == [{}, {}]  # no parameter suggested yet
    fixed = [t._cached_frozen_trial.system_attrs["fixed_params"] for t in asked]
    assert taken.number == 0 and fixed == seeds[1:3] and run.study._storage not in reads
    assert [t._trial_id for t in run.waiting] == [t._trial_id for t in run.study.get_trials(
        deepcopy=False, states=(TrialState.WAITING,))]


@INSTANT_COMPILES
def test_a_study_asks_the_same_configs_whatever_studies_ran_before_it(tmp_path):
    """A study's search is its own: seeded by its bucket, it asks the same configs in the same order
    alone and after other studies in the same process and database (measured times being equal). On
    the GPU, two tunes of the 0.6B table found different gate_up winners depending on the studies a
    worker ran first; this pins that no state of the search carries from study to study (what does
    differ there: the times measured, or the order in which compiles finish, which TPE's constant liar
    sees)."""

    def time_of(cfg):  # a fixed function of the config, spread enough that TPE's split is decided
        if cfg["impl"] == "unfused":
            return 20.0
        key = config_key(cfg)
        return 5.0 + sum(ord(c) * (i + 1) for i, c in enumerate(key)) % 997 / 250.0

    gate_up = Problem("rmsnorm_gate_up_silu", 1, 6144, 1024, "bfloat16")
    before = [Problem("rmsnorm_qkv", 1, 4096, 1024, "bfloat16"), Problem("o_proj_residual", 1, 1024, 2048, "bfloat16")]

    def asked(path, first):
        with Store(f"sqlite:///{path}") as s:
            for problem in first:
                tune_study(s, TimedWorker(time_of), FP, "m", problem, TuneOptions(trials=16, batch=4))
            worker = TimedWorker(time_of)
            tune_study(s, worker, FP, "m", gate_up, TuneOptions(trials=16, batch=4))
            return worker.trials

    alone, after = asked(tmp_path / "alone.db", []), asked(tmp_path / "after.db", before)
    assert len(alone) >= 16 and alone == after


class TimedWorker(FakeWorker):
    """FakeWorker with its times from a function of the config."""

    def __init__(self, time_of):
        super().__init__()
        self.time_of = time_of


def test_the_tuner_refuses_the_interpreter_beside_a_gpu(monkeypatch):
    """TRITON_INTERPRET=1 on a machine with a CUDA GPU: every arm with a Triton kernel would fail to time
    (seen on an H200: decode attention's tune died after its first study); tune and worker say so first."""
    import torch

    from tuner.tune import device_limits

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    with pytest.raises(ValueError, match=r"^TRITON_INTERPRET=1 runs Triton's interpreter, .*CUDA_VISIBLE_DEVICES="):
        device_limits(TuneOptions())


def test_a_child_given_the_interpreter_sees_no_gpu():
    from tests.conftest import child_env

    assert child_env(TRITON_INTERPRET="1")["CUDA_VISIBLE_DEVICES"] == ""
    assert child_env(TRITON_INTERPRET="1", CUDA_VISIBLE_DEVICES="0")["CUDA_VISIBLE_DEVICES"] == "0"
    assert child_env("TRITON_INTERPRET").get("CUDA_VISIBLE_DEVICES") == os.environ.get("CUDA_VISIBLE_DEVICES")
