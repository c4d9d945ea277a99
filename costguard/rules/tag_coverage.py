"""Kind ``tag-coverage``: the share of Usage cost that carries every required tag key."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from costguard.model import Finding, fingerprint
from costguard.rules import tagkeys
from costguard.rollup import join_tag_sets
from costguard.rules.base import (
    DIMENSIONS,
    RULES,
    Metric,
    Params,
    RuleContext,
    RuleInstance,
    apply_filter,
    as_categories,
    day_range,
    fmt_money,
    fmt_pct,
    iso_window,
    normalise_key,
    ratio,
    tag_sets,
    to_month,
)

if TYPE_CHECKING:
    import polars as pl

RESOURCE_IDENTITY = ("ProviderName", "BillingAccountId", "SubAccountId", "ResourceId")
RESOURCE_DETAILS = ("RegionId", "ServiceName", "ResourceType", "x_Source")
TOP_N = 3


class TagCoverageParams(Params):
    keys: tuple[str, ...] = Field(min_length=1)
    metric: Metric = "EffectiveCost"
    window_days: int = Field(default=30, ge=1)
    min_coverage: Decimal = Field(default=Decimal("0.95"), ge=0, le=1)
    group_by: tuple[str, ...] = ("ProviderName",)
    resource_cost_floor: Decimal | None = Field(default=None, ge=0)
    currency: str = Field(
        default="USD", pattern=r"^[A-Z]{3}$",
        description="coverage is measured per BillingCurrency; findings in this currency keep an identity "
                    "without it, so spend in another currency appearing later never changes theirs",
    )
    aliases: tagkeys.TagAliases = Field(default_factory=dict)

    @field_validator("keys")
    @classmethod
    def _norm_keys(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        keys = tuple(dict.fromkeys(normalise_key(k) for k in v))
        if "" in keys:
            raise ValueError("tag keys must not be empty")
        return keys

    @field_validator("group_by")
    @classmethod
    def _known_columns(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [c for c in v if c not in DIMENSIONS]
        if bad:
            raise ValueError(f"unknown column(s) {', '.join(bad)}; choose from {', '.join(DIMENSIONS)}")
        if len(set(v)) != len(v):
            raise ValueError("columns must not repeat")
        return v


@RULES.register("tag-coverage")
class TagCoverage:
    """Share of Usage cost (and of resources) carrying all tag ``keys``, per group, over a trailing window.

    One finding per group whose cost coverage is below ``min_coverage``; with ``resource_cost_floor``
    also one finding per resource whose untagged cost, scaled to 30 days, is above the floor.
    Keys match ignoring case and surrounding spaces; a key with an empty value counts as missing.
    ``aliases`` (the same parameter as ``tag-policy``'s) lets another key stand for a required one:
    with ``{env: environment}``, cost tagged ``env`` counts as carrying ``environment``.

    ```yaml
    - id: aws-application-tag
      kind: tag-coverage
      severity: warning
      description: Every AWS resource must say which application it belongs to
      filter: {ProviderName: AWS}
      keys: [application]
      metric: EffectiveCost
      window_days: 30
      min_coverage: 0.95
      group_by: [ProviderName]
      resource_cost_floor: 10
      aliases: {app: application}
    ```
    """

    finding_kind = "tag"
    Params = TagCoverageParams

    def evaluate(self, rule: RuleInstance, ctx: RuleContext) -> list[Finding]:
        import polars as pl

        p: TagCoverageParams = rule.params
        start = ctx.as_of - timedelta(days=p.window_days - 1)
        has = [tagkeys.tag_value(k, p.aliases).is_not_null().alias(f"_has{i}") for i, k in enumerate(p.keys)]
        window = (apply_filter(ctx.costs, rule.filter)
                  .filter(day_range(start, ctx.as_of + timedelta(days=1)) & (pl.col("ChargeCategory") == "Usage")))
        rows = (
            join_tag_sets(window, tag_sets(ctx, has))  # the JSON read once per tag set, not per row
            .with_columns(pl.all_horizontal([f"_has{i}" for i in range(len(p.keys))]).alias("_tagged"))
        )
        frames = [self._groups(rows, p), self._group_resources(rows, p)]
        if p.resource_cost_floor is not None:
            frames.append(self._untagged_resources(rows, p))
        # one query at a time, each reading the window again: run together (collect_all over a
        # shared cache) their group-by tables were alive at once, ~1.1-1.3 GB at 50M against
        # 0.72-0.79 GB (10M: 0.70 s / 340 MB together, 0.81-0.90 s / 230-270 MB one at a time)
        groups, resources, *rest = [f.collect(engine="streaming") for f in frames]
        findings = self._group_findings(rule, groups, resources, start, ctx)
        if rest:
            findings += self._resource_findings(rule, rest[0], start, ctx)
        return findings

    # -- queries ---------------------------------------------------------------------------------
    @staticmethod
    def _keys(p: TagCoverageParams) -> list[str]:
        return [*p.group_by, *(["BillingCurrency"] if "BillingCurrency" not in p.group_by else [])]

    def _groups(self, rows: pl.LazyFrame, p: TagCoverageParams) -> pl.LazyFrame:
        import polars as pl

        cost = pl.col(p.metric)
        return rows.group_by(self._keys(p)).agg(
            cost.sum().alias("_total"),
            cost.filter("_tagged").sum().alias("_tagged_cost"),
            *(cost.filter(~pl.col(f"_has{i}")).sum().alias(f"_missing{i}") for i in range(len(p.keys))),
        )

    def _group_resources(self, rows: pl.LazyFrame, p: TagCoverageParams) -> pl.LazyFrame:
        import polars as pl

        return (
            rows.filter(pl.col("ResourceId").is_not_null())
            .group_by(list(dict.fromkeys([*self._keys(p), "ResourceId"])))
            .agg(pl.col("_tagged").all().alias("_res_tagged"), pl.col(p.metric).filter(~pl.col("_tagged")).sum().alias("_untagged"))
        )

    @staticmethod
    def _untagged_resources(rows: pl.LazyFrame, p: TagCoverageParams) -> pl.LazyFrame:
        import polars as pl

        assert p.resource_cost_floor is not None
        cost = pl.col(p.metric)
        return (
            as_categories(rows.filter(pl.col("ResourceId").is_not_null() & ~pl.col("_tagged")), RESOURCE_DETAILS)
            .group_by([*RESOURCE_IDENTITY, "BillingCurrency"])
            .agg(
                cost.sum().alias("_untagged"),
                *(pl.col(c).max_by(cost).alias(c) for c in RESOURCE_DETAILS),  # from the costliest day
                *((~pl.col(f"_has{i}")).any().alias(f"_missing{i}") for i in range(len(p.keys))),
            )
            .with_columns(pl.col(c).cast(pl.String) for c in RESOURCE_DETAILS)
            .filter(pl.col("_untagged") * 30 > pl.lit(p.resource_cost_floor * p.window_days))
            .sort("_untagged", "ResourceId", "BillingCurrency", descending=[True, False, False])
        )

    # -- findings --------------------------------------------------------------------------------
    def _group_findings(
        self, rule: RuleInstance, groups: pl.DataFrame, resources: pl.DataFrame, start: Any, ctx: RuleContext
    ) -> list[Finding]:
        import polars as pl

        p: TagCoverageParams = rule.params
        gcols = list(p.group_by)
        keycols = self._keys(p)
        # per group: how many resources, how many untagged, the TOP_N costliest untagged (counted in
        # polars: a group's resources are thousands of rows, its finding needs three of them)
        counts = {tuple(r[:-2]): (r[-2], r[-1]) for r in resources.group_by(keycols).agg(
            pl.len().alias("_n"), (~pl.col("_res_tagged")).sum().alias("_n_untagged")).iter_rows()}
        top_by_group: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for r in (resources.filter(~pl.col("_res_tagged")).sort("_untagged", "ResourceId", descending=[True, False])
                  .group_by(keycols, maintain_order=True).head(TOP_N).iter_rows(named=True)):
            top_by_group.setdefault(tuple(r[c] for c in keycols), []).append({"resource_id": r["ResourceId"], "cost": r["_untagged"]})

        out = []
        for g in groups.sort(keycols, nulls_last=True).iter_rows(named=True):
            total: Decimal = g["_total"] or Decimal(0)
            tagged: Decimal = g["_tagged_cost"] or Decimal(0)
            if total <= 0 or tagged >= p.min_coverage * total:
                continue
            untagged = total - tagged
            cur = g["BillingCurrency"]
            gkey = tuple(g[c] for c in keycols)
            n_res, n_untagged = counts.get(gkey, (0, 0))
            top = top_by_group.get(gkey, [])
            missing = {k: g[f"_missing{i}"] for i, k in enumerate(p.keys) if g[f"_missing{i}"]}
            missing = dict(sorted(missing.items(), key=lambda kv: -kv[1]))
            coverage = ratio(tagged, total)
            scope = "group:" + (",".join(f"{c}={_v(g[c])}" for c in gcols) or "all")
            if cur != p.currency and "BillingCurrency" not in gcols:
                scope += f",BillingCurrency={_v(cur)}"
            label = " / ".join(_v(g[c]) for c in gcols) or "All costs"
            keys_text = _and(list(p.keys))
            top_text = ", ".join(f"{t['resource_id']} ({fmt_money(t['cost'], cur)})" for t in top)
            provider = g.get("ProviderName") if "ProviderName" in gcols else None
            account = next((g[c] for c in ("SubAccountId", "BillingAccountId") if c in gcols and g[c] is not None), None)
            out.append(
                Finding(
                    fingerprint=fingerprint(rule.id, provider, account, scope),
                    rule=rule.id,
                    kind=self.finding_kind,
                    severity=rule.severity,
                    title=f"{label}{'' if cur == p.currency else f' ({_v(cur)})'}: {fmt_pct(coverage, 2 if coverage >= Decimal('0.99') else 1, floor=True)}% "
                          f"of {p.metric} carries {keys_text} (target {fmt_pct(p.min_coverage, 2)}%)",
                    summary=(
                        f"{fmt_money(untagged, cur)} of {fmt_money(total, cur)} {p.metric} (Usage, {start} to {ctx.as_of}) "
                        f"lacks {keys_text}; {n_untagged} of {n_res} resources are untagged."
                        + (f" Top untagged: {top_text}." if top else "")
                    ),
                    monthly_cost=to_month(untagged, p.window_days),
                    monthly_savings=None,
                    currency=cur or "USD",
                    provider=provider,
                    billing_account_id=g.get("BillingAccountId") if "BillingAccountId" in gcols else None,
                    account_id=account,
                    region=g.get("RegionId") if "RegionId" in gcols else None,
                    service=g.get("ServiceName") if "ServiceName" in gcols else None,
                    source=g.get("x_Source") if "x_Source" in gcols else None,
                    evidence={
                        "coverage": coverage,
                        "count_coverage": ratio(Decimal(n_res - n_untagged), Decimal(n_res)) if n_res else None,
                        "untagged_cost": untagged,
                        "tagged_cost": tagged,
                        "total_cost": total,
                        "resources_total": n_res,
                        "resources_untagged": n_untagged,
                        "window": iso_window(start, ctx.as_of),
                        "keys": list(p.keys),
                        "metric": p.metric,
                        "min_coverage": p.min_coverage,
                        "group": {c: g[c] for c in gcols},
                        "missing_keys_top": missing,
                        "top_untagged_resources": top,
                    },
                )
            )
        return out

    def _resource_findings(self, rule: RuleInstance, res: pl.DataFrame, start: Any, ctx: RuleContext) -> list[Finding]:
        p: TagCoverageParams = rule.params
        out = []
        for r in res.iter_rows(named=True):
            rid, cur = r["ResourceId"], r["BillingCurrency"]
            account = r["SubAccountId"] or r["BillingAccountId"]
            monthly = to_month(r["_untagged"], p.window_days)
            missing = [k for i, k in enumerate(p.keys) if r[f"_missing{i}"]]
            what = ", ".join(x for x in (r["ResourceType"], r["ServiceName"], r["RegionId"]) if x)
            out.append(
                Finding(
                    fingerprint=fingerprint(rule.id, r["ProviderName"], account, rid if cur == p.currency else f"{rid}|{cur}"),
                    rule=rule.id,
                    kind=self.finding_kind,
                    severity=rule.severity,
                    title=f"{rid} has no {_and(missing)} tag{'s' if len(missing) > 1 else ''} ({fmt_money(monthly, cur)}/month)",
                    summary=(
                        f"{rid}{f' ({what})' if what else ''} cost {fmt_money(r['_untagged'], cur)} {p.metric} "
                        f"from {start} to {ctx.as_of} without {_and(missing)}: about {fmt_money(monthly, cur)} a month."
                    ),
                    monthly_cost=monthly,
                    monthly_savings=None,
                    currency=cur or "USD",
                    provider=r["ProviderName"],
                    billing_account_id=r["BillingAccountId"],
                    account_id=account,
                    region=r["RegionId"],
                    service=r["ServiceName"],
                    resource_id=rid,
                    resource_type=r["ResourceType"],
                    source=r["x_Source"],
                    evidence={
                        "missing_keys": missing,
                        "untagged_cost": r["_untagged"],
                        "window": iso_window(start, ctx.as_of),
                        "keys": list(p.keys),
                        "metric": p.metric,
                    },
                )
            )
        return out


def _v(value: Any) -> str:
    return "-" if value is None else str(value)


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
