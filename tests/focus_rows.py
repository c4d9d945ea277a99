"""Build small, valid FOCUS CSV exports with known answers for end-to-end tests."""

from __future__ import annotations

import csv
import json
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

HEADER = [
    "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd",
    "BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency",
    "ChargePeriodEnd", "ChargePeriodStart", "ContractedCost", "EffectiveCost", "InvoiceIssuerName",
    "ListCost", "PricingQuantity", "PricingUnit", "ProviderName", "PublisherName", "RegionId",
    "ResourceId", "ResourceType", "ServiceCategory", "ServiceName", "SubAccountId", "Tags",
]


def row(day: date, cost: str | Decimal, *, resource: str | None = "i-1", tags: dict | None = None,
        provider: str = "AWS", account: str = "111111111111", service: str = "Amazon EC2",
        category: str = "Usage") -> dict:
    month = day.replace(day=1)
    nxt = (month + timedelta(days=32)).replace(day=1)
    c = str(cost)
    return {
        "BilledCost": c, "BillingAccountId": "999999999999", "BillingAccountName": "payer",
        "BillingCurrency": "USD", "BillingPeriodEnd": f"{nxt} 00:00:00", "BillingPeriodStart": f"{month} 00:00:00",
        "ChargeCategory": category, "ChargeClass": "NULL", "ChargeDescription": "test", "ChargeFrequency": "Usage-Based",
        "ChargePeriodEnd": f"{day + timedelta(days=1)} 00:00:00", "ChargePeriodStart": f"{day} 00:00:00",
        "ContractedCost": c, "EffectiveCost": c, "InvoiceIssuerName": provider, "ListCost": c,
        "PricingQuantity": "1", "PricingUnit": "Hours", "ProviderName": provider, "PublisherName": provider,
        "RegionId": "us-east-1", "ResourceId": resource if resource else "NULL", "ResourceType": "Instance",
        "ServiceCategory": "Compute", "ServiceName": service, "SubAccountId": account,
        "Tags": json.dumps(tags) if tags else "NULL",
    }


def write(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=HEADER, quoting=csv.QUOTE_MINIMAL)
        w.writeheader()
        w.writerows(rows)
    return path


def days(start: date, n: int) -> list[date]:
    return [start + timedelta(days=i) for i in range(n)]
