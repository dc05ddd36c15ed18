"""The residual stream in the end-to-end step check: per benched batch, the decode step with the new
table and a fixed-point stream, beside the table arm's (model dtype) row (storage.steps).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ks_step_streams",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("ks_step_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("batch", sa.Integer, nullable=False),
        sa.Column("step_ms", sa.Float, nullable=False),
        sa.Column("tok_s", sa.Float, nullable=False),
        sa.Column("prefill_ms", sa.Float, nullable=True),
        sa.UniqueConstraint("run_id", "batch", name="uq_ks_step_streams_run_batch"),
    )


def downgrade() -> None:
    op.drop_table("ks_step_streams")
