"""Kind ``rightsizing``: running instances whose measured use fits a cheaper type."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field

from costguard.catalog import HOURS_PER_MONTH, Catalog, InstanceType, Price
from costguard.model import Finding
from costguard.rules.base import RULES, Params, RuleContext, RuleInstance, fmt_money
from costguard.rules.resources import (
    MONEY,
    STOPPED_STATES,
    Unjudged,
    check_resource_filter,
    lake_monthly,
    monthly_cost,
    resource_finding,
    resources,
    windows_evidence,
)



class RightsizingParams(Params):
    resource_classes: tuple[Literal["instance", "database"], ...] = Field(
        ("instance",), min_length=1, description="database types need a user catalogue with their sizes and prices")
    percentile: Literal["p90", "p95", "p99"] = Field("p95", description="which CPU percentile (inventory column cpu_<p>)")
    lookback_days: int = Field(14, ge=1, le=93, description="metrics_days must cover at least this many days")
    headroom_percent: Decimal = Field(Decimal(20), ge=0, lt=100,
                                      description="the new type keeps this share of its CPU and memory free at the percentile")
    use_cpu_max: bool = Field(True, description="the measured maximum CPU must fit the new type too (at 100%)")
    family_scope: Literal["compatible", "same"] = Field(
        "compatible", description="compatible: the c/m/r classes of one generation and processor (m5a → c5a, m5a, r5a); same: the family only")
    min_monthly_savings: Decimal = Field(Decimal(5), ge=0)
    skip_idle_below: float | None = Field(
        None, gt=0, le=100, description="leave instances whose CPU is below this to an idle rule (no rightsizing finding)")


@RULES.register("rightsizing")
class Rightsizing:
    """Running instances whose CPU (percentile and max) and memory over the lookback fit a cheaper type.

    The need is the used share of today's type: vCPU × CPU percentile / (1 − headroom) and, when
    ``use_cpu_max``, at least vCPU × CPU max; memory × ``mem_p95`` / (1 − headroom), or today's
    memory when no memory metric exists (memory is never shrunk blind). The recommendation is the
    cheapest catalogue type of a compatible family and the same architecture (and GPUs) whose vCPU
    and memory cover the need, priced in the resource's region.

    ``monthly_savings`` = (today's − new hourly price) × 730 h, capped at the resource's monthly
    cost in the lake, × (1 − the share of that cost covered by a commitment: a reserved or
    savings-plan-covered instance saves nothing until the commitment ends). ``monthly_cost`` is the
    lake's 30-day EffectiveCost (the catalogue price × 730 h when the lake has none yet).

    **No recommendation without metrics**: a resource with no CPU percentile, metrics covering less
    than ``lookback_days``, or a type/price the catalogue lacks is never guessed; such resources are
    counted in one ``data`` finding per account and run.

    ```yaml
    - id: ec2-rightsizing
      kind: rightsizing
      severity: warning
      filter: {ProviderName: AWS}
      percentile: p95
      lookback_days: 14
      headroom_percent: 20
      use_cpu_max: true
      family_scope: compatible
      min_monthly_savings: 5
      skip_idle_below: 3
    ```
    """

    finding_kind = "rightsizing"
    Params = RightsizingParams
    check_filter = staticmethod(check_resource_filter)

    def evaluate(self, rule: RuleInstance, ctx: RuleContext) -> list[Finding]:
        p: RightsizingParams = rule.params  # type: ignore[assignment]
        rows = resources(ctx, rule.filter, p.resource_classes).sort("resource_id").to_dicts()
        out: list[Finding] = []
        unjudged = Unjudged()
        ranked: dict[tuple[Any, ...], list[tuple[InstanceType, Price]]] = {}
        for r in rows:
            if (r.get("state") or "running").lower() in STOPPED_STATES:
                continue
            cost = monthly_cost(ctx.catalog, r)
            t = ctx.catalog.instance_type(r.get("provider"), r["resource_class"], r.get("sku"))
            cpu = r.get(f"cpu_{p.percentile}")
            days = r.get("metrics_days")
            if t is None:
                unjudged.add(r, "type not in the catalogue" if r.get("sku") else "no type (sku)", cost)
                continue
            if cpu is None:
                unjudged.add(r, f"no CPU {p.percentile}", cost)
                continue
            if days is None or days < p.lookback_days:
                unjudged.add(r, f"metrics cover fewer than {p.lookback_days} days", cost)
                continue
            if p.skip_idle_below is not None and cpu < p.skip_idle_below:
                continue
            now = ctx.catalog.price(r.get("provider"), r["resource_class"], t.name, r.get("region"))
            if now is None:
                unjudged.add(r, "no catalogue price in its region", cost)
                continue
            f = self._judge(rule, p, ctx, r, t, now, cpu, ranked)
            if f is not None:
                out.append(f)
        return out + unjudged.findings(
            rule, "without the data to rightsize them",
            "No recommendation is made without metrics: collect CPU (and memory) utilisation for the lookback, "
            "or add the missing types to a catalog file.")

    @staticmethod
    def need(p: RightsizingParams, t: InstanceType, cpu: float, cpu_max: float | None, mem: float | None) -> tuple[Decimal, Decimal]:
        keep = 1 - p.headroom_percent / 100
        vcpu = (t.vcpu * Decimal(str(cpu)) / 100 / keep).quantize(Decimal("0.001"))
        if p.use_cpu_max and cpu_max is not None:
            vcpu = max(vcpu, (t.vcpu * Decimal(str(cpu_max)) / 100).quantize(Decimal("0.001")))
        memory = (t.memory_gib * Decimal(str(mem)) / 100 / keep).quantize(Decimal("0.001")) if mem is not None else t.memory_gib
        return vcpu, memory

    @staticmethod
    def target(catalog: Catalog, p: RightsizingParams, t: InstanceType, provider: Any, region: Any, now: Price,
               vcpu: Decimal, memory: Decimal, ranked: dict[tuple[Any, ...], list[tuple[InstanceType, Price]]] | None = None,
               ) -> tuple[InstanceType, Price] | None:
        """The cheapest type of the pool that fits (then fewest vCPU, least memory, the current
        type on a tie, then by name). ``ranked`` keeps each (pool, region, currency)'s priced types
        in that order between calls of one evaluation, so each resource scans from the cheapest."""
        scope = ("f", t.family) if p.family_scope == "same" else ("g", t.group)
        key = (provider, t.resource_class, *scope, region, now.currency)
        order = None if ranked is None else ranked.get(key)
        if order is None:
            pool = catalog.instance_types(provider, t.resource_class, family=t.family) if p.family_scope == "same" \
                else catalog.instance_types(provider, t.resource_class, group=t.group)
            priced = [(c, catalog.price(provider, t.resource_class, c.name, region)) for c in pool]
            order = sorted(((c, pr) for c, pr in priced if pr is not None and pr.currency == now.currency),
                           key=lambda cp: (cp[1].amount, cp[0].vcpu, cp[0].memory_gib, cp[0].name))
            if ranked is not None:
                ranked[key] = order
        best: tuple[InstanceType, Price] | None = None
        for c, price in order:
            if best is not None and (price.amount, c.vcpu, c.memory_gib) != (best[1].amount, best[0].vcpu, best[0].memory_gib):
                break  # past the cheapest fitting type and its ties
            if c.architecture != t.architecture or c.gpu != t.gpu or c.vcpu < vcpu or c.memory_gib < memory:
                continue
            if not c.current and c.name != t.name:
                continue
            if best is None or c.name == t.name:  # on a tie the current type wins (no change to make)
                best = (c, price)
        return best

    def _judge(self, rule: RuleInstance, p: RightsizingParams, ctx: RuleContext, r: Mapping[str, Any], t: InstanceType,
               now: Price, cpu: float,
               ranked: dict[tuple[Any, ...], list[tuple[InstanceType, Price]]] | None = None) -> Finding | None:
        vcpu, memory = self.need(p, t, cpu, r.get("cpu_max"), r.get("mem_p95"))
        got = self.target(ctx.catalog, p, t, r.get("provider"), r.get("region"), now, vcpu, memory, ranked)
        if got is None:
            return None
        new, price = got
        if new.name == t.name or price.amount >= now.amount:
            return None
        list_savings = ((now.amount - price.amount) * HOURS_PER_MONTH).quantize(MONEY)
        lake = lake_monthly(r)
        cur = now.currency
        formula = f"({now.amount} − {price.amount}) {cur}/h × 730 h = {fmt_money(list_savings, cur, 4)}"
        savings = list_savings
        if lake is not None and lake.currency == cur:
            cost_monthly, source, cost_formula = lake.monthly, "lake", lake.formula
            if lake.monthly < savings:
                savings = lake.monthly
                formula += f", capped at the lake's monthly cost {fmt_money(lake.monthly, cur, 4)}"
            if lake.committed_share:
                savings = (savings * (1 - lake.committed_share)).quantize(MONEY)
                formula += f", × (1 − {lake.committed_share} covered by a commitment) = {fmt_money(savings, cur, 4)}"
        else:
            cost_monthly, source = (now.amount * HOURS_PER_MONTH).quantize(MONEY), "catalogue"
            cost_formula = f"{t.name} {now.amount} {cur}/h × 730 h = {fmt_money(cost_monthly, cur, 4)}"
        if savings < p.min_monthly_savings:
            return None
        rid = r["resource_id"]
        mem = r.get("mem_p95")
        new_monthly = (price.amount * HOURS_PER_MONTH).quantize(MONEY)
        use = f"CPU {p.percentile} {cpu:g}%" + (f", max {r['cpu_max']:g}%" if r.get("cpu_max") is not None else "") \
            + (f", memory p95 {mem:g}%" if mem is not None else ", memory not measured (kept)")
        return resource_finding(
            rule, self.finding_kind, r,
            title=f"{rid}: {t.name} → {new.name} saves {fmt_money(savings, cur)}/month",
            summary=(f"{rid} ({t.name}, {_n(t.vcpu)} vCPU, {_n(t.memory_gib)} GiB, {r.get('region') or '-'}) used {use} over "
                     f"{r['metrics_days']} days. With {_n(p.headroom_percent)}% headroom it needs {_n(vcpu)} vCPU and {_n(memory)} GiB: "
                     f"{new.name} ({_n(new.vcpu)} vCPU, {_n(new.memory_gib)} GiB) fits at {fmt_money(new_monthly, cur)}/month "
                     f"instead of {fmt_money((now.amount * HOURS_PER_MONTH).quantize(MONEY), cur)}."),
            cost=cost_monthly, savings=savings, currency=cur,
            evidence={
                "current_type": t.name, "recommended_type": new.name,
                "current": {"vcpu": t.vcpu, "memory_gib": t.memory_gib, "price": now.as_evidence()},
                "recommended": {"vcpu": new.vcpu, "memory_gib": new.memory_gib, "price": price.as_evidence(),
                                "monthly_cost": new_monthly},
                "utilisation": {f"cpu_{p.percentile}": cpu, "cpu_max": r.get("cpu_max"), "mem_p95": mem,
                                "metrics_days": r.get("metrics_days")},
                "need": {"vcpu": vcpu, "memory_gib": memory},
                "headroom_percent": p.headroom_percent, "lookback_days": p.lookback_days, "family_scope": p.family_scope,
                "list_monthly_savings": list_savings,
                "committed_share": lake.committed_share if lake is not None else Decimal(0),
                "price_source": source, "monthly_cost_formula": cost_formula, "monthly_savings_formula": formula,
                "window": windows_evidence(ctx.as_of),
            },
        )


def _n(d: Decimal) -> str:
    """``Decimal("16.0")`` → ``16``, ``Decimal("1.800")`` → ``1.8``."""
    return format(d.normalize(), "f")
