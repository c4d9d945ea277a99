"""initial schema: runs, windows, findings, finding_events, ledger

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from costguard.store.types import Money, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _json() -> sa.JSON:
    return sa.JSON(none_as_null=True)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("providers", _json(), nullable=True),
        sa.Column("conformance", _json(), nullable=True),
        sa.Column("stats", _json(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", name="pk_runs"),
    )
    op.create_index("ix_runs_started_at", "runs", ["started_at"])
    op.create_index("ix_runs_status", "runs", ["status"])

    op.create_table(
        "windows",
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("billing_accounts", _json(), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("ingested_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source", "day", name="pk_windows"),
    )

    op.create_table(
        "findings",
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.String(128), nullable=True),
        sa.Column("provider", sa.String(128), nullable=True),
        sa.Column("billing_account_id", sa.String(256), nullable=True),
        sa.Column("account_id", sa.String(256), nullable=True),
        sa.Column("region", sa.String(128), nullable=True),
        sa.Column("service", sa.String(256), nullable=True),
        sa.Column("resource_id", sa.Text(), nullable=True),
        sa.Column("resource_type", sa.String(256), nullable=True),
        sa.Column("owner", sa.String(256), nullable=True),
        sa.Column("owner_reason", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("monthly_cost", Money(), nullable=False),
        sa.Column("monthly_savings", Money(), nullable=True),
        sa.Column("currency", sa.String(8), nullable=False),
        sa.Column("evidence", _json(), nullable=False),
        sa.Column("first_seen", UTCDateTime(), nullable=False),
        sa.Column("last_seen", UTCDateTime(), nullable=False),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("last_run_id", sa.String(64), nullable=True),
        sa.Column("times_regressed", sa.Integer(), nullable=False),
        sa.Column("snoozed_until", sa.Date(), nullable=True),
        sa.Column("snooze_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("fingerprint", name="pk_findings"),
    )
    op.create_index("ix_findings_status_kind", "findings", ["status", "kind"])
    op.create_index("ix_findings_rule", "findings", ["rule"])

    op.create_table(
        "finding_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("detail", _json(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_finding_events"),
        sa.ForeignKeyConstraint(
            ["fingerprint"],
            ["findings.fingerprint"],
            name="fk_finding_events_fingerprint_findings",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_finding_events_fingerprint_at", "finding_events", ["fingerprint", "at"])
    op.create_index("ix_finding_events_run_id", "finding_events", ["run_id"])

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
        sa.UniqueConstraint(
            "group_key", "receiver", "event", "episode",
            name="uq_ledger_group_key_receiver_event_episode",
        ),
    )
    op.create_index("ix_ledger_fingerprint", "ledger", ["fingerprint"])


def downgrade() -> None:
    op.drop_table("ledger")
    op.drop_table("finding_events")
    op.drop_table("findings")
    op.drop_table("windows")
    op.drop_table("runs")
