"""Kind ``budget``: period-to-date spend and its forecast against an amount, with thresholds.

Three sources of budgets, one evaluation: the rule's own ``amount``; every team's budget in
``owners.yaml`` (``teams: true``); the budgets defined in the clouds themselves and delivered by
the providers (``native: true``, e.g. AWS Budgets with their CalculatedSpend).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from fnmatch import fnmatch
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from costguard.model import SEVERITY_RANK, Finding, NativeBudget, fingerprint
from costguard.owners import owner_expr
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

if TYPE_CHECKING:
    import polars as pl

Period = Literal["month", "quarter", "week", "year"]
ADJECTIVE = {"month": "monthly", "quarter": "quarterly", "week": "weekly", "year": "yearly"}


class Threshold(Params):
    """Crossed when the ``on`` value reaches ``percent`` of the budget, or an absolute ``amount``."""

    on: Literal["actual", "forecast"]
    percent: Decimal | None = Field(default=None, gt=0)
    amount: Decimal | None = Field(default=None, gt=0)
    severity: Severity

    @model_validator(mode="after")
    def _one_of(self) -> "Threshold":
        if (self.percent is None) == (self.amount is None):
            raise ValueError("give a threshold either percent (of the budget) or amount (absolute), not both")
        return self

    def limit(self, budget: Decimal) -> Decimal:
        return self.amount if self.amount is not None else budget * self.percent / 100  # type: ignore[operator]

    def text(self, currency: str) -> str:
        return f"{self.on} {fmt_pct(self.percent / 100)}%" if self.percent is not None else f"{self.on} {fmt_money(self.amount, currency)}"  # type: ignore[arg-type,operator]


class BudgetParams(Params):
    amount: Decimal | None = Field(default=None, gt=0)
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
    teams: bool = Field(False, description="one budget per team that has `budget:` in owners.yaml, on the spend it owns")
    native: bool | str = Field(False, description="the providers' own budgets (true, or a name pattern such as 'prod-*')")
    native_thresholds: bool = Field(False, description="with native: use each cloud budget's own alert thresholds "
                                    "where it defines any (the rule's thresholds otherwise)")

    @field_validator("rates")
    @classmethod
    def _rates(cls, v: dict[str, Decimal]) -> dict[str, Decimal]:
        for cur, rate in v.items():
            if not re.fullmatch(r"[A-Z]{3}", cur):
                raise ValueError(f"{cur!r} is not an ISO 4217 code (three capital letters)")
            if rate <= 0:
                raise ValueError(f"rate for {cur} must be above 0")
        return v

    @model_validator(mode="after")
    def _source(self) -> "BudgetParams":
        chosen = sum([self.amount is not None, self.teams, self.native is not False])
        if chosen != 1:
            raise ValueError("a budget rule takes exactly one of: amount (its own budget), teams: true "
                             "(the teams' budgets in owners.yaml) or native: true (the providers' own budgets)")
        return self


def period_bounds(as_of: date, period: Period | str) -> tuple[date, date]:
    """The period containing ``as_of`` as half-open ``[start, end)``; weeks start on Monday."""
    if period == "day":
        return as_of, as_of + timedelta(days=1)
    if period == "week":
        start = as_of - timedelta(days=as_of.weekday())
        return start, start + timedelta(days=7)
    if period == "year":
        return date(as_of.year, 1, 1), date(as_of.year + 1, 1, 1)
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


def days_to_breach(pr: Projection, amount: Decimal, as_of: date) -> int | None:
    """Days from the as-of day until the actual spend reaches ``amount`` at the current rate:
    0 when it already has, None when it does not reach it within the forecast."""
    if pr.actual >= amount:
        return 0
    if pr.forecast < amount or pr.rate <= 0:
        return None
    since = pr.last_data_day or as_of
    reach = since + timedelta(days=math.ceil((amount - pr.actual) / pr.rate))
    return max((reach - as_of).days, 0)


@dataclass(frozen=True)
class _Target:
    """One budget to check: the rule's own, a team's, or a native one."""

    scope: str
    label: str | None
    amount: Decimal
    currency: str
    period: str
    owner: str | None = None
    owner_reason: str | None = None
    source: str | None = None
    team: str | None = None
    native: NativeBudget | None = None


@dataclass(frozen=True)
class BudgetCheck:
    """One budget checked: what it is (``target``), its projection, and the spend in other
    currencies converted (by ``rates``) or left out."""

    target: _Target
    projection: Projection
    converted: dict[str, Decimal]
    excluded: dict[str, Decimal]


@RULES.register("budget")
class Budget:
    """Spend in the current month, quarter, week (Monday start) or year against a budget.

    ``actual`` is the period to date (all charge categories). The forecast adds a daily rate (the
    mean of the ``rate_days`` complete days before the last day with data) for the rest of the
    period. At most one finding per budget and period, at the highest threshold crossed; a
    threshold is a percent of the budget or an absolute amount. ``evidence.days_to_breach`` says
    when the actual spend reaches the budget at the current rate (0: it has).

    Only spend in ``currency`` counts, plus spend in currencies given ``rates`` (converted); spend
    in any other currency is left out and the finding says how much. A budget breach saves nothing
    by itself: ``monthly_savings`` is null and the overrun is in ``evidence.overage``.

    Instead of ``amount``: ``teams: true`` checks every team's ``budget:`` from owners.yaml against
    the spend that team owns (tags, then accounts, then the default owner: the same resolution as
    findings), each finding owned by the team; ``native: true`` checks the budgets the providers
    read from the clouds (their own actual and forecast).

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
        - {on: forecast, amount: 20000, severity: critical}
    ```
    """

    finding_kind = "budget"
    Params = BudgetParams

    def evaluate(self, rule: RuleInstance, ctx: RuleContext) -> list[Finding]:
        p: BudgetParams = rule.params
        out = []
        for c in self.checks(rule, ctx):
            f = self._finding(rule, p, c.target, c.projection, (c.converted, c.excluded), ctx)
            if f is not None:
                out.append(f)
        return out

    def checks(self, rule: RuleInstance, ctx: RuleContext) -> list["BudgetCheck"]:
        """Every budget this rule checks, with its projection, whether a threshold is crossed or
        not (the weekly digest shows them all)."""
        out = []
        for t in self._targets(rule, ctx):
            if t.native is not None:
                b = t.native
                actual = b.actual or Decimal(0)
                pr = Projection(actual, max(b.forecast or actual, actual), Decimal(0), None)
                if b.forecast is not None and b.forecast > actual:
                    start, end = period_bounds(ctx.as_of, b.period)
                    left = (end - ctx.as_of).days - 1
                    pr = Projection(actual, b.forecast, ((b.forecast - actual) / left).quantize(MONEY_PLACES) if left > 0 else Decimal(0), ctx.as_of)
                notes: tuple[dict, dict] = ({}, {})
            else:
                costs = apply_filter(ctx.costs, rule.filter)
                if t.team is not None:
                    assert ctx.owners is not None
                    costs = costs.filter(owner_expr(ctx.owners) == t.team)
                pr, notes = self._project(costs, rule.params, t, ctx)
            out.append(BudgetCheck(t, pr, *notes))
        return out

    # ---- what to check --------------------------------------------------------------------------
    def _targets(self, rule: RuleInstance, ctx: RuleContext) -> list[_Target]:
        p: BudgetParams = rule.params
        if p.amount is not None:
            label = single(rule.filter, "ProviderName") or single(rule.filter, "SubAccountId", "BillingAccountId")
            return [_Target("", label, p.amount, p.currency, p.period, source=single(rule.filter, "x_Source"))]
        if p.teams:
            teams = ctx.owners.teams if ctx.owners is not None else {}
            return [_Target(f"team:{name}", f"team {name}", t.budget.amount, t.budget.currency, t.budget.period,
                            owner=name, owner_reason=f"team budget in owners.yaml (teams.{name}.budget)", team=name)
                    for name, t in sorted(teams.items()) if t.budget is not None]
        pattern = p.native if isinstance(p.native, str) else "*"
        wanted_source = single(rule.filter, "x_Source")
        return [_Target(f"native:{b.source}:{b.name}", f"{b.source} budget {b.name}", b.amount, b.currency, b.period,
                        source=b.source, native=b)
                for b in sorted(ctx.budgets, key=lambda b: (b.source, b.name))
                if fnmatch(b.name, pattern) and (wanted_source is None or b.source == wanted_source)
                # the cloud's figures describe the period of the day they were read: a backtest of
                # another period has nothing to compare them with
                and (b.read_on is None or period_bounds(b.read_on, b.period) == period_bounds(ctx.as_of, b.period))]

    @staticmethod
    def _native_thresholds(rule: RuleInstance, t: _Target) -> tuple[Threshold, ...]:
        """The alert thresholds defined with a cloud budget (AWS Budgets notifications): reaching
        the whole budget on actual spend is critical, anything else takes the rule's severity."""
        out = []
        for th in t.native.thresholds if t.native is not None else ():
            on = "forecast" if str(th.get("on", "actual")).lower().startswith("forecast") else "actual"
            value = Decimal(str(th["value"]))
            absolute = str(th.get("type", "percent")).lower().startswith("abs")
            whole = value >= (t.amount if absolute else 100)
            sev = "critical" if on == "actual" and whole else rule.severity
            out.append(Threshold(on=on, amount=value, severity=sev) if absolute else Threshold(on=on, percent=value, severity=sev))
        return tuple(out)

    def _project(self, lf: pl.LazyFrame, p: BudgetParams, t: _Target, ctx: RuleContext) -> tuple[Projection, tuple[dict, dict]]:
        import polars as pl

        start, end = period_bounds(ctx.as_of, t.period)
        lf = lf.filter(pl.col(DATE) <= ctx.as_of)
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
            costs.setdefault(d, Decimal(0))
            if cur == t.currency:
                costs[d] += c
            elif cur in p.rates:
                costs[d] += (c * p.rates[cur]).quantize(MONEY_PLACES)
                if d >= start:
                    converted[cur] = converted.get(cur, Decimal(0)) + c
            elif d >= start:
                excluded[cur or "(none)"] = excluded.get(cur or "(none)", Decimal(0)) + c
        return project(costs, first.item(), start, end, ctx.as_of, p.rate_days), (converted, excluded)

    # ---- the finding ----------------------------------------------------------------------------
    def _finding(self, rule: RuleInstance, p: BudgetParams, t: _Target, pr: Projection,
                 notes: tuple[dict, dict], ctx: RuleContext) -> Finding | None:
        def value(on: str) -> Decimal:
            return pr.actual if on == "actual" else pr.forecast

        thresholds = self._native_thresholds(rule, t) if p.native_thresholds and t.native is not None else ()
        crossed = [th for th in thresholds or p.thresholds if value(th.on) >= th.limit(t.amount)]
        if not crossed:
            return None
        top = max(crossed, key=lambda th: (SEVERITY_RANK[th.severity], th.limit(t.amount), th.on == "actual"))
        converted, excluded = notes
        start, end = period_bounds(ctx.as_of, t.period)
        cur, adj = t.currency, ADJECTIVE.get(t.period, t.period)
        provider = single(rule.filter, "ProviderName")
        account = single(rule.filter, "SubAccountId", "BillingAccountId") if not t.scope else None
        if t.native is not None:  # a cloud budget belongs to the account that defined it
            provider = t.native.provider or provider
            account = t.native.account_id or account
        last = pr.last_data_day.isoformat() if pr.last_data_day else None
        breach = days_to_breach(pr, t.amount, ctx.as_of)
        money_note = "".join(
            [f" Includes {fmt_money(a, c)} converted at {p.rates[c]} {cur}/{c}." for c, a in sorted(converted.items())]
            + [f" Leaves out {fmt_money(a, c)} spent in {c} (no rate for {c}: add rates: {{{c}: …}})." for c, a in sorted(excluded.items())]
        )
        when = "" if breach is None else " The budget is already spent." if breach == 0 else \
            f" At this rate it is spent in {breach} day(s), on {ctx.as_of + timedelta(days=breach)}."
        source = "the provider's own figures" if t.native is not None else f"{p.metric} from {start} to {ctx.as_of}"
        return Finding(
            fingerprint=fingerprint(rule.id, provider, account, f"period:{start.isoformat()}" + (f"|{t.scope}" if t.scope else "")),
            rule=rule.id,
            kind=self.finding_kind,
            severity=top.severity,
            title=(
                (f"{t.label} {adj} budget: " if t.label else f"{adj.capitalize()} budget {rule.id}: ")
                + f"{top.on} {fmt_money(value(top.on), cur, 0)} is "
                f"{fmt_pct(value(top.on) / t.amount, 0, floor=True)}% of {fmt_money(t.amount, cur, 0)}"
            ),
            summary=(
                f"{source}: {fmt_money(pr.actual, cur)}" + (f" (data to {last})" if t.native is None else "")
                + f"; forecast to {end - timedelta(days=1)}: {fmt_money(pr.forecast, cur)}"
                + (f" at {fmt_money(pr.rate, cur)}/day" if pr.rate else "")
                + f", against a {adj} budget of {fmt_money(t.amount, cur)}. "
                f"Crossed: {', '.join(th.text(cur) for th in crossed)}.{when}{money_note}"
            ),
            monthly_cost=pr.actual,
            monthly_savings=None,  # a budget breach is not money saved by acting; the overrun is evidence.overage
            currency=cur,
            provider=provider,
            billing_account_id=single(rule.filter, "BillingAccountId") if not t.scope else None,
            account_id=account,
            region=single(rule.filter, "RegionId"),
            service=single(rule.filter, "ServiceName"),
            owner=t.owner,
            owner_reason=t.owner_reason,
            source=t.source,
            evidence={
                "actual": pr.actual,
                "forecast": pr.forecast,
                "amount": t.amount,
                "overage": {"actual": max(pr.actual - t.amount, Decimal(0)), "forecast": max(pr.forecast - t.amount, Decimal(0))},
                "threshold_percent": top.percent,
                "threshold_amount": top.limit(t.amount),
                "on": top.on,
                "period": {"kind": t.period, "start": start.isoformat(), "end": end.isoformat()},
                "rate": pr.rate,
                "rate_days": p.rate_days,
                "last_data_day": last,
                "days_to_breach": breach,
                "breach_day": (ctx.as_of + timedelta(days=breach)).isoformat() if breach is not None else None,
                "metric": p.metric,
                "currency": cur,
                "budget": {"team": t.team} if t.team else {"native": {"source": t.native.source, "name": t.native.name}} if t.native else {"rule": rule.id},
                "converted": {c: {"amount": a, "rate": p.rates[c]} for c, a in sorted(converted.items())},
                "excluded": dict(sorted(excluded.items())),
                "thresholds_crossed": [{"on": th.on, "percent": th.percent, "amount": th.amount, "severity": th.severity}
                                       for th in crossed],
            },
        )
