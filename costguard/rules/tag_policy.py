"""Kind ``tag-policy``: per resource, mandatory and prohibited tag keys, allowed values, tag count."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from costguard.model import Finding
from costguard.rules import tagkeys
from costguard.rules.base import RULES, Params, RuleContext, RuleInstance, apply_filter, fmt_money, normalise_key
from costguard.rules.resources import (
    Cost,
    ResourceClass,
    Unjudged,
    all_lake_costs,
    check_resource_filter,
    lake_costs,
    lake_monthly,
    monthly_cost,
    resource_finding,
    resources,
    want_all_lake_costs,
    windows_evidence,
)

class Pattern(Params):
    regex: str = Field(description="the whole (normalised) value must match, e.g. '^cc-[0-9]{3}$'")

    @field_validator("regex")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as e:
            raise ValueError(f"not a valid regular expression: {e}") from None
        return v


class Normalise(Params):
    case: Literal["lower", "upper", "none"] = Field("lower", description="compare values in this case")
    spaces: Literal["collapse", "strip", "none"] = Field(
        "collapse", description="collapse: strip and turn runs of spaces into one; strip: ends only")

    def __call__(self, value: str) -> str:
        v = value
        if self.spaces != "none":
            v = v.strip()
        if self.spaces == "collapse":
            v = re.sub(r"\s+", " ", v)
        if self.case == "lower":
            v = v.lower()
        elif self.case == "upper":
            v = v.upper()
        return v


class TagPolicyParams(Params):
    mandatory: tuple[str, ...] = Field((), description="keys every resource must carry (aliases count)")
    prohibited: tuple[str, ...] = Field((), description="keys no resource may carry; * and ? wildcards allowed")
    allowed_values: dict[str, tuple[str, ...] | Pattern] = Field(
        default_factory=dict, description="key → list of allowed values, or {regex: …}; checked when the key is present")
    aliases: tagkeys.TagAliases = Field(default_factory=dict)
    normalise: Normalise = Normalise()
    max_tags: int | None = Field(None, ge=1, description="at most this many tags per resource (AWS allows 50)")
    resource_classes: tuple[ResourceClass, ...] = Field((), description="inventory classes checked; empty = all")
    source: Literal["inventory", "lake", "both"] = Field(
        "both", description="inventory resources, resources seen in the lake's last window_days, or both")
    window_days: int = Field(30, ge=1, le=90, description="lake resources: those with cost in this many days")
    min_monthly_cost: Decimal = Field(Decimal(0), ge=0, description="only resources costing at least this a month")

    @field_validator("mandatory", "prohibited")
    @classmethod
    def _keys(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tagkeys.normalised_keys(v)

    @field_validator("allowed_values")
    @classmethod
    def _allowed(cls, v: dict[str, Any]) -> dict[str, Any]:
        out = {normalise_key(k): val for k, val in v.items()}
        if "" in out:
            raise ValueError("tag keys must not be empty")
        for k, val in out.items():
            if isinstance(val, tuple) and not val:
                raise ValueError(f"{k}: give at least one allowed value")
        return out

    @model_validator(mode="after")
    def _something(self) -> "TagPolicyParams":
        if not (self.mandatory or self.prohibited or self.allowed_values or self.max_tags):
            raise ValueError("a tag policy needs at least one of mandatory, prohibited, allowed_values, max_tags")
        clash = [k for k in self.mandatory if any(fnmatch.fnmatchcase(k, p) for p in self.prohibited)]
        if clash:
            raise ValueError(f"{', '.join(clash)}: both mandatory and prohibited")
        return self


@RULES.register("tag-policy")
class TagPolicy:
    """Per resource: mandatory keys, prohibited keys, allowed values (a list or a regex), key
    aliases, value normalisation and a tag-count limit (the aws-tags benchmarks, as code).

    Resources come from the inventory (its tags) and, with ``source: both`` or ``lake``, from the
    lake (the latest tags of each resource with cost in the last ``window_days``). Keys match
    ignoring case and surrounding spaces; ``aliases`` let another key stand for a required one, the
    same way ``tag-coverage`` counts them. Values are compared after ``normalise`` (by default
    lower case, spaces collapsed), so ``" Prod"`` matches an allowed ``prod``.

    One finding per resource breaking the policy, listing every violation. ``monthly_cost`` is the
    resource's cost (lake, else catalogue); ``monthly_savings`` is null: tagging saves nothing by
    itself. Resources that break the policy but have no cost anywhere are counted in one ``data``
    finding per account instead.

    ```yaml
    - id: resource-tags
      kind: tag-policy
      severity: warning
      filter: {ProviderName: AWS}
      mandatory: [application, environment]
      prohibited: ["temp*", owner_email]
      allowed_values:
        environment: [dev, staging, prod]
        cost-center: {regex: "^cc-[0-9]{3}$"}
      aliases: {env: environment, app: application}
      normalise: {case: lower, spaces: collapse}
      max_tags: 50
      source: both
      min_monthly_cost: 10
    ```
    """

    finding_kind = "tag"
    Params = TagPolicyParams
    check_filter = staticmethod(check_resource_filter)

    def prepare(self, rule: RuleInstance, ctx: RuleContext) -> None:
        p: TagPolicyParams = rule.params  # type: ignore[assignment]
        if p.source in ("lake", "both") and not p.resource_classes and not rule.filter:
            want_all_lake_costs(ctx, p.window_days)

    def evaluate(self, rule: RuleInstance, ctx: RuleContext) -> list[Finding]:
        import polars as pl

        p: TagPolicyParams = rule.params  # type: ignore[assignment]
        out: list[Finding] = []
        unjudged = Unjudged()
        judge = _Judge(p)
        seen: set[tuple[str, str]] = set()
        if p.source in ("inventory", "both"):
            inv = resources(ctx, rule.filter, p.resource_classes or None, days=p.window_days).sort("resource_id")
            seen.update(zip((str(v).lower() for v in inv["provider"]), (str(v).lower() for v in inv["resource_id"])))
            inv = inv.filter(pl.Series(judge.breaks_each(inv["x_tags"].to_list()), dtype=pl.Boolean))
            for row in inv.iter_rows(named=True):
                self._judge(rule, p, row, judge.violations(row.get("x_tags")), lambda row=row: monthly_cost(ctx.catalog, row),
                            out, unjudged, ctx)
        if p.source in ("lake", "both") and not p.resource_classes:
            lake = (lake_costs(apply_filter(ctx.costs, rule.filter), ctx.as_of, None, days=p.window_days) if rule.filter
                    else all_lake_costs(ctx, p.window_days)).sort("lake_ResourceId")
            # only resources not judged from the inventory, whose tags break the policy and that may cost
            # min_monthly_cost (a float bound below the exact Decimal test in _judge, so it drops no candidate)
            fresh = [k not in seen for k in zip(lake["_prov"].to_list(), lake["_key"].to_list())]
            breaks = judge.breaks_each(lake["lake_x_Tags"].to_list())
            floor = float(p.min_monthly_cost) * (1 - 1e-9) - 1e-9
            costly = lake.select(
                pl.col("_cost").is_null() | (pl.col("_cost").cast(pl.Float64) * 30
                                             >= floor * pl.col("_days").fill_null(p.window_days).cast(pl.Float64))
            ).to_series().to_list()
            lake = lake.filter(pl.Series([a and b and c for a, b, c in zip(fresh, breaks, costly)], dtype=pl.Boolean))
            for row in lake.iter_rows(named=True):
                r = {**row, "provider": row["lake_ProviderName"], "account_id": row["lake_SubAccountId"],
                     "resource_id": row["lake_ResourceId"], "region": row["lake_RegionId"]}
                self._judge(rule, p, r, judge.violations(row.get("lake_x_Tags")),
                            lambda row=row: lake_monthly(row, p.window_days), out, unjudged, ctx)
        return out + unjudged.findings(rule, "break the tag policy but have no cost in the lake or the catalogue",
                                       "Add their prices to a catalog file to see what they cost.")

    def _judge(self, rule: RuleInstance, p: TagPolicyParams, row: Mapping[str, Any],
               hit: tuple[dict[str, Any], list[dict[str, Any]]], cost_of: Callable[[], Cost | None], out: list[Finding],
               unjudged: Unjudged, ctx: RuleContext) -> None:
        tags, violations = hit
        if not violations:
            return
        cost = cost_of()  # priced only when the resource breaks the policy
        if cost is None:
            unjudged.add(row, "no price", None)
            return
        if cost.monthly < p.min_monthly_cost:
            return
        rid = row["resource_id"]
        words = "; ".join(v["message"] for v in violations)
        out.append(resource_finding(
            rule, "tag", row,
            title=f"{rid}: {words} ({fmt_money(cost.monthly, cost.currency)}/month)",
            summary=(f"{rid} breaks tag policy {rule.id}: {words}. It costs {fmt_money(cost.monthly, cost.currency)} a month "
                     f"({cost.source}), which cannot be shown back correctly until it is tagged."),
            cost=cost.monthly, savings=None, currency=cost.currency,
            evidence={"violations": violations, "tags": tags, "tag_count": len(tags),
                      "window": windows_evidence(ctx.as_of, p.window_days), **cost.evidence()},
        ))


class _Judge:
    """The policy's checks of one evaluation, prepared once (key candidates, normalised allowed
    values, compiled patterns) and run once per distinct tags JSON: thousands of resources share
    a few thousand tag sets (18,505 resources, 7,386 sets at 10M rows)."""

    def __init__(self, p: TagPolicyParams) -> None:
        self.p = p
        self._norm: dict[str, str] = {}
        self._mandatory = [(key, tagkeys.candidates(key, p.aliases)) for key in p.mandatory]
        self._allowed: list[tuple[str, list[str], re.Pattern[str] | frozenset[str], str]] = []
        for key, allowed in p.allowed_values.items():
            if isinstance(allowed, Pattern):
                self._allowed.append((key, tagkeys.candidates(key, p.aliases), re.compile(allowed.regex),
                                      f"must match {allowed.regex}"))
            else:
                self._allowed.append((key, tagkeys.candidates(key, p.aliases), frozenset(self._normalise(a) for a in allowed),
                                      f"allowed: {', '.join(allowed)}"))
        self._seen: dict[str | None, tuple[dict[str, Any], list[dict[str, Any]]]] = {}

    def _normalise(self, value: str) -> str:
        got = self._norm.get(value)
        if got is None:
            got = self._norm[value] = self.p.normalise(value)
        return got

    def violations(self, tags_json: str | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(the parsed tags, what in them breaks the policy), computed once per tags JSON."""
        hit = self._seen.get(tags_json)
        if hit is None:
            tags = tagkeys.parse(tags_json)
            hit = self._seen[tags_json] = (tags, self._check(tags))
        return hit

    def breaks_each(self, tags_jsons: Sequence[str | None]) -> list[bool]:
        return [bool(self.violations(t)[1]) for t in tags_jsons]

    def _check(self, tags: Mapping[str, Any]) -> list[dict[str, Any]]:
        p = self.p
        out: list[dict[str, Any]] = []
        for key, cands in self._mandatory:
            if tagkeys.found_in(tags, cands) is None:
                alias = cands[1:]
                out.append({"check": "mandatory", "key": key,
                            "message": f"no {key} tag" + (f" (nor {' or '.join(alias)})" if alias else "")})
        if p.prohibited:
            for key in sorted(tags):
                hit = next((pat for pat in p.prohibited if fnmatch.fnmatchcase(key, pat)), None)
                if hit is not None:
                    out.append({"check": "prohibited", "key": key, "pattern": hit, "message": f"prohibited tag {key}"})
        for key, cands, allowed, rule_text in self._allowed:
            found = tagkeys.found_in(tags, cands)
            if found is None:
                continue
            used, value = found
            norm = self._normalise(value)
            ok = allowed.fullmatch(norm) is not None if isinstance(allowed, re.Pattern) else norm in allowed
            if not ok:
                out.append({"check": "value", "key": key, "tag_key": used, "value": value, "normalised": norm,
                            "message": f"{key}={value!r} not allowed ({rule_text})"})
        if p.max_tags is not None and len(tags) > p.max_tags:
            out.append({"check": "max_tags", "count": len(tags), "max": p.max_tags,
                        "message": f"{len(tags)} tags, more than {p.max_tags}"})
        return out
