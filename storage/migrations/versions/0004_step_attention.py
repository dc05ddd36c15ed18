"""Decode attention in the end-to-end step check: per attention bucket, the step with the table's
attention rows and with the default plan (storage.steps).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ks_step_attention",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("ks_step_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("batch", sa.Integer, nullable=False),
        sa.Column("context", sa.Integer, nullable=False),
        sa.Column("slots", sa.Integer, nullable=False),
        sa.Column("table_ms", sa.Float, nullable=False),
        sa.Column("plan_ms", sa.Float, nullable=False),
        sa.UniqueConstraint("run_id", "batch", "context", name="uq_ks_step_attention_run_batch_context"),
    )


def downgrade() -> None:
    op.drop_table("ks_step_attention")
