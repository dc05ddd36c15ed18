"""End-to-end step benches: a tune's check of its dispatch table against the unfused path and the
table shipped before it (storage.steps).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ks_step_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("fingerprint_id", sa.Integer, sa.ForeignKey("ks_fingerprints.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("dtype", sa.String(16), nullable=False),
        sa.Column("table_hash", sa.String(64), nullable=False),
        sa.Column("table_json", sa.JSON, nullable=False),
        sa.Column("previous_hash", sa.String(64), nullable=True),
        sa.Column("previous_json", sa.JSON, nullable=True),
        sa.Column("context", sa.Integer, nullable=False),
        sa.Column("output_len", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_ks_step_runs_fingerprint_id", "ks_step_runs", ["fingerprint_id"])
    op.create_table(
        "ks_step_benches",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("ks_step_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("arm", sa.String(16), nullable=False),
        sa.Column("batch", sa.Integer, nullable=False),
        sa.Column("step_ms", sa.Float, nullable=False),
        sa.Column("tok_s", sa.Float, nullable=False),
        sa.Column("prefill_ms", sa.Float, nullable=True),
        sa.UniqueConstraint("run_id", "arm", "batch", name="uq_ks_step_benches_run_arm_batch"),
        sa.CheckConstraint("arm IN ('unfused', 'table', 'previous')", name="ck_ks_step_benches_arm"),
    )


def downgrade() -> None:
    op.drop_table("ks_step_benches")
    op.drop_index("ix_ks_step_runs_fingerprint_id", table_name="ks_step_runs")
    op.drop_table("ks_step_runs")
