"""``costguard explain``: the rule behind a finding, the inputs it saw, its numbers and the
formula behind each amount, so a FinOps analyst can defend a number.

Rule kinds record their inputs and formulas in the finding's evidence (``monthly_cost_formula``,
``monthly_savings_formula``, prices with their sources); for the kinds whose evidence holds only
the numbers (``tag-coverage``, ``budget``) the formula is rebuilt here from those numbers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from costguard.rules import RuleInstance
from costguard.rules.base import fmt_money

INPUT_KEYS = ("utilisation", "need", "current", "recommended", "checks", "attached", "violations", "tags", "root_cause",
              "root_causes", "episode", "group", "used", "unused", "utilization", "steady_daily", "on_demand_total",
              "coverage", "tagged_cost", "untagged_cost", "total_cost", "actual", "forecast", "amount", "rate",
              "last_data_day", "period", "lake_cost", "lake_days", "committed_share", "prices", "price_source")


def formulas(f: Mapping[str, Any]) -> dict[str, str]:
    """How ``monthly_cost`` and ``monthly_savings`` were computed, with the numbers filled in."""
    ev = f.get("evidence") or {}
    cur = f.get("currency") or "USD"
    out: dict[str, str] = {}
    if ev.get("monthly_cost_formula"):
        out["monthly_cost"] = ev["monthly_cost_formula"]
    if ev.get("monthly_savings_formula"):
        out["monthly_savings"] = ev["monthly_savings_formula"]
    kind = f.get("kind")
    if kind == "budget" and "actual" in ev:
        out.setdefault("monthly_cost", f"actual = {ev.get('metric', 'cost')} from {ev.get('period', {}).get('start')} "
                                       f"to the as-of day = {fmt_money(_d(ev['actual']), cur, 4)}")
        out["forecast"] = (f"forecast = actual − cost(last day {ev.get('last_data_day')}) + max(cost(last day), rate) + rate × "
                           f"days left in the period; rate = mean of the {ev.get('rate_days', 7)} days before the last day "
                           f"= {fmt_money(_d(ev.get('rate')), cur, 4)}/day; forecast = {fmt_money(_d(ev.get('forecast')), cur, 4)}")
        out.setdefault("monthly_savings", "null: a budget breach saves nothing by itself (the overrun is evidence.overage)")
    elif kind == "tag" and "coverage" in ev and "total_cost" in ev:
        days = _window_days(ev)
        out.setdefault("coverage", f"coverage = tagged / total = {fmt_money(_d(ev['tagged_cost']), cur, 4)} / "
                                   f"{fmt_money(_d(ev['total_cost']), cur, 4)} = {ev['coverage']}")
        out.setdefault("monthly_cost", f"untagged {fmt_money(_d(ev['untagged_cost']), cur, 4)} × 30 / {days} days")
        out.setdefault("monthly_savings", "null: tagging saves nothing by itself")
    elif kind == "tag" and "untagged_cost" in ev:
        out.setdefault("monthly_cost", f"untagged cost {fmt_money(_d(ev['untagged_cost']), cur, 4)} × 30 / {_window_days(ev)} days")
        out.setdefault("monthly_savings", "null: tagging saves nothing by itself")
    if f.get("monthly_savings") is None:
        out.setdefault("monthly_savings", "null: not applicable to this kind of finding")
    return out


def explanation(f: Mapping[str, Any], rule: RuleInstance | None) -> dict[str, Any]:
    """Everything ``explain`` shows, as one JSON-able mapping."""
    ev = f.get("evidence") or {}
    return {
        "finding": {k: f.get(k) for k in ("fingerprint", "title", "kind", "severity", "status", "rule", "provider",
                                           "account_id", "region", "service", "resource_id", "resource_type", "owner",
                                           "owner_reason", "monthly_cost", "monthly_savings", "currency", "first_seen", "last_seen")},
        "rule": None if rule is None else {
            "id": rule.id, "kind": rule.kind, "severity": rule.severity, "file": rule.file, "line": rule.line,
            "description": rule.description, "filter": dict(rule.filter), "params": rule.params.model_dump(mode="json"),
        },
        "inputs": {k: ev[k] for k in INPUT_KEYS if k in ev},
        "formulas": formulas(f),
        "evidence": ev,
    }


def render(x: Mapping[str, Any]) -> str:
    f, rule = x["finding"], x["rule"]
    cur = f.get("currency") or "USD"
    lines = [f"{f['title']}", ""]
    if rule is None:
        lines.append(f"rule      {f['rule']} (no longer in the rule files; shown from the stored finding)")
    else:
        lines.append(f"rule      {rule['id']} · kind {rule['kind']} · {rule['file']}:{rule['line']}")
        if rule["description"]:
            lines.append(f"          {rule['description']}")
        if rule["filter"]:
            lines.append(f"filter    {_compact(rule['filter'])}")
        lines.append(f"params    {_compact(rule['params'])}")
    where = " · ".join(str(f[k]) for k in ("provider", "account_id", "region", "service", "resource_id") if f.get(k))
    lines += [f"finding   {f['fingerprint']} · {f['kind']} · {f['severity']} · {f.get('status') or '-'}"
              + (f" · seen {f['first_seen']:%Y-%m-%d} to {f['last_seen']:%Y-%m-%d}" if f.get("first_seen") and f.get("last_seen") else ""),
              f"scope     {where or '-'}",
              f"owner     {f.get('owner') or '-'} ({f.get('owner_reason') or '-'})", "",
              "numbers",
              f"  monthly_cost     {_money(f.get('monthly_cost'), cur)}",
              f"  monthly_savings  {_money(f.get('monthly_savings'), cur)}", "",
              "how the money is computed"]
    for k, v in x["formulas"].items():
        lines.append(f"  {k:<16} {v}")
    if x["inputs"]:
        lines += ["", "inputs the rule saw"]
        for k, v in x["inputs"].items():
            lines.append(f"  {k:<16} {_compact(v)}")
    rest = {k: v for k, v in x["evidence"].items() if k not in x["inputs"] and not k.endswith("_formula")}
    if rest:
        lines += ["", "other evidence"]
        for k, v in rest.items():
            lines.append(f"  {k:<16} {_compact(v)}")
    return "\n".join(lines) + "\n"


def _compact(v: Any) -> str:
    def enc(o: Any) -> Any:
        if isinstance(o, Decimal):
            return format(o.normalize(), "f")
        return str(o)

    return json.dumps(v, default=enc, ensure_ascii=False) if isinstance(v, (dict, list, tuple)) else str(v)


def _money(v: Any, cur: str) -> str:
    return "null" if v is None else f"{fmt_money(_d(v), cur, 2)} ({_d(v)} {cur})"


def _d(v: Any) -> Decimal:
    return v if isinstance(v, Decimal) else Decimal(str(v if v is not None else 0))


def _window_days(ev: Mapping[str, Any]) -> int | str:
    w = ev.get("window") or {}
    try:
        from datetime import date

        return (date.fromisoformat(w["end"]) - date.fromisoformat(w["start"])).days
    except (KeyError, ValueError, TypeError):
        return "window"
