#!/usr/bin/env python3
"""Time each rule of a pack over a filled lake: what the evaluate step of a cycle costs.

Fills a fresh lake from a generated data set (``costguard run --once`` with ``rules: []``, a child
process), then evaluates every rule of the pack in this process over the lake's rollup and
inventory, as the cycle does, and prints wall and CPU seconds and findings per rule alone, then
for the whole pack in one evaluation, where results several rules read (the lake's per-resource
costs, the rollup's tag sets) are computed once (best of ``--repeat``; a fresh context each run).

    python bench/generate.py --rows 1M --days 30 --out bench/data/1m
    python bench/rule_pack.py --data bench/data/1m [--rules rules/] [--as-of 2025-12-30]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--rules", type=Path, default=REPO / "rules")
    ap.add_argument("--as-of", default=None, help="default: the data set's last complete day")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    a.data = a.data.resolve()
    manifest = json.loads((a.data / "manifest.json").read_text())
    as_of = a.as_of or date.fromordinal(date.fromisoformat(manifest["partial_day"]).toordinal() - 1).isoformat()
    with tempfile.TemporaryDirectory(dir=os.environ.get("CG_BENCH_TMP")) as tmp:
        cfg = Path(tmp) / "costguard.yaml"
        cfg.write_text(f"state: {{url: 'sqlite:///{tmp}/state.db', lake: {tmp}/lake}}\n"
                       f"providers: [{{name: bench, type: focus, paths: [{json.dumps(str(a.data / manifest['glob']))}], "
                       f"inventory: {json.dumps(str(a.data / manifest['inventory']))}}}]\nrules: []\n")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "costguard", "run", "--once", "-c", str(cfg), "--as-of", as_of],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(f"lake filled in {time.perf_counter() - t0:.1f} s ({manifest['rows']:,} rows)")
        from costguard.catalog import bundled
        from costguard.lake import Lake
        from costguard.rules import RuleContext, evaluate, load_rules

        lake = Lake(Path(tmp) / "lake")
        catalog = bundled()

        def context() -> RuleContext:  # a fresh one per run: nothing memoised by an earlier run is reused
            return RuleContext(as_of=date.fromisoformat(as_of), costs=lake.rollup(), inventory=lake.inventory(), catalog=catalog)

        ctx = context()
        rollup_rows = ctx.costs.select(__import__("polars").len()).collect().item()
        rules = load_rules([a.rules.resolve()], base_dir=Path("/"))
        print(f"rollup rows: {rollup_rows:,}; inventory rows: {ctx.inventory.collect().height if ctx.inventory is not None else 0}")
        print("| rule | kind | findings | seconds alone (best of %d) | CPU seconds |" % a.repeat)
        print("|---|---|---|---|---|")
        total = 0.0
        for r in rules:
            best, cpu, n = float("inf"), float("inf"), 0
            for _ in range(a.repeat):
                t, c = time.perf_counter(), _cpu()
                res = evaluate([r], context())
                best, cpu = min(best, time.perf_counter() - t), min(cpu, _cpu() - c)
                n = len(res.findings)
                if res.errors:
                    raise SystemExit(f"{r.id}: {res.errors}")
            total += best
            print(f"| {r.id} | {r.kind} | {n} | {best:.2f} | {cpu:.2f} |")
        print(f"| sum of the rules alone | | | {total:.2f} | |")
        # the pack as a cycle evaluates it: one context, so what several rules read is computed once
        best, cpu, n = float("inf"), float("inf"), 0
        for _ in range(a.repeat):
            t, c = time.perf_counter(), _cpu()
            res = evaluate(rules, context())
            best, cpu = min(best, time.perf_counter() - t), min(cpu, _cpu() - c)
            n = len(res.findings)
        print(f"| **the pack in one evaluation** | | {n} | **{best:.2f}** | {cpu:.2f} |")


def _cpu() -> float:
    """CPU seconds of this process, every thread (polars works on several): the machine is shared."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

if __name__ == "__main__":
    main()
