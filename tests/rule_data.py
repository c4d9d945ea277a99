"""Small rollup and inventory frames with known answers, in the exact schemas rules read."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

from costguard.inventory import INVENTORY_SCHEMA
from costguard.rollup import rollup_schema
from costguard.rules import RuleContext, RuleInstance, load_rules

D = Decimal
DEFAULTS: dict[str, Any] = {
    "x_Source": "test", "ProviderName": "AWS", "BillingAccountId": "999", "BillingAccountName": "payer",
    "SubAccountId": "111", "SubAccountName": "acct-111", "ServiceName": "Amazon Elastic Compute Cloud",
    "ServiceCategory": "Compute", "RegionId": "us-east-1", "ChargeCategory": "Usage", "ChargeFrequency": "Usage-Based",
    "BillingCurrency": "USD", "x_RowCount": 1,
}


def cost(day: date, amount: str | int | Decimal, **cols: Any) -> dict[str, Any]:
    """One rollup row; ``amount`` goes to BilledCost, EffectiveCost and ListCost unless given."""
    a = D(str(amount))
    tags = cols.pop("tags", None)
    row = {**DEFAULTS, "x_ChargeDate": day, "BilledCost": a, "EffectiveCost": a, "ListCost": a, **cols}
    if tags is not None:
        row["x_Tags"] = json.dumps({k.strip().lower(): v for k, v in sorted(tags.items())})
    for k in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "PricingQuantity", "ConsumedQuantity"):
        if row.get(k) is not None:
            row[k] = D(str(row[k]))
    return row


def daily(start: date, n: int, amount: str | int | Decimal, **cols: Any) -> list[dict[str, Any]]:
    return [cost(start + timedelta(days=i), amount, **cols) for i in range(n)]


def costs(rows: list[dict[str, Any]]) -> pl.LazyFrame:
    schema = rollup_schema()
    return pl.DataFrame([{c: r.get(c) for c in schema} for r in rows], schema=schema).lazy()


def resource(resource_id: str, resource_class: str, **cols: Any) -> dict[str, Any]:
    tags = cols.pop("tags", None)
    row: dict[str, Any] = {"provider": "AWS", "account_id": "111", "region": "us-east-1", "resource_id": resource_id,
                           "resource_class": resource_class, **cols}
    if tags is not None:
        row["tags"] = json.dumps(tags)
        row["x_tags"] = json.dumps({k.strip().lower(): v for k, v in sorted(tags.items())}, sort_keys=True)
    if isinstance(row.get("created_at"), date) and not isinstance(row["created_at"], datetime):
        d = row["created_at"]
        row["created_at"] = datetime(d.year, d.month, d.day, tzinfo=timezone.utc)
    return row


def inventory(rows: list[dict[str, Any]]) -> pl.LazyFrame:
    return pl.DataFrame([{c: r.get(c) for c in INVENTORY_SCHEMA} for r in rows], schema=INVENTORY_SCHEMA).lazy()


def rules(tmp_path: Path, text: str) -> list[RuleInstance]:
    (tmp_path / "r.yaml").write_text(text)
    return load_rules(["r.yaml"], base_dir=tmp_path)


def run(rule: RuleInstance, as_of: date, cost_rows: list[dict[str, Any]] = (), inv_rows: list[dict[str, Any]] | None = None, **ctx: Any):
    context = RuleContext(as_of=as_of, costs=costs(list(cost_rows)),
                          inventory=inventory(inv_rows) if inv_rows is not None else None, **ctx)
    return rule.impl.evaluate(rule, context)
