#!/usr/bin/env python3
"""A labelled generator for the anomaly benchmark: daily rollup rows with known anomalies.

Each group is (ProviderName, SubAccountId, ServiceName) with 1-3 resources. Normal spend has a
per-group level (log-uniform $200-$5,000 a day), a per-group weekend factor (0.5-1.0), a slow
trend, multiplicative noise (4-8%), month-start charges (Purchase and Tax rows on the 1st, which
are not usage and must not alarm), restatements (about 10% of days revised by 2-8% one to three
days later) and a partial last day (20-70% of a day, until the day completes).

Planted anomalies (``labels``), every one at least ``MIN_IMPACT`` ($150) a day away from normal,
each on one resource of its group so the root cause is known:

* ``spike``: one day at +35% to +150% of the level;
* ``level_shift``: from a day on, +35% to +90%, for the rest of the run;
* ``drift``: a ramp over 7-10 days up to +60% to +120%, then staying there;
* ``new_service``: a group that did not exist starts at $150-$800 a day;
* ``drop``: 3-7 days at 10% to 50% of the level.

Rows carry ``x_KnownFrom`` / ``x_KnownUntil``: the first and last as-of day at which that version
of the row is what the lake would hold (the partial version of a day is known only on that day, a
restated version from the day it arrives). ``view(rows, as_of)`` is the rollup the daemon would
read at the end of ``as_of``.

    python bench/anomaly/generate.py --seed 1 --out bench/data/anomaly-1
"""

from __future__ import annotations

import argparse
import json
import math
import zlib
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl

from costguard.rollup import rollup_schema

SHAPES = ("spike", "level_shift", "drift", "new_service", "drop")
MIN_IMPACT = 150  # every planted anomaly is at least this far from normal on its first day (the rule's min_impact is 100)
CENT = Decimal("0.01")
SERVICES = ["Amazon Elastic Compute Cloud", "Amazon Relational Database Service", "Amazon Simple Storage Service",
            "AWS Lambda", "Amazon Elastic Container Service", "Amazon CloudFront", "Amazon DynamoDB", "Amazon Redshift"]
NEW_SERVICES = ["Amazon SageMaker", "Amazon Bedrock", "Amazon OpenSearch Service", "Amazon EMR", "AWS Glue", "Amazon MSK"]


@dataclass(frozen=True)
class Spec:
    seed: int = 1
    days: int = 150
    start: date = date(2025, 9, 1)
    accounts: int = 10
    groups: int = 40
    per_shape: int = 12
    warmup: int = 35  # no anomaly before this day (the baseline needs history)


@dataclass(frozen=True)
class Label:
    id: int
    shape: str
    account: str
    service: str
    resource: str
    start: str          # first anomalous day
    end: str            # last day a detection still counts for this anomaly
    impact_first_day: str


def _day(spec: Spec, i: int) -> date:
    return spec.start + timedelta(days=i)


def generate(spec: Spec) -> tuple[pl.DataFrame, list[Label]]:
    rng = np.random.default_rng(spec.seed)
    n = spec.days
    accounts = [f"{100000000000 + 7919 * i:012d}" for i in range(spec.accounts)]
    groups = []
    used = set()
    while len(groups) < spec.groups:
        g = (accounts[int(rng.integers(len(accounts)))], SERVICES[int(rng.integers(len(SERVICES)))])
        if g not in used:
            used.add(g)
            groups.append(g)
    # base daily cost per group and resource (float dollars, rounded to cents at the end)
    base: dict[tuple[str, str, str], np.ndarray] = {}
    for gi, (acct, svc) in enumerate(groups):
        level = math.exp(rng.uniform(math.log(200), math.log(5000)))
        weekend = rng.uniform(0.5, 1.0)
        trend = rng.uniform(-0.0005, 0.003)
        noise = rng.uniform(0.04, 0.08)
        shares = rng.dirichlet(np.ones(int(rng.integers(1, 4))))
        days = np.arange(n)
        wk = np.array([weekend if _day(spec, i).weekday() >= 5 else 1.0 for i in range(n)])
        series = level * wk * (1 + trend) ** days * rng.lognormal(0, noise, n)
        for ri, share in enumerate(shares):
            base[(acct, svc, f"r-{gi:03d}-{ri}")] = series * share
    labels: list[Label] = []
    busy: dict[tuple[str, str], list[tuple[int, int]]] = {}
    lid = 0
    # persistent shapes first: a spike's or drop's size is then measured against a level that
    # already includes any earlier shift of its group (placing them after once mislabelled a +23%
    # spike as +35%)
    for shape in ("level_shift", "drift", "spike", "drop", "new_service"):
        placed = 0
        tries = 0
        while placed < spec.per_shape and tries < 10_000:
            tries += 1
            if shape == "new_service":
                acct = accounts[int(rng.integers(len(accounts)))]
                svc = NEW_SERVICES[placed % len(NEW_SERVICES)]
                if (acct, svc) in busy:
                    continue
                d0 = int(rng.integers(spec.warmup, n - 3))
                amount = rng.uniform(150, 800)
                res = f"new-{lid:03d}"
                vals = np.zeros(n)
                vals[d0:] = amount * rng.lognormal(0, 0.05, n - d0)
                base[(acct, svc, res)] = vals
                busy[(acct, svc)] = [(d0, n)]
                labels.append(Label(lid, shape, acct, svc, res, _day(spec, d0).isoformat(),
                                    _day(spec, min(n - 1, d0 + 13)).isoformat(), f"{vals[d0]:.2f}"))
                lid += 1
                placed += 1
                continue
            acct, svc = groups[int(rng.integers(len(groups)))]
            res_keys = [k for k in base if k[:2] == (acct, svc)]
            total = sum(base[k] for k in res_keys)
            d0 = int(rng.integers(spec.warmup, n - 3))
            span = {"spike": 1, "drop": int(rng.integers(3, 8)), "level_shift": n - d0, "drift": n - d0}[shape]
            window_end = d0 + {"spike": 0, "drop": span - 1, "level_shift": 13, "drift": 16}[shape]
            if any(not (window_end + 30 < a or d0 > b + 30) for a, b in busy.get((acct, svc), [])):
                continue  # keep anomalies of one group a baseline apart
            if shape in ("level_shift", "drift") and any(b >= n - 1 for _a, b in busy.get((acct, svc), [])):
                continue
            level = float(np.median(total[max(0, d0 - 28):d0]))
            key = res_keys[int(rng.integers(len(res_keys)))]
            if shape == "drop":  # every resource loses the same share: the biggest one moves most
                key = max(res_keys, key=lambda k: float(np.median(base[k][max(0, d0 - 28):d0])))
            extra = np.zeros(n)
            if shape == "spike":
                extra[d0] = max(MIN_IMPACT, level * rng.uniform(0.35, 1.5))
            elif shape == "level_shift":
                extra[d0:] = max(MIN_IMPACT, level * rng.uniform(0.35, 0.9))
            elif shape == "drift":
                ramp = int(rng.integers(7, 11))
                top = max(MIN_IMPACT * ramp / 2, level * rng.uniform(0.6, 1.2))
                extra[d0:] = top
                k = min(ramp, n - d0)
                extra[d0:d0 + k] = top * np.arange(1, k + 1) / ramp
            else:  # drop: 50-90% of the group's spend disappears (taken from its resources)
                if level < MIN_IMPACT / 0.5:
                    continue
                cut = rng.uniform(0.5, 0.9)
                for k in res_keys:
                    base[k][d0:d0 + span] *= (1 - cut)
            if shape != "drop":
                base[key] = base[key] + extra
            busy.setdefault((acct, svc), []).append((d0, window_end))
            first = level * cut if shape == "drop" else extra[d0]
            if shape == "drift":
                window_end = min(n - 1, window_end)
            labels.append(Label(lid, shape, acct, svc, key[2], _day(spec, d0).isoformat(),
                                _day(spec, min(n - 1, window_end)).isoformat(), f"{first:.2f}"))
            lid += 1
            placed += 1
    return _rows(spec, rng, base), labels


def _rows(spec: Spec, rng: np.random.Generator, base: dict[tuple[str, str, str], np.ndarray]) -> pl.DataFrame:
    n = spec.days
    out = []
    regions = ["us-east-1", "us-west-2", "eu-west-1"]
    last = _day(spec, n - 1)
    for (acct, svc, res), vals in base.items():
        region = regions[zlib.crc32(res.encode()) % len(regions)]
        for i in range(n):
            v = Decimal(f"{vals[i]:.2f}")
            if v == 0:
                continue
            d = _day(spec, i)
            common = {"SubAccountId": acct, "ServiceName": svc, "ResourceId": res, "RegionId": region, "SkuId": f"{svc[:12]}:{res[-1]}",
                      "ChargeCategory": "Usage", "x_ChargeDate": d}
            frac = Decimal(f"{rng.uniform(0.2, 0.7):.3f}")
            out.append({**common, "EffectiveCost": (v * frac).quantize(CENT), "x_KnownFrom": d, "x_KnownUntil": d})  # still arriving
            if rng.random() < 0.10 and i < n - 4:  # restated 1-3 days after it completed
                lag = int(rng.integers(1, 4))
                first = (v * Decimal(f"{1 - rng.uniform(0.02, 0.08) * rng.choice([-1, 1]):.4f}")).quantize(CENT)
                arrives = d + timedelta(days=1 + lag)
                out.append({**common, "EffectiveCost": first, "x_KnownFrom": d + timedelta(days=1), "x_KnownUntil": arrives - timedelta(days=1)})
                out.append({**common, "EffectiveCost": v, "x_KnownFrom": arrives, "x_KnownUntil": last})
            else:
                out.append({**common, "EffectiveCost": v, "x_KnownFrom": d + timedelta(days=1), "x_KnownUntil": last})
    for i in range(n):  # month-start charges: not usage, recurring, large
        d = _day(spec, i)
        if d.day == 1:
            for j, acct in enumerate(sorted({r["SubAccountId"] for r in out})):
                for cat, amount in (("Purchase", 2000 + 100 * j), ("Tax", 300 + 10 * j)):
                    out.append({"SubAccountId": acct, "ServiceName": "AWS Support (Business)" if cat == "Purchase" else "Tax",
                                "ResourceId": None, "RegionId": None, "SkuId": None, "ChargeCategory": cat, "x_ChargeDate": d,
                                "EffectiveCost": Decimal(amount), "x_KnownFrom": d, "x_KnownUntil": last})
    schema = rollup_schema()
    df = pl.DataFrame(out, schema={**{k: schema[k] for k in ("SubAccountId", "ServiceName", "ResourceId", "RegionId", "SkuId",
                                                              "ChargeCategory", "x_ChargeDate", "EffectiveCost")},
                                   "x_KnownFrom": pl.Date, "x_KnownUntil": pl.Date})
    return df.with_columns(
        pl.lit("bench").alias("x_Source"), pl.lit("AWS").alias("ProviderName"), pl.lit("999999999999").alias("BillingAccountId"),
        pl.lit("USD").alias("BillingCurrency"), pl.col("EffectiveCost").alias("BilledCost"), pl.col("EffectiveCost").alias("ListCost"),
    )


def view(rows: pl.DataFrame, as_of: date) -> pl.LazyFrame:
    """The daily rollup as the lake holds it at the end of ``as_of``."""
    schema = rollup_schema()
    got = rows.lazy().filter((pl.col("x_KnownFrom") <= as_of) & (pl.col("x_KnownUntil") >= as_of))
    have = rows.columns
    return got.select([pl.col(c).cast(t) if c in have else pl.lit(None, dtype=t).alias(c) for c, t in schema.items()])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--days", type=int, default=Spec.days)
    ap.add_argument("--per-shape", type=int, default=Spec.per_shape)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    spec = Spec(seed=a.seed, days=a.days, per_shape=a.per_shape)
    rows, labels = generate(spec)
    a.out.mkdir(parents=True, exist_ok=True)
    rows.write_parquet(a.out / "rows.parquet")
    (a.out / "labels.json").write_text(json.dumps({"spec": {k: str(v) for k, v in asdict(spec).items()},
                                                   "labels": [asdict(x) for x in labels]}, indent=1) + "\n")
    print(f"{rows.height:,} rows, {len(labels)} labelled anomalies → {a.out}")


if __name__ == "__main__":
    main()
