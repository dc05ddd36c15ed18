"""Decode attention's combine folded into o_proj in the end-to-end step check: per benched batch and
residual stream, the decode step with the new table and the fold, beside its rows without it
(storage.steps).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ks_step_folds",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("ks_step_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("batch", sa.Integer, nullable=False),
        sa.Column("stream", sa.String(16), nullable=False),
        sa.Column("step_ms", sa.Float, nullable=False),
        sa.Column("tok_s", sa.Float, nullable=False),
        sa.Column("prefill_ms", sa.Float, nullable=True),
        sa.UniqueConstraint("run_id", "batch", "stream", name="uq_ks_step_folds_run_batch_stream"),
        sa.CheckConstraint("stream IN ('model', 'fixed')", name="ck_ks_step_folds_stream"),
    )


def downgrade() -> None:
    op.drop_table("ks_step_folds")
