"""The "copy + rollup" floor: what reading, copying and rolling up the data once costs in plain polars.

    python bench/polars_floor.py --data bench/data/10m [--as-of YYYY-MM-DD] [--out DIR] [--step copy|rollup|both]

No costguard code: the smallest honest program doing the data work of a ``keep_rows: true`` cycle.

1. ``copy``: scan every row of the export (days up to ``--as-of``) and write one lz4 parquet copy
   (``DIR/copy.parquet``, no statistics): what keeping a normalised copy of every row costs at least;
2. ``rollup``: the daily rollup with costguard's rollup keys (``costguard.rollup.ROLLUP_KEYS``: the
   day of ChargePeriodStart, provider, accounts, service, region, resource, charge category and
   frequency, currency, SKU/pricing/commitment/allocation keys, and the raw ``Tags`` string in
   place of the normalised tags) with the sums of the four cost metrics and the two quantities and a
   row count, written to ``DIR/rollup.parquet``.

``both`` (the default) runs the copy, then the rollup, each as its own streaming query over the
files, and reports each step's time: the floor of the cycle benchmark is the sum. Prints one JSON
object. ``--as-of`` defaults to the last complete day in ``expected.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import polars as pl

# the rollup keys as the export names them (the two derived ones are computed below); the list is
# costguard.rollup.ROLLUP_KEYS, spelled out so that this file imports nothing from costguard
KEYS = ("ProviderName", "BillingAccountId", "BillingAccountName", "SubAccountId", "SubAccountName", "ServiceName",
        "ServiceCategory", "RegionId", "ResourceId", "ResourceName", "ResourceType", "ChargeCategory", "ChargeFrequency",
        "BillingCurrency", "SkuId", "PricingUnit", "PricingCategory", "ConsumedUnit", "CommitmentDiscountId",
        "CommitmentDiscountType", "CommitmentDiscountStatus", "AllocatedMethodId", "AllocatedResourceId")
SUMMED = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "PricingQuantity", "ConsumedQuantity")


def source(data: Path, as_of: date) -> pl.LazyFrame:
    lf = pl.scan_parquet(str(data / "focus" / "data" / "**" / "*.parquet"), hive_partitioning=False)
    return lf.filter(pl.col("ChargePeriodStart").dt.date() <= as_of)


def copy(data: Path, as_of: date, out: Path) -> int:
    source(data, as_of).sink_parquet(out / "copy.parquet", compression="lz4", statistics=False, engine="streaming")
    return pl.scan_parquet(out / "copy.parquet").select(pl.len()).collect().item()


def rollup(data: Path, as_of: date, out: Path) -> int:
    lf = source(data, as_of)
    have = lf.collect_schema().names()
    keys = [pl.col("ChargePeriodStart").dt.date().alias("x_ChargeDate"),
            *(pl.col(k) if k in have else pl.lit(None, pl.String).alias(k) for k in KEYS),
            pl.col("Tags").alias("x_Tags")]
    sums = [pl.col(m).sum() for m in SUMMED if m in have]
    (lf.group_by(keys).agg(*sums, pl.len().alias("x_RowCount"))
     .sink_parquet(out / "rollup.parquet", engine="streaming"))
    return pl.scan_parquet(out / "rollup.parquet").select(pl.len()).collect().item()


def run(data: Path, as_of: date | None = None, out: Path | None = None, step: str = "both") -> dict:
    data = Path(data)
    if as_of is None:
        as_of = date.fromisoformat(json.loads((data / "expected.json").read_text())["last_complete_day"])
    tmp = None
    if out is None:
        tmp = tempfile.TemporaryDirectory(prefix="cg-floor-")
        out = Path(tmp.name)
    out.mkdir(parents=True, exist_ok=True)
    res: dict = {"engine": f"polars {pl.__version__}", "as_of": as_of.isoformat(), "timings": {}}
    if step in ("copy", "both"):
        s = time.perf_counter()
        res["copy_rows"] = copy(data, as_of, out)
        res["timings"]["copy_s"] = round(time.perf_counter() - s, 3)
        res["copy_mb"] = round((out / "copy.parquet").stat().st_size / 2**20, 1)
    if step in ("rollup", "both"):
        s = time.perf_counter()
        res["rollup_rows"] = rollup(data, as_of, out)
        res["timings"]["rollup_s"] = round(time.perf_counter() - s, 3)
    if tmp is not None:
        tmp.cleanup()
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path, help="folder written by bench/generate.py")
    ap.add_argument("--as-of", default=None)
    ap.add_argument("--out", type=Path, default=None, help="where copy.parquet and rollup.parquet go (default: temp dir)")
    ap.add_argument("--step", choices=("copy", "rollup", "both"), default="both")
    a = ap.parse_args(argv)
    res = run(a.data, date.fromisoformat(a.as_of) if a.as_of else None, a.out, a.step)
    json.dump(res, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
