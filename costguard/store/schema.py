"""The tables of the state store (SQLAlchemy Core). Migrations in ``migrations/versions`` must
produce exactly this (``tests/test_store.py`` checks there is no drift)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

from .types import Money, UTCDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

RUN_STATUSES = ("running", "ok", "partial", "failed", "cancelled")
TRIGGERS = ("cli", "schedule", "startup")
FINDING_STATUSES = ("open", "snoozed", "resolved")

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("as_of", Date(), nullable=False),
    Column("trigger", String(16), nullable=False),
    Column("dry_run", Boolean(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("providers", JSON(none_as_null=True), nullable=True),
    Column("conformance", JSON(none_as_null=True), nullable=True),
    Column("stats", JSON(none_as_null=True), nullable=True),
    Column("error", Text(), nullable=True),
    Column("backtest", Boolean(), nullable=False, server_default=false()),
    Column("owner_host", String(256), nullable=True),
    Column("owner_pid", Integer(), nullable=True),
    Column("owner_start", String(64), nullable=True),
    Column("heartbeat_at", UTCDateTime(), nullable=True),
    Index(None, "started_at"),
    Index(None, "status"),
)

# One row per provider entry and day already in the cost lake; re-recording replaces it.
windows = Table(
    "windows",
    metadata,
    Column("source", String(128), primary_key=True),
    Column("day", Date(), primary_key=True),
    Column("rows", Integer(), nullable=False),
    Column("billing_accounts", JSON(none_as_null=True), nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("ingested_at", UTCDateTime(), nullable=False),
)

findings = Table(
    "findings",
    metadata,
    Column("fingerprint", String(64), primary_key=True),
    Column("rule", String(200), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("source", String(128), nullable=True),
    Column("provider", String(128), nullable=True),
    Column("billing_account_id", String(256), nullable=True),
    Column("account_id", String(256), nullable=True),
    Column("region", String(128), nullable=True),
    Column("service", String(256), nullable=True),
    Column("resource_id", Text(), nullable=True),
    Column("resource_type", String(256), nullable=True),
    Column("owner", String(256), nullable=True),
    Column("owner_reason", Text(), nullable=True),
    Column("title", Text(), nullable=False),
    Column("summary", Text(), nullable=False),
    Column("monthly_cost", Money(), nullable=False),
    Column("monthly_savings", Money(), nullable=True),
    Column("currency", String(8), nullable=False),
    Column("evidence", JSON(none_as_null=True), nullable=False),
    Column("first_seen", UTCDateTime(), nullable=False),
    Column("last_seen", UTCDateTime(), nullable=False),
    Column("resolved_at", UTCDateTime(), nullable=True),
    Column("last_run_id", String(64), nullable=True),
    Column("times_regressed", Integer(), nullable=False),
    Column("snoozed_until", Date(), nullable=True),
    Column("snooze_reason", Text(), nullable=True),
    Index(None, "status", "kind"),
    Index(None, "rule"),
)

# History of lifecycle changes ('unchanged' is not recorded). run_id is null for CLI snoozes.
finding_events = Table(
    "finding_events",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column(
        "fingerprint",
        String(64),
        ForeignKey("findings.fingerprint", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("run_id", String(64), nullable=True),
    Column("event", String(16), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("detail", JSON(none_as_null=True), nullable=True),
    Index(None, "fingerprint", "at"),
    Index(None, "run_id"),
)

# Delivery ledger: one row per successful send, committed right after the send. The unique key
# is the dedup decision: (group_key, receiver, event, episode). ``episode`` is chosen by the
# delivery layer so that a legitimately repeated event is a new key (e.g. the regression count
# for "regressed", the ISO week for a digest); retrying the same cycle hits the same key.
ledger = Table(
    "ledger",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column("group_key", String(512), nullable=False),
    Column("receiver", String(128), nullable=False),
    Column("event", String(32), nullable=False),
    Column("episode", String(128), nullable=False),
    Column("fingerprint", String(64), nullable=True),
    Column("run_id", String(64), nullable=True),
    Column("sent_at", UTCDateTime(), nullable=False),
    Column("receiver_data", JSON(none_as_null=True), nullable=True),
    UniqueConstraint("group_key", "receiver", "event", "episode"),
    Index(None, "fingerprint"),
)
