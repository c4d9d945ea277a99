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

# The outbox: one row per finding change worth telling someone about (new, updated, resolved,
# regressed, unsnoozed, repeat), written in the same transaction as the finding change itself.
# ``finding`` is the finding as `costguard findings --format json` shows it at that moment.
# ``done_at`` is set once every receiver it was routed to has a ledger row for it.
outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column("fingerprint", String(64), ForeignKey("findings.fingerprint", ondelete="CASCADE"), nullable=False),
    Column("event", String(16), nullable=False),
    Column("run_id", String(64), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("finding", JSON(none_as_null=True), nullable=False),
    Column("detail", JSON(none_as_null=True), nullable=True),
    Column("done_at", UTCDateTime(), nullable=True),
    Index(None, "done_at"),
    Index(None, "fingerprint", "created_at"),
)

# One message per receiver x group: planned (committed before the send, so a resend after a crash
# carries the same id and the same content), then sent. ``items`` lists what it carries:
# [{"fingerprint", "event", "notification_ids"}].
messages = Table(
    "messages",
    metadata,
    Column("message_id", String(64), primary_key=True),
    Column("receiver", String(128), nullable=False),
    Column("group_key", String(512), nullable=False),
    Column("group_labels", JSON(none_as_null=True), nullable=False),
    Column("items", JSON(none_as_null=True), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer(), nullable=False),
    Column("last_error", Text(), nullable=True),
    Column("run_id", String(64), nullable=True),
    Column("planned_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime(), nullable=True),
    Index(None, "receiver", "status"),
)

# Delivery ledger: one row per (notification, receiver) once it is settled, committed right after
# the send that carried it. ``outcome``: sent (or written to the shadow file), muted (an exception
# matched), suppressed (the dedup decision said nothing new to tell). The unique key is the
# exactly-once guarantee.
ledger = Table(
    "ledger",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column("notification_id", Integer(), ForeignKey("outbox.id", ondelete="CASCADE"), nullable=False),
    Column("receiver", String(128), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("event", String(16), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("message_id", String(64), nullable=True),
    Column("reason", Text(), nullable=True),
    Column("run_id", String(64), nullable=True),
    Column("at", UTCDateTime(), nullable=False),
    UniqueConstraint("notification_id", "receiver"),
    Index(None, "receiver", "fingerprint", "at"),
)

# What a receiver keeps about a message or ticket it made (Slack ts/channel, Jira key, GitHub
# issue number, PagerDuty dedup key, ServiceNow sys_id), by group key, so a change updates it.
receiver_state = Table(
    "receiver_state",
    metadata,
    Column("receiver", String(128), primary_key=True),
    Column("group_key", String(512), primary_key=True),
    Column("data", JSON(none_as_null=True), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)
