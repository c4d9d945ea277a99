"""Kind ``anomaly``: daily spend per group against a robust baseline (median and MAD of the
trailing days, with a weekday effect), with $ and % thresholds and the root cause of the change."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from costguard.model import Finding, fingerprint
from costguard.rollup import join_tag_sets
from costguard.rules.base import (
    DATE,
    DIMENSIONS,
    RULES,
    TAG_PREFIX,
    TAGS,
    Metric,
    Params,
    RuleContext,
    RuleInstance,
    apply_filter,
    fmt_money,
    fmt_pct,
    normalise_key,
    tag_sets,
    tag_value,
)

if TYPE_CHECKING:
    import polars as pl

MONEY = Decimal("1e-10")
MAD_TO_SIGMA = Decimal("1.4826")
ROOT_CANDIDATES = 10  # values per dimension judged exactly when looking for the root cause  # MAD × 1.4826 estimates the standard deviation of normal noise
ZERO = Decimal(0)


class AnomalyParams(Params):
    group_by: tuple[str, ...] = Field(("ProviderName", "SubAccountId", "ServiceName"),
                                      description="rollup columns and/or tag:KEY; one daily series per group (and currency)")
    metric: Metric = "EffectiveCost"
    charge_categories: tuple[str, ...] = Field(("Usage",), description="FOCUS ChargeCategory values counted; empty = all")
    baseline_days: int = Field(28, ge=7, le=90, description="trailing days the expected value is learned from")
    min_baseline_days: int = Field(14, ge=3, description="days of history (in the lake) needed before judging a day")
    detect_days: int = Field(3, ge=1, le=14, description="the last complete days looked at each run")
    threshold: Decimal = Field(Decimal(4), gt=0, description="robust z-score: |actual − expected| / (1.4826 × MAD)")
    min_impact: Decimal = Field(Decimal(100), ge=0, description="…and at least this much money per day away from expected")
    min_percent: Decimal = Field(Decimal(25), ge=0, description="…and at least this many percent away from expected")
    direction: Literal["up", "down", "both"] = "both"
    weekday_effect: bool = Field(True, description="expect each weekday at its own level (weekends are not anomalies)")
    root_cause_by: tuple[str, ...] = Field(("ResourceId", "RegionId", "SkuId", "SubAccountId", "ServiceName"),
                                           description="dimensions searched for what moved most (those not in group_by)")

    @field_validator("group_by", "root_cause_by")
    @classmethod
    def _columns(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [c for c in v if not (c.startswith(TAG_PREFIX) and normalise_key(c[len(TAG_PREFIX):])) and c not in DIMENSIONS]
        if bad:
            raise ValueError(f"unknown column(s) {', '.join(bad)}; choose from {', '.join(DIMENSIONS)} or tag:KEY")
        if len(set(v)) != len(v):
            raise ValueError("columns must not repeat")
        return v

    @model_validator(mode="after")
    def _history(self) -> "AnomalyParams":
        if self.min_baseline_days > self.baseline_days:
            raise ValueError("min_baseline_days cannot exceed baseline_days")
        return self


@dataclass(frozen=True)
class Judged:
    day: date
    actual: Decimal
    expected: Decimal
    impact: Decimal
    percent: Decimal | None  # None when nothing was expected
    score: Decimal | None    # None when the baseline has no spread at all
    spread: Decimal          # 1.4826 × MAD (floored), in money
    factor: Decimal          # weekday factor applied
    baseline_days: int
    anomalous: bool


def _median(xs: Sequence[Decimal]) -> Decimal:
    s = sorted(xs)
    n = len(s)
    if n == 0:
        return ZERO
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


class Baseline:
    """Judge one day of one series against the trailing ``baseline_days`` (within known history)."""

    def __init__(self, p: AnomalyParams, first_day: date) -> None:
        self.p = p
        self.first_day = first_day

    def history(self, series: Mapping[date, Decimal], d: date) -> list[date]:
        """The baseline days of ``d``: the trailing ``baseline_days`` within the lake's history and,
        once the series exists, within its own (a service that appeared 20 days ago is judged on
        those 20 days, not on the zeros before it; on its first day, against the lake's history)."""
        since = self.first_day
        own = min(series) if series else None
        if own is not None and d > own:
            since = max(since, own)
        return [d - timedelta(days=k) for k in range(1, self.p.baseline_days + 1) if d - timedelta(days=k) >= since]

    def model(self, series: Mapping[date, Decimal], days: Sequence[date]) -> tuple[Decimal, dict[int, Decimal]]:
        """(the median level, a factor per weekday) of ``series`` over ``days``. The weekday effect
        is working days against weekends (each class's median over the level): two classes of 20
        and 8 days in a 28-day baseline are estimated far more steadily than seven of four."""
        vals = [series.get(x, ZERO) for x in days]
        level = _median(vals)
        factors = {w: Decimal(1) for w in range(7)}
        if self.p.weekday_effect and level > 0 and len(days) >= 14:
            for weekend in (False, True):
                ws = [v for x, v in zip(days, vals, strict=True) if (x.weekday() >= 5) == weekend]
                if len(ws) >= 2:
                    f = min(max(_median(ws) / level, Decimal("0.25")), Decimal(4))
                    for w in ((5, 6) if weekend else (0, 1, 2, 3, 4)):
                        factors[w] = f
        return level, factors

    def expected(self, series: Mapping[date, Decimal], d: date) -> Decimal:
        level, factors = self.model(series, self.history(series, d))
        return (level * factors[d.weekday()]).quantize(MONEY)

    def judge(self, series: Mapping[date, Decimal], d: date) -> Judged | None:
        p = self.p
        days = self.history(series, d)
        if len(days) < p.min_baseline_days:
            return None
        vals = [series.get(x, ZERO) for x in days]
        actual = series.get(d, ZERO)
        level, factors = self.model(series, days)
        expected = (level * factors[d.weekday()]).quantize(MONEY)
        resid = [v - level * factors[x.weekday()] for x, v in zip(days, vals, strict=True)]
        mid = _median(resid)
        mad = _median([abs(r - mid) for r in resid])
        floor = max(expected * Decimal("0.01"), Decimal("0.01"))
        spread = max(MAD_TO_SIGMA * mad * factors[d.weekday()], floor).quantize(MONEY)
        impact = actual - expected
        score = (impact / spread).quantize(Decimal("0.01"))
        percent = (impact / expected * 100).quantize(Decimal("0.1")) if expected > 0 else None
        up = impact > 0
        ok_dir = p.direction == "both" or (p.direction == "up") == up
        anomalous = (ok_dir and impact != 0 and abs(score) >= p.threshold and abs(impact) >= p.min_impact
                     and (percent is None or abs(percent) >= p.min_percent))
        return Judged(d, actual, expected, impact, percent, score, spread, factors[d.weekday()], len(days), anomalous)


def _group_exprs(cols: Sequence[str]) -> list[pl.Expr]:
    import polars as pl

    return [pl.col(c) for c in cols]


def _any_of(cols: Sequence[str], keys: Sequence[tuple[Any, ...]]) -> list[pl.Expr]:
    """Per column, "one of the values ``keys`` hold there" (null included when one is null): a
    superset of the rows of those groups that the scan can apply before any join (the root causes
    of one flagged group read that group's rows, not the whole window's: 1.0 s -> 0.1 s at 10M)."""
    import polars as pl

    out = []
    for i, c in enumerate(cols):
        values = {k[i] for k in keys}
        known = [v for v in values if v is not None]
        expr = pl.col(c).is_in(known) if known else pl.lit(False)
        out.append(expr | pl.col(c).is_null() if None in values else expr)
    return out


def _tag_columns(ctx: RuleContext, cols: Sequence[str]) -> pl.DataFrame | None:
    """The lookup table of a ``tag:KEY`` column per tag dimension, per distinct tag set of the
    rollup (``base.tag_sets``): the JSON is read once per tag set (a few thousand), not once per row."""
    if not cols:
        return None
    return tag_sets(ctx, [tag_value(c[len(TAG_PREFIX):]).alias(c) for c in dict.fromkeys(cols)])


@RULES.register("anomaly")
class Anomaly:
    """Daily spend per group (by default provider / sub-account / service) against a robust
    baseline: the median of the trailing ``baseline_days`` (28), at each weekday's own level, with
    the median absolute deviation (MAD) as the measure of normal noise.

    A complete day is anomalous when it is at least ``threshold`` robust standard deviations
    (1.4826 × MAD) **and** ``min_impact`` money **and** ``min_percent`` % away from expected, in
    ``direction``. The last day with data of every source is still arriving and is never judged:
    each run looks at the ``detect_days`` complete days before it. A group gives at most one finding
    (its identity is the rule and the group), so a spike that goes on is one finding updated day
    after day, not one per day; it resolves once no day in the detection window is anomalous.

    The finding names expected and actual spend on the latest anomalous day, the impact, and the
    **root cause**: for each of ``root_cause_by`` (not already grouped by), the value whose spend
    moved most from its own (weekday-adjusted) median, with its share of the group's change; the
    root cause is the first of those dimensions whose value explains at least half of the change. ``monthly_cost`` is the
    anomaly's total impact so far (the excess over expected summed over its consecutive anomalous
    days, as AWS Cost Anomaly Detection's TotalImpact; for a drop, the shortfall); ``monthly_savings``
    is null.

    ```yaml
    - id: spend-anomalies
      kind: anomaly
      severity: warning
      filter: {ProviderName: AWS}
      group_by: [ProviderName, SubAccountId, ServiceName]
      metric: EffectiveCost
      charge_categories: [Usage]
      baseline_days: 28
      detect_days: 3
      threshold: 4
      min_impact: 100
      min_percent: 25
      direction: both
      weekday_effect: true
      root_cause_by: [ResourceId, RegionId, SkuId]
    ```
    """

    finding_kind = "anomaly"
    Params = AnomalyParams

    def evaluate(self, rule: RuleInstance, ctx: RuleContext) -> list[Finding]:
        import polars as pl

        p: AnomalyParams = rule.params  # type: ignore[assignment]
        lf = apply_filter(ctx.costs, rule.filter).filter(pl.col(DATE) <= ctx.as_of)
        if p.charge_categories:
            lf = lf.filter(pl.col("ChargeCategory").is_in(list(p.charge_categories)))
        spans = lf.group_by("x_Source").agg(pl.col(DATE).min().alias("first"), pl.col(DATE).max().alias("last")).collect(engine="streaming")
        if spans.is_empty():
            return []
        newest = spans["last"].max()
        active = spans.filter(pl.col("last") >= newest - timedelta(days=p.baseline_days))  # type: ignore[operator]
        end: date = active["last"].min() - timedelta(days=1)  # every source's last day is still arriving
        first: date = spans["first"].min()  # type: ignore[assignment]
        start = max(first, end - timedelta(days=p.detect_days - 1 + 2 * p.baseline_days))
        if end < first:
            return []
        keys = [*p.group_by, "BillingCurrency"]
        bare = lf.filter((pl.col(DATE) >= start) & (pl.col(DATE) <= end))
        lut = _tag_columns(ctx, [c for c in (*p.group_by, *p.root_cause_by) if c.startswith(TAG_PREFIX)])
        daily = (
            (bare if lut is None else join_tag_sets(bare, lut))
            .group_by(*_group_exprs(p.group_by), "BillingCurrency", DATE)
            .agg(pl.col(p.metric).sum().alias("cost"), pl.col("x_Source").first().alias("source"))
            .collect(engine="streaming")
        )
        series: dict[tuple[Any, ...], dict[date, Decimal]] = {}
        sources: dict[tuple[Any, ...], str | None] = {}
        for r in daily.iter_rows(named=True):
            k = tuple(r[c] for c in keys)
            series.setdefault(k, {})[r[DATE]] = r["cost"] or ZERO
            sources.setdefault(k, r["source"])
        base = Baseline(p, first)
        window = [end - timedelta(days=i) for i in range(p.detect_days)]
        flagged: list[tuple[tuple[Any, ...], Judged, list[Judged]]] = []
        for k, s in sorted(series.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
            if not self._could_be(s, window, p):
                continue
            hit = next((j for d in window if (j := base.judge(s, d)) is not None and j.anomalous), None)
            if hit is None:
                continue
            episode = [hit]
            d = hit.day
            for _ in range(p.baseline_days):
                d -= timedelta(days=1)
                j = base.judge(s, d)
                if j is None or not j.anomalous or (j.impact > 0) != (hit.impact > 0):
                    break
                episode.append(j)
            flagged.append((k, hit, episode[::-1]))
        if not flagged:
            return []
        causes = self._root_causes(bare, lut, p, keys, flagged, base)
        return [self._finding(rule, p, k, hit, episode, causes.get(k, []), sources.get(k), end) for k, hit, episode in flagged]

    @staticmethod
    def _could_be(s: Mapping[date, Decimal], window: Sequence[date], p: AnomalyParams) -> bool:
        """Cheap pre-check: expected lies within the baseline's range, so a day whose distance to
        every baseline value is under min_impact cannot be anomalous."""
        if not s:
            return False
        lo, hi = min(s.values()), max(s.values())
        lo = min(lo, ZERO) if len(s) < p.baseline_days else lo
        return any(abs(s.get(d, ZERO) - lo) >= p.min_impact or abs(s.get(d, ZERO) - hi) >= p.min_impact for d in window)

    def _root_causes(self, bare: pl.LazyFrame, lut: pl.DataFrame | None, p: AnomalyParams, keys: list[str], flagged: list,
                     base: Baseline) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
        """Per flagged group and dimension, the value that moved most on the anomalous day. The
        candidates are ranked cheaply in polars (the day's spend against the baseline's mean) and
        the top ``ROOT_CANDIDATES`` are then judged exactly like the group (weekday-adjusted median),
        so a group of 100,000 resources costs no more than one of ten."""
        import polars as pl

        dims = [c for c in p.root_cause_by if c not in p.group_by]
        if not dims:
            return {}
        lo = min(hit.day for _k, hit, _e in flagged) - timedelta(days=p.baseline_days)
        hi = max(hit.day for _k, hit, _e in flagged)
        hits = pl.DataFrame([{**dict(zip(keys, [None if v is None else str(v) for v in k], strict=True)), "_hit": hit.day,
                              "_sign": 1.0 if hit.impact > 0 else -1.0} for k, hit, _e in flagged],
                            schema={**{c: pl.String for c in keys}, "_hit": pl.Date, "_sign": pl.Float64}, orient="row")
        # only the flagged groups' rows: each key column (and, for tag:KEY columns, the tag sets
        # holding a flagged value) narrowed before any join, so the scan itself skips the rest
        values = [k for k, _h, _e in flagged]
        plain = [i for i, c in enumerate(keys) if lut is None or c not in lut.columns]
        narrow = _any_of([keys[i] for i in plain], [tuple(v[i] for i in plain) for v in values])
        if lut is not None:
            tagged = [i for i in range(len(keys)) if i not in plain]
            sets = lut.filter(*_any_of([keys[i] for i in tagged], [tuple(v[i] for i in tagged) for v in values]))[TAGS]
            if sets.len() < lut.height:  # (every tag set holding a flagged value: nothing to narrow)
                narrow.append(pl.col(TAGS).is_in(sets.drop_nulls().implode())
                              | (pl.col(TAGS).is_null() if sets.null_count() else pl.lit(False)))
        lf = bare.filter((pl.col(DATE) >= lo) & (pl.col(DATE) <= hi), *narrow)
        if lut is not None:
            one = {keys[i]: {v[i] for v in values} for i in tagged}
            if all(len(vs) == 1 for vs in one.values()) and not any(d in lut.columns for d in dims):
                # every row left holds the one flagged value of each tag column (its sets, or all sets
                # hold it): the value as a literal instead of a lookup per row (490,000 rows at 10M)
                lf = lf.with_columns(pl.lit(next(iter(vs)), dtype=pl.String).alias(c) for c, vs in one.items())
            else:
                lf = join_tag_sets(lf, lut)
        rows = (
            lf.with_columns(*(pl.col(c).cast(pl.String) for c in keys))
            .join(hits.lazy(), on=keys, how="inner", nulls_equal=True)
            .filter((pl.col(DATE) <= pl.col("_hit")) & (pl.col(DATE) >= pl.col("_hit") - pl.duration(days=p.baseline_days)))
            # read once for every dimension's queries below (as the lazy plan's shared cache held them)
            .select(*keys, "_hit", "_sign", *dict.fromkeys(dims), DATE, p.metric)
            .collect(engine="streaming").lazy()
        )
        metric = pl.col(p.metric)
        tops = []
        for dim in dims:
            # ranked on two sums per value (the hit day, the days before it); then only the top
            # values' rows are summed per day: no (value x day) group-by over every value of the
            # group (18,000 resources x 29 days for an untagged-team anomaly at 10M)
            tops.append(
                rows.group_by(*keys, pl.col(dim).alias("_v"))
                .agg(metric.filter(pl.col(DATE) == pl.col("_hit")).sum().cast(pl.Float64).alias("_day"),
                     metric.filter(pl.col(DATE) < pl.col("_hit")).sum().cast(pl.Float64).alias("_base"),
                     pl.col("_sign").first())
                .with_columns(((pl.col("_day") - pl.col("_base") / p.baseline_days) * pl.col("_sign")).alias("_rank"))
                .sort("_rank", *keys, "_v", descending=[True, *[False] * (len(keys) + 1)], nulls_last=True)
                .group_by(*keys, maintain_order=True).head(ROOT_CANDIDATES)
                .select(*keys, "_v")
            )
        queries = []
        for dim, top in zip(dims, pl.collect_all(tops), strict=True):
            v = top["_v"]
            pick = pl.col(dim).is_in(v.drop_nulls().implode()) | (pl.col(dim).is_null() if v.null_count() else pl.lit(False))
            queries.append(rows.filter(pick).with_columns(pl.col(dim).alias("_v"))
                           .join(top.lazy(), on=[*keys, "_v"], how="semi", nulls_equal=True)
                           .group_by(*keys, "_v", DATE).agg(metric.sum().alias("cost")))
        frames = pl.collect_all(queries)
        per_dim: dict[str, dict[tuple[Any, ...], dict[Any, dict[date, Decimal]]]] = {}
        for dim, df in zip(dims, frames, strict=True):
            groups: dict[tuple[Any, ...], dict[Any, dict[date, Decimal]]] = {}
            for r in df.iter_rows(named=True):
                s = groups.setdefault(tuple(r[c] for c in keys), {}).setdefault(r["_v"], {})
                s[r[DATE]] = s.get(r[DATE], ZERO) + (r["cost"] or ZERO)
            per_dim[dim] = groups
        out: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for k, hit, _e in flagged:
            gk = tuple(None if v is None else str(v) for v in k)
            change = hit.impact
            found = []
            for dim in dims:
                best = None
                for value, s in sorted(per_dim[dim].get(gk, {}).items(), key=lambda kv: str(kv[0])):
                    moved = s.get(hit.day, ZERO) - base.expected(s, hit.day)  # each value against its own weekday-adjusted median
                    key = moved if change > 0 else -moved
                    if best is None or key > best[0]:
                        best = (key, value, moved, s.get(hit.day, ZERO))
                if best is None or best[0] <= 0:
                    continue
                _key, value, moved, actual = best
                found.append({"dimension": dim, "value": value, "change": moved.quantize(MONEY), "actual": actual,
                              "share": (moved / change).quantize(Decimal("0.0001")) if change else None})
            # the root cause is the first dimension (root_cause_by lists them most specific first) whose top value
            # explains at least half of the change; failing that, the value explaining the most
            lead = next((c for c in found if c["share"] is not None and c["share"] >= Decimal("0.5")), None)
            found.sort(key=lambda c: (c is not lead, -(abs(c["share"]) if c["share"] is not None else 0), dims.index(c["dimension"])))
            out[k] = found
        return out

    def _finding(self, rule: RuleInstance, p: AnomalyParams, k: tuple[Any, ...], hit: Judged, episode: list[Judged],
                 causes: list[dict[str, Any]], source: str | None, end: date) -> Finding:
        vals = dict(zip([*p.group_by, "BillingCurrency"], k, strict=True))
        cur = vals["BillingCurrency"] or "USD"
        label = " / ".join("-" if vals[c] is None else str(vals[c]) for c in p.group_by) or "all spend"
        total = sum((j.impact for j in episode), ZERO)
        up = hit.impact > 0
        pct = f"{'+' if up else ''}{fmt_pct(hit.percent / 100)}%" if hit.percent is not None else "new spend"
        cause_text = "; ".join(
            f"{c['dimension']} {c['value']} {'+' if c['change'] > 0 else ''}{fmt_money(c['change'], cur)}"
            + (f" ({fmt_pct(c['share'], 0)}% of the change)" if c["share"] is not None else "")
            for c in causes[:3])
        provider = vals.get("ProviderName")
        account = vals.get("SubAccountId") or vals.get("BillingAccountId")
        scope = "anomaly:" + ",".join(f"{c}={vals[c]}" for c in p.group_by) + ("" if cur == "USD" else f"|{cur}")
        days = f"{episode[0].day} to {episode[-1].day}" if len(episode) > 1 else str(hit.day)
        return Finding(
            fingerprint=fingerprint(rule.id, provider, account, scope),
            rule=rule.id, kind=self.finding_kind, severity=rule.severity,
            title=f"{label}: {fmt_money(hit.actual, cur)} on {hit.day}, expected {fmt_money(hit.expected, cur)} ({pct})",
            summary=(f"{p.metric} of {label} was {fmt_money(hit.actual, cur)} on {hit.day} against an expected "
                     f"{fmt_money(hit.expected, cur)} (median of {hit.baseline_days} days{', weekday-adjusted' if hit.factor != 1 else ''}; "
                     f"{'spike' if up else 'drop'} of {fmt_money(abs(hit.impact), cur)}, score {hit.score}). "
                     f"Anomalous {len(episode)} day(s) ({days}): {fmt_money(abs(total), cur)} {'over' if up else 'under'} expected."
                     + (f" Root cause: {cause_text}." if cause_text else "")),
            monthly_cost=abs(total).quantize(MONEY), monthly_savings=None, currency=cur,
            provider=provider, billing_account_id=vals.get("BillingAccountId"), account_id=account,
            region=vals.get("RegionId"), service=vals.get("ServiceName"), source=source,
            evidence={
                "day": hit.day.isoformat(), "actual": hit.actual, "expected": hit.expected, "impact": hit.impact,
                "impact_percent": hit.percent, "score": hit.score, "spread": hit.spread, "weekday_factor": hit.factor,
                "baseline_days": hit.baseline_days, "direction": "up" if up else "down",
                "episode": {"start": episode[0].day.isoformat(), "end": episode[-1].day.isoformat(), "days": len(episode),
                            "total_impact": total,
                            "daily": [{"day": j.day.isoformat(), "actual": j.actual, "expected": j.expected} for j in episode]},
                "root_cause": causes[0] if causes else None, "root_causes": causes,
                "group": {c: vals[c] for c in p.group_by}, "metric": p.metric,
                "last_complete_day": end.isoformat(),
                "thresholds": {"score": p.threshold, "min_impact": p.min_impact, "min_percent": p.min_percent},
                "monthly_cost_formula": (f"total impact = Σ (actual − expected) over {len(episode)} anomalous day(s) = "
                                         f"{fmt_money(total, cur, 4)}"),
            },
        )
