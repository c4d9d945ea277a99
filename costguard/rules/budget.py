"""Kind ``budget``: period-to-date spend and its forecast against an amount, with thresholds."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Literal

import polars as pl
from pydantic import Field, field_validator

from costguard.model import SEVERITY_RANK, Finding, fingerprint
from costguard.rules.base import (
    DATE,
    MONEY_PLACES,
    RULES,
    Metric,
    Params,
    RuleContext,
    RuleInstance,
    Severity,
    apply_filter,
    fmt_money,
    fmt_pct,
    single,
)

Period = Literal["month", "quarter", "week"]
ADJECTIVE = {"month": "monthly", "quarter": "quarterly", "week": "weekly"}


class Threshold(Params):
    on: Literal["actual", "forecast"]
    percent: Decimal = Field(gt=0)
    severity: Severity


class BudgetParams(Params):
    amount: Decimal = Field(gt=0)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    period: Period = "month"
    metric: Metric = "BilledCost"
    thresholds: tuple[Threshold, ...] = Field(min_length=1)
    rate_days: int = Field(default=7, ge=1)
    rates: dict[str, Decimal] = Field(
        default_factory=dict,
        description="spend in other currencies counts converted at these rates (1 unit of the key = rate units of "
                    "`currency`); spend in a currency without a rate is left out and the finding says so",
    )

    @field_validator("rates")
    @classmethod
    def _rates(cls, v: dict[str, Decimal]) -> dict[str, Decimal]:
        for cur, rate in v.items():
            if not re.fullmatch(r"[A-Z]{3}", cur):
                raise ValueError(f"{cur!r} is not an ISO 4217 code (three capital letters)")
            if rate <= 0:
                raise ValueError(f"rate for {cur} must be above 0")
        return v


def period_bounds(as_of: date, period: Period) -> tuple[date, date]:
    """The period containing ``as_of`` as half-open ``[start, end)``; weeks start on Monday."""
    if period == "week":
        start = as_of - timedelta(days=as_of.weekday())
        return start, start + timedelta(days=7)
    months = 3 if period == "quarter" else 1
    m0 = (as_of.month - 1) // months * months  # 0-based first month of the period
    start = date(as_of.year, m0 + 1, 1)
    y, m = divmod(m0 + months, 12)
    return start, date(as_of.year + y, m + 1, 1)


@dataclass(frozen=True)
class Projection:
    actual: Decimal
    forecast: Decimal
    rate: Decimal
    last_data_day: date | None


def project(daily: dict[date, Decimal], first_day: date | None, start: date, end: date, as_of: date, rate_days: int) -> Projection:
    """Actual over ``[start, as_of]`` and a forecast to ``end`` that ignores the trailing partial day.

    ``daily`` maps days with data to their cost; days without rows count as zero.
    """
    in_period = [d for d in daily if start <= d <= as_of]
    if not in_period:
        return Projection(Decimal(0), Decimal(0), Decimal(0), None)
    last = max(in_period)
    actual = sum((daily[d] for d in in_period), Decimal(0))
    lo = max(last - timedelta(days=rate_days), first_day or last)
    n = (last - lo).days
    if n <= 0:
        rate = daily[last]
    else:
        rate = (sum((v for d, v in daily.items() if lo <= d < last), Decimal(0)) / n).quantize(MONEY_PLACES)
    remaining = (end - last).days - 1
    forecast = actual - daily[last] + max(daily[last], rate) + rate * remaining
    return Projection(actual, max(forecast, actual), rate, last)


@RULES.register("budget")
class Budget:
    """Spend in the current month, quarter or week (Monday start) against ``amount``.

    ``actual`` is the period to date (all charge categories). The forecast adds a daily rate (the
    mean of the ``rate_days`` complete days before the last day with data) for the rest of the
    period. At most one finding per rule and period, at the highest threshold crossed.

    Only spend in ``currency`` counts, plus spend in currencies given ``rates`` (converted); spend
    in any other currency is left out and the finding says how much. A budget breach saves nothing
    by itself: ``monthly_savings`` is null and the overrun is in ``evidence.overage``.

    ```yaml
    - id: aws-monthly-budget
      kind: budget
      severity: warning
      filter: {ProviderName: AWS}
      amount: 15000
      currency: USD
      period: month
      metric: BilledCost
      rate_days: 7
      rates: {EUR: 1.08}   # 1 EUR = 1.08 USD; spend in EUR counts, converted
      thresholds:
        - {on: actual, percent: 80, severity: warning}
        - {on: actual, percent: 100, severity: critical}
        - {on: forecast, percent: 100, severity: warning}
    ```
    """

    finding_kind = "budget"
    Params = BudgetParams

    def evaluate(self, rule: RuleInstance, ctx: RuleContext) -> list[Finding]:
        p: BudgetParams = rule.params
        start, end = period_bounds(ctx.as_of, p.period)
        lf = apply_filter(ctx.costs, rule.filter).filter(pl.col(DATE) <= ctx.as_of)
        daily_by_cur, first = pl.collect_all(
            [
                lf.filter(pl.col(DATE) >= start - timedelta(days=p.rate_days))
                .group_by(DATE, "BillingCurrency")
                .agg(pl.col(p.metric).sum().alias("cost")),
                lf.select(pl.col(DATE).min()),
            ],
            engine="streaming",
        )
        costs: dict[date, Decimal] = {}
        converted: dict[str, Decimal] = {}
        excluded: dict[str, Decimal] = {}
        for d, cur, c in daily_by_cur.iter_rows():
            c = c if c is not None else Decimal(0)
            if cur == p.currency:
                costs[d] = costs.get(d, Decimal(0)) + c
            elif cur in p.rates:
                costs[d] = costs.get(d, Decimal(0)) + (c * p.rates[cur]).quantize(MONEY_PLACES)
                if d >= start:
                    converted[cur] = converted.get(cur, Decimal(0)) + c
            elif d >= start:
                excluded[cur or "(none)"] = excluded.get(cur or "(none)", Decimal(0)) + c
        for d, _cur, _c in daily_by_cur.iter_rows():
            costs.setdefault(d, Decimal(0))
        pr = project(costs, first.item(), start, end, ctx.as_of, p.rate_days)

        def value(on: str) -> Decimal:
            return pr.actual if on == "actual" else pr.forecast

        crossed = [t for t in p.thresholds if value(t.on) >= p.amount * t.percent / 100]
        if not crossed:
            return []
        top = max(crossed, key=lambda t: (SEVERITY_RANK[t.severity], t.percent, t.on == "actual"))
        provider = single(rule.filter, "ProviderName")
        account = single(rule.filter, "SubAccountId", "BillingAccountId")
        label = provider or account
        cur, adj = p.currency, ADJECTIVE[p.period]
        last = pr.last_data_day.isoformat() if pr.last_data_day else None
        money_note = "".join(
            [f" Includes {fmt_money(a, c)} converted at {p.rates[c]} {cur}/{c}." for c, a in sorted(converted.items())]
            + [f" Leaves out {fmt_money(a, c)} spent in {c} (no rate for {c}: add rates: {{{c}: …}})." for c, a in sorted(excluded.items())]
        )
        return [
            Finding(
                fingerprint=fingerprint(rule.id, provider, account, f"period:{start.isoformat()}"),
                rule=rule.id,
                kind=self.finding_kind,
                severity=top.severity,
                title=(
                    (f"{label} {adj} budget: " if label else f"{adj.capitalize()} budget {rule.id}: ")
                    + f"{top.on} {fmt_money(value(top.on), cur, 0)} is "
                    f"{fmt_pct(value(top.on) / p.amount, 0, floor=True)}% of {fmt_money(p.amount, cur, 0)}"
                ),
                summary=(
                    f"{p.metric} from {start} to {ctx.as_of}: {fmt_money(pr.actual, cur)} "
                    f"(data to {last or 'none'}); forecast to {end - timedelta(days=1)}: {fmt_money(pr.forecast, cur)} "
                    f"at {fmt_money(pr.rate, cur)}/day, against a {adj} budget of {fmt_money(p.amount, cur)}. "
                    f"Crossed: {', '.join(f'{t.on} {fmt_pct(t.percent / 100)}%' for t in crossed)}.{money_note}"
                ),
                monthly_cost=pr.actual,
                monthly_savings=None,  # a budget breach is not money saved by acting; the overrun is evidence.overage
                currency=cur,
                provider=provider,
                billing_account_id=single(rule.filter, "BillingAccountId"),
                account_id=account,
                region=single(rule.filter, "RegionId"),
                service=single(rule.filter, "ServiceName"),
                source=single(rule.filter, "x_Source"),
                evidence={
                    "actual": pr.actual,
                    "forecast": pr.forecast,
                    "amount": p.amount,
                    "overage": {"actual": max(pr.actual - p.amount, Decimal(0)), "forecast": max(pr.forecast - p.amount, Decimal(0))},
                    "threshold_percent": top.percent,
                    "on": top.on,
                    "period": {"kind": p.period, "start": start.isoformat(), "end": end.isoformat()},
                    "rate": pr.rate,
                    "rate_days": p.rate_days,
                    "last_data_day": last,
                    "metric": p.metric,
                    "currency": cur,
                    "converted": {c: {"amount": a, "rate": p.rates[c]} for c, a in sorted(converted.items())},
                    "excluded": dict(sorted(excluded.items())),
                    "thresholds_crossed": [{"on": t.on, "percent": t.percent, "severity": t.severity} for t in crossed],
                },
            )
        ]
