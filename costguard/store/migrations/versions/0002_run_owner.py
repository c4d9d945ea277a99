"""runs: backtest flag and the owning process (host, pid, start time, heartbeat)

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from costguard.store.types import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("backtest", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("owner_host", sa.String(256), nullable=True))
        batch.add_column(sa.Column("owner_pid", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("owner_start", sa.String(64), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        for c in ("heartbeat_at", "owner_start", "owner_pid", "owner_host", "backtest"):
            batch.drop_column(c)
