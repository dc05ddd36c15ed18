"""The initial schema: fingerprints, shapes, model links, studies, trials, winners.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _created(name: str = "created_at") -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "ks_fingerprints",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("device_name", sa.String(256), nullable=False),
        sa.Column("capability", sa.String(16), nullable=False),
        sa.Column("sm_count", sa.Integer, nullable=False),
        sa.Column("total_memory", sa.BigInteger, nullable=False),
        sa.Column("driver", sa.String(64), nullable=False),
        sa.Column("cuda", sa.String(64), nullable=False),
        sa.Column("torch", sa.String(64), nullable=False),
        sa.Column("triton", sa.String(64), nullable=False),
        sa.Column("kernel_hashes", sa.JSON, nullable=False),
        _created(),
        sa.UniqueConstraint("key", name="uq_ks_fingerprints_key"),
    )
    op.create_table(
        "ks_shapes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("op", sa.String(64), nullable=False),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("k", sa.Integer, nullable=False),
        sa.Column("dtype", sa.String(16), nullable=False),
        sa.UniqueConstraint("op", "n", "k", "dtype", name="uq_ks_shapes_op_n_k_dtype"),
    )
    op.create_table(
        "ks_model_shapes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("op", sa.String(64), nullable=False),
        sa.Column("dtype", sa.String(16), nullable=False),
        sa.Column("shape_id", sa.Integer, sa.ForeignKey("ks_shapes.id", ondelete="CASCADE"), nullable=False),
        sa.UniqueConstraint("model", "op", "dtype", name="uq_ks_model_shapes_model_op_dtype"),
    )
    op.create_index("ix_ks_model_shapes_model", "ks_model_shapes", ["model"])
    op.create_index("ix_ks_model_shapes_shape_id", "ks_model_shapes", ["shape_id"])
    op.create_table(
        "ks_studies",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("fingerprint_id", sa.Integer, sa.ForeignKey("ks_fingerprints.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("shape_id", sa.Integer, sa.ForeignKey("ks_shapes.id", ondelete="CASCADE"), nullable=False),
        sa.Column("m", sa.Integer, nullable=False),
        sa.Column("optuna_study_name", sa.String(255), nullable=False),
        _created(),
        sa.UniqueConstraint("fingerprint_id", "shape_id", "m", name="uq_ks_studies_fp_shape_m"),
        sa.UniqueConstraint("optuna_study_name", name="uq_ks_studies_optuna_study_name"),
    )
    op.create_index("ix_ks_studies_shape_id", "ks_studies", ["shape_id"])
    op.create_table(
        "ks_trials",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("study_id", sa.Integer, sa.ForeignKey("ks_studies.id", ondelete="CASCADE"), nullable=False),
        sa.Column("trial_number", sa.Integer, nullable=True),
        sa.Column("arm", sa.String(16), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("config_key", sa.String(512), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("rel_error", sa.Float, nullable=True),
        sa.Column("compile_s", sa.Float, nullable=True),
        sa.Column("median_us", sa.Float, nullable=True),
        sa.Column("p20_us", sa.Float, nullable=True),
        sa.Column("p80_us", sa.Float, nullable=True),
        _created(),
        sa.CheckConstraint("arm IN ('fused', 'unfused', 'cublas')", name="ck_ks_trials_arm"),
        sa.CheckConstraint("status IN ('ok', 'failed', 'incorrect')", name="ck_ks_trials_status"),
    )
    op.create_index("ix_ks_trials_study_id", "ks_trials", ["study_id"])
    op.create_table(
        "ks_winners",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("study_id", sa.Integer, sa.ForeignKey("ks_studies.id", ondelete="CASCADE"), nullable=False),
        sa.Column("arm", sa.String(16), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("median_us", sa.Float, nullable=False),
        sa.Column("unfused_us", sa.Float, nullable=False),
        sa.Column("cublas_us", sa.Float, nullable=True),
        sa.Column("floor_us", sa.Float, nullable=True),
        sa.Column("speedup", sa.Float, nullable=False),
        sa.Column("speedup_vs_cublas", sa.Float, nullable=True),
        _created("confirmed_at"),
        sa.UniqueConstraint("study_id", name="uq_ks_winners_study_id"),
        sa.CheckConstraint("arm IN ('fused', 'unfused')", name="ck_ks_winners_arm"),
    )


def downgrade() -> None:
    for table in ("ks_winners", "ks_trials", "ks_studies", "ks_model_shapes", "ks_shapes", "ks_fingerprints"):
        op.drop_table(table)
