"""EC2 prices refreshed from the AWS Pricing API, written as a user price catalogue.

The bundled catalogue (``costguard/catalogdata/``, see ``costguard/catalog.py``) holds AWS list
prices. With ``prices: {refresh: true}`` the aws provider asks the Pricing API
(``pricing:GetProducts``, free) for the on-demand Linux, shared-tenancy price of every instance
type in its inventory: one request (and its pages) per region, ``ANY_OF`` the types. The rows are
written to ``prices.out`` in the user catalogue format
(``provider,resource_class,sku,region,unit,price,currency,vcpu,memory_gib,architecture,current_generation,source``),
so listing that file under the config's ``catalog:`` makes the rules use today's prices (user rows
win over bundled ones for the same provider, class, type and region).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

COLUMNS = ("provider", "resource_class", "sku", "region", "unit", "price", "currency", "vcpu", "memory_gib",
           "architecture", "current_generation", "source")


def _price(terms: dict[str, Any]) -> str | None:
    for offer in (terms.get("OnDemand") or {}).values():
        for dim in (offer.get("priceDimensions") or {}).values():
            usd = (dim.get("pricePerUnit") or {}).get("USD")
            if usd is not None and dim.get("unit", "Hrs").lower().startswith("hr"):
                return str(usd)
    return None


def _architecture(a: dict[str, str]) -> str:
    text = f"{a.get('processorArchitecture', '')} {a.get('physicalProcessor', '')}".lower()
    return "arm64" if "arm" in text or "graviton" in text else "x86_64"


def parse_products(price_list: Iterable[str], region: str, *, today: date) -> list[dict[str, str | None]]:
    """GetProducts ``PriceList`` items (JSON strings) → catalogue rows."""
    out = []
    for item in price_list:
        p = json.loads(item) if isinstance(item, str) else item
        a = (p.get("product") or {}).get("attributes") or {}
        itype = a.get("instanceType")
        price = _price(p.get("terms") or {})
        if not itype or price is None:
            continue
        mem = re.sub(r"[^0-9.]", "", a.get("memory", "").replace(",", ""))
        vcpu = a.get("vcpu") if mem else None
        out.append({
            "provider": "AWS", "resource_class": "instance", "sku": itype, "region": a.get("regionCode") or region,
            "unit": "hour", "price": price, "currency": "USD", "vcpu": vcpu, "memory_gib": mem or None,
            "architecture": _architecture(a),
            "current_generation": {"yes": "true", "no": "false"}.get(str(a.get("currentGeneration", "")).lower()),
            "source": f"AWS Pricing API GetProducts {today.isoformat()}",
        })
    return out


def fetch(pricing: Any, instance_types: Iterable[str], regions: Iterable[str], *, today: date) -> pl.DataFrame:
    """On-demand Linux prices of ``instance_types`` in ``regions`` (one GetProducts and pages per region)."""
    types = sorted(set(instance_types))
    rows: list[dict[str, str | None]] = []
    for region in sorted(set(regions)) if types else []:
        params: dict[str, Any] = {
            "ServiceCode": "AmazonEC2", "FormatVersion": "aws_v1", "MaxResults": 100,
            "Filters": [
                {"Type": "ANY_OF", "Field": "instanceType", "Value": ",".join(types)},
                {"Type": "TERM_MATCH", "Field": "regionCode", "Value": region},
                {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": "Linux"},
                {"Type": "TERM_MATCH", "Field": "tenancy", "Value": "Shared"},
                {"Type": "TERM_MATCH", "Field": "preInstalledSw", "Value": "NA"},
                {"Type": "TERM_MATCH", "Field": "capacitystatus", "Value": "Used"},
            ],
        }
        while True:
            page = pricing.get_products(**params)
            rows += parse_products(page.get("PriceList") or [], region, today=today)
            token = page.get("NextToken")
            if not token:
                break
            params["NextToken"] = token
    df = pl.DataFrame(rows, schema={c: pl.String for c in COLUMNS}, orient="row")
    return df.unique(["sku", "region"], keep="first", maintain_order=True).sort("region", "sku")


def write(df: pl.DataFrame, path: str) -> None:
    """Write atomically (temp file, then rename)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
    df.write_csv(tmp)
    os.replace(tmp, out)
