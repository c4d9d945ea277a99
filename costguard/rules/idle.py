"""Kind ``idle``: resources that cost money and do nothing (or could cost less as they are).

Twelve named sub-checks over the inventory, each with its own default threshold; one finding per
resource listing every check it fails, priced from the lake (else the catalogue).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timezone
from decimal import Decimal
from typing import Any

from pydantic import Field

from costguard.catalog import Catalog
from costguard.model import SEVERITY_RANK, Finding
from costguard.rules.base import RULES, Params, RuleContext, RuleInstance, Severity, fmt_money
from costguard.rules.resources import (
    MONEY,
    Cost,
    Unjudged,
    catalogue_monthly,
    check_resource_filter,
    monthly_cost,
    resource_finding,
    resources,
    windows_evidence,
)

CLASSES = ("instance", "volume", "address", "snapshot", "load_balancer", "nat_gateway", "log_group")


class Check(Params):
    enabled: bool = True
    severity: Severity | None = Field(None, description="this check's findings get this severity (default: the rule's)")


class UnattachedVolume(Check):
    """A volume attached to nothing (``attached_to`` empty). Saves: its whole cost (snapshot it first if needed)."""
    min_age_days: int = Field(1, ge=0, description="ignore volumes created less than this many days ago")


class UnassociatedAddress(Check):
    """A public address associated with nothing. Saves: its whole cost (release it)."""


class OldSnapshot(Check):
    """A snapshot older than ``older_than_days``. Saves: its whole cost (delete it)."""
    older_than_days: int = Field(90, ge=1)


class OrphanSnapshot(Check):
    """A snapshot whose source volume is no longer in the inventory (checked only for accounts whose
    inventory lists volumes). Saves: its whole cost."""


class StoppedInstance(Check):
    """A stopped instance whose volumes and addresses still bill. Saves: what they cost (snapshot
    the volumes and terminate, or release the addresses)."""


class IdleLoadBalancer(Check):
    """A load balancer with at most ``max_healthy_targets`` healthy targets. Saves: its whole cost."""
    max_healthy_targets: int = Field(0, ge=0)


class IdleNatGateway(Check):
    """A NAT gateway that processed at most ``max_gb_30d`` GB in 30 days. Saves: its whole cost."""
    max_gb_30d: Decimal = Field(Decimal(1), ge=0)


class Gp2Volume(Check):
    """A gp2 volume. Saves: gp2 minus gp3 price for its size (gp3 IOPS provisioned to gp2's baseline)."""


class Io1Volume(Check):
    """An io1 volume. Saves: io1 minus io2 price for its size and IOPS (io2 is cheaper above 32,000
    IOPS, the same below, and more durable)."""


class PreviousGeneration(Check):
    """A running instance of a previous-generation type (the catalogue's, plus ``families``). Saves:
    the price difference to the cheapest current-generation type of the same class and architecture
    with at least as many vCPUs and as much memory."""
    families: tuple[str, ...] = Field(("t2", "m4", "c4", "r4"), description="families treated as previous generation besides the catalogue's")


class IdleInstance(Check):
    """A running instance whose CPU p95 is below ``cpu_p95_below`` percent (and max below
    ``cpu_max_below``, when given) over at least ``min_metrics_days`` days. Saves: its whole cost."""
    cpu_p95_below: float = Field(3.0, gt=0, le=100)
    cpu_max_below: float | None = Field(None, gt=0, le=100)
    min_metrics_days: int = Field(7, ge=1)


class LogRetention(Check):
    """A log group that keeps logs forever. Saves: the storage older than ``suggested_days``,
    assuming logs arrived evenly since the group was created."""
    suggested_days: int = Field(30, ge=1)


class IdleChecks(Params):
    unattached_volume: UnattachedVolume = UnattachedVolume()
    unassociated_address: UnassociatedAddress = UnassociatedAddress()
    old_snapshot: OldSnapshot = OldSnapshot()
    orphan_snapshot: OrphanSnapshot = OrphanSnapshot()
    stopped_instance: StoppedInstance = StoppedInstance()
    idle_load_balancer: IdleLoadBalancer = IdleLoadBalancer()
    idle_nat_gateway: IdleNatGateway = IdleNatGateway()
    gp2_volume: Gp2Volume = Gp2Volume()
    io1_volume: Io1Volume = Io1Volume()
    previous_generation: PreviousGeneration = PreviousGeneration()
    idle_instance: IdleInstance = IdleInstance()
    log_retention: LogRetention = LogRetention()


class IdleParams(Params):
    checks: IdleChecks = IdleChecks()
    min_monthly_savings: Decimal = Field(Decimal(0), ge=0, description="report a resource only when acting saves at least this")


@dataclass
class Hit:
    check: str
    savings: Decimal | None
    title: str
    action: str
    details: dict[str, Any] = field(default_factory=dict)
    savings_formula: str | None = None


@RULES.register("idle")
class Idle:
    """Waste: resources that cost money and do nothing, or could cost less as they are.

    Sub-checks (each can be tuned or switched off with ``enabled: false``): ``unattached_volume``,
    ``unassociated_address``, ``old_snapshot`` (older than 90 days), ``orphan_snapshot`` (source
    volume gone), ``stopped_instance`` (still paying for volumes and addresses),
    ``idle_load_balancer`` (no healthy targets), ``idle_nat_gateway`` (under 1 GB in 30 days),
    ``gp2_volume`` (→ gp3), ``io1_volume`` (→ io2), ``previous_generation`` (instance types),
    ``idle_instance`` (CPU p95 under 3% over 7+ days) and ``log_retention`` (kept forever).

    One finding per resource listing every check it fails. ``monthly_cost`` is the resource's
    EffectiveCost over the last 30 days in the lake; a resource with no cost there yet is priced
    from the catalogue (``evidence.price_source: catalogue``). ``monthly_savings`` is what the best
    action saves (removing beats converting; never more than the resource costs). Resources the
    catalogue cannot price either are counted in one ``data`` finding per account.

    ```yaml
    - id: aws-waste
      kind: idle
      severity: warning
      filter: {ProviderName: AWS}
      min_monthly_savings: 1
      checks:
        old_snapshot: {older_than_days: 180}
        idle_instance: {cpu_p95_below: 2, min_metrics_days: 14, severity: critical}
        io1_volume: {enabled: false}
    ```
    """

    finding_kind = "idle"
    Params = IdleParams
    check_filter = staticmethod(check_resource_filter)

    def evaluate(self, rule: RuleInstance, ctx: RuleContext) -> list[Finding]:
        p: IdleParams = rule.params  # type: ignore[assignment]
        rows = resources(ctx, rule.filter, CLASSES).sort("resource_id").to_dicts()
        now = datetime.combine(ctx.as_of, time.max, tzinfo=timezone.utc)
        priced: dict[int, Cost | None] = {}

        def cost_of(r: Mapping[str, Any]) -> Cost | None:  # priced only for resources a check hits
            k = id(r)
            if k not in priced:
                priced[k] = monthly_cost(ctx.catalog, r)
            return priced[k]

        volumes_by_account: dict[tuple[Any, Any], set[str]] = {}
        attached: dict[tuple[Any, str], list[dict[str, Any]]] = {}
        for r in rows:
            if r["resource_class"] == "volume":
                volumes_by_account.setdefault((r["provider"], r["account_id"]), set()).add(str(r["resource_id"]).lower())
            if r["resource_class"] in ("volume", "address") and r.get("attached_to"):
                attached.setdefault((r["provider"], str(r["attached_to"]).lower()), []).append(r)
        stopped = {(r["provider"], str(r["resource_id"]).lower()) for r in rows
                   if r["resource_class"] == "instance" and (r.get("state") or "").lower() == "stopped"}
        checks = p.checks
        out: list[Finding] = []
        unjudged = Unjudged()
        for r in rows:
            stopped_cost: Cost | None = None
            cls = r["resource_class"]
            hits: list[Hit] = []
            age = (now - r["created_at"]).days if r.get("created_at") else None
            if cls == "volume":
                on_stopped = checks.stopped_instance.enabled and (r["provider"], str(r.get("attached_to") or "").lower()) in stopped
                if checks.unattached_volume.enabled and not r.get("attached_to") and (r.get("state") or "").lower() != "in-use" \
                        and (age is None or age >= checks.unattached_volume.min_age_days):
                    hits.append(self._remove("unattached_volume", cost_of(r), f"unattached {_size(r)}{r.get('sku') or ''} volume",
                                             "delete it (snapshot it first if the data matters)", {"state": r.get("state")}))
                if checks.gp2_volume.enabled and (r.get("sku") or "").lower() == "gp2" and not on_stopped:
                    hits.append(self._convert(ctx.catalog, r, cost_of(r), "gp2_volume", "gp3"))
                if checks.io1_volume.enabled and (r.get("sku") or "").lower() == "io1" and not on_stopped:
                    hits.append(self._convert(ctx.catalog, r, cost_of(r), "io1_volume", "io2"))
            elif cls == "address":
                if checks.unassociated_address.enabled and not r.get("attached_to"):
                    hits.append(self._remove("unassociated_address", cost_of(r), "public address associated with nothing",
                                             "release it"))
            elif cls == "snapshot":
                c = checks.old_snapshot
                if c.enabled and age is not None and age > c.older_than_days:
                    hits.append(self._remove("old_snapshot", cost_of(r), f"snapshot {age} days old (older than {c.older_than_days})",
                                             "delete it, or move it to the archive tier", {"age_days": age}))
                src = str(r.get("source_id") or "").lower()
                vols = volumes_by_account.get((r["provider"], r["account_id"]))
                if checks.orphan_snapshot.enabled and src and vols and src not in vols:
                    hits.append(self._remove("orphan_snapshot", cost_of(r), f"snapshot of {r['source_id']}, which no longer exists",
                                             "delete it unless it is a backup you keep on purpose", {"source_id": r["source_id"]}))
            elif cls == "instance":
                state = (r.get("state") or "").lower()
                if state == "stopped":
                    if checks.stopped_instance.enabled:
                        hit = self._stopped(ctx.catalog, r, attached.get((r["provider"], str(r["resource_id"]).lower()), []), cost_of)
                        if hit is not None:
                            hits.append(hit)
                            stopped_cost = Cost(hit.details["attached_monthly_cost"], hit.details["currency"],
                                                "lake" if hit.details["all_from_lake"] else "catalogue", hit.savings_formula or "")
                else:
                    c2 = checks.idle_instance
                    cpu = r.get("cpu_p95")
                    if c2.enabled and cpu is not None and cpu < c2.cpu_p95_below and (r.get("metrics_days") or 0) >= c2.min_metrics_days \
                            and (c2.cpu_max_below is None or (r.get("cpu_max") is not None and r["cpu_max"] < c2.cpu_max_below)):
                        hits.append(self._remove("idle_instance", cost_of(r), f"idle: CPU p95 {cpu:g}% over {r['metrics_days']} days",
                                                 "stop or terminate it (or schedule it off-hours)",
                                                 {"cpu_p95": cpu, "cpu_max": r.get("cpu_max"), "metrics_days": r.get("metrics_days")}))
                    if checks.previous_generation.enabled:
                        hit = self._previous_generation(ctx.catalog, r, lambda: cost_of(r), checks.previous_generation)
                        if hit is not None:
                            hits.append(hit)
            elif cls == "load_balancer":
                c3 = checks.idle_load_balancer
                if c3.enabled and r.get("healthy_targets") is not None and r["healthy_targets"] <= c3.max_healthy_targets:
                    hits.append(self._remove("idle_load_balancer", cost_of(r), f"load balancer with {r['healthy_targets']} healthy target(s)",
                                             "delete it", {"healthy_targets": r["healthy_targets"]}))
            elif cls == "nat_gateway":
                c4 = checks.idle_nat_gateway
                if c4.enabled and r.get("bytes_30d") is not None and Decimal(str(r["bytes_30d"])) <= c4.max_gb_30d * 10**9:
                    gb = (Decimal(str(r["bytes_30d"])) / 10**9).quantize(Decimal("0.001"))
                    hits.append(self._remove("idle_nat_gateway", cost_of(r), f"NAT gateway that processed {gb} GB in 30 days",
                                             "delete it", {"gb_30d": gb}))
            elif cls == "log_group":
                c5 = checks.log_retention
                if c5.enabled and r.get("retention_days") is None:
                    hits.append(self._retention(ctx.catalog, r, cost_of(r), age, c5.suggested_days))
            if not hits:
                continue
            cost = stopped_cost if stopped_cost is not None else cost_of(r)
            if cost is None:
                unjudged.add(r, "no price", None)
                continue
            finding = self._finding(rule, p, r, cost, hits, ctx)
            if finding is not None:
                out.append(finding)
        return out + unjudged.findings(rule, "look idle but have no cost in the lake or the catalogue",
                                       "Add their prices to a catalog file (docs/rules.md) to have them priced.")

    # -- checks -----------------------------------------------------------------------------------
    @staticmethod
    def _remove(check: str, cost: Cost | None, title: str, action: str, details: dict[str, Any] | None = None) -> Hit:
        savings = cost.monthly if cost else None
        return Hit(check, savings, title, action, details or {},
                   f"{check}: removing it saves its whole monthly cost" + (f" {fmt_money(savings, cost.currency, 4)}" if cost and savings is not None else ""))

    @staticmethod
    def _convert(catalog: Catalog, r: Mapping[str, Any], cost: Cost | None, check: str, target: str) -> Hit:
        sku = str(r.get("sku")).lower()
        current = catalogue_monthly(catalog, r)
        better = catalogue_monthly(catalog, {**r, "sku": target, "iops": _target_iops(r, target)})
        details: dict[str, Any] = {"from": sku, "to": target}
        title = f"{_size(r)}{sku} volume, {target} is cheaper" if check == "gp2_volume" else f"{_size(r)}{sku} volume ({r.get('iops') or '?'} IOPS), {target} is as cheap or cheaper"
        if current is None or better is None:
            return Hit(check, None, title, f"change the volume type to {target}", details,
                       f"{check}: no catalogue price for {sku} or {target} in {r.get('region')}")
        diff = max(current.monthly - better.monthly, Decimal(0))
        details.update({"list_monthly_now": current.monthly, "list_monthly_after": better.monthly,
                        "after_formula": better.formula, "now_formula": current.formula})
        if target == "gp3" and _target_iops(r, "gp3"):
            details["gp3_iops"] = _target_iops(r, "gp3")
        savings = diff
        formula = f"{check}: list price now {fmt_money(current.monthly, current.currency, 4)} − as {target} {fmt_money(better.monthly, better.currency, 4)} = {fmt_money(diff, current.currency, 4)}"
        if cost is not None and cost.source == "lake" and cost.currency == current.currency and current.monthly > 0:
            scaled = (cost.monthly * diff / current.monthly).quantize(MONEY)
            formula += f"; applied to the lake cost: {fmt_money(cost.monthly, cost.currency, 4)} × {fmt_money(diff, current.currency, 4)} / {fmt_money(current.monthly, current.currency, 4)} = {fmt_money(scaled, cost.currency, 4)}"
            savings = scaled
        return Hit(check, savings, title, f"change the volume type to {target} (no downtime)", details, formula)

    @staticmethod
    def _stopped(catalog: Catalog, r: Mapping[str, Any], att: list[dict[str, Any]],
                 cost_of: Callable[[Mapping[str, Any]], Cost | None]) -> Hit | None:
        if not att:
            return None
        parts = [(a, cost_of(a)) for a in att]
        priced = [(a, c) for a, c in parts if c is not None]
        if not priced:
            return None
        cur = priced[0][1].currency
        same = [(a, c) for a, c in priced if c.currency == cur]
        total = sum((c.monthly for _a, c in same), Decimal(0))
        vols = sum(1 for a, _c in same if a["resource_class"] == "volume")
        addrs = len(same) - vols
        what = " and ".join(x for x in (f"{vols} volume(s)" if vols else "", f"{addrs} address(es)" if addrs else "") if x)
        formula = "stopped_instance: " + " + ".join(f"{a['resource_id']} {fmt_money(c.monthly, cur, 4)} ({c.source})" for a, c in same) \
            + f" = {fmt_money(total, cur, 4)}"
        return Hit("stopped_instance", total, f"stopped, still paying for {what}",
                   "snapshot the volumes and terminate it, or release its addresses",
                   {"attached": [{"resource_id": a["resource_id"], "resource_class": a["resource_class"], "monthly_cost": c.monthly,
                                  "price_source": c.source} for a, c in same],
                    "attached_monthly_cost": total, "currency": cur, "all_from_lake": all(c.source == "lake" for _a, c in same)},
                   formula)

    @staticmethod
    def _previous_generation(catalog: Catalog, r: Mapping[str, Any], cost_of: Callable[[], Cost | None],
                             c: PreviousGeneration) -> Hit | None:
        t = catalog.instance_type(r.get("provider"), "instance", r.get("sku"))
        if t is None or (t.current and t.family not in c.families):
            return None
        cost = cost_of()
        region = r.get("region")
        now = catalog.price(r.get("provider"), "instance", t.name, region)
        cls_letter = _class_letters(t.family)
        best = None
        for cand in catalog.instance_types(r.get("provider"), "instance"):
            if not cand.current or cand.family in c.families or _class_letters(cand.family) != cls_letter:
                continue
            if cand.architecture != t.architecture or cand.vcpu < t.vcpu or cand.memory_gib < t.memory_gib or cand.gpu != t.gpu:
                continue
            price = catalog.price(r.get("provider"), "instance", cand.name, region)
            if price is None or (now is not None and price.currency != now.currency):
                continue
            key = (price.amount, cand.vcpu, cand.memory_gib, cand.name)
            if best is None or key < best[0]:
                best = (key, cand, price)
        if best is None:
            return None
        _k, cand, price = best
        details: dict[str, Any] = {"from": t.name, "to": cand.name, "to_price": price.as_evidence()}
        if now is None:
            return Hit("previous_generation", None, f"{t.name} is a previous generation; {cand.name} is current",
                       f"move to {cand.name}", details, f"previous_generation: no catalogue price for {t.name} in {region}")
        diff = max((now.amount - price.amount) * 730, Decimal(0)).quantize(MONEY)
        formula = f"previous_generation: ({now.amount} − {price.amount}) {now.currency}/h × 730 h = {fmt_money(diff, now.currency, 4)}"
        savings = diff
        if cost is not None and cost.currency == now.currency and cost.monthly < diff:
            formula += f", capped at the resource's monthly cost {fmt_money(cost.monthly, cost.currency, 4)}"
            savings = cost.monthly
        details["from_price"] = now.as_evidence()
        return Hit("previous_generation", savings, f"{t.name} is a previous generation; {cand.name} costs {fmt_money(diff, now.currency)}/month less",
                   f"move to {cand.name}", details, formula)

    @staticmethod
    def _retention(catalog: Catalog, r: Mapping[str, Any], cost: Cost | None, age: int | None, keep: int) -> Hit:
        stored_text = f" ({r['size_gb']:g} GB stored)" if r.get("size_gb") is not None else ""
        title = f"log group keeps its logs forever{stored_text}"
        action = f"set a retention period (e.g. {keep} days)"
        price = catalog.price(r.get("provider"), "log_group", r.get("sku") or "standard", r.get("region"))
        if r.get("size_gb") is None or price is None or age is None:
            return Hit("log_retention", None, title, action, {"suggested_days": keep},
                       "log_retention: savings unknown (needs size_gb, created_at and a storage price)")
        stored = (Decimal(str(r["size_gb"])) * price.per_month()).quantize(MONEY)
        share = max(Decimal(0), Decimal(1) - Decimal(keep) / Decimal(max(age, 1)))
        savings = (stored * share).quantize(MONEY)
        if cost is not None and cost.currency == price.currency:
            savings = min(savings, cost.monthly)
        formula = (f"log_retention: storage {r['size_gb']:g} GB × {price.amount} {price.currency}/GB-month = {fmt_money(stored, price.currency, 4)}; "
                   f"keeping {keep} of {age} days (even arrival assumed) drops {share.quantize(Decimal('0.0001'))} of it = {fmt_money(savings, price.currency, 4)}")
        return Hit("log_retention", savings, title, action,
                   {"suggested_days": keep, "age_days": age, "stored_monthly_cost": stored, "price": price.as_evidence()}, formula)

    # -- the finding --------------------------------------------------------------------------------
    def _finding(self, rule: RuleInstance, p: IdleParams, r: Mapping[str, Any], cost: Cost, hits: list[Hit],
                 ctx: RuleContext) -> Finding | None:
        priced = [h for h in hits if h.savings is not None]
        best = max(priced, key=lambda h: h.savings or 0) if priced else hits[0]
        savings = min(best.savings, cost.monthly) if best.savings is not None else None
        if savings is not None and savings < p.min_monthly_savings:
            return None
        sev_of: Callable[[Hit], str] = lambda h: getattr(p.checks, h.check).severity or rule.severity  # noqa: E731
        severity = max((sev_of(h) for h in hits), key=lambda s: SEVERITY_RANK[s])
        cur = cost.currency
        rid = r["resource_id"]
        others = [h.check for h in hits if h is not best]
        title = f"{rid}: {best.title}" + (f" (saves {fmt_money(savings, cur)}/month)" if savings else f" ({fmt_money(cost.monthly, cur)}/month)")
        summary = (f"{rid} ({r.get('resource_class')}{', ' + str(r['sku']) if r.get('sku') else ''}, {r.get('region') or '-'}) "
                   f"costs {fmt_money(cost.monthly, cur)} a month ({cost.source}). {best.action[0].upper() + best.action[1:]}"
                   + (f": saves {fmt_money(savings, cur)} a month." if savings is not None else ".")
                   + (f" Also: {', '.join(others)}." if others else ""))
        return resource_finding(
            rule, self.finding_kind, r, severity=severity, title=title, summary=summary,
            cost=cost.monthly, savings=savings, currency=cur,
            evidence={
                "check": best.check,
                "checks": [{"check": h.check, "monthly_savings": h.savings, "action": h.action, **h.details} for h in hits],
                "monthly_savings_formula": best.savings_formula if savings == best.savings
                else f"{best.savings_formula}, capped at the monthly cost {fmt_money(cost.monthly, cur, 4)}",
                "window": windows_evidence(ctx.as_of), **cost.evidence(),
            },
        )


def _size(r: Mapping[str, Any]) -> str:
    return f"{r['size_gb']:g} GB " if r.get("size_gb") is not None else ""


def _class_letters(family: str) -> str:
    i = 0
    while i < len(family) and family[i].isalpha():
        i += 1
    return family[:i]


def _target_iops(r: Mapping[str, Any], target: str) -> int | None:
    """IOPS to provision on the target type so it performs like the current one."""
    sku = str(r.get("sku") or "").lower()
    if target == "gp3" and sku == "gp2" and r.get("size_gb") is not None:
        baseline = min(max(100, int(3 * Decimal(str(r["size_gb"])))), 16000)  # gp2: 3 IOPS/GB, 100 to 16,000
        return baseline if baseline > 3000 else None
    if target == "io2":
        return r.get("iops")
    return r.get("iops")

