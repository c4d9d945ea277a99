"""Weekly digest benchmark: ``python bench/digest.py --rows 1M [--data DIR] [--tier NAME]``.

Generates ten ISO weeks of synthetic FOCUS data (``costguard.sim``, 70 days ending Monday
2026-01-05, the last day partial), ingests it once into a rollup-only lake (timed, not the target),
then times, each as a fresh child process (wall seconds and the child's peak RSS):

* ``text``: ``costguard digest --week 2026-W01`` (the organisation's digest printed as text: the
  data part alone);
* ``org``: ``costguard digest --week 2026-W01 --out DIR`` (data, three PNG charts, HTML, JSON);
* ``scheduled``: ``costguard digest --scheduled --week 2026-W01`` (what the daemon runs: the
  organisation plus one digest per owner team; four teams owning the four largest accounts).

Then checks that the digest's total equals ``costguard costs`` for the same days to the cent
(``reconciles``) and records the rollup's size and the files written. Results:
``bench/results/digest-<tier>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import textwrap
from datetime import date
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import polars as pl  # noqa: E402

from costguard.sim import SimSpec, generate, parse_rows  # noqa: E402
from run_cycle import costguard_cmd, machine, measure  # noqa: E402

END = date(2026, 1, 5)      # Monday: the data covers 2025-W44 .. 2026-W01, Sunday 4 Jan partial
DAYS = 70
WEEK = "2026-W01"
START, STOP = date(2025, 12, 29), date(2026, 1, 5)


def _config(work: Path, data: Path, teams: dict[str, str]) -> Path:
    owners = "default: finops\nteams:\n  finops: {}\n" + "".join(f"  {t}: {{accounts: [\"{a}\"]}}\n" for t, a in teams.items())
    (work / "owners.yaml").write_text(owners)
    cfg = work / "costguard.yaml"
    cfg.write_text(textwrap.dedent(f"""
        state: {{url: "sqlite:///state.db", lake: lake}}
        ingest: {{keep_rows: false}}
        providers:
          - {{name: sim, type: focus, paths: ["{data}/focus/data/**/*.parquet"]}}
        rules: ["{HERE.parent / 'rules'}"]
        owners: owners.yaml
        digest: {{archive: archive}}
        """).lstrip())
    return cfg


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="1M", help="rows over the 70 days: 100k, 1M, 10M, …")
    ap.add_argument("--data", type=Path, default=None, help="dataset folder (generated if missing)")
    ap.add_argument("--tier", default=None)
    ap.add_argument("--results", type=Path, default=HERE / "results")
    a = ap.parse_args(argv)
    n = parse_rows(a.rows)
    tier = a.tier or a.rows.lower()
    data = a.data or HERE / "data" / f"digest-{tier}"
    if not (data / "manifest.json").exists():
        print(f"generating {n:,} rows over {DAYS} days into {data}", file=sys.stderr)
        generate(SimSpec(rows=n, days=DAYS, end=END, seed=42), data)
    cmd = costguard_cmd()
    if cmd is None:
        print("costguard is not runnable", file=sys.stderr)
        return 1
    top = (pl.scan_parquet(f"{data}/focus/data/**/*.parquet").group_by("SubAccountId").agg(pl.col("BilledCost").sum())
           .sort("BilledCost", descending=True).head(4).collect()["SubAccountId"].to_list())
    result: dict = {"tier": tier, "rows": json.loads((data / "manifest.json").read_text())["rows"], "days": DAYS,
                    "week": WEEK, "machine": machine()}
    with tempfile.TemporaryDirectory(prefix="cg-digest-bench-") as tmp:
        work = Path(tmp)
        cfg = _config(work, data, {f"team{i + 1}": acct for i, acct in enumerate(top)})
        ingest = measure([*cmd, "run", "--once", "-c", str(cfg), "--as-of", "2026-01-04"])
        result["ingest"] = {k: ingest[k] for k in ("wall_s", "peak_rss_mb", "rc", "load1_before", "load1_after")}
        if ingest["rc"] not in (0, 3):
            print(ingest["stderr_tail"], file=sys.stderr)
            return 1
        rollup = pl.scan_parquet(f"{work}/lake/rollup/**/*.parquet")
        result["rollup_rows"] = rollup.select(pl.len()).collect().item()
        result["rollup_files"] = sum(1 for _ in (work / "lake" / "rollup").rglob("*.parquet"))
        runs = {
            "text": [*cmd, "digest", "-c", str(cfg), "--week", WEEK],
            "org": [*cmd, "digest", "-c", str(cfg), "--week", WEEK, "--out", str(work / "out")],
            "scheduled": [*cmd, "digest", "-c", str(cfg), "--week", WEEK, "--scheduled"],
        }
        for name, c in runs.items():
            m = measure(c)
            result[name] = {k: m[k] for k in ("wall_s", "peak_rss_mb", "rc", "load1_before", "load1_after")}
            if m["rc"] != 0:
                print(name, m["stderr_tail"], file=sys.stderr)
        files = sorted((work / "out").iterdir())
        result["org_files"] = {p.name: p.stat().st_size for p in files}
        result["archive_files"] = len(list((work / "archive").iterdir()))
        digest = json.loads((work / "out" / f"digest-{WEEK}.json").read_text(), parse_float=Decimal, parse_int=Decimal)
        costs = measure([*cmd, "costs", "-c", str(cfg), "--by", "BillingCurrency", "--from", str(START), "--to", str(STOP),
                         "--format", "json", "--exact"])
        want = {r["BillingCurrency"]: r["BilledCost"] for r in json.loads(costs["stdout"], parse_float=Decimal, parse_int=Decimal)}
        got = {t["currency"]: t["this_week"] for t in digest["totals"]}
        result["reconciles"] = bool(want) and {k: round(v, 2) for k, v in got.items()} == {k: round(v, 2) for k, v in want.items()}
        result["movers"] = [(m["service"], str(m["change"]), m["root_cause"]["level"]) for m in digest["movers"]]
    a.results.mkdir(parents=True, exist_ok=True)
    (a.results / f"digest-{tier}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"| {tier} | {result['rows']:,} | {result['rollup_rows']:,} | {result['ingest']['wall_s']} | "
          + " | ".join(f"{result[k]['wall_s']} / {result[k]['peak_rss_mb']:.0f}" for k in ("text", "org", "scheduled"))
          + f" | {result['reconciles']} |")
    return 0 if result["reconciles"] and all(result[k]["rc"] == 0 for k in ("text", "org", "scheduled")) else 1


if __name__ == "__main__":
    raise SystemExit(main())
