"""The work queue of many workers: queued studies with an owner and a lease, and per-study config claims.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ks_queue",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("study_id", sa.Integer, sa.ForeignKey("ks_studies.id", ondelete="CASCADE"), nullable=False),
        sa.Column("model", sa.String(256), nullable=True),
        sa.Column("trials", sa.Integer, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("study_id", name="uq_ks_queue_study_id"),
        sa.CheckConstraint("state IN ('queued', 'done')", name="ck_ks_queue_state"),
    )
    op.create_table(
        "ks_config_claims",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("study_id", sa.Integer, sa.ForeignKey("ks_studies.id", ondelete="CASCADE"), nullable=False),
        sa.Column("config_key", sa.String(512), nullable=False),
        sa.Column("trial_number", sa.Integer, nullable=True),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("study_id", "config_key", name="uq_ks_config_claims_study_config"),
    )


def downgrade() -> None:
    op.drop_table("ks_config_claims")
    op.drop_table("ks_queue")
