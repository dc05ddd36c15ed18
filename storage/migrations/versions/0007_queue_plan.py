"""The tune run that last queued a study (ks_queue.plan): `tune --gpus` and the workers it starts each
queue the same studies, and a study already queued by the same run is left as it is (a second
enqueue would re-open one a worker has finished since).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ks_queue", sa.Column("plan", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ks_queue") as batch:
        batch.drop_column("plan")
