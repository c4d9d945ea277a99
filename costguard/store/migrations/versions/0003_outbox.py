"""delivery: outbox (pending notifications), messages, ledger per (notification, receiver), receiver_state

The 0001 ledger table was never written by a released version (nothing delivered through it), so
it is replaced rather than migrated.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from costguard.store.types import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _json() -> sa.JSON:
    return sa.JSON(none_as_null=True)


def upgrade() -> None:
    op.drop_index("ix_ledger_fingerprint", table_name="ledger")
    op.drop_table("ledger")
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("finding", _json(), nullable=False),
        sa.Column("detail", _json(), nullable=True),
        sa.Column("done_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["fingerprint"], ["findings.fingerprint"], name="fk_outbox_fingerprint_findings",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
    )
    op.create_index("ix_outbox_done_at", "outbox", ["done_at"])
    op.create_index("ix_outbox_fingerprint_created_at", "outbox", ["fingerprint", "created_at"])
    op.create_table(
        "messages",
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("receiver", sa.String(128), nullable=False),
        sa.Column("group_key", sa.String(512), nullable=False),
        sa.Column("group_labels", _json(), nullable=False),
        sa.Column("items", _json(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("planned_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("message_id", name="pk_messages"),
    )
    op.create_index("ix_messages_receiver_status", "messages", ["receiver", "status"])
    op.create_table(
        "ledger",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("notification_id", sa.Integer(), nullable=False),
        sa.Column("receiver", sa.String(128), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["notification_id"], ["outbox.id"], name="fk_ledger_notification_id_outbox",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_ledger"),
        sa.UniqueConstraint("notification_id", "receiver", name="uq_ledger_notification_id_receiver"),
    )
    op.create_index("ix_ledger_receiver_fingerprint_at", "ledger", ["receiver", "fingerprint", "at"])
    op.create_table(
        "receiver_state",
        sa.Column("receiver", sa.String(128), nullable=False),
        sa.Column("group_key", sa.String(512), nullable=False),
        sa.Column("data", _json(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("receiver", "group_key", name="pk_receiver_state"),
    )


def downgrade() -> None:
    op.drop_table("receiver_state")
    op.drop_index("ix_ledger_receiver_fingerprint_at", table_name="ledger")
    op.drop_table("ledger")
    op.drop_index("ix_messages_receiver_status", table_name="messages")
    op.drop_table("messages")
    op.drop_index("ix_outbox_fingerprint_created_at", table_name="outbox")
    op.drop_index("ix_outbox_done_at", table_name="outbox")
    op.drop_table("outbox")
    op.create_table(
        "ledger",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("group_key", sa.String(512), nullable=False),
        sa.Column("receiver", sa.String(128), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("episode", sa.String(128), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("sent_at", UTCDateTime(), nullable=False),
        sa.Column("receiver_data", _json(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_ledger"),
        sa.UniqueConstraint("group_key", "receiver", "event", "episode",
                            name="uq_ledger_group_key_receiver_event_episode"),
    )
    op.create_index("ix_ledger_fingerprint", "ledger", ["fingerprint"])
