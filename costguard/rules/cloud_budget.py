"""Kind ``cloud-budget``: the budgets defined in the clouds themselves (AWS Budgets, …), evaluated
with their own limits, spend and alert thresholds, so nobody re-declares them in YAML.

Providers return them from ``Provider.budgets()`` (the AWS provider reads DescribeBudgets in every
covered account). A budget's ``actual`` and ``forecast`` describe the period containing the day
they were read, so a budget is only evaluated when the run's as-of day falls in that period
(a backtest of an earlier month skips them). Findings are of kind ``budget`` and carry the
account the budget belongs to.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from pydantic import Field

from costguard.model import SEVERITY_RANK, Finding, NativeBudget, fingerprint
from costguard.rules.base import RULES, Params, RuleContext, RuleInstance, fmt_money, fmt_pct
from costguard.rules.budget import Threshold

FILTER_KEYS = {"x_Source": "source", "ProviderName": "provider", "SubAccountId": "account_id", "BillingCurrency": "currency"}
ADJECTIVE = {"day": "daily", "month": "monthly", "quarter": "quarterly", "year": "annual", "week": "weekly"}


class CloudBudgetParams(Params):
    native_thresholds: bool = Field(True, description="use each budget's own alert thresholds (notifications)")
    default_thresholds: tuple[Threshold, ...] = Field(
        default=(Threshold(on="actual", percent=Decimal(100), severity="critical"),
                 Threshold(on="forecast", percent=Decimal(100), severity="warning")),
        description="thresholds for budgets that define none (or all, with native_thresholds: false)",
    )
    budgets: tuple[str, ...] = Field(default=(), description="only budgets with these names (default: all)")


def current_period(day: date, period: str) -> tuple[date, date] | None:
    """The budget period containing ``day`` as ``[start, end)``; None for custom periods."""
    if period == "day":
        return day, day + timedelta(days=1)
    if period == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    if period in ("month", "quarter", "year"):
        months = {"month": 1, "quarter": 3, "year": 12}[period]
        m0 = (day.month - 1) // months * months
        start = date(day.year, m0 + 1, 1)
        y, m = divmod(m0 + months, 12)
        return start, date(day.year + y, m + 1, 1)
    return None


@RULES.register("cloud-budget")
class CloudBudget:
    """Every budget a provider read from the cloud, against its own limit and thresholds.

    Native thresholds are the budget's notifications (ACTUAL / FORECASTED, a percentage of the
    limit or an absolute amount) and get the rule's ``severity``; a budget without any uses
    ``default_thresholds``. ``filter`` may name ``x_Source``, ``ProviderName``, ``SubAccountId``
    (the budget's account) and ``BillingCurrency``. One finding per budget and period, at the
    highest threshold crossed.

    ```yaml
    - id: aws-budgets
      kind: cloud-budget
      severity: warning
      filter: {ProviderName: AWS}
      native_thresholds: true
      default_thresholds:
        - {on: actual, percent: 100, severity: critical}
        - {on: forecast, percent: 100, severity: warning}
    ```
    """

    finding_kind = "budget"
    Params = CloudBudgetParams

    def evaluate(self, rule: RuleInstance, ctx: RuleContext) -> list[Finding]:
        p: CloudBudgetParams = rule.params
        bad = [k for k in rule.filter if k not in FILTER_KEYS]
        if bad:
            raise ValueError(f"cloud-budget filters by {', '.join(FILTER_KEYS)} only, not {', '.join(bad)}")
        out = []
        for b in ctx.budgets:
            if p.budgets and b.name not in p.budgets:
                continue
            if not all(_matches(getattr(b, FILTER_KEYS[k]), v) for k, v in rule.filter.items()):
                continue
            f = self._one(rule, p, b, ctx.as_of)
            if f is not None:
                out.append(f)
        return out

    def _one(self, rule: RuleInstance, p: CloudBudgetParams, b: NativeBudget, as_of: date) -> Finding | None:
        read = b.read_on or as_of
        bounds = current_period(read, b.period)
        if bounds is None or not (bounds[0] <= as_of < bounds[1]) or b.amount <= 0:
            return None
        start, end = bounds
        actual = b.actual if b.actual is not None else Decimal(0)
        forecast = b.forecast if b.forecast is not None else actual
        crossed = []  # (severity, percent of the limit, on, how the threshold was written)
        native = [t for t in b.thresholds if t.get("comparison", "gt") != "lt"] if p.native_thresholds else []
        for t in native:
            value = actual if t["on"] == "actual" else forecast
            limit = b.amount * Decimal(t["value"]) / 100 if t.get("type", "percent") == "percent" else Decimal(t["value"])
            hit = value >= limit if t.get("comparison") == "eq" else value > limit
            if hit:
                pct = Decimal(t["value"]) if t.get("type", "percent") == "percent" else (limit / b.amount * 100)
                crossed.append((rule.severity, pct, t["on"], "native"))
        if not native:
            for t in p.default_thresholds:
                value = actual if t.on == "actual" else forecast
                if value >= b.amount * t.percent / 100:
                    crossed.append((t.severity, t.percent, t.on, "default"))
        if not crossed:
            return None
        top = max(crossed, key=lambda c: (SEVERITY_RANK[c[0]], c[1], c[2] == "actual"))
        sev, pct, on, origin = top
        value = actual if on == "actual" else forecast
        cur, adj = b.currency, ADJECTIVE.get(b.period, b.period)
        who = f"account {b.account_id}" if b.account_id else b.source
        return Finding(
            fingerprint=fingerprint(rule.id, b.provider, b.account_id, f"budget:{b.name}:period:{start.isoformat()}"),
            rule=rule.id,
            kind=self.finding_kind,
            severity=sev,
            title=(f"{b.provider or b.source} {adj} budget {b.name!r} ({who}): {on} {fmt_money(value, cur, 0)} is "
                   f"{fmt_pct(value / b.amount, 0)}% of {fmt_money(b.amount, cur, 0)}"),
            summary=(f"Budget {b.name!r} defined in {b.provider or 'the cloud'} ({who}): spend {fmt_money(actual, cur)} "
                     f"from {start} (forecast {fmt_money(forecast, cur)} to {end - timedelta(days=1)}) against "
                     f"{fmt_money(b.amount, cur)}. Crossed: " + ", ".join(f"{c[2]} {fmt_pct(c[1] / 100)}%" for c in crossed) + "."),
            monthly_cost=actual,
            monthly_savings=None,
            currency=cur,
            provider=b.provider,
            account_id=b.account_id,
            source=b.source,
            evidence={
                "actual": actual,
                "forecast": forecast,
                "amount": b.amount,
                "threshold_percent": pct,
                "on": on,
                "threshold_origin": origin,
                "overage": (value - b.amount) if value > b.amount else Decimal(0),
                "budget": b.name,
                "period": {"kind": b.period, "start": start.isoformat(), "end": end.isoformat()},
                "read_on": read.isoformat(),
                "thresholds_crossed": [{"on": c[2], "percent": c[1], "severity": c[0], "origin": c[3]} for c in crossed],
                "scope": _plain(dict(b.scope)),
            },
        )


def _matches(value: Any, want: str | list[str]) -> bool:
    return value in (want if isinstance(want, list) else [want])


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, (str, int, float, bool, Decimal)) or v is None:
        return v
    return str(v)
