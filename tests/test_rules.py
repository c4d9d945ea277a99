"""Rules: loader errors with file:line, tag coverage and budget maths by hand, the engine, the registry lint."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from costguard.errors import ConfigError
from costguard.model import fingerprint
from costguard.rules import (
    RULES,
    RuleContext,
    RuleInstance,
    apply_filter,
    docstring_example,
    evaluate,
    load_rules,
)
from costguard.rules.budget import period_bounds

REPO = Path(__file__).resolve().parents[1]
D = Decimal

SCHEMA = {
    "x_ChargeDate": pl.Date,
    **{c: pl.String for c in (
        "x_Source", "ProviderName", "BillingAccountId", "BillingAccountName", "SubAccountId", "SubAccountName",
        "ServiceName", "ServiceCategory", "RegionId", "ResourceId", "ResourceName", "ResourceType",
        "ChargeCategory", "BillingCurrency", "x_Tags",
    )},
    **{c: pl.Decimal(38, 10) for c in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")},
    "x_RowCount": pl.Int64,
}


def row(day: date, cost: str | int, *, resource: str | None = None, tags: dict[str, str] | None = None,
        provider: str = "AWS", account: str = "111", category: str = "Usage", currency: str = "USD",
        source: str = "aws-org", service: str = "Amazon EC2", region: str = "us-east-1") -> dict:
    c = D(str(cost))
    return {
        "x_ChargeDate": day, "x_Source": source, "ProviderName": provider, "BillingAccountId": "999",
        "BillingAccountName": "payer", "SubAccountId": account, "SubAccountName": f"acct-{account}",
        "ServiceName": service, "ServiceCategory": "Compute", "RegionId": region, "ResourceId": resource,
        "ResourceName": resource, "ResourceType": "Virtual Machine" if resource else None, "ChargeCategory": category,
        "BillingCurrency": currency, "x_Tags": json.dumps(dict(sorted(tags.items()))) if tags is not None else None,
        "BilledCost": c, "EffectiveCost": c, "ListCost": c, "ContractedCost": None, "x_RowCount": 1,
    }


def frame(rows: list[dict]) -> pl.LazyFrame:
    return pl.DataFrame(rows, schema=SCHEMA).lazy()


def rule_from(tmp_path: Path, text: str) -> list[RuleInstance]:
    (tmp_path / "r.yaml").write_text(text)
    return load_rules(["r.yaml"], base_dir=tmp_path)


def run(rule: RuleInstance, rows: list[dict], as_of: date):
    return rule.impl.evaluate(rule, RuleContext(as_of=as_of, costs=frame(rows)))


# ---------------------------------------------------------------------------------------- loader
def load_error(tmp_path: Path, files: dict[str, str]) -> ConfigError:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError) as ei:
        load_rules(sorted(files), base_dir=tmp_path)
    return ei.value


BUDGET = """\
- id: b1
  kind: budget
  severity: warning
  amount: 100
  thresholds: [{on: actual, percent: 100, severity: critical}]
"""


def test_bad_yaml_names_file_and_line(tmp_path):
    err = load_error(tmp_path, {"bad.yaml": "- id: x\n  kind: budget\n  amount: [1, 2\n"})
    (iss,) = err.issues
    assert iss.file == "bad.yaml" and iss.line is not None and iss.line >= 3
    assert "invalid YAML" in iss.message


def test_unknown_kind_lists_known_kinds(tmp_path):
    err = load_error(tmp_path, {"r.yaml": "- id: x\n  kind: budgett\n  severity: info\n"})
    (iss,) = err.issues
    assert (iss.file, iss.line, iss.key) == ("r.yaml", 2, 'rule "x": kind')
    assert "budget" in iss.message and "tag-coverage" in iss.message


def test_unknown_param_key(tmp_path):
    err = load_error(tmp_path, {"r.yaml": BUDGET + "  amout: 5\n"})
    (iss,) = err.issues
    assert (iss.file, iss.line, iss.key) == ("r.yaml", 6, 'rule "b1": amout')
    assert "unknown key" in iss.message


def test_invalid_decimal_amount(tmp_path):
    err = load_error(tmp_path, {"budgets.yaml": BUDGET.replace("amount: 100", "amount: 15,000")})
    (iss,) = err.issues
    assert (iss.file, iss.line, iss.key) == ("budgets.yaml", 4, 'rule "b1": amount')
    assert iss.message == "Input should be a valid decimal"
    assert str(iss) == 'budgets.yaml:4: rule "b1": amount: Input should be a valid decimal'


def test_nested_threshold_error_points_at_its_line(tmp_path):
    text = BUDGET.replace("thresholds: [{on: actual, percent: 100, severity: critical}]",
                          "thresholds:\n    - {on: actual, percent: 100, severity: critical}\n    - {on: forecast, percent: 0, severity: bad}")
    err = load_error(tmp_path, {"r.yaml": text})
    keys = {(i.key, i.line) for i in err.issues}
    assert ('rule "b1": thresholds[1].percent', 7) in keys
    assert ('rule "b1": thresholds[1].severity', 7) in keys


def test_duplicate_id_across_files_names_both(tmp_path):
    other = "- id: other\n  kind: budget\n  severity: info\n  amount: 1\n  thresholds: [{on: actual, percent: 1, severity: info}]\n"
    err = load_error(tmp_path, {"a.yaml": BUDGET, "b.yaml": other + BUDGET})
    (iss,) = err.issues
    assert (iss.file, iss.line, iss.key) == ("b.yaml", 6, 'rule "b1": id')
    assert "a.yaml, line 1" in iss.message


def test_bad_filter_column_and_missing_id_all_reported(tmp_path):
    text = BUDGET.replace("  amount: 100\n", "  filter: {Provider: AWS, tag:team: payments}\n  amount: 100\n")
    text += "- kind: budget\n  severity: info\n  amount: 1\n  thresholds: [{on: actual, percent: 1, severity: info}]\n"
    err = load_error(tmp_path, {"r.yaml": text})
    by_key = {i.key: i for i in err.issues}
    assert set(by_key) == {'rule "b1": filter.Provider', "rule #2: id"}
    assert by_key['rule "b1": filter.Provider'].line == 4
    assert "ProviderName" in by_key['rule "b1": filter.Provider'].message
    assert by_key["rule #2: id"].line == 7 and by_key["rule #2: id"].message == "required key is missing"


def test_not_a_list_and_missing_path(tmp_path):
    (tmp_path / "m.yaml").write_text("id: x\nkind: budget\n")
    with pytest.raises(ConfigError) as ei:
        load_rules(["m.yaml", "nope/"], base_dir=tmp_path)
    assert [(i.file, i.line) for i in ei.value.issues] == [("nope", None), ("m.yaml", 1)]
    assert "not found" in ei.value.issues[0].message and "YAML list" in ei.value.issues[1].message


def test_valid_file_loads(tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "b.yml").write_text(BUDGET.replace("  amount", "  filter: {ProviderName: [AWS, Microsoft]}\n  amount"))
    (tmp_path / "rules" / "notes.txt").write_text("ignored")
    (rule,) = load_rules(["rules"], base_dir=tmp_path)
    assert (rule.id, rule.kind, rule.severity, rule.file, rule.line) == ("b1", "budget", "warning", "rules/b.yml", 1)
    assert rule.params.amount == D(100) and rule.params.period == "month" and rule.params.rate_days == 7
    assert rule.filter == {"ProviderName": ["AWS", "Microsoft"]}
    assert rule.impl.kind_name == "budget"


def test_default_pack_loads_and_uses_every_kind():
    rules = load_rules(["rules"], base_dir=REPO)
    assert {r.kind for r in rules} == set(RULES.names())
    assert {r.file for r in rules} == {"rules/anomalies.yaml", "rules/budgets.yaml", "rules/commitments.yaml",
                                       "rules/rightsizing.yaml", "rules/tags.yaml", "rules/waste.yaml"}
    demo = load_rules(["rules"], base_dir=REPO / "costguard" / "demo")
    assert {r.kind for r in demo} == set(RULES.names())


@pytest.mark.parametrize("kind", RULES.names())
def test_registry_lint_docstring_example_validates(tmp_path, kind):
    cls = RULES.get(kind)
    assert cls.kind_name == kind and cls.finding_kind in ("tag", "budget", "rightsizing", "idle", "anomaly", "commitment", "data")
    assert cls.Params.model_config.get("extra") == "forbid" and cls.Params.model_config.get("frozen") is True
    example = docstring_example(cls)
    assert example, f"{kind}: docstring needs a ```yaml example"
    rules = rule_from(tmp_path, example)
    assert rules and all(r.kind == kind for r in rules)


# ---------------------------------------------------------------------------------- tag coverage
AS_OF = date(2024, 3, 31)
TAGGED = {"team": "a", "application": "shop"}

TAG_RULE = """\
- id: tags
  kind: tag-coverage
  severity: warning
  keys: {keys}
  window_days: {window}
  min_coverage: 0.95
  group_by: [ProviderName]
  {extra}
"""


def tag_rule(tmp_path, keys="[team, application]", window=30, extra="", flt=""):
    text = TAG_RULE.format(keys=keys, window=window, extra=extra)
    if flt:
        text += f"  filter: {flt}\n"
    (rule,) = rule_from(tmp_path, text)
    return rule


def tag_rows() -> list[dict]:
    d = date(2024, 3, 10)
    return [
        row(d, 60, resource="r1", tags=TAGGED),
        row(d, 25, resource="r2"),                                   # no tags at all
        row(d, 10, resource="r3", tags={"team": "b"}),               # lacks application
        row(d, 5, resource="r4", tags=TAGGED),
        row(AS_OF, 5, resource="r4", tags={"team": "", "application": "shop"}),  # empty value = missing
        row(date(2024, 3, 1), 1000, resource="r5"),                  # just outside the 30-day window
        row(AS_OF + timedelta(days=1), 1000, resource="r5"),         # after as_of
        row(d, 500, resource="r6", category="Tax"),                  # not Usage
    ]


def test_tag_coverage_hand_computed(tmp_path):
    rule = tag_rule(tmp_path)
    (f,) = run(rule, tag_rows(), AS_OF)
    ev = f.evidence
    # total 105, tagged 60 + 5 = 65, untagged 40; resources r1..r4, only r1 fully tagged
    assert ev["total_cost"] == D(105) and ev["tagged_cost"] == D(65) and ev["untagged_cost"] == D(40)
    assert ev["coverage"] == D("0.619048")
    assert ev["count_coverage"] == D("0.25")
    assert (ev["resources_total"], ev["resources_untagged"]) == (4, 3)
    assert ev["missing_keys_top"] == {"application": D(35), "team": D(30)}
    assert list(ev["missing_keys_top"]) == ["application", "team"]
    assert ev["top_untagged_resources"] == [
        {"resource_id": "r2", "cost": D(25)}, {"resource_id": "r3", "cost": D(10)}, {"resource_id": "r4", "cost": D(5)}]
    assert ev["window"] == {"start": "2024-03-02", "end": "2024-04-01"}
    assert f.title == "AWS: 61.9% of EffectiveCost carries team and application (target 95%)"
    assert "$40.00" in f.summary and "r2 ($25.00)" in f.summary
    assert f.monthly_cost == D(40) and f.monthly_savings is None
    assert f.kind == "tag" and f.severity == "warning" and f.currency == "USD"
    assert f.provider == "AWS" and f.resource_id is None and f.owner is None
    assert f.fingerprint == fingerprint("tags", "AWS", None, "group:ProviderName=AWS")


def test_tag_keys_match_ignoring_case_and_spaces(tmp_path):
    a = run(tag_rule(tmp_path, keys="[team, application]"), tag_rows(), AS_OF)
    b = run(tag_rule(tmp_path, keys='["Team", " APPLICATION "]'), tag_rows(), AS_OF)
    assert a == b and b[0].evidence["keys"] == ["team", "application"]


def test_no_finding_when_coverage_met(tmp_path):
    rows = [row(date(2024, 3, 10), 96, resource="r1", tags=TAGGED), row(date(2024, 3, 10), 4, resource="r2")]
    assert run(tag_rule(tmp_path), rows, AS_OF) == []
    rows[1] = row(date(2024, 3, 10), 6, resource="r2")
    assert len(run(tag_rule(tmp_path), rows, AS_OF)) == 1


def test_window_boundaries(tmp_path):
    rule = tag_rule(tmp_path, window=7)
    start = AS_OF - timedelta(days=6)
    rows = [
        row(start, 10, resource="in-first-day"),
        row(start - timedelta(days=1), 1000, resource="out"),
        row(AS_OF, 10, resource="ok", tags=TAGGED),
    ]
    (f,) = run(rule, rows, AS_OF)
    assert f.evidence["total_cost"] == D(20) and f.evidence["untagged_cost"] == D(10)
    assert f.monthly_cost == (D(10) * 30 / 7).quantize(D("1e-10"))
    assert f.evidence["window"] == {"start": start.isoformat(), "end": "2024-04-01"}


def test_resource_findings_above_floor_only(tmp_path):
    rule = tag_rule(tmp_path, extra="resource_cost_floor: 10")
    found = run(rule, tag_rows(), AS_OF)
    res = [f for f in found if f.resource_id]
    assert [f.resource_id for f in res] == ["r2"]  # r3 is exactly 10: not above the floor
    (r2,) = res
    assert r2.monthly_cost == D(25) and r2.evidence["missing_keys"] == ["team", "application"]
    assert r2.evidence["untagged_cost"] == D(25)
    assert (r2.provider, r2.account_id, r2.billing_account_id, r2.source) == ("AWS", "111", "999", "aws-org")
    assert (r2.region, r2.service, r2.resource_type) == ("us-east-1", "Amazon EC2", "Virtual Machine")
    assert r2.fingerprint == fingerprint("tags", "AWS", "111", "r2")
    # scaled to 30 days: 10 in a 10-day window is 30 a month, above a floor of 20
    rule10 = tag_rule(tmp_path, window=10, extra="resource_cost_floor: 20")
    # in a 10-day window only r4's last day (5 untagged) remains: 15 a month, below 20
    assert [f.resource_id for f in run(rule10, tag_rows(), AS_OF) if f.resource_id] == []
    rows = [row(AS_OF, 10, resource="x"), row(AS_OF, 100, resource="y", tags=TAGGED)]
    (x,) = [f for f in run(rule10, rows, AS_OF) if f.resource_id]
    assert x.resource_id == "x" and x.monthly_cost == D(30) and x.evidence["missing_keys"] == ["team", "application"]


def test_filter_by_provider_and_by_tag(tmp_path):
    d = date(2024, 3, 10)
    rows = tag_rows() + [
        row(d, 100, resource="vm1", provider="Microsoft", account="sub-1"),
        row(d, 50, resource="vm2", provider="Microsoft", account="sub-1", tags={"env": "prod"}),
    ]
    both = run(tag_rule(tmp_path), rows, AS_OF)
    assert sorted(f.provider for f in both) == ["AWS", "Microsoft"]
    (aws,) = run(tag_rule(tmp_path, flt="{ProviderName: AWS}"), rows, AS_OF)
    assert aws.evidence["total_cost"] == D(105)
    (prod,) = run(tag_rule(tmp_path, flt="{tag:env: prod, ProviderName: [Microsoft, Google Cloud]}"), rows, AS_OF)
    assert prod.provider == "Microsoft" and prod.evidence["total_cost"] == D(50)
    (prod2,) = run(tag_rule(tmp_path, flt="{'tag: ENV ': prod}"), rows, AS_OF)
    assert prod2 == prod


def test_apply_filter_tag_key_normalised_and_spaced():
    rows = [row(AS_OF, 1, resource="a", tags={"cost center": "42"}), row(AS_OF, 2, resource="b", tags={"env": "dev"})]
    out = apply_filter(frame(rows), {"tag: Cost Center ": "42"}).collect()
    assert out["ResourceId"].to_list() == ["a"]
    out = apply_filter(frame(rows), {"ResourceId": ["a", "b"], "tag:env": ["dev", "prod"]}).collect()
    assert out["ResourceId"].to_list() == ["b"]


def test_group_by_accounts_and_all(tmp_path):
    d = date(2024, 3, 10)
    rows = [row(d, 10, resource="a", account="1"), row(d, 10, resource="b", account="2", tags=TAGGED)]
    (rule,) = rule_from(tmp_path, "- {id: t, kind: tag-coverage, severity: info, keys: [team], group_by: [ProviderName, SubAccountId]}\n")
    (f,) = run(rule, rows, AS_OF)
    assert (f.provider, f.account_id) == ("AWS", "1")
    assert f.fingerprint == fingerprint("t", "AWS", "1", "group:ProviderName=AWS,SubAccountId=1")
    (rule,) = rule_from(tmp_path, "- {id: t, kind: tag-coverage, severity: info, keys: [team], group_by: []}\n")
    (f,) = run(rule, rows, AS_OF)
    assert f.provider is None and f.evidence["coverage"] == D("0.5") and f.title.startswith("All costs: 50% ")


def test_group_by_unknown_column_rejected(tmp_path):
    with pytest.raises(ConfigError) as ei:
        rule_from(tmp_path, "- {id: t, kind: tag-coverage, severity: info, keys: [team], group_by: [Provider]}\n")
    (iss,) = ei.value.issues
    assert iss.key == 'rule "t": group_by' and "Provider" in iss.message


# ---------------------------------------------------------------------------------------- budget
BUDGET_RULE = """\
- id: aws-budget
  kind: budget
  severity: warning
  filter: {{ProviderName: AWS}}
  amount: {amount}
  period: {period}
  thresholds:
    - {{on: actual, percent: 80, severity: warning}}
    - {{on: actual, percent: 100, severity: critical}}
    - {{on: forecast, percent: 100, severity: warning}}
"""


def budget(tmp_path, amount=3000, period="month"):
    (rule,) = rule_from(tmp_path, BUDGET_RULE.format(amount=amount, period=period))
    return rule


def days(start: date, n: int, cost: str | int) -> list[dict]:
    return [row(start + timedelta(days=i), cost) for i in range(n)]


JAN = days(date(2024, 1, 1), 10, 100) + [row(date(2024, 1, 11), 20)]


def test_month_forecast_ignores_trailing_partial_day(tmp_path):
    (f,) = run(budget(tmp_path, 3000), JAN + [row(date(2024, 1, 5), 999, provider="Microsoft")], date(2024, 1, 11))
    ev = f.evidence
    assert ev["actual"] == D(1020) and ev["rate"] == D(100)
    # 1020 - 20 + max(20, 100) + 100 * 20 remaining days (Jan 12..31)
    assert ev["forecast"] == D(3100)
    assert (ev["on"], ev["threshold_percent"], f.severity) == ("forecast", D(100), "warning")
    assert ev["last_data_day"] == "2024-01-11"
    assert ev["period"] == {"kind": "month", "start": "2024-01-01", "end": "2024-02-01"}
    assert f.monthly_cost == D(1020) and f.monthly_savings is None  # a breach is not a saving
    assert f.evidence["overage"] == {"actual": D(0), "forecast": D(100)}
    assert f.title == "AWS monthly budget: forecast $3,100 is 103% of $3,000"
    assert f.provider == "AWS" and f.kind == "budget" and f.currency == "USD"
    assert f.fingerprint == fingerprint("aws-budget", "AWS", None, "period:2024-01-01")


def test_highest_threshold_wins(tmp_path):
    (f,) = run(budget(tmp_path, 1000), JAN, date(2024, 1, 11))
    assert (f.severity, f.evidence["on"], f.evidence["threshold_percent"]) == ("critical", "actual", D(100))
    assert len(f.evidence["thresholds_crossed"]) == 3
    (f,) = run(budget(tmp_path, 1200), JAN, date(2024, 1, 11))  # actual 85%, forecast 258%
    assert (f.severity, f.evidence["on"]) == ("warning", "forecast")


def test_no_finding_below_thresholds(tmp_path):
    assert run(budget(tmp_path, 5000), JAN, date(2024, 1, 11)) == []


def test_quarter(tmp_path):
    rows = [row(d, 10) for d in (date(2024, 3, 20) + timedelta(days=i) for i in range(56))] + [row(date(2024, 5, 15), 4)]
    (f,) = run(budget(tmp_path, 800, "quarter"), rows, date(2024, 5, 15))
    ev = f.evidence
    assert ev["period"]["start"] == "2024-04-01" and ev["period"]["end"] == "2024-07-01"
    assert ev["actual"] == D(444)  # Apr 1 .. May 14 = 44 days * 10, plus 4
    assert ev["rate"] == D(10)
    assert ev["forecast"] == D(910)  # 444 - 4 + 10 + 10 * 46
    assert f.fingerprint == fingerprint("aws-budget", "AWS", None, "period:2024-04-01")


def test_week_starts_monday_and_short_history(tmp_path):
    as_of = date(2024, 1, 10)  # a Wednesday
    assert period_bounds(as_of, "week") == (date(2024, 1, 8), date(2024, 1, 15))
    (f,) = run(budget(tmp_path, 300, "week"), days(date(2024, 1, 1), 10, 50), as_of)
    assert (f.evidence["actual"], f.evidence["rate"], f.evidence["forecast"]) == (D(150), D(50), D(350))
    # data starts on Monday: rate over the 2 complete days with data, not 7: 105 - 5 + max(5, 50) + 50 * 4
    (f,) = run(budget(tmp_path, 300, "week"), days(date(2024, 1, 8), 2, 50) + [row(as_of, 5)], as_of)
    assert (f.evidence["actual"], f.evidence["rate"], f.evidence["forecast"]) == (D(105), D(50), D(350))
    # only one day of data: rate = that day
    (f,) = run(budget(tmp_path, 100, "week"), [row(as_of, 30)], as_of)
    assert (f.evidence["rate"], f.evidence["forecast"]) == (D(30), D(150))


def test_missing_days_count_as_zero(tmp_path):
    rows = [r for r in days(date(2024, 1, 1), 10, 70) if r["x_ChargeDate"] != date(2024, 1, 6)]
    (f,) = run(budget(tmp_path, 100), rows, date(2024, 1, 10))
    assert f.evidence["rate"] == D(60)  # 6 * 70 / 7


def test_period_boundary_as_of_first(tmp_path):
    rows = days(date(2024, 1, 1), 31, 100) + [row(date(2024, 2, 1), 30)]
    (f,) = run(budget(tmp_path, 2500), rows, date(2024, 2, 1))
    ev = f.evidence
    assert ev["period"]["start"] == "2024-02-01" and ev["actual"] == D(30)
    assert ev["rate"] == D(100) and ev["forecast"] == D(2900)  # max(30, 100) + 100 * 28 (Feb 2024)
    assert f.fingerprint == fingerprint("aws-budget", "AWS", None, "period:2024-02-01")
    # no data yet in the new period: actual 0, forecast 0, no finding
    assert run(budget(tmp_path, 1), days(date(2024, 1, 1), 31, 100), date(2024, 2, 1)) == []


def test_fingerprint_stable_when_amounts_change(tmp_path):
    a = run(budget(tmp_path, 1000), JAN, date(2024, 1, 11))
    b = run(budget(tmp_path, 900), days(date(2024, 1, 1), 15, 300), date(2024, 1, 20))
    assert a[0].fingerprint == b[0].fingerprint and a[0].evidence != b[0].evidence


# ---------------------------------------------------------------------------------------- engine
class Boom:
    def evaluate(self, rule, ctx):
        raise RuntimeError("kaput")


def test_engine_isolates_failing_rule(tmp_path):
    good = budget(tmp_path, 1000)
    bad = RuleInstance("boom", "budget", "info", None, {}, good.params, Boom(), "x.yaml", 1)  # type: ignore[arg-type]
    eur = RuleInstance("eur", "budget", "info", None, {}, good.params, good.impl, "x.yaml", 2)
    rows = JAN + [row(date(2024, 1, 3), 5, currency="EUR", provider="Microsoft")]
    res = evaluate([bad, good, eur], RuleContext(as_of=date(2024, 1, 11), costs=frame(rows)))
    assert res.errors == {"boom": "RuntimeError: kaput"}
    assert res.evaluated == {"aws-budget", "eur"}
    by_rule = {f.rule: f for f in res.findings}
    # a USD budget never adds EUR to USD: the EUR spend is left out, and the finding says so
    assert by_rule["eur"].evidence["excluded"] == {"EUR": D(5)}
    assert "Leaves out €5.00 spent in EUR" in by_rule["eur"].summary
    assert by_rule["eur"].evidence["actual"] == by_rule["aws-budget"].evidence["actual"]


def test_rules_do_not_mutate_inputs(tmp_path):
    lf = frame(tag_rows())
    before = lf.collect()
    evaluate(load_rules(["rules"], base_dir=REPO), RuleContext(as_of=AS_OF, costs=lf))
    assert lf.collect().equals(before)
