"""The finding lifecycle, as a pure function: stored rows + this run's findings -> a plan of row
writes, history events and the ``ReconcileResult``. No I/O here; ``Store.reconcile`` loads and
writes.

    never seen                       -> open      "new"
    open, present                    -> open      "updated" (severity/title/summary/owner, or an
                                                  amount moved > 1 cent) else "unchanged"
    snoozed (until >= today), present-> snoozed   "updated"/"unchanged", reported under `snoozed`
    snoozed (until < today), present -> open      "unsnoozed"
    open/snoozed, absent, rule evaluated, source not skipped -> resolved "resolved"
    resolved, present                -> open      "regressed" (times_regressed + 1, first_seen kept);
                                        snoozed instead if a snooze set on it is still running
    open, unchanged, last notification older than ``repeat_after`` (or none) -> "repeat"
Findings under a running snooze are silent: never in ``changes`` (what delivery sends).
Every change is also an outbox row (``Plan.outbox``), written in the same transaction as the
finding, so a change is never stored without its pending notification.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from ..model import SEVERITY_RANK, Finding
from .types import tidy_money, to_money

FINDING_KEYS = (
    "fingerprint", "rule", "kind", "severity", "status", "provider", "billing_account_id",
    "account_id", "region", "service", "resource_id", "resource_type", "owner", "owner_reason",
    "title", "summary", "monthly_cost", "monthly_savings", "currency", "first_seen", "last_seen",
    "evidence", "source", "resolved_at", "snoozed_until", "snooze_reason", "times_regressed",
)  # fmt: skip
ROW_KEYS = FINDING_KEYS + ("last_run_id",)
_FINDING_FIELDS = tuple(f.name for f in fields(Finding))
WATCHED = ("severity", "title", "summary", "owner")
MONEY_FIELDS = ("monthly_cost", "monthly_savings")
CENT = Decimal("0.01")

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    """Finding dicts (after the change) by outcome, and the deliverable ``(event, finding)`` list."""

    new: list[Row] = field(default_factory=list)
    updated: list[Row] = field(default_factory=list)
    unchanged: list[Row] = field(default_factory=list)
    resolved: list[Row] = field(default_factory=list)
    regressed: list[Row] = field(default_factory=list)
    snoozed: list[Row] = field(default_factory=list)
    unsnoozed: list[Row] = field(default_factory=list)
    repeat: list[Row] = field(default_factory=list)
    changes: list[tuple[str, Row]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        names = ("new", "updated", "unchanged", "resolved", "regressed", "snoozed", "unsnoozed", "repeat")
        return {name: len(getattr(self, name)) for name in names}


@dataclass(slots=True)
class Plan:
    inserts: list[Row] = field(default_factory=list)
    updates: list[Row] = field(default_factory=list)
    events: list[Row] = field(default_factory=list)
    outbox: list[Row] = field(default_factory=list)
    result: ReconcileResult = field(default_factory=ReconcileResult)


def to_finding_dict(row: Mapping[str, Any]) -> Row:
    """The public Finding JSON shape (DESIGN.md) of a stored row."""
    return {key: row[key] for key in FINDING_KEYS}


def finding_values(f: Finding) -> Row:
    """The columns a rule owns, normalised as stored (amounts to 10 places)."""
    if f.severity not in SEVERITY_RANK:
        raise ValueError(f"finding {f.fingerprint} ({f.rule}): unknown severity {f.severity!r}")
    values = {name: getattr(f, name) for name in _FINDING_FIELDS}
    values["monthly_cost"] = _money(f.monthly_cost)
    values["monthly_savings"] = _money(f.monthly_savings)
    values["evidence"] = dict(f.evidence or {})
    return values


def _money(value: Any) -> Decimal | None:
    d = to_money(value)  # rounded exactly as the database will keep it
    return None if d is None else tidy_money(d)


def changed_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Fields whose change makes an "updated" event; amounts must move by more than one cent."""
    out: dict[str, dict[str, Any]] = {}
    for key in WATCHED:
        if old[key] != new[key]:
            out[key] = {"from": old[key], "to": new[key]}
    for key in MONEY_FIELDS:
        a, b = old[key], new[key]
        if (a is None) != (b is None) or (a is not None and abs(a - b) > CENT):
            out[key] = {"from": a, "to": b}
    return out


def plan_reconcile(
    findings: Sequence[Finding],
    existing: Mapping[str, Row],
    *,
    run_id: str,
    now: datetime,
    evaluated_rules: Collection[str],
    skip_sources: Collection[str] = (),
    last_notified: Mapping[str, datetime] | None = None,
    repeat_after: timedelta | None = None,
) -> Plan:
    """``existing``: stored rows of every present fingerprint and of every non-resolved finding
    (the row of a present fingerprint may leave out ``evidence``: this run's replaces it).
    ``last_notified``: newest outbox row per open fingerprint; with ``repeat_after``, an open
    unchanged finding not notified for that long (or never) gets a "repeat" notification."""
    last_notified = last_notified or {}
    today = now.date()
    evaluated, skipped = frozenset(evaluated_rules), frozenset(skip_sources)
    present: dict[str, Finding] = {}
    for f in findings:
        if f.fingerprint in present:
            raise ValueError(f"two findings share fingerprint {f.fingerprint} (rule {f.rule})")
        present[f.fingerprint] = f

    plan = Plan()
    res = plan.result

    def event(row: Row, name: str, detail: dict[str, Any] | None = None) -> None:
        fp = row["fingerprint"]
        plan.events.append(
            {"fingerprint": fp, "run_id": run_id, "event": name, "at": now, "detail": detail}
        )

    def change(name: str, bucket: list[Row], row: Row, detail: dict[str, Any] | None = None) -> None:
        finding = to_finding_dict(row)
        bucket.append(finding)
        res.changes.append((name, finding))
        plan.outbox.append({"fingerprint": finding["fingerprint"], "event": name, "run_id": run_id,
                            "created_at": now, "finding": finding, "detail": detail, "done_at": None})

    for fp, f in present.items():
        values = finding_values(f)
        old = existing.get(fp)
        if old is None:
            row = {
                **values, "status": "open", "first_seen": now, "last_seen": now,
                "resolved_at": None, "last_run_id": run_id, "times_regressed": 0,
                "snoozed_until": None, "snooze_reason": None,
            }  # fmt: skip
            plan.inserts.append(row)
            event(row, "new")
            change("new", res.new, row)
            continue

        row = {**old, **values, "last_seen": now, "last_run_id": run_id}
        diff = changed_fields(old, row)
        detail = {"changed": diff} if diff else None
        snooze_running = old["snoozed_until"] is not None and old["snoozed_until"] >= today
        plan.updates.append(row)
        if old["status"] == "resolved":
            row["times_regressed"] = old["times_regressed"] + 1
            row["resolved_at"] = None
            event(row, "regressed", {"times_regressed": row["times_regressed"], **(detail or {})})
            if snooze_running:
                row["status"] = "snoozed"
                res.snoozed.append(to_finding_dict(row))
            else:
                row.update(status="open", snoozed_until=None, snooze_reason=None)
                change("regressed", res.regressed, row, detail)
        elif old["status"] == "snoozed" and snooze_running:
            if diff:
                event(row, "updated", detail)
            res.snoozed.append(to_finding_dict(row))
        elif old["status"] == "snoozed":
            row.update(status="open", snoozed_until=None, snooze_reason=None)
            event(row, "unsnoozed", detail)
            change("unsnoozed", res.unsnoozed, row, detail)
        elif diff:
            event(row, "updated", detail)
            change("updated", res.updated, row, detail)
        else:
            res.unchanged.append(to_finding_dict(row))
            last = last_notified.get(fp)
            if repeat_after is not None and (last is None or now - last >= repeat_after):
                change("repeat", res.repeat, row)

    for fp in sorted(existing):
        old = existing[fp]
        if fp in present or old["status"] == "resolved":
            continue
        if old["rule"] not in evaluated or old["source"] in skipped:
            continue
        row = {**old, "status": "resolved", "resolved_at": now}
        plan.updates.append(row)
        event(row, "resolved")
        if not (old["snoozed_until"] is not None and old["snoozed_until"] >= today):
            change("resolved", res.resolved, row)
        else:
            res.resolved.append(to_finding_dict(row))
    return plan
