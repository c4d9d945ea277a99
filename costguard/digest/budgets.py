"""Budgets in the digest: every ``budget`` rule's period to date against its amount, the forecast
(the rule's own projection, ``rules.budget.project``) and the day the projected spend crosses the
amount. Evaluated as of the digest week's last day (or today, for a week still running), so
re-making a past week's digest gives the same numbers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal

import polars as pl

from costguard.digest.model import BudgetStatus
from costguard.owners import OwnerResolver, OwnersConfig
from costguard.rules.base import DATE, RATIO_PLACES, RuleInstance, apply_filter
from costguard.rules.budget import BudgetParams, period_bounds, project


def budget_team(rule: RuleInstance, owners: OwnersConfig) -> str | None:
    """The team a budget belongs to: its filter names only accounts of that team, or only values
    of an owner tag (``tag:team``) that mean that team. None: an organisation-wide budget."""
    teams: set[str] = set()
    by_value = OwnerResolver(owners)._by_value()
    tag_keys = {f"tag:{k.strip().lower()}" for k in owners.tag_keys}
    for col, val in rule.filter.items():
        values = [val] if isinstance(val, str) else list(val)
        if col in ("SubAccountId", "BillingAccountId"):
            owners_of = {t for t, cfg in owners.teams.items() for v in values if v in cfg.accounts}
            if len(owners_of) == 1 and all(any(v in cfg.accounts for cfg in owners.teams.values()) for v in values):
                teams |= owners_of
        elif col.lower() in tag_keys:
            mapped = {by_value.get(v.strip().lower(), v if not owners.teams else None) for v in values}
            if len(mapped) == 1 and None not in mapped:
                teams |= mapped  # type: ignore[arg-type]
    return teams.pop() if len(teams) == 1 else None


def _ratio(a: Decimal | None, b: Decimal) -> Decimal | None:
    return None if a is None or b == 0 else (a / b).quantize(RATIO_PLACES)


def breach(daily: dict[date, Decimal], actual: Decimal, rate: Decimal, last: date | None, amount: Decimal,
           end: date) -> date | None:
    """The first day the spend reaches ``amount``: from the data while it is already over, else
    on the projection (the rule's: the trailing day at the larger of its cost and the rate, then
    ``rate`` a day); None when it stays under until the period ends."""
    running = Decimal(0)
    for d in sorted(daily):
        if d > (last or d):
            break
        running += daily[d]
        if running >= amount and d != last:
            return d
    if last is None:
        return None
    projected = actual - daily[last] + max(daily[last], rate)
    if projected >= amount:
        return last
    if rate <= 0:
        return None
    days = math.ceil((amount - projected) / rate)
    day = last + timedelta(days=days)
    return day if day < end else None


def covers(scope: pl.LazyFrame, rule: RuleInstance, metric: str, start: date, end: date) -> bool:
    """Whether the budget's filter keeps every cost of ``scope`` in ``[start, end)`` (its line can
    be drawn over the digest's daily spend)."""
    window = scope.filter((pl.col(DATE) >= start) & (pl.col(DATE) < end))
    a, b = pl.collect_all([window.select(pl.len(), pl.col(metric).sum()),
                           apply_filter(window, rule.filter).select(pl.len(), pl.col(metric).sum())], engine="streaming")
    return a.row(0) == b.row(0) and a.item(0, 0) > 0


def budget_statuses(costs: pl.LazyFrame, rules: Sequence[RuleInstance], owners: OwnersConfig, *,
                    as_of: date, team: str | None, scope: pl.LazyFrame, metric: str,
                    window: tuple[date, date]) -> list[BudgetStatus]:
    """One status per budget rule (only the team's budgets for a team digest). ``scope``: the
    digest's costs, ``window`` its charted days, for ``covers_digest``."""
    chosen = [(r, budget_team(r, owners)) for r in rules if r.kind == "budget"]
    if team is not None:
        chosen = [(r, t) for r, t in chosen if t == team]
    out = []
    for rule, owner in chosen:
        p: BudgetParams = rule.params
        start, end = period_bounds(as_of, p.period)
        lf = apply_filter(costs, rule.filter).filter(pl.col(DATE) <= as_of)
        daily, first, currencies = pl.collect_all([
            lf.filter(pl.col(DATE) >= start - timedelta(days=p.rate_days)).group_by(DATE).agg(pl.col(p.metric).sum().alias("cost")),
            lf.select(pl.col(DATE).min()),
            lf.filter(pl.col(DATE) >= start).select(pl.col("BillingCurrency").drop_nulls().unique()),
        ], engine="streaming")
        common = dict(rule=rule.id, period=p.period, period_start=start, period_end=end, metric=p.metric,
                      currency=p.currency, amount=p.amount, as_of=as_of, filter=dict(rule.filter), team=owner,
                      covers_digest=covers(scope, rule, metric, *window))
        others = sorted(set(currencies["BillingCurrency"]) - {p.currency})
        if others:
            out.append(BudgetStatus(**common, actual=None, actual_ratio=None, forecast=None, forecast_ratio=None,
                                    daily_rate=None, last_data_day=None, status="error", breach_date=None, days_to_breach=None,
                                    error=f"the budget is in {p.currency} but its costs in this period are also in "
                                          f"{', '.join(others)}; add filter: {{BillingCurrency: {p.currency}}}"))
            continue
        costs_by_day = {d: c if c is not None else Decimal(0) for d, c in daily.iter_rows()}
        pr = project(costs_by_day, first.item(), start, end, as_of, p.rate_days)
        in_period = {d: c for d, c in costs_by_day.items() if start <= d <= as_of}
        day = breach(in_period, pr.actual, pr.rate, pr.last_data_day, p.amount, end)
        status = "breached" if pr.actual >= p.amount else "at_risk" if pr.forecast >= p.amount else "ok"
        out.append(BudgetStatus(
            **common, actual=pr.actual, actual_ratio=_ratio(pr.actual, p.amount), forecast=pr.forecast,
            forecast_ratio=_ratio(pr.forecast, p.amount), daily_rate=pr.rate, last_data_day=pr.last_data_day,
            status=status, breach_date=day, days_to_breach=None if day is None else max(0, (day - as_of).days),
        ))
    out.sort(key=lambda b: ({"breached": 0, "at_risk": 1, "error": 2, "ok": 3}[b.status], -(b.forecast_ratio or 0), b.rule))
    return out
