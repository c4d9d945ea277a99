"""The aggregations costguard's cycle computes, hand-written in DuckDB over the same parquet files.

    python bench/duckdb_baseline.py --data bench/data/10m [--as-of YYYY-MM-DD] [--out DIR] [--threads N] [--lake DIR]

1. daily rollup: (charge date, provider, billing account, sub account, service, region, resource,
   charge category, currency, normalised tags) -> sums of BilledCost, EffectiveCost, ListCost,
   ContractedCost and a row count, written to parquet (costguard writes its rollup to its lake too);
   tags are normalised like costguard (keys trimmed and lower-cased, sorted);
2. tag coverage: EffectiveCost share of Usage rows whose tags carry key "application", over the 30
   days ending at --as-of;
3. per-account totals (provider, sub account) over the whole data;
4. month-to-date budget actual: BilledCost from the first of --as-of's month to --as-of;
5. (only with --lake DIR) a copy of every row of the days up to --as-of plus its charge day, written
   as parquet partitioned by day (``day=YYYY-MM-DD/data.parquet``, one COPY per day), lz4 by default: the like-for-like reference for costguard's
   ``ingest.keep_rows: true`` lake.

Prints one JSON object (timings and results, amounts as decimal strings). --as-of defaults to the
last complete day in the data set's expected.json (the day before the partial day).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb

TAG_KEY = "application"


def run(data: Path, as_of: date | None = None, out: Path | None = None, threads: int | None = None,
        memory_limit: str | None = None, lake: Path | None = None, lake_compression: str = "lz4") -> dict:
    data = Path(data)
    if as_of is None:
        exp = json.loads((data / "expected.json").read_text())
        as_of = date.fromisoformat(exp["last_complete_day"])
    glob = str(data / "focus" / "data" / "**" / "*.parquet")
    tmp = None
    if out is None:
        tmp = tempfile.TemporaryDirectory(prefix="cg-duckdb-")
        out = Path(tmp.name)
    out.mkdir(parents=True, exist_ok=True)
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions=false")
    con.execute("SET autoload_known_extensions=false")
    con.execute("SET TimeZone='UTC'")
    if threads:
        con.execute(f"SET threads={int(threads)}")
    if memory_limit:
        con.execute(f"SET memory_limit='{memory_limit}'")
    con.execute(f"CREATE VIEW src AS SELECT * FROM read_parquet('{glob}', hive_partitioning=false)")

    # 1. rollup grouped by the raw Tags string, then tags normalised once per distinct value.
    s = time.perf_counter()
    con.execute("""
        CREATE TEMP TABLE raw_rollup AS
        SELECT CAST(ChargePeriodStart AS DATE) AS charge_date, ProviderName, BillingAccountId,
               BillingAccountName, SubAccountId, SubAccountName, ServiceName, ServiceCategory, RegionId,
               ResourceId, ResourceName, ResourceType, ChargeCategory, BillingCurrency, Tags,
               sum(BilledCost) AS BilledCost, sum(EffectiveCost) AS EffectiveCost,
               sum(ListCost) AS ListCost, sum(ContractedCost) AS ContractedCost, count(*) AS row_count
        FROM src GROUP BY ALL
    """)
    con.execute("""
        CREATE TEMP TABLE tagmap AS
        SELECT raw, '{' || string_agg(to_json(nk) || ':' || coalesce(to_json(v), 'null'), ',' ORDER BY nk) || '}' AS norm
        FROM (
            SELECT raw, lower(trim(k)) AS nk, json_extract_string(raw, '$."' || k || '"') AS v
            FROM (SELECT raw, unnest(json_keys(raw)) AS k
                  FROM (SELECT DISTINCT Tags AS raw FROM raw_rollup WHERE Tags IS NOT NULL))
        ) GROUP BY raw
    """)
    con.execute("""
        CREATE TEMP TABLE rollup AS
        SELECT charge_date, ProviderName, BillingAccountId, BillingAccountName, SubAccountId, SubAccountName,
               ServiceName, ServiceCategory, RegionId, ResourceId, ResourceName, ResourceType, ChargeCategory,
               BillingCurrency, m.norm AS tags_norm,
               sum(BilledCost) AS BilledCost, sum(EffectiveCost) AS EffectiveCost, sum(ListCost) AS ListCost,
               sum(ContractedCost) AS ContractedCost, sum(row_count) AS row_count
        FROM raw_rollup r LEFT JOIN tagmap m ON r.Tags = m.raw
        GROUP BY ALL
    """)
    con.execute(f"COPY rollup TO '{out / 'rollup.parquet'}' (FORMAT parquet, COMPRESSION zstd)")
    t["rollup_s"] = time.perf_counter() - s
    rollup_rows = con.execute("SELECT count(*) FROM rollup").fetchone()[0]

    # 2. tag coverage over the 30 days ending at as_of
    s = time.perf_counter()
    start = as_of - timedelta(days=29)
    num, den = con.execute(f"""
        SELECT sum(EffectiveCost) FILTER (WHERE json_exists(tags_norm, '$.{TAG_KEY}')), sum(EffectiveCost)
        FROM rollup
        WHERE ChargeCategory = 'Usage' AND charge_date BETWEEN DATE '{start}' AND DATE '{as_of}'
    """).fetchone()
    t["tag_coverage_s"] = time.perf_counter() - s

    # 3. per-account totals
    s = time.perf_counter()
    accts = con.execute("""
        SELECT ProviderName, SubAccountId, sum(BilledCost), sum(EffectiveCost)
        FROM rollup GROUP BY ALL ORDER BY 3 DESC
    """).fetchall()
    by_provider = con.execute("SELECT ProviderName, sum(BilledCost) FROM rollup GROUP BY ALL").fetchall()
    by_day = con.execute("SELECT charge_date, sum(BilledCost) FROM rollup GROUP BY ALL ORDER BY 1").fetchall()
    t["accounts_s"] = time.perf_counter() - s

    # 4. month-to-date budget actual
    s = time.perf_counter()
    mtd = con.execute(f"""
        SELECT sum(BilledCost) FROM rollup
        WHERE charge_date BETWEEN DATE '{as_of.replace(day=1)}' AND DATE '{as_of}'
    """).fetchone()[0]
    t["mtd_s"] = time.perf_counter() - s

    # 5. row-level lake copy (the keep_rows reference): every row of the days up to as_of plus its day
    lake_rows = None
    if lake is not None:
        s = time.perf_counter()
        lake = Path(lake)
        lake.mkdir(parents=True, exist_ok=True)
        # one COPY per day (a timestamp range: parquet row-group statistics prune the other days).
        # A single COPY ... PARTITION_BY (day) buffers partitions: 54 s / 14.5 GB at 10M rows here.
        days = [r[0] for r in con.execute(
            f"SELECT DISTINCT charge_date FROM rollup WHERE charge_date <= DATE '{as_of}' ORDER BY 1").fetchall()]
        for d in days:
            (lake / f"day={d}").mkdir(exist_ok=True)
            con.execute(f"""
                COPY (SELECT *, DATE '{d}' AS day FROM src
                      WHERE ChargePeriodStart >= TIMESTAMPTZ '{d} 00:00:00+00'
                        AND ChargePeriodStart < TIMESTAMPTZ '{d + timedelta(days=1)} 00:00:00+00')
                TO '{lake / f"day={d}" / "data.parquet"}' (FORMAT parquet, COMPRESSION {lake_compression})
            """)
        t["lake_copy_s"] = time.perf_counter() - s
        lake_rows = con.execute(f"SELECT count(*) FROM read_parquet('{lake}/**/*.parquet')").fetchone()[0]
    t["total_s"] = time.perf_counter() - t0
    con.close()
    if tmp is not None:
        tmp.cleanup()
    return {
        "engine": f"duckdb {duckdb.__version__}",
        "as_of": as_of.isoformat(),
        "rollup_rows": rollup_rows,
        "lake_rows": lake_rows,
        "timings": {k: round(v, 3) for k, v in t.items()},
        "billed_cost_by_provider": {p: str(v) for p, v in by_provider},
        "billed_cost_by_day": {d.isoformat(): str(v) for d, v in by_day},
        "tag_coverage": {"key": TAG_KEY, "window_start": start.isoformat(), "as_of": as_of.isoformat(),
                         "numerator": str(num), "denominator": str(den),
                         "ratio": str(num / den) if den else None},
        "accounts": [{"provider": p, "sub_account_id": a, "billed_cost": str(b), "effective_cost": str(e)}
                     for p, a, b, e in accts],
        "month_to_date": {"from": as_of.replace(day=1).isoformat(), "through": as_of.isoformat(), "billed_cost": str(mtd)},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path, help="folder written by bench/generate.py")
    ap.add_argument("--as-of", default=None)
    ap.add_argument("--out", type=Path, default=None, help="where to write rollup.parquet (default: temp dir)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--memory-limit", default=None)
    ap.add_argument("--lake", type=Path, default=None, help="also write every row (plus a day column) here, partitioned by day")
    ap.add_argument("--lake-compression", default="lz4", choices=["lz4", "zstd", "snappy"])
    a = ap.parse_args(argv)
    res = run(a.data, date.fromisoformat(a.as_of) if a.as_of else None, a.out, a.threads, a.memory_limit,
              a.lake, a.lake_compression)
    json.dump(res, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
