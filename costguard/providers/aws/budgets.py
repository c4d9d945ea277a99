"""AWS Budgets → :class:`costguard.model.NativeBudget`: limit, actual and forecast spend, thresholds.

``DescribeBudgets`` runs in every covered account (a budget belongs to the account that created
it), ``DescribeNotificationsForBudget`` once per budget for its alert thresholds. Only COST
budgets are money; usage, RI and savings-plan budgets are counted and named in the log.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from costguard.logs import get_logger
from costguard.model import NativeBudget

log = get_logger("costguard.providers.aws")

PERIODS = {"DAILY": "day", "MONTHLY": "month", "QUARTERLY": "quarter", "ANNUALLY": "year"}


def _amount(spend: dict[str, Any] | None) -> tuple[Decimal | None, str | None]:
    if not spend or spend.get("Amount") in (None, ""):
        return None, None
    try:
        return Decimal(str(spend["Amount"])), spend.get("Unit")
    except InvalidOperation:
        return None, None


def read_budgets(client: Any, account: str, *, source: str, as_of: date) -> Iterator[NativeBudget]:
    """Every COST budget of ``account`` (raises botocore errors: the caller reports them)."""
    skipped: dict[str, int] = {}
    params: dict[str, Any] = {"AccountId": account, "MaxResults": 100}
    while True:
        page = client.describe_budgets(**params)
        for b in page.get("Budgets") or []:
            kind = b.get("BudgetType", "COST")
            if kind != "COST":
                skipped[kind] = skipped.get(kind, 0) + 1
                continue
            amount, unit = _amount(b.get("BudgetLimit"))
            if amount is None:
                skipped["COST without a fixed limit (planned amounts)"] = skipped.get("COST without a fixed limit (planned amounts)", 0) + 1
                continue
            calc = b.get("CalculatedSpend") or {}
            actual, _ = _amount(calc.get("ActualSpend"))
            forecast, _ = _amount(calc.get("ForecastedSpend"))
            notes = client.describe_notifications_for_budget(AccountId=account, BudgetName=b["BudgetName"]).get("Notifications") or []
            start = (b.get("TimePeriod") or {}).get("Start")
            yield NativeBudget(
                source=source,
                name=b["BudgetName"],
                amount=amount,
                currency=unit or "USD",
                period=PERIODS.get(b.get("TimeUnit", "MONTHLY"), "custom"),
                actual=actual,
                forecast=forecast,
                scope={"cost_filters": b.get("CostFilters") or {}, "budget_type": kind,
                       "time_period_start": start.date().isoformat() if isinstance(start, datetime) else None},
                thresholds=tuple(
                    {"on": "forecast" if n.get("NotificationType") == "FORECASTED" else "actual",
                     "value": Decimal(str(n.get("Threshold", 0))),
                     "type": "absolute" if n.get("ThresholdType") == "ABSOLUTE_VALUE" else "percent",
                     "comparison": {"GREATER_THAN": "gt", "LESS_THAN": "lt", "EQUAL_TO": "eq"}.get(n.get("ComparisonOperator", ""), "gt")}
                    for n in notes
                ),
                provider="AWS",
                account_id=account,
                read_on=as_of,
            )
        token = page.get("NextToken")
        if not token:
            break
        params["NextToken"] = token
    if skipped:
        log.info("budgets_not_money", account=account, skipped=skipped)
