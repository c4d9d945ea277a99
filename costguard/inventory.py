"""Resource inventory snapshots: one row per resource, with tags, state, size and utilisation."""

from __future__ import annotations

import polars as pl

from costguard import focus
from costguard.errors import DataError
from costguard.model import RESOURCE_CLASSES  # noqa: F401  (part of the contract, kept importable from here)

#: The inventory contract every provider fills (and the bring-your-own inventory file format).
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
    "cpu_p90": pl.Float64(),          # percent; optional, for rightsizing rules with percentile: p90
    "cpu_p99": pl.Float64(),          # percent; optional, for rightsizing rules with percentile: p99
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


MAX_REPORTED = 10


def read_inventory(path: str, *, storage_options: dict[str, str] | None = None) -> pl.DataFrame:
    """Read a CSV or parquet inventory file into ``INVENTORY_SCHEMA`` (missing optional columns → null).

    A value that does not parse (``size_gb: lots``, a date that is not one, an unknown
    ``resource_class``) is an error naming the file, the row (and CSV line) and the column; nothing
    is turned into null silently."""
    is_csv = path.endswith((".csv", ".csv.gz"))
    try:
        if path.endswith(".parquet"):
            df = pl.read_parquet(path, storage_options=storage_options)
        elif is_csv:
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
    df = df.with_row_index("_row", offset=1)
    exprs = []
    checks: list[tuple[str, pl.Expr, str]] = []  # (column, "value did not parse" expression, what was expected)
    for col, dtype in INVENTORY_SCHEMA.items():
        if col == "x_tags":
            continue
        if col not in df.columns:
            exprs.append(pl.lit(None, dtype=dtype).alias(col))
            continue
        src = pl.col(col)
        given = src.is_not_null() & (src.cast(pl.String).str.strip_chars() != "") if df.schema[col] == pl.String else src.is_not_null()
        if dtype == pl.Datetime("us", "UTC"):
            if df.schema[col] == pl.String:
                out = _datetime(src.str.strip_chars())
            elif isinstance(df.schema[col], pl.Datetime) and df.schema[col].time_zone is None:  # type: ignore[union-attr]
                out = src.dt.replace_time_zone("UTC")
            else:
                out = src
            out = out.cast(dtype, strict=False)
            what = "a date/time (e.g. 2026-01-31 or 2026-01-31T12:00:00Z)"
        elif dtype == pl.Int64() and df.schema[col] == pl.String:
            f = src.str.strip_chars().cast(pl.Float64, strict=False)
            out = pl.when(f == f.floor()).then(f).cast(pl.Int64, strict=False)
            what = "a whole number"
        elif dtype in (pl.Int64(), pl.Float64()):
            out = (src.str.strip_chars() if df.schema[col] == pl.String else src).cast(dtype, strict=False)
            what = "a whole number" if dtype == pl.Int64() else "a number"
        else:
            out = src.cast(dtype, strict=False)
            what = "text"
        exprs.append(out.alias(col))
        checks.append((col, given & out.is_null(), what))
    classes = pl.col("resource_class")
    bad_rows = df.select(
        "_row",
        *(pl.when(cond).then(pl.col(col).cast(pl.String)).alias(f"_bad_{col}") for col, cond, _w in checks),
    )
    problems: list[str] = []
    for col, _cond, what in checks:
        got = bad_rows.filter(pl.col(f"_bad_{col}").is_not_null()).select("_row", f"_bad_{col}")
        for row, value in got.iter_rows():
            problems.append(_where(row, is_csv) + f", column {col}: {value!r} is not {what}")
    out = df.select("_row", *exprs)
    if "resource_class" in df.columns:
        unknown = out.filter(classes.is_not_null() & ~classes.is_in(list(RESOURCE_CLASSES)))
        for row, value in unknown.select("_row", "resource_class").iter_rows():
            problems.append(_where(row, is_csv) + f", column resource_class: {value!r} is not one of {', '.join(RESOURCE_CLASSES)}")
    if problems:
        problems.sort(key=lambda p: int(p.split()[1].rstrip(",")))
        more = f" (and {len(problems) - MAX_REPORTED} more)" if len(problems) > MAX_REPORTED else ""
        raise DataError(f"{path}: {len(problems)} inventory value(s) cannot be read: "
                        + "; ".join(problems[:MAX_REPORTED]) + more + ". Fix them (or leave the cell empty for unknown); nothing was loaded")
    bad = out.filter(pl.col("resource_id").is_null()).height
    if bad:
        raise DataError(f"{path}: {bad} inventory row(s) have no resource_id")
    uniq = out["tags"].unique().to_list()
    mapping = {t: focus.normalize_tags(t) for t in uniq if t is not None}
    out = out.with_columns(pl.col("tags").replace_strict(mapping, default=None, return_dtype=pl.String).alias("x_tags"))
    return out.select(list(INVENTORY_SCHEMA))


_DATETIME_FORMATS = ("%Y-%m-%dT%H:%M:%S%.fZ", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%:z",
                     "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f")


def _datetime(text: pl.Expr) -> pl.Expr:
    """ISO dates and date-times, with ``Z``, an offset or none (UTC), each row parsed on its own."""
    tries = [text.str.to_datetime(f, time_zone="UTC", strict=False) for f in _DATETIME_FORMATS]
    return pl.coalesce([*tries, text.str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us", "UTC"))])


def _where(row: int, is_csv: bool) -> str:
    return f"row {row} (line {row + 1})" if is_csv else f"row {row}"
