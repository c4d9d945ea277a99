"""Ingest only: one FOCUS export into a fresh lake, in this process, timed (no rules, no findings).

    python bench/ingest.py --data bench/data/10m [--rollup-only] [--as-of YYYY-MM-DD] [--repeat N]

The real provider (``type: focus``) and the real lake (staging, the ingest ledger's checks, the
journaled commit), as a cycle runs them; prints wall seconds of ``ingest_source`` (plan, read,
normalise, stage, roll up, check) and of ``land`` (the commit), the process's CPU seconds and
peak RSS. What docs/benchmarks.md uses to compare ingest changes one at a time; the cycle
benchmark (``run_cycle.py``) measures whole commands.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="folder written by bench/generate.py")
    ap.add_argument("--rollup-only", action="store_true", help="ingest.keep_rows: false")
    ap.add_argument("--as-of", default=None, help="default: the data set's last complete day")
    ap.add_argument("--repeat", type=int, default=1, help="runs, each into a fresh lake")
    a = ap.parse_args(argv)

    from costguard.ingest import ingest_source, land
    from costguard.lake import Lake
    from costguard.providers import Horizon
    from costguard.providers.focus import FocusProvider

    data = a.data.resolve()
    as_of = date.fromisoformat(a.as_of or json.loads((data / "expected.json").read_text())["last_complete_day"])
    out = []
    for _ in range(a.repeat):
        tmp = Path(tempfile.mkdtemp(prefix="cg-ingest-", dir=os.environ.get("CG_BENCH_TMP")))
        try:
            provider = FocusProvider("bench", [str(data / "focus" / "data" / "**" / "*.parquet")], base_dir=Path("/"))
            lake = Lake(tmp / "lake", keep_rows=not a.rollup_only, writer=True)
            t0, c0 = time.perf_counter(), cpu_s()
            staged = ingest_source(provider, lake, horizon=Horizon(as_of), restate_days=3, month_to_date=True,
                                   run_id="bench", check_cancel=lambda: None)
            t1 = time.perf_counter()
            land(staged, lake, lambda *_: None)
            t2, c2 = time.perf_counter(), cpu_s()
            res = staged.result
            if not res.ok:
                print(f"ingest failed: {res.status}: {res.detail}", file=sys.stderr)
                return 1
            out.append({"ingest_s": round(t1 - t0, 2), "land_s": round(t2 - t1, 2), "cpu_s": round(c2 - c0, 1),
                        "rows": res.rows, "days": res.days})
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    peak = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    mode = "rollup only" if a.rollup_only else "keep_rows"
    for r in out:
        print(f"{mode}: {r['rows']:,} rows, {r['days']} days: ingest {r['ingest_s']} s, land {r['land_s']} s, "
              f"CPU {r['cpu_s']} s")
    print(f"peak RSS {peak} MB; load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
