"""Findings in the digest: open findings by kind with the money at stake, what became new and what
was fixed during the week, the savings measured on the bill for fixed findings, and the week's
anomalies. Reads finding rows and history events (from the state store) and, for realised
savings, the lake's rollup.

Money follows the cycle footer's rule (``cycle.footer_lines``): cost adds up resource-level
findings only, each resource once (its largest finding), because scope findings (tag coverage,
budgets, anomalies) contain resource findings or each other; savings add up each resource (or
scope) once, at its largest. Always per currency.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import polars as pl

from costguard.digest.model import (
    Anomaly,
    FindingLine,
    FindingsSummary,
    KindMoney,
    KindSummary,
    MoneyTotal,
    Realised,
)
from costguard.model import KINDS, SEVERITIES, SEVERITY_RANK
from costguard.rules.base import DATE, MONEY_PLACES

OPENING = ("new", "regressed")
MEASURE_DAYS = 7
LIST_LIMIT = 10


class FindingsSource(Protocol):
    """What the digest reads from the state store (``costguard.store.Store`` is one)."""

    def list_findings(self, *, status: str = "open") -> list[dict]: ...

    def finding_events_between(self, start: datetime, end: datetime) -> list[dict]: ...


@dataclass(frozen=True)
class FindingsSnapshot:
    """A :class:`FindingsSource` read once: every finding, and the events of one window."""

    rows: list[dict]
    events: list[dict]
    start: datetime
    end: datetime

    @classmethod
    def read(cls, source: FindingsSource, start: datetime, end: datetime) -> "FindingsSnapshot":
        return cls(source.list_findings(status="all"), source.finding_events_between(start, end), start, end)

    def list_findings(self, *, status: str = "open") -> list[dict]:
        return [r for r in self.rows if status == "all" or r["status"] == status]

    def finding_events_between(self, start: datetime, end: datetime) -> list[dict]:
        if start < self.start or end > self.end:
            raise ValueError(f"this snapshot holds events from {self.start} to {self.end} only")
        return [e for e in self.events if start <= e["at"] < end]


def _line(f: Mapping[str, Any], at: datetime | None) -> FindingLine:
    return FindingLine(f["fingerprint"], f["kind"], f["severity"], f["status"], f["title"], f.get("owner"),
                       f.get("resource_id"), f["monthly_cost"], f.get("monthly_savings"), f.get("currency") or "USD", at)


def _by_money(lines: Iterable[FindingLine]) -> list[FindingLine]:
    return sorted(lines, key=lambda x: (-SEVERITY_RANK.get(x.severity, 0), -x.monthly_cost, x.fingerprint))


def kind_money(findings: Sequence[Mapping[str, Any]]) -> list[KindMoney]:
    """Per currency: resource cost (each resource once) and savings (each resource/scope once)."""
    cost: dict[str, dict[tuple, Decimal]] = {}
    save: dict[str, dict[tuple, Decimal]] = {}
    for f in findings:
        cur = f.get("currency") or "USD"
        key = (f.get("provider"), f.get("account_id"), f.get("resource_id") or f["fingerprint"])
        if f.get("resource_id"):
            c = cost.setdefault(cur, {})
            c[key] = max(c.get(key, Decimal(0)), f.get("monthly_cost") or Decimal(0))
        if f.get("monthly_savings") is not None:
            s = save.setdefault(cur, {})
            s[key] = max(s.get(key, Decimal(0)), f["monthly_savings"])
    return [
        KindMoney(cur, sum(cost.get(cur, {}).values(), Decimal(0)),
                  sum(save[cur].values(), Decimal(0)) if cur in save else None, len(cost.get(cur, {})))
        for cur in sorted(set(cost) | set(save))
    ]


def week_changes(events: Sequence[Mapping[str, Any]]) -> tuple[dict[str, datetime], dict[str, datetime]]:
    """(fingerprint → when it became new/regressed, fingerprint → when it was fixed) in the week.
    Fixed: its last lifecycle event of the week is "resolved" (a finding fixed and back again
    within the week is not fixed)."""
    opened: dict[str, datetime] = {}
    last: dict[str, tuple[str, datetime]] = {}
    for e in events:
        fp, ev = e["fingerprint"], e["event"]
        if ev in OPENING:
            opened.setdefault(fp, e["at"])
        if ev in (*OPENING, "resolved", "unsnoozed"):
            last[fp] = (ev, e["at"])
    fixed = {fp: at for fp, (ev, at) in last.items() if ev == "resolved"}
    return opened, fixed


def realised_savings(costs: pl.LazyFrame, fixed: Sequence[Mapping[str, Any]], *, metric: str,
                     days_by_source: Mapping[str, Collection[date]], today: date) -> list[Realised]:
    """For fixed resource findings that promised a saving: the resource's cost per 30 days before
    (the ``MEASURE_DAYS`` days before it was last seen open) and after (up to ``MEASURE_DAYS`` days
    with data, starting the day after it was resolved, before ``today``). Days with data are the
    finding's source's days (a deleted resource has no rows: those days count as zero)."""
    chosen = [f for f in fixed if f.get("resource_id") and f.get("monthly_savings") is not None and f.get("resolved_at")]
    if not chosen:
        return []
    all_days = set().union(*days_by_source.values()) if days_by_source else set()
    windows = []
    for f in chosen:
        have = set(days_by_source.get(f.get("source") or "", ())) or all_days
        seen, resolved = f["last_seen"].date(), f["resolved_at"].date()
        before = [d for d in (seen - timedelta(days=i) for i in range(1, MEASURE_DAYS + 1)) if d in have]
        after = sorted(d for d in have if resolved < d < today)[:MEASURE_DAYS]
        windows.append((f, before, after))
    wanted = sorted({f["resource_id"] for f in chosen})
    days = sorted({d for _, b, a in windows for d in (*b, *a)})
    frame = (
        costs.filter(pl.col("ResourceId").is_in(wanted) & pl.col(DATE).is_in(days))
        .group_by("ResourceId", DATE, "BillingCurrency").agg(pl.col(metric).sum())
        .collect(engine="streaming")
    ) if days else None
    daily: dict[tuple[str, date, str], Decimal] = {}
    for r in frame.iter_rows(named=True) if frame is not None else ():
        daily[(r["ResourceId"], r[DATE], r["BillingCurrency"])] = r[metric]
    def monthly(resource: str, cur: str, ds: list[date]) -> Decimal | None:
        if not ds:
            return None
        total = sum((daily.get((resource, d, cur), Decimal(0)) for d in ds), Decimal(0))
        return (total * 30 / len(ds)).quantize(MONEY_PLACES)

    out = []
    for f, before, after in windows:
        cur = f.get("currency") or "USD"
        b, a = monthly(f["resource_id"], cur, before), monthly(f["resource_id"], cur, after)
        out.append(Realised(f["fingerprint"], f["title"], f["resource_id"], cur, f.get("monthly_savings"), b, a,
                            b - a if b is not None and a is not None else None, len(before), len(after)))
    return out


def findings_summary(findings: Sequence[Mapping[str, Any]], events: Sequence[Mapping[str, Any]], *,
                     costs: pl.LazyFrame, days_by_source: Mapping[str, Collection[date]], today: date,
                     team: str | None, metric: str, state_as_of: datetime | None) -> FindingsSummary:
    """``findings``: every stored finding (any status); ``events``: the week's history events;
    ``costs``: the whole rollup (a fixed resource is measured wherever its rows are)."""
    mine = [f for f in findings if team is None or f.get("owner") == team]
    by_fp = {f["fingerprint"]: f for f in mine}
    opened, fixed = week_changes([e for e in events if e["fingerprint"] in by_fp])
    open_now = [f for f in mine if f["status"] == "open"]
    kinds = sorted({f["kind"] for f in open_now} | {by_fp[fp]["kind"] for fp in (*opened, *fixed)},
                   key=lambda k: (KINDS.index(k) if k in KINDS else len(KINDS), k))
    by_kind = []
    for k in kinds:
        of_kind = [f for f in open_now if f["kind"] == k]
        by_kind.append(KindSummary(
            kind=k, open=len(of_kind),
            by_severity={s: n for s in reversed(SEVERITIES) if (n := sum(1 for f in of_kind if f["severity"] == s))},
            scope_findings=sum(1 for f in of_kind if not f.get("resource_id")),
            new=sum(1 for fp in opened if by_fp[fp]["kind"] == k),
            fixed=sum(1 for fp in fixed if by_fp[fp]["kind"] == k),
            money=kind_money(of_kind),
        ))
    fixed_rows = [by_fp[fp] for fp in fixed]
    realised = realised_savings(costs, fixed_rows, metric=metric, days_by_source=days_by_source, today=today)
    totals: dict[str, Decimal] = {}
    for r in realised:
        if r.realised_monthly_savings is not None:
            totals[r.currency] = totals.get(r.currency, Decimal(0)) + r.realised_monthly_savings
    return FindingsSummary(
        open=len(open_now),
        by_kind=by_kind,
        new_this_week=_by_money(_line(by_fp[fp], at) for fp, at in opened.items())[:LIST_LIMIT],
        fixed_this_week=_by_money(_line(by_fp[fp], at) for fp, at in fixed.items())[:LIST_LIMIT],
        realised_savings=sorted(realised, key=lambda r: (-(r.realised_monthly_savings or Decimal(0)), r.fingerprint)),
        realised_savings_total=[MoneyTotal(c, totals[c]) for c in sorted(totals)],
        state_as_of=state_as_of,
    )


def anomalies(findings: Sequence[Mapping[str, Any]], events: Sequence[Mapping[str, Any]], *, team: str | None) -> list[Anomaly]:
    """Anomaly findings open now or with a history event during the week, largest first."""
    touched = {e["fingerprint"] for e in events}
    out = [
        Anomaly(f["fingerprint"], f["title"], f["severity"], f["status"], f.get("provider"), f.get("account_id"),
                f.get("service"), f.get("resource_id"), f.get("owner"), f["monthly_cost"], f.get("currency") or "USD",
                f["first_seen"], f["last_seen"])
        for f in findings
        if f["kind"] == "anomaly" and (team is None or f.get("owner") == team)
        and (f["status"] == "open" or f["fingerprint"] in touched)
    ]
    return sorted(out, key=lambda a: (-SEVERITY_RANK.get(a.severity, 0), -a.monthly_cost, a.fingerprint))
