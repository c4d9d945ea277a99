"""What the resource-level kinds (idle, rightsizing, tag-policy) share.

* :func:`resources`: the inventory rows a rule looks at, each joined with its cost in the lake
  (EffectiveCost of the last :data:`COST_DAYS` days ending at the as-of date, in its own
  BillingCurrency, and the part of it covered by a commitment);
* :func:`monthly_cost`: what a resource costs a month: from the lake when it has rows there, else
  from the price catalogue (list price × size or hours, region-aware), saying which;
* :func:`data_finding`: the one finding per account and run that counts what a rule could not
  judge (no metrics, no price), so nothing is skipped silently.

Inventory and lake meet on (provider, resource id), both compared ignoring case (Azure resource
ids differ in case between exports and APIs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from costguard.catalog import Catalog, Price
from costguard.model import RESOURCE_CLASSES, Finding, fingerprint
from costguard.rules.base import DATE, TAG_PREFIX, FilterSpec, RuleContext, RuleInstance, day_range, fmt_money, normalise_key

if TYPE_CHECKING:
    import polars as pl

COST_DAYS = 30
STOPPED_STATES = ("stopped", "stopping", "terminated", "shutting-down", "deallocated")
ResourceClass = Literal["instance", "volume", "address", "snapshot", "load_balancer", "nat_gateway", "database",
                        "log_group", "bucket"]
assert set(ResourceClass.__args__) == set(RESOURCE_CLASSES)  # type: ignore[attr-defined]
MONEY = Decimal("1e-10")
#: Rule ``filter:`` columns that resource-level kinds understand, and the inventory column each maps to
#: (None: taken from the resource's rows in the lake, so resources without lake cost never match).
FILTER_COLUMNS: dict[str, str | None] = {
    "ProviderName": "provider", "SubAccountId": "account_id", "RegionId": "region", "ResourceId": "resource_id",
    "ResourceType": "resource_type", "x_Source": "x_Source", "ServiceName": None, "ServiceCategory": None,
    "BillingAccountId": None, "SubAccountName": None, "BillingCurrency": None,
}
LAKE_DETAILS = ("ProviderName", "BillingAccountId", "SubAccountId", "SubAccountName", "RegionId", "ServiceName",
                "ServiceCategory", "ResourceType", "x_Source")


def check_resource_filter(flt: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Filter keys a resource-level kind cannot apply (the loader reports them with file:line)."""
    ok = ", ".join(FILTER_COLUMNS)
    return [(c, f"resource rules filter on {ok} or tag:KEY") for c in flt
            if isinstance(c, str) and not c.startswith(TAG_PREFIX) and c not in FILTER_COLUMNS]


def conform(inv: pl.LazyFrame) -> pl.LazyFrame:
    """The inventory with every contract column (missing ones null) and ``x_Source``."""
    import polars as pl

    from costguard.inventory import INVENTORY_SCHEMA

    have = inv.collect_schema().names()
    cols = [pl.col(c).cast(t) if c in have else pl.lit(None, dtype=t).alias(c) for c, t in INVENTORY_SCHEMA.items()]
    cols.append(pl.col("x_Source").cast(pl.String) if "x_Source" in have else pl.lit(None, dtype=pl.String).alias("x_Source"))
    return inv.select(cols)


def _inv_tag(key: str) -> pl.Expr:
    import json

    import polars as pl

    return pl.col("x_tags").str.json_path_match(f"$[{json.dumps(normalise_key(key), ensure_ascii=False)}]")


def resources(ctx: RuleContext, flt: FilterSpec, classes: Sequence[str] | None = None, *, days: int = COST_DAYS) -> pl.DataFrame:
    """Inventory rows (of ``classes``, matching ``flt``) with their lake cost columns:
    ``_cost`` (EffectiveCost in the window, null when the lake has no row for the resource),
    ``_committed`` (the part with a CommitmentDiscountId), ``_currency``, ``_days`` (days of the
    window since the resource first appears) and the lake's details as ``lake_<Column>``."""
    import polars as pl

    from costguard.inventory import INVENTORY_SCHEMA

    if ctx.inventory is None:
        return pl.DataFrame(schema={**INVENTORY_SCHEMA, "x_Source": pl.String()})
    inv = conform(ctx.inventory)
    if classes:
        inv = inv.filter(pl.col("resource_class").is_in(list(classes)))
    lake_only: dict[str, list[str]] = {}
    for col, val in flt.items():
        values = [val] if isinstance(val, str) else list(val)
        if col.startswith(TAG_PREFIX):
            inv = inv.filter(_inv_tag(col[len(TAG_PREFIX):]).is_in(values))
        elif FILTER_COLUMNS.get(col):
            inv = inv.filter(pl.col(FILTER_COLUMNS[col]).is_in(values))  # type: ignore[arg-type]
        else:
            lake_only[col] = values
    inv_df = inv.with_columns(
        pl.col("provider").str.to_lowercase().alias("_prov"), pl.col("resource_id").str.to_lowercase().alias("_key"),
    ).collect()
    out = inv_df.join(inventory_lake_costs(ctx, days), on=["_prov", "_key"], how="left")
    for col, values in lake_only.items():
        out = out.filter(pl.col(f"lake_{col}").is_in(values))
    return out


def inventory_lake_costs(ctx: RuleContext, days: int = COST_DAYS) -> pl.DataFrame:
    """:func:`lake_costs` of every inventory resource, computed once per evaluation and window:
    rightsizing, idle and tag-policy each need it, and per resource over a 50M-row month it is
    the costliest query they run. Only inventory resources' rows enter the group-by (the whole
    lake's resources: 1.6 GB peak instead of 0.5 GB at 50M rows), unless a rule of this
    evaluation needs every resource's anyway (:func:`want_all_lake_costs`): then those are cut
    from that one query instead of grouping twice."""
    import polars as pl

    key = ("inventory_lake_costs", ctx.as_of, days)
    if key not in ctx.memo:
        assert ctx.inventory is not None
        keys = conform(ctx.inventory).select(pl.col("resource_id").str.to_lowercase().unique()).collect()
        wanted = keys["resource_id"].drop_nulls()
        if days in ctx.memo.get(_WANT_ALL, ()):
            ctx.memo[key] = all_lake_costs(ctx, days).filter(pl.col("_key").is_in(wanted.implode()))
        else:
            ctx.memo[key] = lake_costs(ctx.costs, ctx.as_of, wanted.to_list(), days=days)
    return ctx.memo[key]


_WANT_ALL = "all_lake_costs_wanted"


def want_all_lake_costs(ctx: RuleContext, days: int = COST_DAYS) -> None:
    """Say, before the rules run (``Rule.prepare``), that a rule will read :func:`all_lake_costs`
    over ``days``: :func:`inventory_lake_costs` then takes its rows from that query."""
    ctx.memo.setdefault(_WANT_ALL, set()).add(days)


def all_lake_costs(ctx: RuleContext, days: int = COST_DAYS) -> pl.DataFrame:
    """:func:`lake_costs` of every resource in the lake (no filter), once per evaluation and window."""
    key = ("all_lake_costs", ctx.as_of, days)
    if key not in ctx.memo:
        ctx.memo[key] = lake_costs(ctx.costs, ctx.as_of, None, days=days)
    return ctx.memo[key]


def lake_costs(costs: pl.LazyFrame, as_of: date, keys: Sequence[str] | None, *, days: int = COST_DAYS) -> pl.DataFrame:
    """Per resource (lower-cased provider and id): EffectiveCost over ``days`` ending at ``as_of``
    in the currency holding most of it, the committed part, days seen and the lake's details."""
    import polars as pl

    start = as_of - timedelta(days=days - 1)
    # each row numbered, so the group-by picks one row number per resource for its details instead
    # of carrying ten strings per group (max_by per column); a second scan reads those rows only.
    # The numbering is the same in both scans (same files, same filter): 0.87 s -> 0.44 s CPU at 10M
    src = costs.filter(day_range(start, as_of + timedelta(days=1)) & pl.col("ResourceId").is_not_null()).with_row_index("_i")
    rows = src.with_columns(pl.col("ProviderName").str.to_lowercase().alias("_prov"), pl.col("ResourceId").str.to_lowercase().alias("_key"))
    if keys is not None:
        rows = rows.filter(pl.col("_key").is_in(list(keys)))
    cost = pl.col("EffectiveCost")
    by = (
        rows.group_by("_prov", "_key", "BillingCurrency")
        .agg(
            cost.sum().alias("_cost"),
            cost.filter(pl.col("CommitmentDiscountId").is_not_null()).sum().alias("_committed"),
            pl.col(DATE).min().alias("_first"),
            pl.col("_i").first().alias("_i_id"),
            pl.col("_i").max_by(cost).alias("_i_details"),  # the details from the costliest row
            pl.col("_i").max_by(pl.when(pl.col("x_Tags").is_not_null()).then(pl.col(DATE))).alias("_i_tags"),
        )
        .sort("_cost", descending=True)
        .unique(["_prov", "_key"], keep="first", maintain_order=True)
        .collect(engine="streaming")
    )
    picked = pl.concat([by["_i_id"], by["_i_details"], by["_i_tags"]]).drop_nulls().unique()
    details = src.filter(pl.col("_i").is_in(picked.implode())).select("_i", "ResourceId", *LAKE_DETAILS, "x_Tags").collect(engine="streaming")
    return (
        by.join(details.select("_i", pl.col("ResourceId").alias("lake_ResourceId")), left_on="_i_id", right_on="_i", how="left",
              maintain_order="left")
        .join(details.select("_i", *(pl.col(c).alias(f"lake_{c}") for c in LAKE_DETAILS)), left_on="_i_details", right_on="_i", how="left",
              maintain_order="left")
        .join(details.select("_i", pl.col("x_Tags").alias("lake_x_Tags")), left_on="_i_tags", right_on="_i", how="left",
              maintain_order="left")
        .with_columns(pl.col("BillingCurrency").alias("_currency"),
                      ((pl.lit(as_of) - pl.max_horizontal(pl.col("_first"), pl.lit(start))).dt.total_days() + 1).alias("_days"))
        .select("_prov", "_key", "_cost", "_committed", "lake_ResourceId", *(f"lake_{c}" for c in LAKE_DETAILS), "lake_x_Tags",
                "_currency", "_days")
    )


# ---- money ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cost:
    """What a resource costs a month, and how that was worked out."""

    monthly: Decimal
    currency: str
    source: Literal["lake", "catalogue"]
    formula: str
    lake_cost: Decimal | None = None
    lake_days: int | None = None
    committed_share: Decimal = Decimal(0)
    prices: tuple[Price, ...] = ()
    other_currency: dict[str, Decimal] = field(default_factory=dict)

    def evidence(self) -> dict[str, Any]:
        out: dict[str, Any] = {"price_source": self.source, "monthly_cost_formula": self.formula}
        if self.source == "lake":
            out["lake_cost"] = self.lake_cost
            out["lake_days"] = self.lake_days
            if self.committed_share:
                out["committed_share"] = self.committed_share
        if self.prices:
            out["prices"] = [p.as_evidence() for p in self.prices]
        return out


def lake_monthly(row: Mapping[str, Any], days: int = COST_DAYS) -> Cost | None:
    """The lake's cost of a joined resource row scaled to 30 days (None: no row in the window)."""
    cost = row.get("_cost")
    if cost is None:
        return None
    n = int(row.get("_days") or days)
    monthly = (cost * 30 / n).quantize(MONEY) if n != 30 else cost
    committed = row.get("_committed") or Decimal(0)
    share = (committed / cost).quantize(Decimal("1e-6")) if cost > 0 else Decimal(0)
    cur = row.get("_currency") or "USD"
    formula = (f"EffectiveCost {fmt_money(cost, cur, 4)} over the last {n} day(s) in the lake"
               + ("" if n == 30 else f" × 30 / {n}") + f" = {fmt_money(monthly, cur, 4)}")
    return Cost(monthly, cur, "lake", formula, lake_cost=cost, lake_days=n, committed_share=share)


def catalogue_monthly(catalog: Catalog, row: Mapping[str, Any]) -> Cost | None:
    """List price × size or hours for a resource with no lake cost (None: the catalogue has no price)."""
    prov, cls, sku, region = row.get("provider"), row.get("resource_class"), row.get("sku"), row.get("region")
    size = Decimal(str(row["size_gb"])) if row.get("size_gb") is not None else None
    parts: list[tuple[str, Decimal, Price]] = []  # (what, monthly amount, price)

    def add(what: str, qty: Decimal | None, price: Price | None) -> bool:
        if price is None or qty is None:
            return False
        parts.append((what, (price.per_month() * qty), price))
        return True

    if cls in ("instance", "database") and str(row.get("state") or "").lower() in STOPPED_STATES:
        price = catalog.price(prov, str(cls), sku, region)
        cur = price.currency if price else "USD"
        return Cost(Decimal(0), cur, "catalogue", f"{sku} is {row.get('state')}: no compute charge while stopped (its volumes and addresses bill on their own)")
    if cls == "instance":
        if not add(f"{sku} × 730 h", Decimal(1), catalog.price(prov, "instance", sku, region)):
            return None
    elif cls == "volume":
        if not add(f"{size} GB {sku}", size, catalog.price(prov, "volume", sku, region)):
            return None
        iops = Decimal(row["iops"]) if row.get("iops") is not None else None
        for what, qty, price in volume_iops_parts(catalog, prov, sku, region, iops):
            add(what, qty, price)
    elif cls == "snapshot":
        if not add(f"{size} GB snapshot", size, catalog.price(prov, "snapshot", sku or "standard", region)):
            return None
    elif cls == "address":
        if not add("address × 730 h", Decimal(1), catalog.price(prov, "address", sku or "public_ipv4", region)):
            return None
    elif cls == "load_balancer":
        if not add(f"{sku} load balancer × 730 h", Decimal(1), catalog.price(prov, "load_balancer", sku, region)):
            return None
    elif cls == "nat_gateway":
        if not add("NAT gateway × 730 h", Decimal(1), catalog.price(prov, "nat_gateway", sku or "nat_gateway", region)):
            return None
        if row.get("bytes_30d"):
            gb = (Decimal(str(row["bytes_30d"])) / Decimal(10**9)).quantize(Decimal("1e-6"))
            add(f"{gb} GB processed", gb, catalog.price(prov, "nat_gateway", "nat_gateway/data", region))
    elif cls == "log_group":
        if not add(f"{size} GB stored", size, catalog.price(prov, "log_group", sku or "standard", region)):
            return None
    else:  # database, bucket, anything a user catalogue prices
        price = catalog.price(prov, str(cls), sku, region)
        if price is None:
            return None
        qty = size if price.unit == "gb_month" else Decimal(1)
        if not add(f"{sku}", qty, price):
            return None
    currencies = {p.currency for _w, _a, p in parts}
    if len(currencies) != 1:
        return None  # a catalogue mixing currencies for one resource cannot be summed
    cur = currencies.pop()
    total = sum((a for _w, a, _p in parts), Decimal(0)).quantize(MONEY)
    formula = " + ".join(f"{w} at {p.amount} {p.currency}/{p.unit.replace('_', '-')}" + (f" ({730} h)" if p.unit == "hour" and "730" not in w else "")
                         for w, _a, p in parts) + f" = {fmt_money(total, cur, 4)}"
    return Cost(total, cur, "catalogue", formula, prices=tuple(p for _w, _a, p in parts))


def volume_iops_parts(catalog: Catalog, prov: Any, sku: Any, region: Any, iops: Decimal | None) -> list[tuple[str, Decimal, Price | None]]:
    """The provisioned-IOPS charges of a volume (gp3 above 3,000; io1 all; io2 in its three tiers)."""
    if iops is None or not sku:
        return []
    s = str(sku).lower()
    if s == "gp3" and iops > 3000:
        return [(f"{iops - 3000} IOPS above 3,000", iops - 3000, catalog.price(prov, "volume", "gp3/iops", region))]
    if s == "io1":
        return [(f"{iops} IOPS", iops, catalog.price(prov, "volume", "io1/iops", region))]
    if s == "io2":
        out = [(f"{min(iops, 32000)} IOPS", min(iops, Decimal(32000)), catalog.price(prov, "volume", "io2/iops", region))]
        if iops > 32000:
            out.append((f"{min(iops, 64000) - 32000} IOPS 32,001-64,000", min(iops, Decimal(64000)) - 32000,
                        catalog.price(prov, "volume", "io2/iops-32k", region)))
        if iops > 64000:
            out.append((f"{iops - 64000} IOPS above 64,000", iops - 64000, catalog.price(prov, "volume", "io2/iops-64k", region)))
        return out
    return []


def monthly_cost(catalog: Catalog, row: Mapping[str, Any]) -> Cost | None:
    """The resource's monthly cost: the lake's when it has rows there, else the catalogue's."""
    return lake_monthly(row) or catalogue_monthly(catalog, row)


# ---- findings ---------------------------------------------------------------------------------------


def identity(row: Mapping[str, Any]) -> dict[str, Any]:
    """Finding fields naming a joined inventory row (inventory first, the lake's details after)."""
    return {
        "provider": row.get("provider") or row.get("lake_ProviderName"),
        "billing_account_id": row.get("lake_BillingAccountId"),
        "account_id": row.get("account_id") or row.get("lake_SubAccountId"),
        "region": row.get("region") or row.get("lake_RegionId"),
        "service": row.get("lake_ServiceName"),
        "resource_id": row.get("resource_id"),
        "resource_type": row.get("resource_type") or row.get("lake_ResourceType") or row.get("resource_class"),
        "source": row.get("lake_x_Source") or row.get("x_Source"),
    }


def resource_finding(rule: RuleInstance, kind: str, row: Mapping[str, Any], *, severity: str | None = None, title: str,
                     summary: str, cost: Decimal, savings: Decimal | None, currency: str,
                     evidence: Mapping[str, Any]) -> Finding:
    ids = identity(row)
    return Finding(
        fingerprint=fingerprint(rule.id, ids["provider"], ids["account_id"], ids["resource_id"]),
        rule=rule.id, kind=kind, severity=severity or rule.severity, title=title, summary=summary,
        monthly_cost=cost, monthly_savings=savings, currency=currency, evidence=dict(evidence), **ids,
    )


@dataclass
class Unjudged:
    """Resources a rule could not judge, per (provider, account): counted into one data finding each."""

    items: dict[tuple[str | None, str | None], list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, row: Mapping[str, Any], reason: str, cost: Cost | None) -> None:
        key = (row.get("provider"), row.get("account_id"))
        self.items.setdefault(key, []).append({
            "resource_id": row.get("resource_id"), "sku": row.get("sku"), "reason": reason,
            "monthly_cost": cost.monthly if cost else None, "currency": cost.currency if cost else None,
        })

    def findings(self, rule: RuleInstance, what: str, fix: str) -> list[Finding]:
        out = []
        for (provider, account), items in sorted(self.items.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]))):
            reasons: dict[str, int] = {}
            for it in items:
                reasons[it["reason"]] = reasons.get(it["reason"], 0) + 1
            costs: dict[str, Decimal] = {}
            for it in items:
                if it["monthly_cost"] is not None:
                    costs[it["currency"]] = costs.get(it["currency"], Decimal(0)) + it["monthly_cost"]
            cur = max(costs, key=lambda c: costs[c]) if costs else "USD"
            total = costs.get(cur, Decimal(0))
            items = sorted(items, key=lambda it: (-(it["monthly_cost"] or 0), str(it["resource_id"])))
            n = len(items)
            out.append(Finding(
                fingerprint=fingerprint(rule.id, provider, account, f"data:{what}"),
                rule=rule.id, kind="data", severity="info",
                title=f"{provider or '-'} {account or '-'}: {n} resource(s) {what}",
                summary=(f"{n} resource(s) costing {fmt_money(total, cur)}/month could not be judged by {rule.id} "
                         f"({', '.join(f'{k}: {v}' for k, v in sorted(reasons.items()))}). {fix}"),
                monthly_cost=total, monthly_savings=None, currency=cur, provider=provider, account_id=account,
                evidence={"count": n, "reasons": dict(sorted(reasons.items())),
                          "resources": items[:20], "resources_listed": min(n, 20),
                          "monthly_cost_by_currency": dict(sorted(costs.items()))},
            ))
        return out


def windows_evidence(as_of: date, days: int = COST_DAYS) -> dict[str, str]:
    start = as_of - timedelta(days=days - 1)
    return {"start": start.isoformat(), "end": (as_of + timedelta(days=1)).isoformat()}

