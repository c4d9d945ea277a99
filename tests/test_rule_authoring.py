"""Rule authoring through the real CLI: ``rules test`` (cases beside rule files, a diff on
failure), ``schema`` (generated from the models; the shipped packs validate against it) and
``explain`` (the rule, the inputs and the formula behind a stored finding's $)."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import jsonschema
import pytest

from costguard import yamlsrc

from costguard.rules import RULES

import focus_rows
from conftest import write_config

REPO = Path(__file__).resolve().parents[1]


def test_the_shipped_packs_pass_their_own_cases(cli):
    for folder in (REPO / "rules", REPO / "costguard" / "demo" / "rules"):
        r = cli("rules", "test", folder, "-v")
        assert "FAIL" not in r.stdout and " 0 failed" in r.stdout
        names = {p.stem for p in (folder / "cases").glob("*.yaml")}
        assert names == {p.stem for p in folder.glob("*.yaml")}, "every rule file ships cases"


def _pack(tmp_path: Path, case: str) -> Path:
    d = tmp_path / "rules"
    (d / "cases").mkdir(parents=True)
    (d / "waste.yaml").write_text("- {id: waste, kind: idle, severity: warning}\n")
    (d / "cases" / "waste.yaml").write_text(case)
    return d


CASE = """\
- name: unattached volume
  as_of: 2026-03-31
  inventory:
    - {resource_id: vol-1, resource_class: volume, sku: gp2, size_gb: 32, state: available}
  expect:
    - {resource_id: vol-1, monthly_savings: %s, evidence: {check: unattached_volume}}
"""


def test_rules_test_passes_and_fails_with_a_diff(cli, tmp_path):
    d = _pack(tmp_path, CASE % "3.2")
    r = cli("rules", "test", d)
    assert r.stdout.strip() == "1 case(s): 1 passed, 0 failed"
    second = (CASE % "3.2").replace("name: unattached volume", "name: second").replace("vol-1, resource_class", "vol-9, resource_class")
    (d / "cases" / "waste.yaml").write_text(CASE % '"~3.3"' + second)
    r = cli("rules", "test", d, expect=1)
    out = r.stdout
    assert "FAIL  " in out and "waste.yaml:1  unattached volume" in out
    assert "expected finding #1 not found" in out and "monthly_savings: expected '~3.3', got 3.2" in out
    assert "second" in out and "closest: [waste] idle vol-9" in out and "resource_id: expected 'vol-1', got 'vol-9'" in out
    assert out.strip().endswith("2 case(s): 0 passed, 2 failed")
    # an extra finding fails an exact case
    (d / "cases" / "waste.yaml").write_text(CASE.replace("expect:\n    - {resource_id: vol-1, monthly_savings: %s, evidence: {check: unattached_volume}}\n", "expect: []\n"))
    r = cli("rules", "test", d, expect=1)
    assert "unexpected finding: [waste] idle vol-1" in r.stdout


def test_rules_test_reports_bad_case_files_with_lines(cli, tmp_path):
    d = _pack(tmp_path, "- name: x\n  as_of: yesterday\n- name: y\n  as_of: 2026-01-01\n  rules: [nope]\n"
                        "- name: z\n  as_of: 2026-01-01\n  costs: [{cost: 1}]\n")
    r = cli("rules", "test", d, expect=2)
    assert "rules/cases/waste.yaml:2: as_of:" in r.stderr
    assert "rules/cases/waste.yaml:5: case 'y': rules: unknown rule id(s) nope" in r.stderr
    assert "case 'z': costs[0]: give day, or from and to" in r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "r.yaml").write_text("- {id: w, kind: idle, severity: info}\n")
    r = cli("rules", "test", empty, expect=1)
    assert "no test cases" in r.stderr


def test_schema_is_generated_and_the_packs_validate_against_it(cli):
    rules_schema = cli.runner.invoke(__import__("costguard.cli", fromlist=["app"]).app, ["schema", "--for", "rules"])
    doc = json.loads(rules_schema.stdout)
    validator = jsonschema.Draft202012Validator(doc)
    for f in [*(REPO / "rules").glob("*.yaml"), *(REPO / "costguard" / "demo" / "rules").glob("*.yaml")]:
        errors = list(validator.iter_errors(yamlsrc.load(f).data))  # YAML 1.2 like editors: `on:` is a key, not True
        assert not errors, (f, [e.message for e in errors])
    bad = [{"id": "x", "kind": "idle", "severity": "warning", "checks": {"old_snapshot": {"older_than": 3}}}]
    assert any("older_than" in e.message for e in validator.iter_errors(bad))
    assert list(validator.iter_errors([{"id": "x", "kind": "nope", "severity": "info"}]))
    for kind in RULES.names():
        one = json.loads(cli("schema", "--kind", kind).stdout)
        assert one["properties"]["kind"] == {"const": kind, "description": one["properties"]["kind"]["description"]}
        assert one["additionalProperties"] is False and {"id", "kind", "severity"} <= set(one["required"])
    both = json.loads(cli("schema").stdout)
    assert set(both) == {"config", "rules"} and "catalog" in both["config"]["properties"]
    r = cli("schema", "--kind", "nope", expect=2)
    assert "known: anomaly, budget" in r.stderr


def test_explain_shows_rule_inputs_numbers_and_formulas(cli, tmp_path):
    day = date(2026, 3, 1)
    focus_rows.write(tmp_path / "exports" / "e.csv",
                     [focus_rows.row(d, "0.5", resource="vol-0aaa") for d in focus_rows.days(day, 30)])
    (tmp_path / "inventory.csv").write_text(
        "provider,account_id,region,resource_id,resource_class,sku,size_gb,state,created_at\n"
        "AWS,111111111111,us-east-1,vol-0aaa,volume,gp2,100,available,2025-01-01\n"
        "AWS,111111111111,us-east-1,eipalloc-1,address,public_ipv4,,,2025-01-01\n")
    (tmp_path / "rules").mkdir()
    shutil.copy(REPO / "rules" / "waste.yaml", tmp_path / "rules" / "waste.yaml")
    cfg = write_config(tmp_path, """
        state: {url: "sqlite:///state/state.db", lake: state/lake}
        providers:
          - {name: exports, type: focus, paths: ["exports/*.csv"], inventory: inventory.csv}
        rules: [rules/]
        """)
    cli("run", "--once", "-c", cfg, "--as-of", "2026-03-30")
    found = {f["resource_id"]: f for f in cli.json("findings", "-c", cfg)}
    vol, eip = found["vol-0aaa"], found["eipalloc-1"]
    assert vol["monthly_cost"] == 15 and vol["monthly_savings"] == 15 and vol["evidence"]["price_source"] == "lake"
    assert eip["evidence"]["price_source"] == "catalogue" and eip["monthly_cost"] == 3.65
    out = cli("explain", vol["fingerprint"][:10], "-c", cfg).stdout
    assert out.startswith(vol["title"])
    assert "rule      idle-resources · kind idle · rules/waste.yaml:4" in out
    assert "monthly_cost     EffectiveCost $15.0000 over the last 30 day(s) in the lake = $15.0000" in out
    assert "monthly_savings  unattached_volume: removing it saves its whole monthly cost $15.0000" in out
    assert "inputs the rule saw" in out and '"check": "unattached_volume"' in out
    got = cli.json("explain", eip["fingerprint"], "-c", cfg)[0]
    assert got["rule"]["params"]["min_monthly_savings"] == "0.5"
    assert "address × 730 h at 0.005 USD/hour" in got["formulas"]["monthly_cost"]
    assert got["inputs"]["prices"][0]["source"].startswith("aws-vpc-pricing")
    r = cli("explain", "ffffffffffff", "-c", cfg, expect=1)
    assert "no finding with fingerprint" in r.stderr


def test_explain_rebuilds_formulas_for_budget_and_coverage(cli, tmp_path):
    from costguard.explain import formulas

    budget = {"kind": "budget", "currency": "USD", "monthly_savings": None,
              "evidence": {"actual": 10, "forecast": 40, "rate": 2, "rate_days": 7, "last_data_day": "2026-03-05",
                           "metric": "BilledCost", "period": {"start": "2026-03-01"}}}
    f = formulas(budget)
    assert f["monthly_cost"].startswith("actual = BilledCost from 2026-03-01") and "rate = mean of the 7 days" in f["forecast"]
    cov = {"kind": "tag", "currency": "EUR", "monthly_savings": None,
           "evidence": {"coverage": 0.5, "tagged_cost": 5, "untagged_cost": 5, "total_cost": 10,
                        "window": {"start": "2026-03-01", "end": "2026-03-31"}}}
    assert formulas(cov)["monthly_cost"] == "untagged €5.0000 × 30 / 30 days"


@pytest.mark.parametrize("kind", RULES.names())
def test_docs_describe_every_kind(kind):
    text = (REPO / "docs" / "rules.md").read_text()
    assert f"## `{kind}`" in text


def test_rules_test_with_a_config_uses_its_folders_and_catalogue(cli, tmp_path, monkeypatch):
    d = _pack(tmp_path, CASE % "1.6")                      # 32 GB at a negotiated $0.05/GB-month
    (tmp_path / "prices.csv").write_text("provider,resource_class,sku,region,unit,price,currency\n"
                                         "AWS,volume,gp2,us-east-1,gb_month,0.05,USD\n")
    cfg = write_config(tmp_path, "rules: [rules/]\ncatalog: [prices.csv]\n")
    monkeypatch.chdir(tmp_path)
    assert cli("rules", "test", "-c", cfg).stdout.strip() == "1 case(s): 1 passed, 0 failed"
    r = cli("rules", "test", d, expect=1)                  # without the config: the bundled $0.10
    assert "monthly_savings: expected 1.6, got 3.2" in r.stdout
