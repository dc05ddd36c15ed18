"""The ORM schema: one class per `ks_` table, a unique constraint on each natural key.

A study is one Optuna search: (GPU fingerprint, shape, M bucket). A shape is (op, N, K, dtype), so
two models with the same layer sizes share their studies; ks_model_shapes says which models use a
shape. Every measurement is a trial row; the confirmed best of a study is its winner row.

Changing this file means writing a migration in storage/migrations/versions/.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from storage.table import STREAMS  # the residual streams a fold row may keep, as a table may choose them

TRIAL_ARMS = ("fused", "unfused", "cublas")
WINNER_ARMS = ("fused", "unfused")
STATUSES = ("ok", "failed", "incorrect")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(when: datetime) -> datetime:
    """A stored time, aware and in UTC: SQLite gives it back naive (it was written in UTC), a server
    database in its session's time zone."""
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    pass


class Fingerprint(Base):
    """A GPU plus the software and kernel sources that measured on it (see kernel_space.fingerprint)."""

    __tablename__ = "ks_fingerprints"
    __table_args__ = (UniqueConstraint("key", name="uq_ks_fingerprints_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64))
    device_name: Mapped[str] = mapped_column(String(256))
    capability: Mapped[str] = mapped_column(String(16))  # "9.0"
    sm_count: Mapped[int] = mapped_column(Integer)
    total_memory: Mapped[int] = mapped_column(BigInteger)  # bytes: 80 GB does not fit 32 bits
    driver: Mapped[str] = mapped_column(String(64))
    cuda: Mapped[str] = mapped_column(String(64))
    torch: Mapped[str] = mapped_column(String(64))
    triton: Mapped[str] = mapped_column(String(64))
    kernel_hashes: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Shape(Base):
    """One op at one weight shape and dtype."""

    __tablename__ = "ks_shapes"
    __table_args__ = (UniqueConstraint("op", "n", "k", "dtype", name="uq_ks_shapes_op_n_k_dtype"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    op: Mapped[str] = mapped_column(String(64))
    n: Mapped[int] = mapped_column(Integer)
    k: Mapped[int] = mapped_column(Integer)
    dtype: Mapped[str] = mapped_column(String(16))


class ModelShape(Base):
    """Model `model` runs op `op` in `dtype` at shape `shape_id`. op and dtype repeat the shape's
    so that the database refuses a second shape for the same (model, op, dtype)."""

    __tablename__ = "ks_model_shapes"
    __table_args__ = (UniqueConstraint("model", "op", "dtype", name="uq_ks_model_shapes_model_op_dtype"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(256), index=True)
    op: Mapped[str] = mapped_column(String(64))
    dtype: Mapped[str] = mapped_column(String(16))
    shape_id: Mapped[int] = mapped_column(ForeignKey("ks_shapes.id", ondelete="CASCADE"), index=True)

    shape: Mapped[Shape] = relationship()


class Study(Base):
    """One search: a shape at one M bucket on one fingerprint; Optuna's study of the same name."""

    __tablename__ = "ks_studies"
    __table_args__ = (
        UniqueConstraint("fingerprint_id", "shape_id", "m", name="uq_ks_studies_fp_shape_m"),
        UniqueConstraint("optuna_study_name", name="uq_ks_studies_optuna_study_name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint_id: Mapped[int] = mapped_column(ForeignKey("ks_fingerprints.id", ondelete="CASCADE"))
    shape_id: Mapped[int] = mapped_column(ForeignKey("ks_shapes.id", ondelete="CASCADE"), index=True)
    m: Mapped[int] = mapped_column(Integer)
    optuna_study_name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    fingerprint: Mapped[Fingerprint] = relationship()
    shape: Mapped[Shape] = relationship()


class Trial(Base):
    """One measurement of one arm. trial_number is Optuna's, None for baseline measurements."""

    __tablename__ = "ks_trials"
    __table_args__ = (
        CheckConstraint(_in("arm", TRIAL_ARMS), name="ck_ks_trials_arm"),
        CheckConstraint(_in("status", STATUSES), name="ck_ks_trials_status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("ks_studies.id", ondelete="CASCADE"), index=True)
    trial_number: Mapped[int | None] = mapped_column(Integer)
    arm: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict] = mapped_column(JSON)
    config_key: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    rel_error: Mapped[float | None] = mapped_column(Float)
    compile_s: Mapped[float | None] = mapped_column(Float)
    median_us: Mapped[float | None] = mapped_column(Float)
    p20_us: Mapped[float | None] = mapped_column(Float)
    p80_us: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Winner(Base):
    """The confirmed choice of a study. speedup is vs the unfused arm (median of paired ratios);
    cublas_us, floor_us and speedup_vs_cublas are unknown for rows imported from a table."""

    __tablename__ = "ks_winners"
    __table_args__ = (
        UniqueConstraint("study_id", name="uq_ks_winners_study_id"),
        CheckConstraint(_in("arm", WINNER_ARMS), name="ck_ks_winners_arm"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("ks_studies.id", ondelete="CASCADE"))
    arm: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict] = mapped_column(JSON)
    median_us: Mapped[float] = mapped_column(Float)
    unfused_us: Mapped[float] = mapped_column(Float)
    cublas_us: Mapped[float | None] = mapped_column(Float)
    floor_us: Mapped[float | None] = mapped_column(Float)
    speedup: Mapped[float] = mapped_column(Float)
    speedup_vs_cublas: Mapped[float | None] = mapped_column(Float)
    confirmed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


QUEUE_STATES = ("queued", "done")


class QueueEntry(Base):
    """A study some tune asked for, waiting to be worked on. A worker claims it by writing its owner
    and a lease, renews the lease while it works (a heartbeat) and marks it done after the winner is
    confirmed. A lease that runs out means a dead worker: another one takes the study over."""

    __tablename__ = "ks_queue"
    __table_args__ = (
        UniqueConstraint("study_id", name="uq_ks_queue_study_id"),
        CheckConstraint(_in("state", QUEUE_STATES), name="ck_ks_queue_state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("ks_studies.id", ondelete="CASCADE"))
    model: Mapped[str | None] = mapped_column(String(256))
    trials: Mapped[int] = mapped_column(Integer)  # the budget: distinct configs
    priority: Mapped[int] = mapped_column(Integer)  # lower first: the tune's order (op, then M)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    owner: Mapped[str | None] = mapped_column(String(255))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The tune run that last queued it (queue.enqueue's `plan`): the same run queues it once.
    plan: Mapped[str | None] = mapped_column(String(64))

    study: Mapped[Study] = relationship()


class ConfigClaim(Base):
    """One config of a study taken by one worker for measuring: workers sharing a study never measure
    the same config twice (the unique key decides who measures it)."""

    __tablename__ = "ks_config_claims"
    __table_args__ = (UniqueConstraint("study_id", "config_key", name="uq_ks_config_claims_study_config"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("ks_studies.id", ondelete="CASCADE"))
    config_key: Mapped[str] = mapped_column(String(512))
    trial_number: Mapped[int | None] = mapped_column(Integer)
    owner: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


STEP_ARMS = ("unfused", "table", "previous")


class StepRun(Base):
    """One end-to-end check of a dispatch table, run by `tune` after tuning: the model's decode step
    (CUDA graph, random weights) with the new table, with no table (unfused) and with the table that
    was shipped before the tune (previous), in one process on one GPU. The tables are kept whole, so
    that the rule that keeps a slower table from shipping (storage.steps) can fall back to them.
    table_hash (storage.steps.table_hash) identifies a table by its choices, not its times."""

    __tablename__ = "ks_step_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint_id: Mapped[int] = mapped_column(ForeignKey("ks_fingerprints.id", ondelete="CASCADE"), index=True)
    model: Mapped[str] = mapped_column(String(256))
    dtype: Mapped[str] = mapped_column(String(16))
    table_hash: Mapped[str] = mapped_column(String(64))
    table_json: Mapped[dict] = mapped_column(JSON)  # the new table as built from the winners (format 1)
    previous_hash: Mapped[str | None] = mapped_column(String(64))
    previous_json: Mapped[dict | None] = mapped_column(JSON)  # None: no previous arm was measured
    context: Mapped[int] = mapped_column(Integer)  # prompt tokens in the cache before decoding
    output_len: Mapped[int] = mapped_column(Integer)  # decode steps a timed run takes
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    fingerprint: Mapped[Fingerprint] = relationship()


class StepBench(Base):
    """One arm at one batch size of a StepRun: the median decode step and the prefill of the batch."""

    __tablename__ = "ks_step_benches"
    __table_args__ = (
        UniqueConstraint("run_id", "arm", "batch", name="uq_ks_step_benches_run_arm_batch"),
        CheckConstraint(_in("arm", STEP_ARMS), name="ck_ks_step_benches_arm"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("ks_step_runs.id", ondelete="CASCADE"))
    arm: Mapped[str] = mapped_column(String(16))
    batch: Mapped[int] = mapped_column(Integer)
    step_ms: Mapped[float] = mapped_column(Float)
    tok_s: Mapped[float] = mapped_column(Float)
    prefill_ms: Mapped[float | None] = mapped_column(Float)


class StepAttention(Base):
    """Decode attention's part of a StepRun, one row per attention bucket of the new table: the decode
    step at the bucket's batch over a cache inside its context interval (`slots`: of the caches timed,
    the one where the tuned config fared worst), with the table (table_ms) and with the same table
    less its attention rows (plan_ms: the default plan). The check
    at StepRun.context reaches only the smallest context bucket; these reach every one."""

    __tablename__ = "ks_step_attention"
    __table_args__ = (UniqueConstraint("run_id", "batch", "context", name="uq_ks_step_attention_run_batch_context"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("ks_step_runs.id", ondelete="CASCADE"))
    batch: Mapped[int] = mapped_column(Integer)  # the bucket's batch
    context: Mapped[int] = mapped_column(Integer)  # the bucket's context (cache slots it serves up to)
    slots: Mapped[int] = mapped_column(Integer)  # the cache the step ran over
    table_ms: Mapped[float] = mapped_column(Float)
    plan_ms: Mapped[float] = mapped_column(Float)


class StepStream(Base):
    """The residual stream's part of a StepRun, one row per benched batch: the decode step with the new
    table and its stream in fixed point (qwen3.model.STREAM_ENV), beside the table arm's StepBench row,
    which keeps the stream in the weights' dtype. The check ships, per batch, the faster of the two
    (storage.steps)."""

    __tablename__ = "ks_step_streams"
    __table_args__ = (UniqueConstraint("run_id", "batch", name="uq_ks_step_streams_run_batch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("ks_step_runs.id", ondelete="CASCADE"))
    batch: Mapped[int] = mapped_column(Integer)
    step_ms: Mapped[float] = mapped_column(Float)
    tok_s: Mapped[float] = mapped_column(Float)
    prefill_ms: Mapped[float | None] = mapped_column(Float)


class StepFold(Base):
    """The fold's part of a StepRun, one row per (benched batch, stream): the decode step with the new
    table, decode attention's combine folded into o_proj (kernel_space.combine_o_proj) and the residual
    stream in `stream` ("model": the weights' dtype, "fixed": fixed point), beside the table arm's and
    the fixed-point arm's rows without the fold. The check ships, per batch, the fastest of them
    (storage.steps); batch 1 only today (the fold's kernel takes one row)."""

    __tablename__ = "ks_step_folds"
    __table_args__ = (
        UniqueConstraint("run_id", "batch", "stream", name="uq_ks_step_folds_run_batch_stream"),
        CheckConstraint(_in("stream", STREAMS), name="ck_ks_step_folds_stream"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("ks_step_runs.id", ondelete="CASCADE"))
    batch: Mapped[int] = mapped_column(Integer)
    stream: Mapped[str] = mapped_column(String(16))
    step_ms: Mapped[float] = mapped_column(Float)
    tok_s: Mapped[float] = mapped_column(Float)
    prefill_ms: Mapped[float | None] = mapped_column(Float)
