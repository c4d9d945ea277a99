#!/usr/bin/env python3
"""Build costguard's bundled EC2 catalogue (``costguard/catalogdata/``) from the public data set.

Reads ``aws-ec2-catalog/`` of the shared data folder (see its SOURCES.md) and writes:

* ``aws_instance_types.csv``: instance_type, family, vcpu, memory_gib, architecture, gpu,
  current_generation (from apache-libcloud 3.9.1 ``ec2_instance_types.py``; ``architecture`` is
  ``arm64`` for AWS Graviton processors, ``x86_64`` otherwise);
* ``aws_instance_prices.csv.gz``: instance_type, region, usd_per_hour, source: us-east-1 from
  aws/karpenter-provider-aws (``zz_generated.pricing_aws.go``, commit 1d927085dd81: the accurate
  one), every other region from apache-libcloud 3.9.1 ``pricing.json`` (approximate: the shared
  data README notes libcloud is stale for ~19% of us-east-1 types);
* ``aws_region_factors.csv``: region, factor, types: the median of (regional price / us-east-1
  price) over the instance types priced in both, used to estimate prices of resources the
  catalogue lists for us-east-1 only (flagged ``estimated`` wherever used).

Stdlib only; the output is deterministic (sorted, fixed gzip mtime):

    python scripts/build_catalog.py --data /work/shared/data/aws-ec2-catalog --out costguard/catalogdata
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import statistics
from decimal import Decimal
from pathlib import Path


def _arch(processor: str) -> str:
    return "arm64" if "graviton" in processor.lower() else "x86_64"


def build(data: Path, out: Path) -> dict[str, int]:
    out.mkdir(parents=True, exist_ok=True)
    types = list(csv.DictReader((data / "ec2_instance_types.csv").open()))
    with (out / "aws_instance_types.csv").open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["instance_type", "family", "vcpu", "memory_gib", "architecture", "gpu", "current_generation"])
        for t in sorted(types, key=lambda r: r["instance_type"]):
            w.writerow([t["instance_type"], t["instance_type"].split(".")[0], t["vcpu"], t["memory_gib"],
                        _arch(t["physical_processor"]), t["gpu"] or "0", "true" if t["current_generation"] == "Yes" else "false"])

    prices: dict[tuple[str, str], tuple[str, str]] = {}
    for r in csv.DictReader((data / "karpenter_on_demand_prices_us-east-1.csv").open()):
        prices[(r["instance_type"], "us-east-1")] = (r["usd_per_hour"], "karpenter")
    for r in csv.DictReader((data / "ec2_linux_on_demand_usd_per_hour.csv").open()):
        key = (r["instance_type"], r["region"])
        if key not in prices and Decimal(r["usd_per_hour"]) > 0:
            prices[key] = (r["usd_per_hour"], "libcloud")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["instance_type", "region", "usd_per_hour", "source"])
    for (t, reg), (p, src) in sorted(prices.items()):
        w.writerow([t, reg, p, src])
    with (out / "aws_instance_prices.csv.gz").open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write(buf.getvalue().encode())

    base = {t: Decimal(p) for (t, reg), (p, _s) in prices.items() if reg == "us-east-1"}
    ratios: dict[str, list[Decimal]] = {}
    for (t, reg), (p, _s) in prices.items():
        if reg != "us-east-1" and t in base and base[t] > 0:
            ratios.setdefault(reg, []).append(Decimal(p) / base[t])
    with (out / "aws_region_factors.csv").open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["region", "factor", "types"])
        w.writerow(["us-east-1", "1", len(base)])
        for reg in sorted(ratios):
            if len(ratios[reg]) >= 20:
                w.writerow([reg, statistics.median(ratios[reg]).quantize(Decimal("0.0001")), len(ratios[reg])])
    return {"types": len(types), "prices": len(prices), "regions": len(ratios) + 1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="the shared data set's aws-ec2-catalog folder")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "costguard" / "catalogdata")
    a = ap.parse_args()
    print(build(a.data, a.out))


if __name__ == "__main__":
    main()
