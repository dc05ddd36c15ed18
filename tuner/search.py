"""One Optuna study per (GPU fingerprint, op, N, K, dtype, M bucket), driven by ask/tell in batches.

Per batch: ask B configs; refuse the invalid ones before compiling (a failed trial with its reason);
compile the rest in a process pool; measure them one at a time in the worker child; store every
trial the moment it is measured, then tell Optuna. Enqueued first: the unfused baseline, the sane
defaults and the neighbouring bucket's winner. A config measured before in the study is told its
stored value again rather than re-measured. After the budget, the top few fused configs are re-timed
against the unfused path A B A B; a fused winner needs a paired speedup >= the noise band.
"""

from __future__ import annotations

import datetime
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import optuna
from optuna.trial import TrialState
from sqlalchemy import select

from kernel_space import get_op
from kernel_space.spec import UNFUSED_CONFIG, config_key
from storage import Store, StudyRef
from storage.models import Trial, Winner
from tuner.candidates import default_configs
from tuner.compile import precompile
from tuner.space import config_to_params, suggest
from tuner.worker import Worker

NOISE_BAND = 1.02  # a fused config must beat the unfused path by more than this in the paired A/B
ASKS_PER_TRIAL = 4  # asks allowed per budgeted trial, repeats of measured configs included


@dataclass
class TuneOptions:
    trials: int = 40  # distinct configs per study, enqueued ones included
    batch: int = 8
    top_k: int = 3  # fused configs re-timed against the baseline
    noise_band: float = NOISE_BAND
    seed: int = 0
    smem_limit: int = 232_448
    sm_count: int = 132
    compile_workers: int | None = None
    deadline: float | None = None  # time.monotonic() after which no new batch starts


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


def _stored_trials(store: Store, study_id: int) -> list[Trial]:
    with store.session(write=False) as s:
        return list(s.scalars(select(Trial).where(Trial.study_id == study_id).order_by(Trial.id)))


def _winner(store: Store, study_id: int) -> Winner | None:
    with store.session(write=False) as s:
        return s.scalars(select(Winner).where(Winner.study_id == study_id)).first()


OWNER = f"{socket.gethostname()}:{os.getpid()}"


# A RUNNING trial with no owner yet was asked for a moment ago (the owner is set right after the ask)
# or by a run killed in that moment: after this long it is the latter.
OWNERLESS_STALE_S = 600


def _owner_is_gone(owner: str | None, started) -> bool:
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


def _settle_interrupted(study: optuna.Study, stored: list[Trial]) -> None:
    """Trials left RUNNING by a killed run: tell what was stored for them, else FAIL (not measured)."""
    by_number = {t.trial_number: t for t in stored if t.trial_number is not None}
    for ft in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not _owner_is_gone(ft.user_attrs.get("owner"), ft.datetime_start):
            continue
        row = by_number.get(ft.number)
        if row is not None and row.status == "ok":
            _tell(study, ft.number, row.median_us)
        else:
            _tell(study, ft.number, None, TrialState.FAIL)


def _tell(study: optuna.Study, trial, value, state=TrialState.COMPLETE) -> None:
    """Tell, tolerating a trial that another tuner process has already settled."""
    try:
        study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
    except RuntimeError as exc:  # "Cannot tell a FAIL trial." and the like: someone else finished it
        if "Cannot tell" not in str(exc):
            raise


def tune_study(store: Store, worker: Worker, fp: dict, model: str | None, op: str, n: int, k: int, dtype: str,
               m: int, opts: TuneOptions, warm_start: dict | None = None,
               on_trial: Callable[[int, int, float | None], None] | None = None) -> StudyOutcome:
    """Run (or resume) the study of one (op, M bucket) to `opts.trials` trials and confirm its winner."""
    ref: StudyRef = store.study(fp, op, n, k, dtype, m, model)
    sampler = optuna.samplers.TPESampler(seed=opts.seed + m, multivariate=True, constant_liar=True,
                                         n_startup_trials=8)
    study = optuna.create_study(study_name=ref.name, storage=store.optuna_storage(), direction="minimize",
                                sampler=sampler, load_if_exists=True)
    stored = _stored_trials(store, ref.id)
    _settle_interrupted(study, stored)
    measured = {t.config_key: t for t in stored if t.trial_number is not None}
    if not study.trials:
        study.enqueue_trial({"impl": "unfused"}, skip_if_exists=True)
        seeds = default_configs(op, m, n, k, dtype_bytes(dtype), opts.sm_count, opts.smem_limit)
        if warm_start is not None and warm_start.get("impl") == "fused":
            seeds.insert(0, warm_start)
        for cfg in seeds:
            params = config_to_params(cfg, op, m, n, k)
            if params is not None:
                study.enqueue_trial(params, skip_if_exists=True)

    # The budget counts distinct configs tried (measured or refused). TPE on categorical choices often
    # proposes a config it has seen: that costs nothing (the stored value is told again), and on the
    # first 0.6B tune it was over half of the asks, so it must not eat the budget. The ask cap ends a
    # study whose pruned space is smaller than the budget.
    # A resumed study keeps the asks it already made: one that ended at the cap stays ended (the H100
    # tune re-topped such studies on every resume, up to another cap's worth of asks each).
    asks, max_asks = asks_made(study), ASKS_PER_TRIAL * opts.trials
    new = 0
    while len(measured) < opts.trials and asks < max_asks and (opts.deadline is None or
                                                                 time.monotonic() < opts.deadline):
        batch = []
        for _ in range(min(opts.batch, opts.trials - len(measured))):
            asks += 1
            trial = study.ask()
            try:
                trial.set_user_attr("owner", OWNER)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # another tuner settled it in the instant after the ask: not ours to measure
            batch.append(trial)
        pending, repeats, batch_keys = [], [], set()
        for trial in batch:
            cfg = suggest(trial, op, m, n, k)
            key = config_key(cfg)
            if key in measured:  # measured before in this study: same value, no second measurement
                row = measured[key]
                _tell(study, trial, row.median_us, TrialState.COMPLETE if row.status == "ok" else TrialState.FAIL)
                continue
            if key in batch_keys:  # asked twice in one batch: measured once, told after (--trials 8 gave 11 rows)
                repeats.append((trial, key))
                continue
            batch_keys.add(key)
            why = get_op(op).check(cfg, m, n, k, dtype_bytes(dtype), opts.smem_limit) if cfg["impl"] == "fused" \
                else None
            if why is not None:
                _record(store, ref, study, trial, cfg, {"status": "failed", "reason": f"invalid config: {why}"},
                        measured)
                continue
            pending.append((trial, cfg))
        fused = [(t, c) for t, c in pending if c["impl"] == "fused"]
        compiled = precompile([(op, m, n, k, dtype, c) for _, c in fused], opts.compile_workers)
        compile_errors = {t.number: err for (t, _), (_, err) in zip(fused, compiled, strict=True) if err}
        for trial, cfg in pending:
            if trial.number in compile_errors:
                result = {"status": "failed", "reason": f"compile: {compile_errors[trial.number]}"}
            else:
                reply = worker.request({"kind": "trial", "op": op, "arm": cfg["impl"], "config": cfg, "m": m,
                                        "n": n, "k": k, "dtype": dtype, "seed": opts.seed + trial.number,
                                        "smem_limit": opts.smem_limit})
                result = reply["result"] if reply["ok"] else {"status": "failed", "reason": reply["error"]}
            _record(store, ref, study, trial, cfg, result, measured)
            new += 1
            if on_trial:
                on_trial(min(len(measured), opts.trials), opts.trials, _best(study))
        for trial, key in repeats:
            row = measured[key]
            _tell(study, trial, row.median_us, TrialState.COMPLETE if row.status == "ok" else TrialState.FAIL)
    outcome = _confirm(store, worker, ref, study, op, n, k, dtype, m, opts, new)
    outcome.new_trials = new
    return outcome


def asks_made(study) -> int:
    """Trials the sampler was asked for so far (each ask is one Optuna trial; enqueued, not yet
    asked ones wait and do not count)."""
    return sum(t.state != TrialState.WAITING for t in study.get_trials(deepcopy=False))


def dtype_bytes(dtype: str) -> int:
    return 4 if dtype == "float32" else 2


def _best(study: optuna.Study) -> float | None:
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return min((t.value for t in done), default=None)


def _record(store, ref, study, trial, cfg, result: dict, measured: dict) -> None:
    """Store first, then tell: a kill between the two leaves a stored row that the resume tells."""
    arm = "unfused" if cfg["impl"] == "unfused" else "fused"
    status = result.get("status", "failed")
    store.add_trial(ref.id, trial_number=trial.number, arm=arm, config=cfg, status=status,
                    reason=result.get("reason"), rel_error=result.get("rel_error"),
                    compile_s=result.get("compile_s"), median_us=result.get("median_us"),
                    p20_us=result.get("p20_us"), p80_us=result.get("p80_us"))
    ok = status == "ok" and result.get("median_us") is not None
    _tell(study, trial, result.get("median_us"), TrialState.COMPLETE if ok else TrialState.FAIL)
    measured[config_key(cfg)] = _Row(status if ok else "failed", result.get("median_us"))


@dataclass
class _Row:
    status: str
    median_us: float | None


def _confirm(store, worker, ref, study, op, n, k, dtype, m, opts, new_trials) -> StudyOutcome:
    stored = _stored_trials(store, ref.id)
    failures: dict[str, int] = {}
    for t in stored:
        if t.status != "ok":
            reason = (t.reason or t.status).split(":")[0]
            failures[reason] = failures.get(reason, 0) + 1
    out = StudyOutcome(op, m, trials=len(stored), new_trials=new_trials,
                       failed=sum(failures.values()), failures=failures)
    previous = _winner(store, ref.id)
    if previous is not None and new_trials == 0:
        out.winner_arm, out.winner_config = previous.arm, previous.config
        out.median_us, out.unfused_us, out.speedup = previous.median_us, previous.unfused_us, previous.speedup
        out.note = "resumed: winner already confirmed"
        return out
    ok_fused = sorted((t for t in stored if t.arm == "fused" and t.status == "ok" and t.median_us),
                      key=lambda t: t.median_us)
    top, seen = [], set()
    for t in ok_fused:
        if t.config_key not in seen:
            seen.add(t.config_key)
            top.append(t.config)
        if len(top) == opts.top_k:
            break
    reply = worker.request({"kind": "confirm", "op": op, "m": m, "n": n, "k": k, "dtype": dtype,
                            "configs": top, "seed": opts.seed})
    if not reply["ok"]:
        out.note = f"confirmation failed: {reply['error']}"
        return out
    res = reply["result"]
    best = max(res["pairs"], key=lambda p: p["speedup"], default=None)
    unfused_us = res["unfused_us"]
    if best is not None and best["speedup"] >= opts.noise_band:
        arm, cfg, median, speedup = "fused", best["config"], best["fused_us"], best["speedup"]
    else:
        arm, cfg, median, speedup = "unfused", dict(UNFUSED_CONFIG), unfused_us, 1.0
        if best is not None:
            out.note = f"best fused only {best['speedup']:.3f}x in the paired A/B (< {opts.noise_band})"
    cublas = res["cublas_us"]
    store.set_winner(ref.id, arm=arm, config=cfg, median_us=median, unfused_us=unfused_us, cublas_us=cublas,
                     floor_us=res["floor_us"], speedup=speedup,
                     speedup_vs_cublas=(cublas / median) if cublas and median else None)
    out.winner_arm, out.winner_config, out.median_us = arm, cfg, median
    out.unfused_us, out.speedup = unfused_us, speedup
    return out
