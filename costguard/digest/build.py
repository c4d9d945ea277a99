"""``build_digest``: the digest's data for one ISO week and one audience (the organisation or an
owner team), from the lake's rollup, the rules, the owners and the state store. No I/O of its own:
every input is handed in (``app.py`` reads the lake and opens the store)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

import polars as pl

from costguard.digest.budgets import budget_statuses
from costguard.digest.coverage import coverage_series
from costguard.digest.findings import FindingsSnapshot, FindingsSource, anomalies, findings_summary
from costguard.digest.model import Digest
from costguard.digest.spend import AVERAGE_WEEKS, TEAM, TRACKED_WEEKS, Presence, data_notes, full_week, spend_report
from costguard.digest.weeks import IsoWeek, local_today
from costguard.owners import OwnersConfig, owner_expr
from costguard.rules.base import DATE, RuleInstance, TAGS
from costguard.rules.budget import period_bounds

#: rollup columns the digest reads besides rule filters and metrics
READ = ("x_Source", DATE, "BillingCurrency", "ProviderName", "BillingAccountId", "SubAccountId", "SubAccountName",
        "ServiceName", "ResourceId", "ResourceName", "ChargeCategory", TAGS)


@dataclass(frozen=True)
class DigestInputs:
    """What a digest is made from."""

    costs: pl.LazyFrame                              # the lake's daily rollup (every source)
    days_by_source: Mapping[str, Collection[date]]   # days stored per source (the lake's partitions)
    rules: Sequence[RuleInstance]
    owners: OwnersConfig
    store: FindingsSource | None                     # None: no cycle has run yet
    anomaly_kind: bool = False                       # a registered rule kind makes "anomaly" findings
    ingested: Mapping[str, Mapping[date, datetime]] = field(default_factory=dict)  # when each day was read
    settle_hours: int = 24                           # a day read sooner after it ended may still be arriving
    recent: pl.LazyFrame | None = None               # ``costs`` narrowed to what the digest reads, with ``_team``, in memory

    def cached(self, *, week: IsoWeek, metric: str, today: date, timezone: str) -> "DigestInputs":
        """These inputs with the rollup days and columns a digest of ``week`` reads collected once
        (with each row's team), and the findings read once, for making several audiences' digests
        from one read (realised savings still read ``costs``)."""
        first = earliest_day(week, self.rules, today)
        cols = {*READ, metric, *(getattr(r.params, "metric", metric) for r in self.rules),
                *(c for r in self.rules for c in r.filter if not c.startswith("tag:"))}
        have = self.costs.collect_schema().names()
        frame = (self.costs.filter(pl.col(DATE) >= first).select([c for c in have if c in cols])
                 .with_columns(owner_expr(self.owners).alias(TEAM)).collect(engine="streaming"))
        store = FindingsSnapshot.read(self.store, *week.instants(timezone)) if self.store is not None else None
        return replace(self, recent=frame.lazy(), store=store)


def teams_of(owners: OwnersConfig) -> list[str]:
    names = set(owners.teams)
    if owners.default:
        names.add(owners.default)
    return sorted(names)


def earliest_day(week: IsoWeek, rules: Sequence[RuleInstance], today: date) -> date:
    """The first charge day any part of a digest of ``week`` reads (the trend weeks, and each
    budget's period start less its rate days); realised savings may read earlier days."""
    as_of = min(week.end - timedelta(days=1), today)
    first = week.shift(1 - TRACKED_WEEKS).start
    for r in rules:
        if r.kind == "budget":
            first = min(first, period_bounds(as_of, r.params.period)[0] - timedelta(days=r.params.rate_days))
    return first


def build_digest(inputs: DigestInputs, *, week: IsoWeek, team: str | None, metric: str, timezone: str,
                 now: datetime, top: int = 5, warnings: Sequence[str] = ()) -> Digest:
    today = local_today(now, timezone)
    presence = Presence(inputs.days_by_source, inputs.ingested, timedelta(hours=inputs.settle_hours), today)
    notes, pairs = data_notes(week, presence, warnings)
    costs = inputs.recent if inputs.recent is not None else inputs.costs.with_columns(owner_expr(inputs.owners).alias(TEAM))
    scoped = costs
    if team is not None:
        scoped = scoped.filter(pl.col(TEAM) == team)
    full = [k for k in range(1, AVERAGE_WEEKS + 1) if full_week(week.shift(-k), presence, notes.sources)]
    spend = spend_report(scoped, week=week, metric=metric, pairs=pairs, full_weeks=full,
                         this_week_complete=notes.this_week.complete, top=top)
    as_of = min(week.end - timedelta(days=1), today)
    budgets = budget_statuses(costs, inputs.rules, inputs.owners, as_of=as_of, team=team, scope=scoped,
                              metric=metric, window=(week.shift(1 - TRACKED_WEEKS).start, week.end))
    coverage = coverage_series(scoped, inputs.rules, week=week, weeks=TRACKED_WEEKS)
    summary = anomaly_list = None
    if inputs.store is not None:
        start, end = week.instants(timezone)
        rows = inputs.store.list_findings(status="all")
        events = inputs.store.finding_events_between(start, end)
        summary = findings_summary(rows, events, costs=inputs.costs, days_by_source=inputs.days_by_source, today=today,
                                   team=team, metric=metric, state_as_of=now)
        if inputs.anomaly_kind or any(f["kind"] == "anomaly" for f in rows):
            anomaly_list = anomalies(rows, events, team=team)
    return Digest(
        week=str(week), start=week.start, end=week.end, timezone=timezone, team=team, metric=metric,
        generated_at=now, data=notes, totals=spend.totals, by_provider=spend.by_provider,
        by_account=spend.by_account, by_service=spend.by_service, by_team=spend.by_team, movers=spend.movers,
        daily=spend.daily, budgets=budgets, coverage=coverage, findings=summary, anomalies=anomaly_list,
        teams=teams_of(inputs.owners),
    )
