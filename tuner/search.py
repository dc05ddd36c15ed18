"""One Optuna study per (GPU fingerprint, op, N, K, dtype, M bucket), driven by ask/tell.

Up to B configs are in flight at once: asked, the invalid ones refused before compiling (a failed
trial with its reason), the rest compiled in a process pool and measured one at a time in the worker
child as their compiles finish; every trial is stored the moment it is measured, then told to Optuna,
and each measurement makes room for the next ask. Enqueued first: the unfused baseline, the sane
defaults and the neighbouring bucket's winner. A config measured before in the study is told its
stored value again rather than re-measured. After the budget, the top few fused configs are re-timed
against the unfused path A B A B; a fused winner needs a paired speedup >= the noise band.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import math
import os
import random
import socket
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import optuna
from optuna.trial import TrialState

from kernel_space import get_op
from kernel_space.spec import UNFUSED_CONFIG, Problem, config_key
from storage import Store, StudyRef, optuna_rows, queue
from storage.models import Trial
from tuner import trace
from tuner.candidates import default_configs
from tuner.compile import CompileStream
from tuner.space import config_to_params, suggest, unseen_config
from tuner.trial import TrialResult
from tuner.worker import Worker

NOISE_BAND = 1.02  # a fused config must beat the unfused path by more than this in the paired A/B
ASKS_PER_TRIAL = 4  # asks allowed per budgeted trial, repeats of measured configs included
IN_FLIGHT_POLL_S = 0.5  # a holder whose budget is all claimed looks this often for the others' results
# Once a study's budget is spent and only compiles are left in flight, one that has run for longer than
# this many seconds (or this factor times the study's median compile, if that is longer) is given up.
GIVE_UP_COMPILE_S = 10.0
GIVE_UP_COMPILE_FACTOR = 4.0


@dataclass
class TuneOptions:
    trials: int = 40  # distinct configs per study, enqueued ones included
    batch: int = 8
    top_k: int = 3  # fused configs re-timed against the baseline
    noise_band: float = NOISE_BAND
    seed: int = 0
    smem_limit: int = 232_448
    sm_count: int = 132
    compile_workers: int | None = None  # compile processes; None: `batch` (no more compile at once)
    deadline: float | None = None  # time.monotonic() after which no new config is asked
    # Optuna's heartbeat for trials in flight: one that misses it for grace_s is failed by whichever
    # worker asks next (a dead worker on another host), and its config claim is released.
    heartbeat_s: int = 30
    grace_s: int = 120

    @property
    def pool_workers(self) -> int:
        """The compile pool's size: a batch compiles at once and no more, so a bigger pool only adds
        processes that start cold (their imports and first compile) in the middle of a study."""
        return self.compile_workers or self.batch


@dataclass
class StudyOutcome:
    op: str
    m: int
    trials: int
    new_trials: int
    failed: int
    winner_arm: str | None = None
    winner_config: dict | None = None
    median_us: float | None = None
    unfused_us: float | None = None
    speedup: float | None = None
    note: str = ""
    failures: dict = field(default_factory=dict)
    # Seconds of this worker's study by what it was doing (SPENT_PARTS): where a study's time goes, for
    # the worker's log. Set where the study ran here (not on a resumed winner's re-read).
    spent: dict = field(default_factory=dict)


# What a worker's study time is split into (StudyOutcome.spent): opening and seeding the study; asking
# the sampler for configs and starting them (their heartbeats, their compiles submitted); re-reading
# the stored configs and failing stale trials (database reads); waiting for a compile to finish;
# waiting for the benchmarking child's result; storing a result and telling Optuna; confirming the
# winner (the child's A/B and the winner's row). What is left of the wall time is the loop itself.
SPENT_PARTS = ("open", "ask", "refresh", "compile wait", "child wait", "store", "confirm")


@contextlib.contextmanager
def _spending(spent: dict, part: str):
    t0 = time.perf_counter()
    try:
        yield
    finally:
        spent[part] = spent.get(part, 0.0) + time.perf_counter() - t0


OWNER = f"{socket.gethostname()}:{os.getpid()}"


# A RUNNING trial with no owner yet was asked for a moment ago (the owner is set right after the ask)
# or by a run killed in that moment: after this long it is the latter.
OWNERLESS_STALE_S = 600


def owner_is_gone(owner: str | None, started) -> bool:
    """A RUNNING trial is stale when the process that asked for it is dead. Another tuner on this host
    that is alive, or one on another host, may still be measuring it: leave those alone."""
    if not owner:
        age = (datetime.datetime.now() - started).total_seconds() if started else 0
        return age > OWNERLESS_STALE_S
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


def _settle_interrupted(store: Store, study_id: int, study: optuna.Study, stored: list[Trial]) -> None:
    """Trials left RUNNING by a killed run on this host: tell what was stored for them, else FAIL (not
    measured) and release the config's claim so it can be measured again."""
    by_number = {t.trial_number: t for t in stored if t.trial_number is not None}
    for ft in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not owner_is_gone(ft.user_attrs.get("owner"), ft.datetime_start):
            continue
        row = by_number.get(ft.number)
        if row is not None and row.status == "ok":
            _tell(study, ft.number, row.median_us)
        else:
            _tell(study, ft.number, None, TrialState.FAIL)
            queue.release_unmeasured_claim(store, study_id, ft.number)


def _tell(study: optuna.Study, trial, value, state=TrialState.COMPLETE) -> None:
    """Tell, tolerating a trial that another tuner process has already settled (failed as stale, or
    told by the worker that took the study over).

    A trial this process asked for (an optuna.Trial) is told the lean way: what Optuna's study.tell
    does less its two reads of the trial (one before, to see that it is running, one after, to return
    it: ~12 statements on the shared database for every config, a third of a study's queries). The
    write itself checks that the trial is still updatable and raises UpdateFinishedTrialError if not.
    A trial known by its number (a resumed run's) goes through study.tell."""
    if state == TrialState.COMPLETE and (value is None or not math.isfinite(value)):
        value, state = None, TrialState.FAIL  # as study.tell would store a value it cannot take
    values = [float(value)] if state == TrialState.COMPLETE else None
    frozen = getattr(trial, "_cached_frozen_trial", None)
    try:
        if frozen is None:
            study.tell(trial, values[0] if values else None, state=state)
            return
        study._thread_local.cached_all_trials = None  # as study.tell: the sampler's per-trial cache ends
        backend = _rdb_backend(study)
        try:
            study.sampler.after_trial(study, frozen, state, values)
        finally:
            if backend is None:
                study._storage.set_trial_state_values(trial._trial_id, state, values)
            else:  # one conditional UPDATE and the value's row, not Optuna's ORM (storage.optuna_rows)
                optuna_rows.finish(backend.engine, trial._trial_id, state, values)
    except optuna.exceptions.UpdateFinishedTrialError:
        return  # settled by another worker between its read and this write
    except ValueError as exc:  # study.tell's "Cannot tell a FAIL trial.": settled before its read
        if "Cannot tell a" not in str(exc):
            raise


def tune_study(store: Store, worker: Worker, fp: dict, model: str | None, problem: Problem, opts: TuneOptions,
               warm_start: dict | None = None,
               on_trial: Callable[[int, int, float | None], None] | None = None,
               shared: bool = False, heartbeat: Callable[[], bool] | None = None) -> StudyOutcome:
    """Run (or resume) the study of one problem (op, M bucket) to `opts.trials` configs and confirm its
    winner: open, seed, then ask / triage / measure, up to opts.batch configs in flight, until the
    budget is spent.

    Several workers may run one study at once (shared=True for all but its holder): the budget counts
    the distinct configs stored by all of them, a config claim keeps any config from being measured
    twice, and only the holder confirms the winner. heartbeat() renews the holder's lease (every half
    heartbeat interval); once it returns False (the study was taken over) this worker asks for nothing
    more, and leaves when what it has in flight is measured."""
    spent: dict = {}
    with _spending(spent, "open"):
        run = _open(store, worker, fp, model, problem, opts)
        run.spent = spent
        if not run.study.trials:
            # A study with a winner but no trials holds an imported table's bucket: the config it would
            # replace is measured first, so a new winner has to beat it in the same confirmation.
            current = run.store.winner(run.ref.id)
            _seed(run, warm_start, current.config if current is not None else None)
        flight = _Flight(run, on_trial, heartbeat)
    while True:
        with _spending(spent, "refresh"):
            asking = run.alive and run.refresh() and run.budget_left()
        draining = not asking  # nothing new will be asked: what is in flight is all that is left
        if asking and len(flight) < opts.batch:
            if time.monotonic() - run.last_stale >= opts.heartbeat_s / 2:  # a query; grace_s is minutes
                run.last_stale = time.monotonic()
                with _quiet_heartbeat(), _spending(spent, "refresh"):
                    optuna.storages.fail_stale_trials(run.study)
            with _spending(spent, "ask"):
                room = _room(run)
                if room > 0:
                    _ask_into(run, flight, room)
            draining = room <= 0  # the whole budget is claimed
            if draining and not flight:  # the rest of the budget is claimed and being measured by other workers
                if shared:
                    break  # a helper leaves; the holder waits for their results before it confirms
                _beat(run, [], heartbeat)  # the holder's lease, while it waits
                time.sleep(IN_FLIGHT_POLL_S)
                continue
        if not flight:
            if asking:
                continue  # every config asked was a repeat or refused: ask again (the ask cap ends it)
            break
        flight.measure_next(draining=draining)
    if shared or (heartbeat is not None and not heartbeat()):
        outcome = _outcome(problem, run.store.trials(run.ref.id), run.new, note="helped measure")
    else:
        with _spending(spent, "confirm"):
            outcome = _confirm(run)
        outcome.new_trials = run.new
    outcome.spent = {part: round(spent[part], 3) for part in SPENT_PARTS if part in spent}
    return outcome


def _ask_into(run: _Run, flight: _Flight, room: int) -> None:
    """Ask the sampler for up to `room` configs (no more than the flight has space for), start the new
    ones and tell the repeats (another worker's, or one of ours in flight) what is stored for them.
    A repeat enqueues an unseen config for the next ask (_explore), so where an ask left the flight
    short it asks again at once, up to `batch` rounds, while budget and ask cap last: else the pool
    ran a compile short until the next measurement (a repeated unfused arm held it at one of two)."""
    for _ in range(run.opts.batch):
        want = min(room, run.opts.batch - len(flight))
        if want <= 0:
            return
        pending, repeats = _triage(run, _ask_batch(run, want), flight.keys())
        flight.add(pending)
        for trial, key in repeats:
            _tell_stored(run, trial, key)
        if len(pending) == want or not run.budget_left():
            return
        room = _room(run)


@dataclass
class _Run:
    """One study in progress: its rows, its Optuna study, and the budget spent so far.

    The budget counts distinct configs tried (measured or refused). TPE on categorical choices often
    proposes a config it has seen: that costs nothing (the stored value is told again), and on the
    first 0.6B tune it was over half of the asks, so it must not eat the budget. The ask cap ends a
    study whose pruned space is smaller than the budget. A resumed study keeps the asks it already
    made: one that ended at the cap stays ended (the H100 tune re-topped such studies on every resume).
    """

    store: Store
    worker: Worker
    ref: StudyRef
    study: optuna.Study
    problem: Problem
    opts: TuneOptions
    measured: dict  # config_key -> a stored row (or _Row) with status and median_us
    asks: int
    new: int = 0
    last_beat: float = 0.0  # time.monotonic() of the last heartbeat (see _beat)
    alive: bool = True  # the holder's lease was renewed when last tried (see _beat)
    last_stale: float = -math.inf  # time.monotonic() when this worker last failed the stale trials
    spent: dict = field(default_factory=dict)  # seconds by part (SPENT_PARTS), tune_study's
    waiting: list | None = None  # the study's WAITING trials as this worker knows them (see _waiting_known)
    distributions: dict = field(default_factory=dict)  # parameter name -> distribution (_params_written_once)

    def refresh(self) -> bool:
        """Re-read the study's stored configs: other workers sharing it add theirs."""
        for t in self.store.trials(self.ref.id):
            if t.trial_number is not None:
                self.measured.setdefault(t.config_key, t)
        return True

    def budget_left(self) -> bool:
        opts = self.opts
        return (len(self.measured) < opts.trials and self.asks < ASKS_PER_TRIAL * opts.trials
                and (opts.deadline is None or time.monotonic() < opts.deadline))


def make_sampler(seed: int) -> optuna.samplers.BaseSampler:
    """The study's sampler (benchmarks/search_efficiency.py replays it): multivariate TPE, with a
    constant liar for the trials other workers have in flight."""
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True, n_startup_trials=8)


def _open(store, worker, fp, model, problem: Problem, opts: TuneOptions) -> _Run:
    ref = store.study(fp, problem, model)
    sampler = make_sampler(opts.seed + problem.m)
    storage = store.optuna_storage(heartbeat_interval=opts.heartbeat_s, grace_period=opts.grace_s,
                                   stale_trial_callback=_release_stale(store))
    study = optuna.create_study(study_name=ref.name, storage=storage, direction="minimize",
                                sampler=sampler, load_if_exists=True)
    stored = store.trials(ref.id)
    _settle_interrupted(store, ref.id, study, stored)
    measured = {t.config_key: t for t in stored if t.trial_number is not None}
    return _Run(store, worker, ref, study, problem, opts, measured, asks_made(study))


@contextlib.contextmanager
def _quiet_heartbeat():
    """The loop asks and tells by hand and records Optuna's heartbeats itself (see _beat): Optuna warns
    that heartbeats belong to Study.optimize and that they are experimental. Both are known."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        yield


def _release_stale(store: Store):
    """Optuna's failed-trial callback: a trial failed for a missed heartbeat releases its config."""
    def callback(study: optuna.Study, trial) -> None:
        queue.release_unmeasured_claim(store, study.study_name, trial.number)

    return callback


def _seed(run: _Run, warm_start: dict | None, current: dict | None = None) -> None:
    """Enqueue, into a study with no trials yet, the unfused baseline, the study's current winner (an
    imported table's), the warm start (a neighbouring bucket's winner) and the defaults, each once."""
    p, opts = run.problem, run.opts
    seeds = default_configs(p.op, p.m, p.n, p.k, p.elem_bytes, opts.sm_count, opts.smem_limit)
    for cfg in (*grouped_variants(warm_start, p.m), current):
        if cfg is not None and cfg.get("impl") == "fused":
            seeds.insert(0, cfg)
    run.waiting, enqueued = [], []  # the study had no trials: these are all it waits with
    for cfg in [UNFUSED_CONFIG, *seeds]:
        params = config_to_params(cfg, p.op, p.m, p.n, p.k, p.elem_bytes, opts.smem_limit)
        if params is not None and params not in enqueued:
            enqueued.append(params)
            _enqueue(run, params)


def grouped_variants(cfg: dict | None, m: int) -> list[dict]:
    """A smaller bucket's winner as a seed at M: itself, and first (seeds are inserted in front) with
    GROUP_M = 8 where its BLOCK_M leaves several row blocks here. Grouped, the row blocks of a weight
    tile run side by side and read it from memory once; ungrouped, each reads it again: at Qwen3-8B M = 32
    (H100, PDL off) gate_up's M = 1, 4 and 16 winners took 117.6, 141.2 and 106.7 us ungrouped, 82.7,
    81.2 and 90.4 us grouped (benchmarks/results/session10_H100_2026-11-27/gemm_probe_8b_pdl0.json)."""
    if cfg is None or cfg.get("impl") != "fused":
        return []
    if "BLOCK_M" in cfg and math.ceil(m / cfg["BLOCK_M"]) > 1 and cfg.get("GROUP_M") != 8:  # a GEMM's
        return [cfg, {**cfg, "GROUP_M": 8}]
    return [cfg]


def _room(run: _Run) -> int:
    """Configs this worker may still ask for: the budget less every config claimed in the study, stored
    or still being measured by another worker (a config is claimed before it is measured). Counting
    only the stored ones let every worker sharing a study ask a whole batch near its end: a helper's
    last batch, compiled cold, then ran on after the holder had confirmed, and the tune waited for it."""
    claimed = queue.claimed_configs(run.store, run.ref.id)
    return run.opts.trials - max(len(run.measured), claimed)


def _ask_batch(run: _Run, room: int) -> list:
    batch = []
    for _ in range(min(run.opts.batch, room)):
        run.asks += 1
        with _quiet_heartbeat(), _waiting_known(run):
            trial = run.study.ask()
        _popped(run, trial._trial_id)
        batch.append(trial)  # its owner is stored with its parameters (_params_written_once)
    return batch


@contextlib.contextmanager
def _waiting_known(run: _Run):
    """While Optuna asks, its look for an enqueued trial to pop reads the study's WAITING trials from
    the database only when this worker does not know them (run.waiting is None: the study was just
    opened, or this worker enqueued since). Every ask read them before, ~6 statements on the shared
    database for a list that is empty on most asks once the seeds are popped.

    A trial another worker enqueues in a shared study (its repeat's replacement) is that worker's to
    pop at its next ask; popping stays atomic (the WAITING -> RUNNING write is conditional), and one
    another worker took first is passed over. After the ask, the known list keeps what came after the
    popped trial (those before it were taken by others), or nothing if a new trial was made.

    On Optuna's RDBStorage the ask's writes are storage.optuna_rows' (a new trial, or the pop), and
    the trial it made or popped is not read back: Optuna's own made it in an ORM transaction that held
    SQLite's write lock ~1 ms, then read it back in six statements."""
    storage, backend = run.study._storage, _rdb_backend(run.study)
    read, made = storage.get_all_trials, {}

    def get_all_trials(study_id, deepcopy=True, states=None):
        if states is None or tuple(states) != (TrialState.WAITING,):
            return read(study_id, deepcopy=deepcopy, states=states)
        if run.waiting is None:
            run.waiting = read(study_id, deepcopy=False, states=states)
        return list(run.waiting)

    def create_new_trial(study_id, template_trial=None):
        assert template_trial is None, "the ask makes a plain trial"
        trial_id, number = optuna_rows.create(backend.engine, study_id, TrialState.RUNNING)
        made[trial_id] = _running(trial_id, number, {})
        return trial_id

    def set_trial_state_values(trial_id, state, values=None):
        assert state == TrialState.RUNNING and values is None, "the ask only pops"
        if not optuna_rows.pop(backend.engine, trial_id):
            return False
        waiting = next((t for t in run.waiting or () if t._trial_id == trial_id), None)
        if waiting is not None and waiting.number is not None:
            made[trial_id] = _running(trial_id, waiting.number, waiting.system_attrs)
        return True

    def get_trial(trial_id):
        return made[trial_id] if trial_id in made else storage.__class__.get_trial(storage, trial_id)

    lean = {"get_all_trials": get_all_trials}
    if backend is not None:
        lean.update(create_new_trial=create_new_trial, set_trial_state_values=set_trial_state_values,
                    get_trial=get_trial)
    for name, method in lean.items():
        setattr(storage, name, method)  # this storage object only, for this ask only
    try:
        yield
    finally:
        for name in lean:
            delattr(storage, name)


def _running(trial_id: int, number: int, system_attrs: dict) -> optuna.trial.FrozenTrial:
    """The FrozenTrial of a trial this worker just made or popped (RUNNING, started now, nothing set
    yet but its enqueued system attributes), as Optuna would read it back."""
    return optuna.trial.FrozenTrial(number=number, state=TrialState.RUNNING, value=None,
                                    datetime_start=datetime.datetime.now(), datetime_complete=None, params={},
                                    distributions={}, user_attrs={}, system_attrs=dict(system_attrs),
                                    intermediate_values={}, trial_id=trial_id)


def _popped(run: _Run, trial_id: int) -> None:
    """The ask made or popped trial_id: what is left of the WAITING trials this worker knows."""
    if run.waiting is None:  # the ask did not look (not Optuna's way today): still unknown
        return
    ids = [t._trial_id for t in run.waiting]
    run.waiting = run.waiting[ids.index(trial_id) + 1:] if trial_id in ids else []


def _triage(run: _Run, batch: list, in_flight: set[str] = frozenset()) -> tuple[list[tuple], list[tuple]]:
    """Tell repeats their stored value, store refused configs as failed. Returns what must be measured,
    (trial, config), and the repeats of a config in flight or asked earlier in this same batch, (trial,
    key)."""
    p, pending, repeats, in_batch = run.problem, [], [], set(in_flight)
    for trial in batch:
        try:
            with _trials_read_once(run.study), _params_written_once(run.study, run.distributions, OWNER):
                cfg = suggest(trial, p.op, p.m, p.n, p.k, p.elem_bytes, run.opts.smem_limit)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another tuner settled it in the instant after the ask: not ours to measure
        key = config_key(cfg)
        if key in run.measured:  # measured before in this study: same value, no second measurement
            _tell_stored(run, trial, key)
            _explore(run, in_batch)
            continue
        if key in in_batch or not queue.claim_config(run.store, run.ref.id, key, trial.number, OWNER):
            repeats.append((trial, key))  # asked twice in this batch, or another worker measures it
            _explore(run, in_batch)
            continue
        in_batch.add(key)
        why = get_op(p.op).check(cfg, p.m, p.n, p.k, p.elem_bytes, run.opts.smem_limit) \
            if cfg["impl"] == "fused" else None
        if why is not None:
            _record(run, trial, TrialResult(cfg["impl"], cfg, "failed", reason=f"invalid config: {why}"))
            continue
        pending.append((trial, cfg))
    return pending, repeats


def _explore(run: _Run, in_batch: set[str]) -> None:
    """A repeated proposal enqueues a config nobody has tried, drawn uniformly from the space, for the
    next ask. TPE on categorical choices settles on a local optimum and then mostly repeats it: replayed
    against the H100's measured grids of four (op, M) cases (benchmarks/search_efficiency.py), it
    reached within 3% of the grid's best in only 9, 10 and 16 of 20 seeds in three of them; with this
    rule, in 20 of 20 seeds in all four, within 3 to 241 distinct configs."""
    p = run.problem
    rng = random.Random(f"{run.opts.seed}:{p.op}:{p.m}:{run.asks}:{len(run.measured)}")
    cfg = unseen_config(p.op, p.m, p.n, p.k, p.elem_bytes, run.opts.smem_limit, run.measured.keys() | in_batch, rng)
    params = None if cfg is None else config_to_params(cfg, p.op, p.m, p.n, p.k, p.elem_bytes, run.opts.smem_limit)
    if params is not None:
        _enqueue(run, params)
        in_batch.add(config_key(cfg))


def _enqueue(run: _Run, params: dict) -> None:
    """Optuna's study.enqueue_trial(params), and the new WAITING trial added to those this worker knows
    (run.waiting), so that the next ask pops it without reading the study's WAITING trials again. Not
    skip_if_exists (a read of every trial): _explore's config is none the study measured or asked for
    in this batch."""
    template = optuna.trial.create_trial(state=TrialState.WAITING, system_attrs={"fixed_params": params})
    backend = _rdb_backend(run.study)
    if backend is None:
        trial_id = run.study._storage.create_new_trial(run.study._study_id, template_trial=template)
    else:
        trial_id, template.number = optuna_rows.create(backend.engine, run.study._study_id, TrialState.WAITING,
                                                       {"fixed_params": params})
    if run.waiting is not None:
        template._trial_id = trial_id  # what Optuna's pop reads of it (and the number: _waiting_known's)
        run.waiting.append(template)


@contextlib.contextmanager
def _trials_read_once(study: optuna.Study):
    """While one trial's parameters are suggested, the study's trials are read from the database once.
    TPE with constant_liar reads them afresh for every parameter (a query each, ~10 a config); the
    others' trials do not change meaningfully in the milliseconds a walk takes, and TPE leaves the
    trial being suggested out of what it reads."""
    storage = study._storage
    read, memo = storage.get_all_trials, {}

    def get_all_trials(study_id, deepcopy=True, states=None):
        if study_id not in memo:
            memo[study_id] = read(study_id, deepcopy=False)
        trials = [t for t in memo[study_id] if states is None or t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    storage.get_all_trials = get_all_trials  # this storage object only, for this walk only
    try:
        yield
    finally:
        del storage.get_all_trials


@contextlib.contextmanager
def _params_written_once(study: optuna.Study, known: dict | None = None, owner: str | None = None):
    """While one trial's parameters are suggested, they are stored in one transaction at the end
    instead of one each (about 8 a config, each a write on the database that every worker shares;
    on SQLite a write waits for the one lock of the file). The trial keeps its own copy of what it
    was given, so the walk reads nothing back; another worker may see the trial without its
    parameters for those milliseconds, as it does before its first suggest. Without Optuna's
    RDBStorage underneath (an in-memory study: one process, no owner needed), each parameter is stored
    as it comes.

    `known` (a study's, kept across its walks) maps a parameter name to the distribution this worker
    stored or checked it with: Optuna then checks the new one against it instead of querying the
    study's first row of that name for every parameter of every trial.

    The system attributes the sampler sets during the walk (TPE's constant liar shares a trial's
    relative parameters through one, for the other workers) go into the same transaction: that was
    another write of its own for every config asked.

    `owner` (OWNER, for the trial being walked) is stored as its "owner" user attribute in the same
    transaction, and its first heartbeat with it (_Flight.add then writes none): each was a write of
    its own for every config before. A trial settled by another worker since the
    ask raises UpdateFinishedTrialError here, as its first write did before."""
    backend = _rdb_backend(study)
    if backend is None:
        yield
        return
    storage, pending, attrs = study._storage, [], {}
    # Caught above Optuna's cache, which files a parameter under its trial's study: a trial this worker
    # made or popped by storage.optuna_rows is not in it until the cache next reads the study.
    storage.set_trial_param = lambda trial_id, name, value, dist: pending.append((trial_id, name, value, dist))
    storage.set_trial_system_attr = lambda trial_id, key, value: attrs.__setitem__((trial_id, key), value)
    try:
        yield
    finally:
        del storage.set_trial_param, storage.set_trial_system_attr  # this storage object's, this walk's
    if not (pending or attrs):
        return
    known = {} if known is None else known
    trial_id = (pending[0][0] if pending else next(iter(attrs))[0])
    unknown = [name for _, name, *_ in pending if name not in known]  # checked against the study's first row
    known.update(optuna_rows.stored_distributions(backend.engine, study._study_id, unknown))
    params = optuna_rows.param_rows(trial_id, [(name, value, dist) for _, name, value, dist in pending], known)
    system = {key: value for (_, key), value in attrs.items()}
    optuna_rows.write_walk(backend.engine, trial_id, params, system, {"owner": owner} if owner is not None else {},
                           heartbeat=owner is not None)


def _rdb_backend(study: optuna.Study):
    """The Optuna RDBStorage under the study's storage (behind its cache), or None (an in-memory study)."""
    backend = getattr(study._storage, "_backend", study._storage)
    ok = hasattr(backend, "_set_trial_param_without_commit") and hasattr(backend, "engine")
    return backend if ok else None


def _tell_stored(run: _Run, trial, key: str) -> None:
    """Tell a trial the value stored for its config; PRUNED while another worker is still measuring it
    (TPE then neither learns a value nor counts a failure for it)."""
    row = run.measured.get(key)
    if row is None:
        _tell(run.study, trial, None, TrialState.PRUNED)
        return
    ok = row.status == "ok"
    _tell(run.study, trial, row.median_us if ok else None, TrialState.COMPLETE if ok else TrialState.FAIL)


class _Flight:
    """The configs this worker has asked for and not yet measured, at most a batch of them: their
    compiles run in the pool while the worker times one config at a time, the unfused arm first
    (nothing to compile), then the fused ones in the order their compiles finish. Each measurement
    makes room for a new ask, so the pool stays full: asking a whole batch only once the last one was
    measured left the pool idle while the batch waited for its slowest compile (up to 10 s at 8B;
    replayed from the stored compile seconds of the twelfth session's five 8B GEMM studies, their search
    took 40 s that way against 24)."""

    def __init__(self, run: _Run, on_trial, heartbeat):
        self.run, self.on_trial, self.heartbeat = run, on_trial, heartbeat
        self.trials: dict[int, tuple] = {}  # trial number -> (trial, config)
        self.plain: list[int] = []  # unfused arms, asked order
        self.stream = CompileStream(run.opts.pool_workers)
        self.compile_s: list[float] = []  # of the compiles that finished, for the give-up limit
        self.sent: tuple[int, float] | None = None  # (trial number, compile s) the child is timing
        run.last_beat = time.monotonic()  # the claim or the caller's lease is fresh; new trials beat on add

    def __len__(self) -> int:
        return len(self.trials)

    def keys(self) -> set[str]:
        return {config_key(cfg) for _, cfg in self.trials.values()}

    def add(self, pending: list[tuple]) -> None:
        """Start (trial, config) pairs: their heartbeats (a trial without one is never failed as stale),
        stored with their parameters on an RDB storage (_params_written_once), else now; their
        compiles in the pool."""
        beaten = _rdb_backend(self.run.study) is not None
        for trial, cfg in pending:
            if not beaten:
                self.run.study._storage.record_heartbeat(trial._trial_id)
            self.trials[trial.number] = (trial, cfg)
            if cfg["impl"] == "fused":
                self.stream.submit(trial.number, (self.run.problem, cfg))
            else:
                self.plain.append(trial.number)

    def measure_next(self, draining: bool = False) -> None:
        """Time the next config ready (waiting for a compile if none is) and store it. draining: the
        budget is spent, so nothing but what is in flight is left to the study; a compile that runs
        far longer than the others is then given up (stored as failed) rather than waited for. The
        H100's 0.6B decode tune had a few configs (64-row tiles, SPLIT_K 16, 4-5 stages) compiling
        14-18 s against a median of about 1 s, each the last of its study, and 86-213 us against
        winners of 10-13 us; on four GPUs the last of them held the whole tune for 22 s.

        The benchmarking child times one config while this process stores the one before and asks
        for the next: a ready config is sent before the last one's result is stored (storing and
        asking cost ~55 ms a config on one core of the development machine, where the H100 took
        0.10-0.13 s from one result to the next with the compiles cached). When no config is ready,
        the one the child holds is collected and stored first, rather than held while compiles run."""
        run = self.run
        if self.sent is not None and not self.plain and not self.stream.ready():  # or the child's is all
            self._store_sent()
            return
        if self.plain:
            number, compile_s, error = self.plain.pop(0), 0.0, None
        else:
            limit = max(GIVE_UP_COMPILE_S, GIVE_UP_COMPILE_FACTOR * statistics.median(self.compile_s or [0.0]))
            with _spending(run.spent, "compile wait"):
                number, compile_s, error = self.stream.next_done(give_up_after=limit if draining else None)
            if error is None:
                self.compile_s.append(compile_s)
        trial, cfg = self.trials[number]
        _beat(run, list(self.trials.values()), self.heartbeat)
        if error:
            self._store(number, compile_s, TrialResult(cfg["impl"], cfg, "failed", reason=f"compile: {error}"))
            return
        with _spending(run.spent, "child wait"):
            reply = run.worker.collect() if self.sent is not None else None
        sent, self.sent = self.sent, None
        run.worker.submit({"kind": "trial", "problem": run.problem, "arm": cfg["impl"], "config": cfg,
                           "seed": run.opts.seed + trial.number, "smem_limit": run.opts.smem_limit})
        trace.event("sent to child", token=number, arm=cfg["impl"])
        self.sent = (number, compile_s)
        if sent is not None:
            self._store(*sent, self._result(sent[0], reply))

    def _store_sent(self) -> None:
        """Wait for the config the child is timing, and store it."""
        (number, compile_s), self.sent = self.sent, None
        with _spending(self.run.spent, "child wait"):
            reply = self.run.worker.collect()
        self._store(number, compile_s, self._result(number, reply))

    def _result(self, number: int, reply: dict) -> TrialResult:
        cfg = self.trials[number][1]
        return reply["result"] if reply["ok"] else TrialResult(cfg["impl"], cfg, "failed", reason=reply["error"])

    def _store(self, number: int, compile_s: float, result: TrialResult) -> None:
        """Store a config's result, tell Optuna, and take it out of the flight."""
        run = self.run
        trial, cfg = self.trials.pop(number)
        # The pool's compile and the first launch in the worker (a load from Triton's cache) together.
        result.compile_s = compile_s + (result.compile_s or 0.0) if cfg["impl"] == "fused" else result.compile_s
        with _spending(run.spent, "store"):
            _record(run, trial, result)
        run.new += 1
        if self.on_trial:
            self.on_trial(min(len(run.measured), run.opts.trials), run.opts.trials, _best(run.measured))


def asks_made(study) -> int:
    """Trials the sampler was asked for so far (each ask is one Optuna trial; enqueued, not yet
    asked ones wait and do not count)."""
    return sum(t.state != TrialState.WAITING for t in study.get_trials(deepcopy=False))


def _best(measured: dict) -> float | None:
    """The fastest median of the study's configs measured correct (this worker's and, as last
    refreshed, the others'): the progress line's "best". Read from the rows the run keeps, not from
    Optuna's trials, which is a query on the shared database after every measurement."""
    return min((row.median_us for row in measured.values() if row.status == "ok" and row.median_us is not None),
               default=None)


def _beat(run: _Run, in_flight: list[tuple], heartbeat) -> None:
    """Optuna's heartbeat for the trials in flight, and the holder's lease (run.alive: False once the
    study was taken over), at most once every half heartbeat interval. Each beat is a write
    transaction; beating every trial in flight after every measurement was ~45 writes a batch of 8,
    and workers sharing a SQLite file queue on it. A new trial is beaten once when asked
    (_Flight.add)."""
    now = time.monotonic()
    if now - run.last_beat < run.opts.heartbeat_s / 2:
        return
    run.last_beat = now
    for trial, _ in in_flight:
        run.study._storage.record_heartbeat(trial._trial_id)
    if heartbeat is not None:
        run.alive = bool(heartbeat())


def _record(run: _Run, trial, result: TrialResult) -> None:
    """Store first, then tell: a kill between the two leaves a stored row that the resume tells."""
    cfg = result.config
    arm = "unfused" if cfg["impl"] == "unfused" else "fused"
    run.store.add_trial(run.ref.id, trial_number=trial.number, arm=arm, config=cfg, status=result.status,
                        reason=result.reason, rel_error=result.rel_error, compile_s=result.compile_s,
                        median_us=result.median_us, p20_us=result.p20_us, p80_us=result.p80_us)
    ok = result.status == "ok" and result.median_us is not None
    _tell(run.study, trial, result.median_us, TrialState.COMPLETE if ok else TrialState.FAIL)
    run.measured[config_key(cfg)] = _Row(result.status if ok else "failed", result.median_us)


@dataclass
class _Row:
    status: str
    median_us: float | None


def _confirm(run: _Run) -> StudyOutcome:
    """The study's winner: the top fused configs re-timed A B A B against the unfused path; a fused
    one wins only with a paired speedup >= the noise band. A resumed study with nothing new keeps its
    confirmed winner."""
    stored = run.store.trials(run.ref.id)
    out = _outcome(run.problem, stored, run.new)
    previous = run.store.winner(run.ref.id)
    if previous is not None and run.new == 0:
        out.winner_arm, out.winner_config = previous.arm, previous.config
        out.median_us, out.unfused_us, out.speedup = previous.median_us, previous.unfused_us, previous.speedup
        out.note = "resumed: winner already confirmed"
        return out
    reply = run.worker.request({"kind": "confirm", "problem": run.problem, "seed": run.opts.seed,
                                "configs": top_configs(stored, run.opts.top_k)})
    if not reply["ok"]:
        out.note = f"confirmation failed: {reply['error']}"
        return out
    res = reply["result"]
    if res["unfused_us"] is None:  # nothing to measure a winner against (and no unfused time to store)
        out.note = f"the unfused arm could not be timed: {res.get('unfused_reason') or 'no time'}"
        return out
    winner = choose_winner(res["pairs"], res["unfused_us"], run.opts.noise_band)
    cublas = res["cublas_us"]
    run.store.set_winner(run.ref.id, arm=winner.arm, config=winner.config, median_us=winner.median_us,
                         unfused_us=res["unfused_us"], cublas_us=cublas, floor_us=res["floor_us"],
                         speedup=winner.speedup,
                         speedup_vs_cublas=(cublas / winner.median_us) if cublas and winner.median_us else None)
    out.winner_arm, out.winner_config, out.median_us = winner.arm, winner.config, winner.median_us
    out.unfused_us, out.speedup, out.note = res["unfused_us"], winner.speedup, winner.note
    return out


def _outcome(problem: Problem, stored: list, new_trials: int, note: str = "") -> StudyOutcome:
    failures: dict[str, int] = {}
    for t in stored:
        if t.status != "ok":
            reason = (t.reason or t.status).split(":")[0]
            failures[reason] = failures.get(reason, 0) + 1
    return StudyOutcome(problem.op, problem.m, trials=len(stored), new_trials=new_trials,
                        failed=sum(failures.values()), failures=failures, note=note)


def top_configs(stored: list, top_k: int) -> list[dict]:
    """The `top_k` fastest distinct fused configs measured correct, fastest first."""
    ok_fused = sorted((t for t in stored if t.arm == "fused" and t.status == "ok" and t.median_us),
                      key=lambda t: t.median_us)
    top, seen = [], set()
    for t in ok_fused:
        if t.config_key not in seen and len(top) < top_k:
            seen.add(t.config_key)
            top.append(t.config)
    return top


@dataclass(frozen=True)
class Winner:
    arm: str
    config: dict
    median_us: float | None
    speedup: float
    note: str = ""


def choose_winner(pairs: list[dict], unfused_us: float | None, noise_band: float) -> Winner:
    """From the paired A/B results ({"config", "speedup", "fused_us"} each): the fused config with the
    best paired speedup if it reaches the noise band, else the unfused path (speedup 1)."""
    best = max(pairs, key=lambda p: p["speedup"], default=None)
    if best is not None and best["speedup"] >= noise_band:
        return Winner("fused", best["config"], best["fused_us"], best["speedup"])
    note = f"best fused only {best['speedup']:.3f}x in the paired A/B (< {noise_band})" if best else ""
    return Winner("unfused", dict(UNFUSED_CONFIG), unfused_us, 1.0, note)
