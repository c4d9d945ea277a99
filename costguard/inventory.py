"""Resource inventory snapshots: one row per resource, with tags, state, size and utilisation."""

from __future__ import annotations

import polars as pl

from costguard import focus
from costguard.errors import DataError

#: The inventory contract every provider fills (and the bring-your-own inventory file format).
RESOURCE_CLASSES = ("instance", "volume", "address", "snapshot", "load_balancer", "nat_gateway",
                    "database", "log_group", "bucket")
INVENTORY_SCHEMA: dict[str, pl.DataType] = {
    "provider": pl.String(),          # FOCUS ProviderName (AWS, Microsoft, Google Cloud, …)
    "account_id": pl.String(),        # FOCUS SubAccountId (account / subscription / project)
    "region": pl.String(),
    "resource_id": pl.String(),       # as the bill's ResourceId names it
    "resource_class": pl.String(),    # one of RESOURCE_CLASSES
    "resource_type": pl.String(),     # the cloud's own type, e.g. AWS::EC2::Instance
    "name": pl.String(),
    "tags": pl.String(),              # JSON object as in the source
    "x_tags": pl.String(),            # keys stripped + lower-cased, sorted (like the cost lake's x_Tags)
    "state": pl.String(),             # running, stopped, available, in-use, …
    "sku": pl.String(),               # instance type / volume type / DB class
    "architecture": pl.String(),      # x86_64, arm64
    "created_at": pl.Datetime("us", "UTC"),
    "size_gb": pl.Float64(),          # volumes, snapshots, databases
    "iops": pl.Int64(),               # provisioned IOPS
    "attached_to": pl.String(),       # instance / interface it is attached to; null = unattached
    "source_id": pl.String(),         # a snapshot's volume
    "cpu_p95": pl.Float64(),          # percent over metrics_days, where known
    "cpu_max": pl.Float64(),          # percent
    "mem_p95": pl.Float64(),          # percent (needs an agent)
    "metrics_days": pl.Int64(),       # days the utilisation figures cover
    "healthy_targets": pl.Int64(),    # load balancers
    "bytes_30d": pl.Float64(),        # NAT gateways: bytes processed in 30 days
    "retention_days": pl.Int64(),     # log groups: null = kept forever
    "platform": pl.String(),          # instances: Linux/UNIX, Windows, … (prices differ); databases: the engine
    "recommendation": pl.String(),    # JSON: a cloud's own rightsizing advice (e.g. AWS Compute Optimizer), where read
}
REQUIRED = ("provider", "account_id", "resource_id")


def read_inventory(path: str, *, storage_options: dict[str, str] | None = None) -> pl.DataFrame:
    """Read a CSV or parquet inventory file into ``INVENTORY_SCHEMA`` (missing optional columns → null)."""
    try:
        if path.endswith(".parquet"):
            df = pl.read_parquet(path, storage_options=storage_options)
        elif path.endswith((".csv", ".csv.gz")):
            df = pl.read_csv(path, infer_schema=False, null_values=["", "NULL", "null"], storage_options=storage_options)
        else:
            raise DataError(f"{path}: inventory must be .parquet, .csv or .csv.gz")
    except FileNotFoundError:
        raise DataError(f"{path}: inventory file not found") from None
    except (pl.exceptions.PolarsError, OSError) as e:
        raise DataError(f"{path}: cannot read inventory: {str(e).strip().splitlines()[0] if str(e).strip() else e}") from None
    df = df.rename({c: c.strip().lower() for c in df.columns})
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise DataError(f"{path}: inventory is missing required column(s): {', '.join(missing)}")
    exprs = []
    for col, dtype in INVENTORY_SCHEMA.items():
        if col == "x_tags":
            continue
        if col not in df.columns:
            exprs.append(pl.lit(None, dtype=dtype).alias(col))
        elif dtype == pl.Datetime("us", "UTC"):
            src = pl.col(col)
            if df.schema[col] == pl.String:
                src = src.str.to_datetime(time_zone="UTC", strict=False)
            elif isinstance(df.schema[col], pl.Datetime) and df.schema[col].time_zone is None:  # type: ignore[union-attr]
                src = src.dt.replace_time_zone("UTC")
            exprs.append(src.cast(dtype).alias(col))
        else:
            exprs.append(pl.col(col).cast(dtype, strict=False).alias(col))
    out = df.select(exprs)
    bad = out.filter(pl.col("resource_id").is_null()).height
    if bad:
        raise DataError(f"{path}: {bad} inventory row(s) have no resource_id")
    uniq = out["tags"].unique().to_list()
    mapping = {t: focus.normalize_tags(t) for t in uniq if t is not None}
    out = out.with_columns(pl.col("tags").replace_strict(mapping, default=None, return_dtype=pl.String).alias("x_tags"))
    return out.select(list(INVENTORY_SCHEMA))

