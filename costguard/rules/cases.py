"""Rule test cases: given cost and inventory rows, these rules must find exactly these findings.

A rules folder may hold a ``cases/`` folder beside its rule files; ``cases/idle.yaml`` holds the
cases of ``idle.yaml`` (a case may name other rules with ``rules:``). A case file is a YAML list::

    - name: an unattached gp2 volume without a bill yet is priced from the catalogue
      as_of: 2026-03-31
      rules: [aws-waste]                 # default: the rules of the same-named rule file
      costs:                             # daily rollup rows; unnamed columns get defaults
        - {ResourceId: vol-1, cost: 0.1, from: 2026-03-01, to: 2026-04-01}   # one row per day, `to` excluded
      inventory:
        - {resource_id: vol-1, resource_class: volume, sku: gp2, size_gb: 32, state: available}
      expect:                            # each entry matches one finding on the keys it names
        - {rule: aws-waste, resource_id: vol-1, monthly_savings: 3.2, evidence: {check: unattached_volume}}
      exact: true                        # (default) no other finding of these rules is allowed

Numbers compare as exact decimals; a string ``"~2.75"`` compares after rounding the actual value
to the places written. ``evidence`` matches as a subset, recursively. Cost rows take any rollup
column plus ``cost`` (sets BilledCost, EffectiveCost and ListCost), ``day`` or ``from``/``to``,
``weekday_costs`` (seven amounts, Monday first, instead of ``cost``) and ``tags`` (a mapping).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from costguard import yamlsrc
from costguard.catalog import Catalog
from costguard.errors import ConfigError, ConfigIssue
from costguard.inventory import INVENTORY_SCHEMA
from costguard.model import Finding
from costguard.rollup import rollup_schema
from costguard.rules.base import RuleContext, RuleInstance, normalise_key
from costguard.rules.engine import evaluate
from costguard.rules.loader import SUFFIXES, load_rules

if TYPE_CHECKING:
    import polars as pl

CASES_DIR = "cases"
COST_DEFAULTS: dict[str, Any] = {
    "x_Source": "case", "ProviderName": "AWS", "BillingAccountId": "999999999999", "SubAccountId": "111111111111",
    "ServiceName": "Amazon Elastic Compute Cloud", "ServiceCategory": "Compute", "RegionId": "us-east-1",
    "ChargeCategory": "Usage", "ChargeFrequency": "Usage-Based", "BillingCurrency": "USD", "x_RowCount": 1,
}
INVENTORY_DEFAULTS: dict[str, Any] = {"provider": "AWS", "account_id": "111111111111", "region": "us-east-1"}
MONEY_COLUMNS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "PricingQuantity", "ConsumedQuantity")


class CaseModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    as_of: date
    rules: tuple[str, ...] | None = None
    costs: tuple[dict[str, Any], ...] = ()
    inventory: tuple[dict[str, Any], ...] | None = None
    expect: tuple[dict[str, Any], ...] = ()
    exact: bool = True


@dataclass
class CaseResult:
    file: str
    line: int | None
    name: str
    passed: bool
    problems: list[str] = field(default_factory=list)
    findings: int = 0


def case_files(rules_dir: Path) -> list[Path]:
    d = rules_dir / CASES_DIR
    return sorted(f for f in d.iterdir() if f.suffix in SUFFIXES and f.is_file()) if d.is_dir() else []


def run_cases(rules_dir: Path, *, catalog: Catalog, base_dir: Path | None = None) -> list[CaseResult]:
    """Load the rules of ``rules_dir`` and run every case under ``rules_dir/cases``. Bad rule or
    case files raise ConfigError (file:line); failing cases are results, never exceptions."""
    base = base_dir or rules_dir.parent
    rel = rules_dir.relative_to(base) if rules_dir.is_relative_to(base) else rules_dir
    rules = load_rules([rel], base_dir=base)
    issues: list[ConfigIssue] = []
    loaded: list[tuple[str, int | None, CaseModel, list[RuleInstance]]] = []
    by_file: dict[str, list[RuleInstance]] = {}
    for r in rules:
        by_file.setdefault(Path(r.file).stem, []).append(r)
    by_id = {r.id: r for r in rules}
    for f in case_files(rules_dir):
        shown = _shown(f, base)
        try:
            src = yamlsrc.load(f)
        except ConfigError as e:
            issues.extend(replace(i, file=shown) for i in e.issues)
            continue
        src.file = shown
        if not isinstance(src.data, list):
            issues.append(ConfigIssue(shown, src.line(()), "", "a case file holds a YAML list of cases (each starting with '- name: ...')"))
            continue
        for i, item in enumerate(src.data):
            try:
                case = CaseModel.model_validate(item)
            except ValidationError as e:
                issues.extend(yamlsrc.issues_from_validation(e, src.sub((i,))))
                continue
            ids = case.rules
            if ids is None:
                chosen = by_file.get(f.stem)
                if not chosen:
                    issues.append(ConfigIssue(shown, src.line((i,)), f"case {case.name!r}",
                                              f"no rule file {f.stem}.yaml beside cases/: name the rules with `rules: [id, …]`"))
                    continue
            else:
                unknown = [x for x in ids if x not in by_id]
                if unknown:
                    issues.append(ConfigIssue(shown, src.line((i, "rules")), f"case {case.name!r}: rules",
                                              f"unknown rule id(s) {', '.join(unknown)}; known: {', '.join(sorted(by_id))}"))
                    continue
                chosen = [by_id[x] for x in ids]
            try:
                _frames(case)
            except ValueError as e:
                issues.append(ConfigIssue(shown, src.line((i,)), f"case {case.name!r}", str(e)))
                continue
            loaded.append((shown, src.line((i,)), case, chosen))
    if issues:
        raise ConfigError(issues)
    return [run_case(file, line, case, chosen, catalog) for file, line, case, chosen in loaded]


def run_case(file: str, line: int | None, case: CaseModel, rules: Sequence[RuleInstance], catalog: Catalog) -> CaseResult:
    costs, inv = _frames(case)
    ctx = RuleContext(as_of=case.as_of, costs=costs, inventory=inv, catalog=catalog)
    res = evaluate(rules, ctx)
    problems = [f"rule {rid} raised {err}" for rid, err in res.errors.items()]
    problems += compare(case.expect, res.findings, exact=case.exact)
    return CaseResult(file, line, case.name, not problems, problems, len(res.findings))


# ---- inputs ---------------------------------------------------------------------------------------


def _frames(case: CaseModel) -> tuple[pl.LazyFrame, pl.LazyFrame | None]:
    import polars as pl

    schema = rollup_schema()
    rows: list[dict[str, Any]] = []
    for i, spec in enumerate(case.costs, start=1):
        try:
            rows.extend(_cost_rows(spec, schema))
        except (ValueError, InvalidOperation, TypeError) as e:
            raise ValueError(f"costs[{i - 1}]: {e}") from None
    costs = pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)
    inv = None
    if case.inventory is not None:
        out = []
        for i, spec in enumerate(case.inventory):
            unknown = [k for k in spec if k not in INVENTORY_SCHEMA and k != "tags"]
            if unknown:
                raise ValueError(f"inventory[{i}]: unknown column(s) {', '.join(unknown)}; columns: {', '.join(INVENTORY_SCHEMA)}")
            r = {**INVENTORY_DEFAULTS, **spec}
            if isinstance(r.get("created_at"), (date, str)):
                r["created_at"] = _timestamp(r["created_at"])
            if isinstance(r.get("tags"), Mapping):
                r["x_tags"] = json.dumps({normalise_key(k): v for k, v in r["tags"].items()}, sort_keys=True, separators=(",", ":"))
                r["tags"] = json.dumps(r["tags"])
            out.append(r)
        inv = pl.DataFrame([{c: r.get(c) for c in INVENTORY_SCHEMA} for r in out], schema=INVENTORY_SCHEMA, orient="row",
                           strict=False).lazy() if out else pl.DataFrame(schema=INVENTORY_SCHEMA).lazy()
    return costs.lazy(), inv


def _cost_rows(spec: Mapping[str, Any], schema: Mapping[str, pl.DataType]) -> list[dict[str, Any]]:
    s = dict(spec)
    extra = [k for k in s if k not in schema and k not in ("cost", "day", "from", "to", "weekday_costs", "tags")]
    if extra:
        raise ValueError(f"unknown column(s) {', '.join(extra)} (rollup columns, cost, day, from, to, weekday_costs, tags)")
    if "day" in s:
        days = [_day(s.pop("day"))]
    elif "from" in s and "to" in s:
        a, b = _day(s.pop("from")), _day(s.pop("to"))
        if b <= a:
            raise ValueError(f"to {b} must be after from {a} (to is the first day not included)")
        days = [a + timedelta(days=i) for i in range((b - a).days)]
    else:
        raise ValueError("give day, or from and to")
    weekly = s.pop("weekday_costs", None)
    amount = s.pop("cost", None)
    tags = s.pop("tags", None)
    if weekly is not None and (not isinstance(weekly, list) or len(weekly) != 7):
        raise ValueError("weekday_costs needs seven amounts, Monday first")
    out = []
    for d in days:
        r = {**COST_DEFAULTS, **s, "x_ChargeDate": d}
        a = weekly[d.weekday()] if weekly is not None else amount
        if a is not None:
            for c in ("BilledCost", "EffectiveCost", "ListCost"):
                r.setdefault(c, a)
        for c in MONEY_COLUMNS:
            if r.get(c) is not None:
                r[c] = Decimal(str(r[c]))
        for c in ("BilledCost", "EffectiveCost", "ListCost"):
            r.setdefault(c, Decimal(0))
        if tags is not None:
            r["x_Tags"] = json.dumps({normalise_key(k): v for k, v in tags.items()}, sort_keys=True, separators=(",", ":"))
        out.append({c: r.get(c) for c in schema})
    return out


def _timestamp(v: Any) -> datetime:
    if isinstance(v, datetime):
        return v if v.tzinfo else v.replace(tzinfo=timezone.utc)
    if isinstance(v, date):
        return datetime(v.year, v.month, v.day, tzinfo=timezone.utc)
    t = datetime.fromisoformat(str(v).replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _day(v: Any) -> date:
    return v if isinstance(v, date) else date.fromisoformat(str(v))


# ---- comparing --------------------------------------------------------------------------------------


def compare(expected: Sequence[Mapping[str, Any]], found: Sequence[Finding], *, exact: bool = True) -> list[str]:
    """Problems (human lines, a diff per mismatch) between expected finding subsets and findings."""
    actual = [_as_dict(f) for f in found]
    free = list(range(len(actual)))
    problems: list[str] = []
    for n, exp in enumerate(expected, start=1):
        match = next((i for i in free if not _diff(exp, actual[i])), None)
        if match is not None:
            free.remove(match)
            continue
        problems.append(f"expected finding #{n} not found: {_short(exp)}")
        if free:
            closest = min(free, key=lambda i: len(_diff(exp, actual[i])))
            problems.append(f"  closest: {_label(actual[closest])}")
            problems += [f"    {d}" for d in _diff(exp, actual[closest])]
        else:
            problems.append("  (no other finding left to compare with)")
    if exact:
        for i in free:
            problems.append(f"unexpected finding: {_label(actual[i])}")
    return problems


def _as_dict(f: Finding) -> dict[str, Any]:
    return {k: getattr(f, k) for k in f.__dataclass_fields__}


def _diff(exp: Mapping[str, Any], got: Mapping[str, Any], path: str = "") -> list[str]:
    out = []
    for k, want in exp.items():
        where = f"{path}{k}"
        if k not in got:
            out.append(f"{where}: expected {_show(want)}, the finding has no such field")
            continue
        have = got[k]
        if isinstance(want, Mapping):
            if not isinstance(have, Mapping):
                out.append(f"{where}: expected a mapping, got {_show(have)}")
            else:
                out += _diff(want, have, f"{where}.")
        elif not _equal(want, have):
            out.append(f"{where}: expected {_show(want)}, got {_show(have)}")
    return out


def _equal(want: Any, have: Any) -> bool:
    if isinstance(want, list):
        return isinstance(have, (list, tuple)) and len(want) == len(have) and all(
            (not _diff(w, h) if isinstance(w, Mapping) and isinstance(h, Mapping) else _equal(w, h)) for w, h in zip(want, have, strict=True))
    if isinstance(want, str) and want.startswith("~") and isinstance(have, (Decimal, int, float)):
        try:
            w = Decimal(want[1:])
        except InvalidOperation:
            return False
        return Decimal(str(have)).quantize(w) == w
    if isinstance(want, bool) or isinstance(have, bool) or want is None or have is None:
        return want == have
    if isinstance(want, (int, float, Decimal)) and isinstance(have, (int, float, Decimal)):
        return Decimal(str(want)) == Decimal(str(have))
    if isinstance(want, (date,)) or isinstance(have, date):
        return str(want) == str(have)
    return want == have


def _show(v: Any) -> str:
    if isinstance(v, Decimal):
        return format(v.normalize(), "f")
    return json.dumps(v, default=str) if isinstance(v, (dict, list)) else repr(v)


def _short(exp: Mapping[str, Any]) -> str:
    return json.dumps(exp, default=str)


def _label(f: Mapping[str, Any]) -> str:
    money = f"monthly_cost {_show(f['monthly_cost'])}, monthly_savings {_show(f['monthly_savings'])} {f['currency']}"
    return f"[{f['rule']}] {f['kind']} {f.get('resource_id') or '-'}: {f['title']!r} ({money})"


def _shown(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)
