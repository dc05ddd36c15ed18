"""storage.optuna_rows writes the rows Optuna's RDBStorage writes, and keeps its checks: each write is
compared with Optuna's own on a second study of the same database, column by column, and read back
through Optuna. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import optuna
import pytest
import sqlalchemy
from optuna.distributions import CategoricalDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from storage import optuna_rows

DIST = CategoricalDistribution((1, 2, 4))
SKIP = {"trial_id", "study_id", "param_id", "trial_value_id", "trial_system_attribute_id",
        "trial_user_attribute_id", "trial_heartbeat_id", "datetime_start", "datetime_complete", "heartbeat"}


@pytest.fixture
def two(store):
    """(RDBStorage, ours: a study these tests write with optuna_rows, theirs: one Optuna writes)."""
    storage = store.optuna_storage()
    ours = optuna.create_study(study_name="ours", storage=storage)
    theirs = optuna.create_study(study_name="theirs", storage=storage)
    return storage, ours, theirs


def _rows(storage, table, trial_id: int) -> list[dict]:
    column = table.c.trial_id
    with storage.engine.connect() as conn:
        rows = conn.execute(sqlalchemy.select(table).where(column == trial_id).order_by(*table.primary_key)).mappings()
        return [{k: v for k, v in row.items() if k not in SKIP} for row in rows]


def _same_rows(storage, mine: int, optunas: int) -> None:
    for table in (optuna_rows.TRIALS, optuna_rows.PARAMS, optuna_rows.VALUES, optuna_rows.SYSTEM_ATTRS,
                  optuna_rows.USER_ATTRS):
        assert _rows(storage, table, mine) == _rows(storage, table, optunas), table.name


def test_a_new_trial_is_optunas_row_and_numbers_follow(two):
    storage, ours, theirs = two
    theirs.ask()
    made = [optuna_rows.create(storage.engine, ours._study_id, TrialState.RUNNING) for _ in range(3)]
    assert [number for _, number in made] == [0, 1, 2]
    _same_rows(storage, made[0][0], theirs.trials[0]._trial_id)
    trial_id = made[-1][0]
    frozen = storage.get_trial(trial_id)
    assert (frozen.number, frozen.state, frozen.datetime_complete) == (2, TrialState.RUNNING, None)
    assert frozen.datetime_start is not None


def test_an_enqueued_trial_is_optunas_and_pops_once(two):
    storage, ours, theirs = two
    theirs.enqueue_trial({"x": 2})
    trial_id, number = optuna_rows.create(storage.engine, ours._study_id, TrialState.WAITING,
                                          {"fixed_params": {"x": 2}})
    assert number == 0
    _same_rows(storage, trial_id, theirs.trials[0]._trial_id)
    assert storage.get_trial(trial_id).state == TrialState.WAITING
    assert optuna_rows.pop(storage.engine, trial_id) is True
    assert optuna_rows.pop(storage.engine, trial_id) is False  # taken: by this caller, as by another worker
    assert storage.get_trial(trial_id).state == TrialState.RUNNING
    optuna_rows.finish(storage.engine, trial_id, TrialState.FAIL, None)
    with pytest.raises(UpdateFinishedTrialError):
        optuna_rows.pop(storage.engine, trial_id)


def test_a_walk_and_its_value_are_optunas_rows(two):
    """An enqueued trial popped, walked and told: the rows of all five tables are Optuna's own."""
    storage, ours, theirs = two
    theirs.enqueue_trial({"SPLIT_K": 4})
    t = theirs.ask()
    t.suggest_categorical("SPLIT_K", (1, 2, 4))
    storage.set_trial_system_attr(t._trial_id, "liar", [1, 2])
    storage.set_trial_user_attr(t._trial_id, "owner", "host:1")
    theirs.tell(t, 3.5)

    trial_id, _ = optuna_rows.create(storage.engine, ours._study_id, TrialState.WAITING,
                                     {"fixed_params": {"SPLIT_K": 4}})
    assert optuna_rows.pop(storage.engine, trial_id)
    known: dict = {}
    params = optuna_rows.param_rows(trial_id, [("SPLIT_K", DIST.to_internal_repr(4), DIST)], known)
    optuna_rows.write_walk(storage.engine, trial_id, params, {"liar": [1, 2]}, {"owner": "host:1"}, heartbeat=True)
    optuna_rows.finish(storage.engine, trial_id, TrialState.COMPLETE, [3.5])
    assert known == {"SPLIT_K": DIST}
    _same_rows(storage, trial_id, t._trial_id)
    assert len(_rows(storage, optuna_rows.HEARTBEATS, trial_id)) == 1

    frozen = storage.get_trial(trial_id)  # and Optuna reads them back
    assert (frozen.state, frozen.value, frozen.params, frozen.distributions) == (
        TrialState.COMPLETE, 3.5, {"SPLIT_K": 4}, {"SPLIT_K": DIST})
    assert frozen.system_attrs == {"fixed_params": {"SPLIT_K": 4}, "liar": [1, 2]}
    assert frozen.user_attrs == {"owner": "host:1"}
    assert frozen.datetime_complete >= frozen.datetime_start
    assert ours.best_value == 3.5


def test_an_attribute_written_again_is_replaced_and_a_heartbeat_kept(two):
    storage, ours, _ = two
    trial_id, _ = optuna_rows.create(storage.engine, ours._study_id, TrialState.RUNNING)
    optuna_rows.write_walk(storage.engine, trial_id, [], {"a": 1}, {"owner": "x"}, heartbeat=True)
    optuna_rows.write_walk(storage.engine, trial_id, [], {"a": 2}, {"owner": "y"}, heartbeat=True)
    frozen = storage.get_trial(trial_id)
    assert frozen.system_attrs == {"a": 2} and frozen.user_attrs == {"owner": "y"}
    assert len(_rows(storage, optuna_rows.HEARTBEATS, trial_id)) == 1


def test_a_settled_trial_refuses_every_write(two):
    storage, ours, _ = two
    trial_id, _ = optuna_rows.create(storage.engine, ours._study_id, TrialState.RUNNING)
    optuna_rows.finish(storage.engine, trial_id, TrialState.PRUNED, None)
    assert storage.get_trial(trial_id).state == TrialState.PRUNED
    params = optuna_rows.param_rows(trial_id, [("SPLIT_K", 0, DIST)], {})
    with pytest.raises(UpdateFinishedTrialError):
        optuna_rows.write_walk(storage.engine, trial_id, params, {}, {}, heartbeat=False)
    with pytest.raises(UpdateFinishedTrialError):
        optuna_rows.finish(storage.engine, trial_id, TrialState.COMPLETE, [1.0])
    assert _rows(storage, optuna_rows.PARAMS, trial_id) == [] and _rows(storage, optuna_rows.VALUES, trial_id) == []


def test_a_parameter_must_keep_its_distribution(two):
    storage, ours, _ = two
    trial_id, _ = optuna_rows.create(storage.engine, ours._study_id, TrialState.RUNNING)
    known = {"SPLIT_K": DIST}
    with pytest.raises(ValueError):
        optuna_rows.param_rows(trial_id, [("SPLIT_K", 0, CategoricalDistribution((1, 2)))], known)
    optuna_rows.write_walk(storage.engine, trial_id, optuna_rows.param_rows(trial_id, [("SPLIT_K", 0, DIST)], {}),
                           {}, {}, heartbeat=False)
    assert optuna_rows.stored_distributions(storage.engine, ours._study_id, ["SPLIT_K", "BLOCK_M"]) == {"SPLIT_K": DIST}


def test_two_workers_popping_one_trial_take_it_once(two):
    storage, ours, _ = two
    waiting = [optuna_rows.create(storage.engine, ours._study_id, TrialState.WAITING, {"fixed_params": {"x": i}})[0]
               for i in range(20)]
    taken: list[list[int]] = [[], []]

    def worker(i: int) -> None:
        for trial_id in waiting:
            if optuna_rows.pop(storage.engine, trial_id):
                taken[i].append(trial_id)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken[0] + taken[1]) == waiting


@pytest.fixture
def away_from_utc(monkeypatch):
    """Local time 5 hours from UTC: Optuna 5 stores naive UTC and gives back naive local time."""
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_the_core_read_gives_optunas_frozen_trials(store, away_from_utc):
    """storage.optuna_rows.read_trials (installed as the storage's _get_trials: what Optuna's cache reads
    on every look at a study) gives the FrozenTrials Optuna's own ORM read builds, for every state, every
    kind of parameter and attribute, intermediate values, two objectives, and each filter the cache uses."""
    storage = store.optuna_storage()
    orm_read = type(storage)._get_trials
    study = optuna.create_study(study_name="read", storage=storage)
    done = study.ask()
    done.suggest_categorical("c", ["a", "b", 3])
    done.suggest_float("x", 0.1, 10.0, log=True)
    done.suggest_int("n", 1, 9, step=2)
    done.set_user_attr("owner", {"pid": 7})
    storage.set_trial_system_attr(done._trial_id, "constant_liar", [1, 2])
    done.report(0.5, 1)
    done.report(float("inf"), 2)
    study.tell(done, 1.25)
    running = study.ask()
    running.suggest_int("n", 1, 9, step=2)
    failed = study.ask()
    study.tell(failed, state=TrialState.FAIL)
    study.enqueue_trial({"n": 5}, user_attrs={"seed": True})
    pruned = study.ask()  # the enqueued one
    pruned.suggest_int("n", 1, 9, step=2)
    pruned.report(-float("inf"), 0)
    study.tell(pruned, state=TrialState.PRUNED)
    study.enqueue_trial({"n": 3})
    sid = study._study_id
    last = max(t._trial_id for t in study.trials)
    for included, above in [(set(), -1), ({running._trial_id}, done._trial_id), (set(), done._trial_id),
                            ({running._trial_id, last + 5}, last), (set(), last)]:
        ours = optuna_rows.read_trials(storage.engine, sid, included, above)
        assert ours == orm_read(storage, sid, None, included, above), (included, above)
    states = [t.state for t in optuna_rows.read_trials(storage.engine, sid, set(), -1)]
    assert states == [TrialState.COMPLETE, TrialState.RUNNING, TrialState.FAIL, TrialState.PRUNED,
                      TrialState.WAITING]
    two = optuna.create_study(study_name="two", storage=storage, directions=["minimize", "maximize"])
    trial = two.ask()
    two.tell(trial, [2.0, -float("inf")])
    assert (optuna_rows.read_trials(storage.engine, two._study_id, set(), -1)
            == orm_read(storage, two._study_id, None, set(), -1))
    assert storage._get_trials(sid, None, set(), -1) == orm_read(storage, sid, None, set(), -1)  # installed
    with pytest.raises(KeyError):
        optuna_rows.read_trials(storage.engine, 10_000, set(), -1)


def test_orm_trials_env_keeps_optunas_read(tmp_path, monkeypatch):
    """KERNEL_SEARCH_ORM_TRIALS=1 (to measure one read against the other) leaves Optuna's ORM read on
    the tuner's storage; without it the Core read answers the cache's reads."""
    from storage import Store
    from storage.store import ORM_TRIALS_ENV

    calls = []
    core = optuna_rows.read_trials
    monkeypatch.setattr(optuna_rows, "read_trials", lambda *a: calls.append(a) or core(*a))
    for env, name, core_reads in (("1", "orm", False), ("0", "core", True)):
        monkeypatch.setenv(ORM_TRIALS_ENV, env)
        calls.clear()
        with Store(f"sqlite:///{tmp_path / name}.db") as store:
            storage = store.optuna_storage()
            study = optuna.create_study(study_name=name, storage=storage)
            study.tell(study.ask(), 1.0)
            trials = storage._get_trials(study._study_id, None, set(), -1)
        assert [t.state for t in trials] == [TrialState.COMPLETE]
        assert bool(calls) == core_reads, env
