"""The EC2 price catalogue: the bundled slice, and a refresh from the AWS Pricing API.

The bundled catalogue is ``costguard/simdata/ec2_catalog_us-east-1.csv`` (on-demand Linux prices
for us-east-1 from karpenter-provider-aws, sizes from apache-libcloud; licences beside it). With
``prices: {refresh: true}`` the provider asks the Pricing API (``pricing:GetProducts``, free) for
the on-demand Linux, shared-tenancy price of every instance type in the inventory, one request
(and its pages) per region (``ANY_OF`` the types), and writes a catalogue in the same columns to
``prices.out``: refreshed rows first, bundled rows for everything else. A rightsizing rule can
read that file as its catalogue.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl

COLUMNS = ("instance_type", "family", "size", "instance_family", "vcpu", "memory_gib", "processor_architecture",
           "physical_processor", "gpu", "current_generation", "normalization_size_factor", "region", "on_demand_usd_per_hour")


@cache
def bundled() -> pl.DataFrame:
    """The bundled catalogue, every column as text (as in the file)."""
    text = resources.files("costguard").joinpath("simdata", "ec2_catalog_us-east-1.csv").read_bytes()
    return pl.read_csv(text, infer_schema=False).select(list(COLUMNS))


def _price(terms: dict[str, Any]) -> str | None:
    for offer in (terms.get("OnDemand") or {}).values():
        for dim in (offer.get("priceDimensions") or {}).values():
            usd = (dim.get("pricePerUnit") or {}).get("USD")
            if usd is not None and dim.get("unit", "Hrs").lower().startswith("hr"):
                return str(usd)
    return None


def parse_products(price_list: Iterable[str], region: str) -> list[dict[str, str | None]]:
    """GetProducts ``PriceList`` items (JSON strings) → catalogue rows."""
    out = []
    for item in price_list:
        p = json.loads(item) if isinstance(item, str) else item
        a = (p.get("product") or {}).get("attributes") or {}
        itype = a.get("instanceType")
        price = _price(p.get("terms") or {})
        if not itype or price is None:
            continue
        family, _, size = itype.partition(".")
        mem = re.sub(r"[^0-9.]", "", a.get("memory", "").replace(",", ""))
        out.append({
            "instance_type": itype, "family": family, "size": size, "instance_family": a.get("instanceFamily"),
            "vcpu": a.get("vcpu"), "memory_gib": mem or None, "processor_architecture": a.get("processorArchitecture"),
            "physical_processor": a.get("physicalProcessor"), "gpu": a.get("gpu"),
            "current_generation": a.get("currentGeneration"), "normalization_size_factor": a.get("normalizationSizeFactor"),
            "region": a.get("regionCode") or region, "on_demand_usd_per_hour": price,
        })
    return out


def fetch(pricing: Any, instance_types: Iterable[str], regions: Iterable[str]) -> pl.DataFrame:
    """On-demand Linux prices of ``instance_types`` in ``regions`` (one GetProducts and pages per region)."""
    types = sorted(set(instance_types))
    rows: list[dict[str, str | None]] = []
    if not types:
        return pl.DataFrame(schema={c: pl.String for c in COLUMNS})
    for region in sorted(set(regions)):
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
            rows += parse_products(page.get("PriceList") or [], region)
            token = page.get("NextToken")
            if not token:
                break
            params["NextToken"] = token
    return pl.DataFrame(rows, schema={c: pl.String for c in COLUMNS}, orient="row").unique(["instance_type", "region"], keep="first")


def merged(fresh: pl.DataFrame) -> pl.DataFrame:
    """Fresh rows, then the bundled rows they do not replace."""
    keep = bundled().join(fresh.select("instance_type", "region"), on=["instance_type", "region"], how="anti")
    return pl.concat([fresh, keep], how="vertical").sort("region", "instance_type")


def write(df: pl.DataFrame, path: str) -> None:
    """Write atomically (temp file, then rename)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
    df.write_csv(tmp)
    os.replace(tmp, out)
