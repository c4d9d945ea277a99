"""Cost-weighted tag coverage per week: for each ``tag-coverage`` rule, the share of its Usage cost
(its metric, its filter) whose rows carry every one of its keys, week by week over the digest's
eight weeks. The same test as the rule (``rules.tag_coverage``), on calendar weeks instead of the
rule's trailing window."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import polars as pl

from costguard.digest.model import CoveragePoint, CoverageSeries
from costguard.digest.weeks import IsoWeek
from costguard.rules import tagkeys
from costguard.rollup import per_tag_set
from costguard.rules.base import DATE, RATIO_PLACES, RuleInstance, apply_filter
from costguard.rules.tag_coverage import TagCoverageParams


def coverage_series(costs: pl.LazyFrame, rules: Sequence[RuleInstance], *, week: IsoWeek, weeks: int) -> list[CoverageSeries]:
    chosen = [r for r in rules if r.kind == "tag-coverage"]
    first = week.shift(1 - weeks)
    queries = []
    for rule in chosen:
        p: TagCoverageParams = rule.params
        # "tagged" as the rule means it: each key or one of its aliases, non-empty
        has = [tagkeys.tag_value(k, p.aliases).is_not_null().alias(f"_has{i}") for i, k in enumerate(p.keys)]
        tagged = pl.all_horizontal([f"_has{i}" for i in range(len(p.keys))])
        wk = ((pl.col(DATE) - pl.lit(week.start)).dt.total_days() // 7).alias("_wk")
        queries.append(
            per_tag_set(apply_filter(costs, rule.filter)
                        .filter((pl.col(DATE) >= first.start) & (pl.col(DATE) < week.end) & (pl.col("ChargeCategory") == "Usage")),
                        has)
            .group_by(wk, pl.col("BillingCurrency"))
            .agg(pl.col(p.metric).sum().alias("total"), pl.col(p.metric).filter(tagged).sum().alias("tagged"))
        )
    frames = pl.collect_all(queries, engine="streaming") if queries else []
    out = []
    for rule, frame in zip(chosen, frames, strict=True):
        p = rule.params
        by_currency: dict[str, dict[int, tuple[Decimal, Decimal]]] = {}
        for wk_, cur, total, tagged in frame.iter_rows():
            by_currency.setdefault(cur, {})[wk_] = (total, tagged)
        for cur in sorted(by_currency, key=str):
            points = []
            for k in range(1 - weeks, 1):
                total, tagged = by_currency[cur].get(k, (Decimal(0), Decimal(0)))
                cov = (tagged / total).quantize(RATIO_PLACES) if total > 0 else None
                points.append(CoveragePoint(str(week.shift(k)), cov, tagged, total))
            now, before = points[-1].coverage, points[-2].coverage if len(points) > 1 else None
            out.append(CoverageSeries(
                rule=rule.id, keys=list(p.keys), metric=p.metric, currency=cur, target=p.min_coverage,
                this_week=now, last_week=before, change=now - before if now is not None and before is not None else None,
                weeks=points,
            ))
    return out
