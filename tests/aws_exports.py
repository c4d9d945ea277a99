"""AWS Data Exports built from the FOCUS sample's AWS rows, written to (moto's) S3 the way AWS
delivers them: ``data/BILLING_PERIOD=YYYY-MM/<export>-0000N.snappy.parquet`` plus
``metadata/BILLING_PERIOD=YYYY-MM/<export>-Manifest.json``.

The FOCUS export is the sample's rows with real types (doubles, UTC timestamps, a map of tags); the
CUR 2.0 export is the same rows rendered into CUR 2.0 columns (there are no public CUR 2.0 rows).
"""

from __future__ import annotations

import io
import json
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import polars as pl

from conftest import SAMPLE

MONEY = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")
TIMES = ("BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd")
CUR_TYPE = {"Usage": "Usage", "Tax": "Tax", "Purchase": "Fee", "Credit": "Credit", "Adjustment": "Refund"}


def sample_aws() -> pl.DataFrame:
    """The sample's AWS rows, as text (as in the CSV)."""
    df = pl.read_csv(SAMPLE, infer_schema=False, null_values=["NULL"])
    return df.filter(pl.col("ProviderName") == "AWS")


def expected_billed(df: pl.DataFrame) -> Decimal:
    return sum((Decimal(v) for v in df["BilledCost"].drop_nulls().to_list()), Decimal(0))


def shift_days(df: pl.DataFrame, days: int) -> pl.DataFrame:
    """Move every charge by ``days`` (text timestamps ``YYYY-MM-DD HH:MM:SS``), billing periods follow."""
    def sh(c: str) -> pl.Expr:
        return (pl.col(c).str.to_datetime("%Y-%m-%d %H:%M:%S") + pl.duration(days=days)).dt.strftime("%Y-%m-%d %H:%M:%S").alias(c)

    out = df.with_columns(sh("ChargePeriodStart"), sh("ChargePeriodEnd"))
    start = pl.col("ChargePeriodStart").str.slice(0, 7) + "-01 00:00:00"
    month = pl.col("ChargePeriodStart").str.to_datetime("%Y-%m-%d %H:%M:%S").dt.truncate("1mo")
    return out.with_columns(start.alias("BillingPeriodStart"),
                            month.dt.offset_by("1mo").dt.strftime("%Y-%m-%d %H:%M:%S").alias("BillingPeriodEnd"))


def typed_focus(df: pl.DataFrame) -> pl.DataFrame:
    """FOCUS rows as a FOCUS export parquet has them: doubles, UTC timestamps, Tags as a map."""
    tags = pl.col("Tags").map_elements(
        lambda t: [{"key": k, "value": str(v)} for k, v in json.loads(t).items()] if t else None,
        return_dtype=pl.List(pl.Struct({"key": pl.String, "value": pl.String})))
    return df.with_columns(
        *(pl.col(c).cast(pl.Float64) for c in (*MONEY, "PricingQuantity", "ConsumedQuantity", "ListUnitPrice", "ContractedUnitPrice")),
        *(pl.col(c).str.to_datetime("%Y-%m-%d %H:%M:%S", time_zone="UTC") for c in TIMES),
        tags.alias("Tags"),
    )


def to_cur2(df: pl.DataFrame) -> pl.DataFrame:
    """The same charges in CUR 2.0 columns (typed like a CUR 2.0 parquet export)."""
    t = typed_focus(df)
    user_tags = pl.col("Tags").list.eval(pl.element().struct.with_fields(("user_" + pl.field("key")).alias("key")))
    product = pl.concat_list([
        pl.struct(pl.lit("product_name").alias("key"), pl.col("ServiceName").alias("value")),
        pl.struct(pl.lit("region").alias("key"), pl.col("RegionId").alias("value")),
    ])
    return t.select(
        pl.col("BillingAccountId").alias("bill_payer_account_id"),
        pl.col("BillingAccountName").alias("bill_payer_account_name"),
        pl.col("BillingPeriodStart").alias("bill_billing_period_start_date"),
        pl.col("BillingPeriodEnd").alias("bill_billing_period_end_date"),
        pl.lit("Anniversary").alias("bill_bill_type"),
        pl.lit("Amazon Web Services, Inc.").alias("bill_invoicing_entity"),
        pl.col("SubAccountId").alias("line_item_usage_account_id"),
        pl.col("SubAccountName").alias("line_item_usage_account_name"),
        pl.col("ChargePeriodStart").alias("line_item_usage_start_date"),
        pl.col("ChargePeriodEnd").alias("line_item_usage_end_date"),
        pl.col("ChargeCategory").replace_strict(CUR_TYPE, default="Usage").alias("line_item_line_item_type"),
        pl.col("ChargeDescription").alias("line_item_line_item_description"),
        pl.col("BilledCost").alias("line_item_unblended_cost"),
        pl.col("ListCost").alias("pricing_public_on_demand_cost"),
        pl.col("ConsumedQuantity").alias("line_item_usage_amount"),
        pl.col("PricingUnit").alias("pricing_unit"),
        pl.col("BillingCurrency").alias("line_item_currency_code"),
        pl.col("ServiceName").str.replace_all(" ", "").alias("line_item_product_code"),
        pl.col("RegionId").alias("product_region_code"),
        pl.col("SkuId").alias("product_sku"),
        pl.col("ResourceId").fill_null("").alias("line_item_resource_id"),  # CUR writes "" for none
        pl.lit("Amazon Web Services, Inc.").alias("line_item_legal_entity"),
        product.alias("product"),
        user_tags.alias("resource_tags"),
    )


def parquet(df: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.write_parquet(buf)
    return buf.getvalue()


def put_export(s3: Any, bucket: str, root: str, name: str, period: str, frames: list[pl.DataFrame], *,
               execution: str = "exec-1", manifest: bool = True, overwrite: bool = True) -> list[str]:
    """Deliver one billing period of an export; returns the data keys."""
    folder = f"{root}data/BILLING_PERIOD={period}/" + ("" if overwrite else f"{execution}/")
    keys = []
    for i, df in enumerate(frames):
        key = f"{folder}{name}-{i + 1:05d}.snappy.parquet"
        s3.put_object(Bucket=bucket, Key=key, Body=parquet(df))
        keys.append(key)
    if manifest:
        body = {"executionId": execution, "exportArn": f"arn:aws:bcm-data-exports:us-east-1:123456789012:export/{name}",
                "columns": [{"name": c, "type": str(t)} for c, t in frames[0].schema.items()] if frames else [],
                "dataFiles": [f"s3://{bucket}/{k}" for k in keys],
                "billingPeriod": {"start": f"{period}-01T00:00:00.000Z"}}
        s3.put_object(Bucket=bucket, Key=f"{root}metadata/BILLING_PERIOD={period}/{name}-Manifest.json", Body=json.dumps(body).encode())
    return keys


def by_month(df: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Rows (text timestamps) split by the billing period of their ChargePeriodStart."""
    return {k[0]: g for k, g in df.group_by(pl.col("ChargePeriodStart").str.slice(0, 7).alias("p"), maintain_order=True)}


def days_back(as_of: date, n: int) -> list[date]:
    return [as_of - timedelta(days=i) for i in range(n)]
