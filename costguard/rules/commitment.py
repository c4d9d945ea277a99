"""Kind ``commitment``: reservations and savings plans that go unused, and steady on-demand spend
that a commitment would cover. The maths follows the FOCUS specification's commitment examples:
a commitment's cost is spread over its period as EffectiveCost, split into rows with
``CommitmentDiscountStatus = Used`` (usage it covered) and ``Unused`` (the part nothing used);
purchase rows carry BilledCost and no EffectiveCost, so nothing is counted twice."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from costguard.model import Finding, fingerprint
from costguard.rules.base import (
    DATE,
    DIMENSIONS,
    RULES,
    Params,
    RuleContext,
    RuleInstance,
    apply_filter,
    day_range,
    fmt_money,
    fmt_pct,
    iso_window,
    ratio,
)

if TYPE_CHECKING:
    import polars as pl

MONEY = Decimal("1e-10")
ON_DEMAND_PRICING = ("Standard",)  # FOCUS PricingCategory of on-demand usage (null counts as on-demand too)


class Utilization(Params):
    enabled: bool = True
    min_utilization: Decimal = Field(Decimal("0.9"), gt=0, le=1, description="a commitment used less than this share gets a finding")
    min_monthly_unused: Decimal = Field(Decimal(1), ge=0, description="…and only when its unused part is at least this a month")


class OnDemand(Params):
    enabled: bool = True
    service_categories: tuple[str, ...] = Field(("Compute",), description="FOCUS ServiceCategory values commitments can cover")
    group_by: tuple[str, ...] = Field(("ProviderName", "BillingAccountId", "ServiceName"),
                                      description="one coverage finding per group (rollup columns)")
    percentile: int = Field(10, ge=0, le=50, description="steady spend = this percentile of the complete days' on-demand spend")
    expected_discount: Decimal = Field(Decimal("0.25"), gt=0, lt=1,
                                       description="what a commitment saves on covered usage (1-year no-upfront plans: about 25-30%)")
    min_days: int = Field(14, ge=3, description="complete days of history needed before recommending")
    min_monthly_savings: Decimal = Field(Decimal(50), ge=0)

    @field_validator("group_by")
    @classmethod
    def _known(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [c for c in v if c not in DIMENSIONS]
        if bad:
            raise ValueError(f"unknown column(s) {', '.join(bad)}; choose from {', '.join(DIMENSIONS)}")
        return v


class CommitmentParams(Params):
    window_days: int = Field(30, ge=1, le=90)
    utilization: Utilization = Utilization()
    on_demand: OnDemand = OnDemand()


@RULES.register("commitment")
class Commitment:
    """Reservation / savings-plan utilisation, and on-demand spend a commitment would cover.

    **Utilisation** (per ``CommitmentDiscountId`` and currency, over ``window_days`` ending at the
    as-of date): used = EffectiveCost of rows with ``CommitmentDiscountStatus = Used``, unused =
    EffectiveCost of rows with ``Unused``; utilisation = used / (used + unused). Below
    ``min_utilization``: a finding with ``monthly_cost`` = (used + unused) and ``monthly_savings`` =
    unused, both scaled to 30 days: the most that moving usage onto the commitment recovers.

    **On-demand coverage** (per ``group_by`` group, usage of ``service_categories`` with no
    commitment and PricingCategory ``Standard`` or null): steady spend = the ``percentile`` of the
    daily on-demand EffectiveCost over the complete days of the window (the still-arriving last
    day is left out). ``monthly_savings`` = steady × 30 × ``expected_discount``: commit to what is
    always used, at the expected discount. ``monthly_cost`` = the group's on-demand spend, scaled to
    30 days. The evidence gives the hourly commitment that covers the steady spend.

    ```yaml
    - id: commitments
      kind: commitment
      severity: warning
      filter: {ProviderName: AWS}
      window_days: 30
      utilization: {min_utilization: 0.9, min_monthly_unused: 10}
      on_demand:
        service_categories: [Compute, Databases]
        group_by: [ProviderName, BillingAccountId, ServiceName]
        percentile: 10
        expected_discount: 0.25
        min_days: 14
        min_monthly_savings: 50
    ```
    """

    finding_kind = "commitment"
    Params = CommitmentParams

    def evaluate(self, rule: RuleInstance, ctx: RuleContext) -> list[Finding]:
        p: CommitmentParams = rule.params  # type: ignore[assignment]
        start = ctx.as_of - timedelta(days=p.window_days - 1)
        rows = apply_filter(ctx.costs, rule.filter).filter(day_range(start, ctx.as_of + timedelta(days=1)))
        out: list[Finding] = []
        if p.utilization.enabled:
            out += self._utilization(rule, p, rows, start, ctx.as_of)
        if p.on_demand.enabled:
            out += self._on_demand(rule, p, rows, start, ctx.as_of)
        return out

    # -- utilisation ---------------------------------------------------------------------------------
    @staticmethod
    def utilization_table(rows: pl.LazyFrame, as_of: date, start: date) -> pl.DataFrame:
        import polars as pl

        status = pl.col("CommitmentDiscountStatus").str.to_lowercase()
        cost = pl.col("EffectiveCost")
        return (
            rows.filter(pl.col("CommitmentDiscountId").is_not_null() & status.is_in(["used", "unused"]))
            .group_by("ProviderName", "BillingAccountId", "CommitmentDiscountId", "BillingCurrency")
            .agg(
                cost.filter(status == "used").sum().alias("used"),
                cost.filter(status == "unused").sum().alias("unused"),
                pl.col("CommitmentDiscountType").drop_nulls().first().alias("type"),
                pl.col("SubAccountId").sort_by(status != "unused").first().alias("account"),
                pl.col(DATE).min().alias("first"),
                pl.col("x_Source").first().alias("source"),
            )
            .with_columns(((pl.lit(as_of) - pl.max_horizontal("first", pl.lit(start))).dt.total_days() + 1).alias("days"))
            .sort("CommitmentDiscountId", "BillingCurrency")
            .collect(engine="streaming")
        )

    def _utilization(self, rule: RuleInstance, p: CommitmentParams, rows: pl.LazyFrame, start: date, as_of: date) -> list[Finding]:
        out = []
        u = p.utilization
        for r in self.utilization_table(rows, as_of, start).iter_rows(named=True):
            used, unused = r["used"] or Decimal(0), r["unused"] or Decimal(0)
            total = used + unused
            if total <= 0:
                continue
            util = ratio(used, total)
            days = int(r["days"])
            monthly_total = (total * 30 / days).quantize(MONEY)
            monthly_unused = (unused * 30 / days).quantize(MONEY)
            if util >= u.min_utilization or monthly_unused < u.min_monthly_unused:
                continue
            cur, cid = r["BillingCurrency"], r["CommitmentDiscountId"]
            kind = r["type"] or "commitment"
            out.append(Finding(
                fingerprint=fingerprint(rule.id, r["ProviderName"], r["account"] or r["BillingAccountId"], f"commitment:{cid}|{cur}"),
                rule=rule.id, kind=self.finding_kind, severity=rule.severity,
                title=f"{kind} {_short(cid)} is {fmt_pct(util, 1, floor=True)}% used: {fmt_money(monthly_unused, cur)}/month unused",
                summary=(f"{kind} {cid}: {fmt_money(used, cur)} used and {fmt_money(unused, cur)} unused (EffectiveCost, "
                         f"{max(start, r['first'])} to {as_of}), utilisation {fmt_pct(util, 1, floor=True)}% against a target of "
                         f"{fmt_pct(u.min_utilization)}%. Move eligible on-demand usage onto it (or exchange / resell it)."),
                monthly_cost=monthly_total, monthly_savings=monthly_unused, currency=cur,
                provider=r["ProviderName"], billing_account_id=r["BillingAccountId"], account_id=r["account"],
                resource_id=cid, resource_type=kind, source=r["source"],
                evidence={
                    "check": "utilization", "commitment_id": cid, "commitment_type": r["type"],
                    "used": used, "unused": unused, "utilization": util, "min_utilization": u.min_utilization,
                    "days": days, "window": iso_window(max(start, r["first"]), as_of),
                    "monthly_cost_formula": f"(used {fmt_money(used, cur, 4)} + unused {fmt_money(unused, cur, 4)}) × 30 / {days} = {fmt_money(monthly_total, cur, 4)}",
                    "monthly_savings_formula": f"unused {fmt_money(unused, cur, 4)} × 30 / {days} = {fmt_money(monthly_unused, cur, 4)}",
                },
            ))
        return out

    # -- on-demand coverage ----------------------------------------------------------------------------
    def _on_demand(self, rule: RuleInstance, p: CommitmentParams, rows: pl.LazyFrame, start: date, as_of: date) -> list[Finding]:
        import polars as pl

        o = p.on_demand
        keys = list(dict.fromkeys([*o.group_by, "BillingCurrency"]))
        usage = rows.filter((pl.col("ChargeCategory") == "Usage") & pl.col("ServiceCategory").is_in(list(o.service_categories)))
        on_demand = pl.col("CommitmentDiscountId").is_null() & (pl.col("PricingCategory").is_null() | pl.col("PricingCategory").is_in(list(ON_DEMAND_PRICING)))
        daily, last = pl.collect_all([
            usage.group_by(*keys, DATE).agg(
                pl.col("EffectiveCost").filter(on_demand).sum().alias("od"),
                pl.col("EffectiveCost").filter(pl.col("CommitmentDiscountId").is_not_null()).sum().alias("committed"),
                pl.col("x_Source").first().alias("source"),
            ),
            rows.select(pl.col(DATE).max().alias("last")),
        ], engine="streaming")
        last_day = last["last"][0]
        if last_day is None:
            return []
        complete_end = min(last_day - timedelta(days=1), as_of)  # the last day with data is still arriving
        first_day = start
        out = []
        groups: dict[tuple[Any, ...], dict[str, Any]] = {}
        for r in daily.sort(DATE).iter_rows(named=True):
            g = groups.setdefault(tuple(r[k] for k in keys), {"days": {}, "committed": Decimal(0), "source": r["source"]})
            if r[DATE] <= complete_end:
                g["days"][r[DATE]] = r["od"] or Decimal(0)
                g["committed"] += r["committed"] or Decimal(0)
        for key, g in sorted(groups.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
            present = sorted(g["days"])
            if not present:
                continue
            since = max(first_day, present[0])
            n = (complete_end - since).days + 1
            if n < o.min_days:
                continue
            series = [g["days"].get(since + timedelta(days=i), Decimal(0)) for i in range(n)]
            steady = _percentile(series, o.percentile)
            if steady <= 0:
                continue
            total = sum(series, Decimal(0))
            monthly_od = (total * 30 / n).quantize(MONEY)
            savings = (steady * 30 * o.expected_discount).quantize(MONEY)
            if savings < o.min_monthly_savings:
                continue
            vals = dict(zip(keys, key, strict=True))
            cur = vals["BillingCurrency"]
            hourly = (steady / 24 * (1 - o.expected_discount)).quantize(Decimal("0.0001"))
            coverage = ratio(g["committed"], g["committed"] + total) if (g["committed"] + total) > 0 else Decimal(0)
            label = " / ".join(str(vals[k]) for k in o.group_by if vals.get(k) is not None) or "all usage"
            provider = vals.get("ProviderName")
            account = vals.get("SubAccountId") or vals.get("BillingAccountId")
            scope = "on-demand:" + ",".join(f"{k}={vals[k]}" for k in keys)
            out.append(Finding(
                fingerprint=fingerprint(rule.id, provider, account, scope),
                rule=rule.id, kind=self.finding_kind, severity=rule.severity,
                title=f"{label}: {fmt_money(steady, cur)}/day of steady on-demand spend; a commitment saves {fmt_money(savings, cur)}/month",
                summary=(f"{label} spent {fmt_money(total, cur)} on demand over {n} complete days ({since} to {complete_end}); "
                         f"at least {fmt_money(steady, cur)} on {100 - o.percentile}% of days. Committing about "
                         f"{fmt_money(hourly, cur, 4)}/hour (after a {fmt_pct(o.expected_discount)}% discount) covers that and saves "
                         f"about {fmt_money(savings, cur)} a month. Commitment coverage today: {fmt_pct(coverage)}%."),
                monthly_cost=monthly_od, monthly_savings=savings, currency=cur,
                provider=provider, billing_account_id=vals.get("BillingAccountId"), account_id=account,
                region=vals.get("RegionId"), service=vals.get("ServiceName"), source=g["source"],
                evidence={
                    "check": "on_demand", "group": {k: vals[k] for k in o.group_by}, "days": n,
                    "window": iso_window(since, complete_end), "on_demand_total": total, "steady_daily": steady,
                    "percentile": o.percentile, "expected_discount": o.expected_discount,
                    "recommended_hourly_commitment": hourly, "coverage": coverage,
                    "monthly_cost_formula": f"on-demand {fmt_money(total, cur, 4)} × 30 / {n} = {fmt_money(monthly_od, cur, 4)}",
                    "monthly_savings_formula": (f"steady {fmt_money(steady, cur, 4)}/day (p{o.percentile} of {n} days) × 30 × "
                                                f"{o.expected_discount} = {fmt_money(savings, cur, 4)}"),
                },
            ))
        return out


def _percentile(values: list[Decimal], pct: int) -> Decimal:
    """Nearest-rank percentile (p0 = the minimum), exact on Decimals."""
    s = sorted(values)
    if pct <= 0:
        return s[0]
    k = max(1, -(-len(s) * pct // 100))  # ceil(n × p / 100)
    return s[k - 1]


def _short(cid: str) -> str:
    return cid if len(cid) <= 48 else "…" + cid[-40:]

