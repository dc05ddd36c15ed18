"""The work queue that many tuners share: studies waiting for a worker, leases, config claims.

A tune enqueues its studies (one row each, in the tune's order). A worker claims the first queued
study of its GPU fingerprint that nobody holds, or whose holder's lease ran out (a dead worker), by
writing its owner name and a lease; it renews the lease as it goes (a heartbeat) and marks the study
done once the winner is confirmed. When no study is free, a worker may join a study another one
holds: both then measure trials of it through Optuna's shared storage, and a config claim (unique per
study and config) decides which of them measures a config, so none is measured twice.

On PostgreSQL the claim reads with FOR UPDATE SKIP LOCKED, so two workers never wait on or take the
same row; on SQLite the write transaction is IMMEDIATE, which serializes claims on the file.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy
from sqlalchemy import and_, case, delete, exists, func, insert, or_, select, update
from sqlalchemy.orm import aliased

from storage.models import ConfigClaim, Fingerprint, QueueEntry, Shape, Study, Trial, Winner, as_utc, utcnow
from storage.store import Store


@dataclass(frozen=True)
class Claim:
    """A study a worker is to work on. shared: another worker holds it; this one only helps measure."""

    queue_id: int
    study_id: int
    model: str | None
    trials: int
    op: str
    n: int
    k: int
    dtype: str
    m: int
    shared: bool


def enqueue(store: Store, study_id: int, *, model: str | None, trials: int, priority: int,
            plan: str | None = None) -> None:
    """Queue a study (again): a done one is re-opened with the new budget, a queued one keeps its holder.
    plan: the tune run that queues it (`tune --gpus` and each worker it starts queue the same studies,
    whichever comes first): one the same plan has queued is left as it is, done or not."""
    stmt = select(QueueEntry).where(QueueEntry.study_id == study_id).with_for_update()
    with store.session() as s:
        entry = s.scalars(stmt).first()
        if entry is None:
            try:
                with s.begin_nested():
                    s.add(QueueEntry(study_id=study_id, model=model, trials=trials, priority=priority,
                                     state="queued", plan=plan))
                return
            except sqlalchemy.exc.IntegrityError:
                # Another tune queued it since our read (PostgreSQL: two tunes planning the same
                # studies at once; SQLite's IMMEDIATE transaction excludes that): update theirs. No
                # entry now means the insert broke another rule: that error stands.
                entry = s.scalars(stmt).first()
                if entry is None:
                    raise
        if plan is not None and entry.plan == plan:
            return  # this run queued it already: a worker may have finished it since
        entry.trials, entry.priority, entry.model = trials, priority, model or entry.model
        entry.state, entry.plan = "queued", plan


def claim(store: Store, fp_key: str, owner: str, lease_s: float, share: bool = True,
          exclude: set[int] | frozenset = frozenset(), only: list[int] | None = None) -> Claim | None:
    """The next study for `owner` on fingerprint `fp_key`: a free one (or one whose lease ran out)
    becomes owner's; failing that, with share, a study another worker holds (owner helps measure),
    other than the study ids in `exclude`. only: consider just these study ids."""
    now = utcnow()
    base = (select(QueueEntry, Study, Shape).join(Study, QueueEntry.study_id == Study.id)
            .join(Shape, Study.shape_id == Shape.id).join(Fingerprint, Study.fingerprint_id == Fingerprint.id)
            .where(Fingerprint.key == fp_key, QueueEntry.state == "queued"))
    if only is not None:
        base = base.where(QueueEntry.study_id.in_(only))
    free = or_(QueueEntry.owner.is_(None), QueueEntry.lease_until < now, QueueEntry.owner == owner)
    with store.session() as s:
        row = None
        for condition in (and_(free, _warm_start_done()), free):  # a ready study first, else any free one
            row = s.execute(base.where(condition).order_by(QueueEntry.priority, QueueEntry.id).limit(1)
                            .with_for_update(skip_locked=True, of=QueueEntry)).first()
            if row is not None:
                break
        if row is not None:
            row[0].owner, row[0].lease_until = owner, now + timedelta(seconds=lease_s)
            return _claim(*row, shared=False)
        if not share:
            return None
        held = [row for row in s.execute(base.where(QueueEntry.owner != owner, QueueEntry.lease_until >= now))
                if row[1].id not in exclude]
    return _claim(*random.choice(held), shared=True) if held else None


def _warm_start_done():
    """True for a study none of whose smaller-M siblings (same shape and GPU) is still queued: the
    winner it warm-starts from (warm_start_config: the nearest smaller bucket's) is then known. With
    several workers, claiming in plain priority order started a bucket while the one below it was
    still running on another GPU, and that study went without its warm start (on 4 H100s two of the
    0.6B M = 8 winners came out 12-16% slower than one GPU's)."""
    sibling_entry, sibling = aliased(QueueEntry), aliased(Study)
    return ~exists().where(sibling_entry.study_id == sibling.id, sibling_entry.state == "queued",
                           sibling.shape_id == Study.shape_id, sibling.fingerprint_id == Study.fingerprint_id,
                           sibling.m < Study.m)


def _claim(entry: QueueEntry, study: Study, shape: Shape, shared: bool) -> Claim:
    return Claim(entry.id, study.id, entry.model, entry.trials, shape.op, shape.n, shape.k, shape.dtype, study.m,
                 shared)


def renew(store: Store, queue_id: int, owner: str, lease_s: float) -> bool:
    """Extend owner's lease (the heartbeat). False if the study is no longer owner's (taken over)."""
    with store.session() as s:
        done = s.execute(update(QueueEntry).where(QueueEntry.id == queue_id, QueueEntry.owner == owner)
                         .values(lease_until=utcnow() + timedelta(seconds=lease_s)))
        return done.rowcount == 1


def finish(store: Store, queue_id: int, owner: str) -> None:
    """Mark owner's study done and release it."""
    with store.session() as s:
        s.execute(update(QueueEntry).where(QueueEntry.id == queue_id, QueueEntry.owner == owner)
                  .values(state="done", owner=None, lease_until=None))


def release(store: Store, queue_id: int, owner: str) -> None:
    """Give owner's study back unfinished (an interrupted worker), for another worker to take now."""
    with store.session() as s:
        s.execute(update(QueueEntry).where(QueueEntry.id == queue_id, QueueEntry.owner == owner)
                  .values(owner=None, lease_until=None))


def holders(store: Store, fp_key: str) -> list[tuple[int, str]]:
    """(queue id, owner) of the queued studies of a fingerprint that someone holds."""
    stmt = (select(QueueEntry.id, QueueEntry.owner).join(Study, QueueEntry.study_id == Study.id)
            .join(Fingerprint, Study.fingerprint_id == Fingerprint.id)
            .where(Fingerprint.key == fp_key, QueueEntry.state == "queued", QueueEntry.owner.is_not(None)))
    with store.session(write=False) as s:
        return [(queue_id, owner) for queue_id, owner in s.execute(stmt)]


def claim_config(store: Store, study_id: int, config_key: str, trial_number: int | None, owner: str) -> bool:
    """Take one config of a study for measuring. False when another worker (or an earlier run) took it."""
    row = dict(study_id=study_id, config_key=config_key, trial_number=trial_number, owner=owner, created_at=utcnow())
    try:
        with store.session() as s:  # one INSERT (a write every worker of a SQLite file queues for)
            s.execute(insert(ConfigClaim).values(**row))
        return True
    except sqlalchemy.exc.IntegrityError:
        taken = select(ConfigClaim.id).filter_by(study_id=study_id, config_key=config_key)
        with store.session(write=False) as s:
            if s.scalars(taken).first() is None:  # not a claim's twin: the insert broke another rule
                raise
        return False


def claimed_configs(store: Store, study_id: int) -> int:
    """Configs of a study claimed for measuring: stored, or in flight on some worker."""
    with store.session(write=False) as s:
        return s.scalar(select(func.count()).select_from(ConfigClaim).where(ConfigClaim.study_id == study_id)) or 0


def release_unmeasured_claim(store: Store, study: int | str, trial_number: int) -> None:
    """Drop the claim of a trial whose worker died before storing its result, so that the config can
    be measured again (Optuna's stale-trial callback calls this). study: our id or the Optuna name."""
    with store.session() as s:
        study_id = study if isinstance(study, int) else s.scalar(
            select(Study.id).where(Study.optuna_study_name == study))
        stored = s.scalar(select(func.count()).select_from(Trial)
                          .where(Trial.study_id == study_id, Trial.trial_number == trial_number))
        if not stored:
            s.execute(delete(ConfigClaim).where(ConfigClaim.study_id == study_id,
                                                ConfigClaim.trial_number == trial_number))


def pending(store: Store, fp_keys: list[str] | None = None, only: list[int] | None = None) -> dict[str, int]:
    """Queue entries by state ("queued", "held" (queued with a live lease), "done") for these fingerprints
    (and only these study ids, when given)."""
    live = and_(QueueEntry.owner.is_not(None), QueueEntry.lease_until >= utcnow())
    # The live-lease count is an aggregate, not a GROUP BY expression: PostgreSQL does not match a
    # selected expression to a grouped one when each carries its own bound parameter.
    stmt = (select(QueueEntry.state, func.count(), func.sum(case((live, 1), else_=0)))
            .join(Study, QueueEntry.study_id == Study.id)
            .join(Fingerprint, Study.fingerprint_id == Fingerprint.id)
            .group_by(QueueEntry.state))
    if fp_keys is not None:
        stmt = stmt.where(Fingerprint.key.in_(fp_keys))
    if only is not None:
        stmt = stmt.where(QueueEntry.study_id.in_(only))
    out = {"queued": 0, "held": 0, "done": 0}
    with store.session(write=False) as s:
        for state, count, held in s.execute(stmt):
            if state == "queued":
                out["held"] += held or 0
                count -= held or 0
            out[state] += count
    return out


def configs_measured(store: Store, study_ids: list[int]) -> tuple[int, int]:
    """(trial rows, distinct configs) stored for these studies: measured twice = rows - distinct."""
    with store.session(write=False) as s:
        rows = s.scalar(select(func.count()).select_from(Trial).where(Trial.study_id.in_(study_ids),
                                                                      Trial.trial_number.is_not(None)))
        distinct = s.scalar(select(func.count()).select_from(
            select(Trial.study_id, Trial.config_key).where(Trial.study_id.in_(study_ids),
                                                           Trial.trial_number.is_not(None))
            .distinct().subquery()))
    return rows or 0, distinct or 0


@dataclass(frozen=True)
class OwnerActivity:
    """What one worker did in a tune, from its config claims: how many, and the first and last one."""

    owner: str
    claims: int
    first: datetime
    last: datetime


def activity(store: Store, study_ids: list[int]) -> list[OwnerActivity]:
    """Per worker (config-claim owner) of these studies: claims made and the times of the first and the
    last, earliest first. A distributed tune's timeline: when each worker began measuring, and how long
    before the end it ran out of work."""
    stmt = (select(ConfigClaim.owner, func.count(), func.min(ConfigClaim.created_at), func.max(ConfigClaim.created_at))
            .where(ConfigClaim.study_id.in_(study_ids)).group_by(ConfigClaim.owner))
    with store.session(write=False) as s:
        rows = [OwnerActivity(owner, n, as_utc(first), as_utc(last)) for owner, n, first, last in s.execute(stmt)]
    return sorted(rows, key=lambda a: a.first)


@dataclass(frozen=True)
class StudyTimes:
    """When a study's first and last trial were stored, and its winner (None before it has one)."""

    study_id: int
    op: str
    m: int
    first: datetime
    last: datetime
    winner: datetime | None


def study_times(store: Store, study_ids: list[int]) -> list[StudyTimes]:
    """Per study with stored trials: its first and last trial and its winner, in order of the last
    result. A distributed tune's tail: which study finished last, and how long after the others."""
    trials = (select(Trial.study_id, func.min(Trial.created_at), func.max(Trial.created_at))
              .where(Trial.study_id.in_(study_ids)).group_by(Trial.study_id))
    with store.session(write=False) as s:
        winners = {sid: at for sid, at in s.execute(select(Winner.study_id, Winner.confirmed_at)
                                                    .where(Winner.study_id.in_(study_ids)))}
        shapes = {sid: (op, m) for sid, op, m in s.execute(
            select(Study.id, Shape.op, Study.m).join(Shape, Study.shape_id == Shape.id).where(Study.id.in_(study_ids)))}
        rows = [StudyTimes(sid, *shapes[sid], as_utc(first), as_utc(last),
                           as_utc(winners[sid]) if sid in winners else None) for sid, first, last in s.execute(trials)]
    return sorted(rows, key=lambda r: max(r.last, r.winner or r.last))


def last_result(store: Store, study_ids: list[int]) -> datetime | None:
    """When the last trial or winner of these studies was stored."""
    with store.session(write=False) as s:
        times = [s.scalar(select(func.max(Trial.created_at)).where(Trial.study_id.in_(study_ids))),
                 s.scalar(select(func.max(Winner.confirmed_at)).where(Winner.study_id.in_(study_ids)))]
    times = [as_utc(t) for t in times if t is not None]
    return max(times) if times else None


def warm_start_config(store: Store, fp_key: str, op: str, n: int, k: int, dtype: str, m: int) -> dict | None:
    """A fused config to try first: the winner of the nearest smaller M bucket of the same shape on
    this fingerprint, else the winner at this M on another GPU (an H100 table seeds an H200 tune)."""
    stmt = (select(Winner.config, Fingerprint.key, Study.m).join(Study, Winner.study_id == Study.id)
            .join(Shape, Study.shape_id == Shape.id).join(Fingerprint, Study.fingerprint_id == Fingerprint.id)
            .where(Shape.op == op, Shape.n == n, Shape.k == k, Shape.dtype == dtype, Winner.arm == "fused"))
    with store.session(write=False) as s:
        here = s.execute(stmt.where(Fingerprint.key == fp_key, Study.m < m).order_by(Study.m.desc()).limit(1)).first()
        if here is not None:
            return dict(here[0])
        other = s.execute(stmt.where(Fingerprint.key != fp_key, Study.m == m).order_by(Winner.confirmed_at.desc())
                          .limit(1)).first()
    return dict(other[0]) if other is not None else None
