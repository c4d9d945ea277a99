"""Generate a benchmark dataset: ``python bench/generate.py --rows 10M --days 30 --out bench/data/10m``.

Thin wrapper over ``costguard.sim``; prints the generation time and this process's peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from costguard.sim import SimSpec, generate, parse_rows  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", default="1M", help="20000, 100k, 1M, 10M, ...")
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--end", default=None, help="exclusive end day YYYY-MM-DD (default: fixed 2026-01-01 for reproducibility)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    end = date.fromisoformat(a.end) if a.end else date(2026, 1, 1)
    spec = SimSpec(rows=parse_rows(a.rows), days=a.days, end=end, seed=a.seed)
    t0 = time.perf_counter()
    m = generate(spec, a.out, progress=None if a.quiet else (lambda s: print(s, file=sys.stderr)))
    wall = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    size_mb = sum(f.stat().st_size for f in a.out.rglob("*.parquet")) / 2**20
    print(f"rows={m['rows']:,} days={a.days} last_day={m['last_day']} (partial) wall={wall:.1f}s "
          f"peak_rss={rss_mb:.0f}MB parquet={size_mb:.0f}MB out={a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
