"""Read-only questions about the lake and the state store (``costguard costs``).

Money is summed per currency: the answer always has a ``BillingCurrency`` column, so EUR and USD
never meet in one number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import polars as pl

from costguard import focus
from costguard.errors import ConfigError
from costguard.lake import Lake
from costguard.model import COST_METRICS
from costguard.rollup import ROLLUP_KEYS, per_tag_set

TIME_BUCKETS = {"day": None, "week": "1w", "month": "1mo"}  # weeks start on Monday (ISO)
CURRENCY = "BillingCurrency"


@dataclass
class CostsAnswer:
    frame: pl.DataFrame
    warnings: list[str] = field(default_factory=list)


def _usage(message: str) -> ConfigError:
    return ConfigError.single("<command line>", None, "--by", message)


def query_costs(lake: Lake, by: Sequence[str], *, start: date | None, end: date | None, metric: str) -> pl.DataFrame:
    """Sums of one FOCUS cost grouped by columns, ``tag:KEY``, ``source`` or ``day``/``week``/
    ``month``, always per ``BillingCurrency``; reads the rollup when it has the columns.

    Sorted by time first when a time bucket is asked for, else by the amount (largest first)."""
    if metric not in COST_METRICS:
        raise ConfigError.single("<command line>", None, "--metric", f"must be one of {', '.join(COST_METRICS)}")
    schema = focus.lake_schema()
    seen: set[str] = set()
    exprs: list[pl.Expr] = []
    use_rollup = True
    time_cols: list[str] = []
    tag_exprs: list[pl.Expr] = []  # tag:KEY columns, read once per distinct tag set
    for col in by:
        if col in seen:
            raise _usage(f"{col!r} is named twice")
        seen.add(col)
        if col.startswith("tag:"):
            key = col[4:].strip().lower()
            if not key:
                raise _usage("tag: needs a key, e.g. tag:team")
            tag_exprs.append(pl.col("x_Tags").str.json_path_match(f'$["{key}"]').alias(col))
            exprs.append(pl.col(col))
        elif col in ("source", "x_Source"):
            exprs.append(pl.col("x_Source").alias(col))
        elif col in TIME_BUCKETS:
            every = TIME_BUCKETS[col]
            d = pl.col("x_ChargeDate")
            exprs.append((d if every is None else d.dt.truncate(every)).alias(col))
            time_cols.append(col)
        elif col in COST_METRICS or col in ("PricingQuantity", "ConsumedQuantity"):
            raise _usage(f"{col} is an amount, not a column to group by; pick it with --metric {col}")
        elif col in schema and schema[col] == pl.String and not col.startswith("x_"):
            use_rollup = use_rollup and col in ROLLUP_KEYS
            exprs.append(pl.col(col))
        elif col in schema and not col.startswith("x_"):
            raise _usage(f"{col} is a {schema[col]} column; group by day, week or month instead")
        else:
            raise _usage(f"unknown column {col!r}; use a FOCUS column name (e.g. ProviderName, ServiceName, "
                         "SubAccountId), source, day, week, month, or tag:KEY")
    if CURRENCY not in seen:
        exprs.append(pl.col(CURRENCY))
    if not use_rollup and not lake.keep_rows:
        raise _usage("this lake keeps daily rollups only (ingest.keep_rows: false); group by rollup columns: "
                     + ", ".join(k for k in ROLLUP_KEYS if not k.startswith("x_")) + ", source, day, week, month or tag:KEY")
    lf = lake.rollup() if use_rollup else lake.costs()
    if start:
        lf = lf.filter(pl.col("x_ChargeDate") >= start)
    if end:
        lf = lf.filter(pl.col("x_ChargeDate") < end)
    names = [*by, *([CURRENCY] if CURRENCY not in seen else [])]
    out = per_tag_set(lf, tag_exprs).group_by(exprs).agg(pl.col(metric).sum().alias(metric))
    if time_cols:
        out = out.sort([*time_cols, metric, *names], descending=[False] * len(time_cols) + [True] + [False] * len(names),
                       nulls_last=True)
    else:
        out = out.sort([metric, *names], descending=[True] + [False] * len(names), nulls_last=True)
    return out.select([*names, metric]).collect(engine="streaming")


def source_warnings(store: Any, lake: Lake, *, start: date | None, end: date | None) -> list[str]:
    """A warning for each source in the selection whose last ingest did not end ok: its totals
    may miss rows (rejected, or a failed pull) or be stale."""
    lf = lake.rollup()
    if start:
        lf = lf.filter(pl.col("x_ChargeDate") >= start)
    if end:
        lf = lf.filter(pl.col("x_ChargeDate") < end)
    sources = set(lf.select(pl.col("x_Source").unique()).collect()["x_Source"].to_list())
    if not sources:
        return []
    out = []
    for source, info in sorted(store.last_source_status(sorted(sources)).items()):
        status = info.get("status")
        if status and status != "ok":
            detail = info.get("detail") or ""
            out.append(f"source {source}: its last ingest (run {info['run_id']}) ended {status}"
                       + (f": {detail}" if detail else "") + "; these totals may be incomplete or stale")
    return out
