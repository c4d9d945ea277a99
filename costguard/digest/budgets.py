"""Budgets in the digest: every budget the ``budget`` rules check (a rule's own amount, each team's
budget from owners.yaml), from the rule itself (``Budget.checks``): period to date, the rule's
forecast, and the day the spend reaches the amount (``rules.budget.days_to_breach``). Evaluated
as of the digest week's last day (or today, for a week still running), so re-making a past
week's digest gives the same numbers.

The providers' own (native) budgets are read from the clouds during a cycle and are not stored;
they reach people as budget findings, not in the digest's table."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal

import polars as pl

from costguard.digest.model import BudgetStatus
from costguard.owners import OwnerResolver, OwnersConfig, owner_expr
from costguard.rules.base import DATE, RATIO_PLACES, RuleContext, RuleInstance, apply_filter
from costguard.rules.budget import Budget, BudgetCheck, BudgetParams, days_to_breach, period_bounds


def budget_team(rule: RuleInstance, owners: OwnersConfig) -> str | None:
    """The team a rule's own budget belongs to: its filter names only accounts of that team, or
    only values of an owner tag (``tag:team``) that mean that team. None: an organisation budget."""
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


def _scope(costs: pl.LazyFrame, rule: RuleInstance, check: BudgetCheck, owners: OwnersConfig) -> pl.LazyFrame:
    lf = apply_filter(costs, rule.filter)
    return lf.filter(owner_expr(owners) == check.target.team) if check.target.team is not None else lf


def covers(scope: pl.LazyFrame, budget_rows: pl.LazyFrame, metric: str, start: date, end: date) -> bool:
    """Whether the budget's rows are every cost of ``scope`` in ``[start, end)`` (its line can be
    drawn over the digest's daily spend)."""
    def window(lf: pl.LazyFrame) -> pl.LazyFrame:
        return lf.filter((pl.col(DATE) >= start) & (pl.col(DATE) < end)).select(pl.len(), pl.col(metric).sum())

    a, b = pl.collect_all([window(scope), window(budget_rows)], engine="streaming")
    return a.row(0) == b.row(0) and a.item(0, 0) > 0


def budget_statuses(costs: pl.LazyFrame, rules: Sequence[RuleInstance], owners: OwnersConfig, *,
                    as_of: date, team: str | None, scope: pl.LazyFrame, metric: str,
                    window: tuple[date, date]) -> list[BudgetStatus]:
    """One status per budget the rules check (only the team's budgets for a team digest).
    ``scope``: the digest's costs and ``window`` its charted days, for ``covers_digest``."""
    ctx = RuleContext(as_of=as_of, costs=costs, owners=owners)
    impl = Budget()
    out = []
    for rule in (r for r in rules if r.kind == "budget"):
        p: BudgetParams = rule.params
        try:
            checks = impl.checks(rule, ctx)
        except Exception as e:  # noqa: BLE001 - one broken budget must not hide the others
            out.append(_failed(rule, p, as_of, f"{type(e).__name__}: {e}"))
            continue
        for c in checks:
            t, pr = c.target, c.projection
            owner = t.team if t.team is not None else budget_team(rule, owners)
            if team is not None and owner != team:
                continue
            start, end = period_bounds(as_of, t.period)
            days = days_to_breach(pr, t.amount, as_of)
            status = "breached" if pr.actual >= t.amount else "at_risk" if pr.forecast >= t.amount else "ok"
            out.append(BudgetStatus(
                rule=rule.id, name=t.label or rule.id, period=t.period, period_start=start, period_end=end,
                metric=p.metric, currency=t.currency, amount=t.amount, actual=pr.actual,
                actual_ratio=_ratio(pr.actual, t.amount), forecast=pr.forecast, forecast_ratio=_ratio(pr.forecast, t.amount),
                daily_rate=pr.rate, as_of=as_of, last_data_day=pr.last_data_day, status=status,
                breach_date=None if days is None else as_of + timedelta(days=days), days_to_breach=days,
                filter=dict(rule.filter), team=owner, converted=dict(c.converted), excluded=dict(c.excluded),
                covers_digest=covers(scope, _scope(costs, rule, c, owners), metric, *window),
            ))
    order = {"breached": 0, "at_risk": 1, "error": 2, "ok": 3}
    out.sort(key=lambda b: (order[b.status], -(b.forecast_ratio or 0), b.rule, b.name))
    return out


def _failed(rule: RuleInstance, p: BudgetParams, as_of: date, error: str) -> BudgetStatus:
    start, end = period_bounds(as_of, p.period)
    return BudgetStatus(
        rule=rule.id, name=rule.id, period=p.period, period_start=start, period_end=end, metric=p.metric,
        currency=p.currency, amount=p.amount, actual=None, actual_ratio=None, forecast=None, forecast_ratio=None,
        daily_rate=None, as_of=as_of, last_data_day=None, status="error", breach_date=None, days_to_breach=None,
        filter=dict(rule.filter), team=None, converted={}, excluded={}, covers_digest=False, error=error,
    )
