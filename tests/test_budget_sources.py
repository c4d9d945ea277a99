"""Budgets beyond the rule's own amount: per team from owners.yaml, the clouds' own (native)
budgets, absolute thresholds and days to breach."""

from __future__ import annotations

import textwrap
from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from costguard import focus
from costguard.errors import ConfigError
from costguard.model import NativeBudget
from costguard.owners import OwnerResolver, OwnersConfig, owner_expr
from costguard.rules import RuleContext, evaluate, load_rules

from conftest import write_config
from focus_rows import days, row, write

D = Decimal


def _rules(tmp_path: Path, text: str):
    (tmp_path / "r.yaml").write_text(textwrap.dedent(text))
    return load_rules(["r.yaml"], base_dir=tmp_path)


def _rollup(rows: list[dict], tmp_path: Path) -> pl.LazyFrame:
    from costguard import rollup

    f = write(tmp_path / "x.csv", rows)
    return rollup.rollup(focus.normalize(focus.scan(str(f)), file=str(f)), "s")


OWNERS = OwnersConfig.model_validate({
    "default": "finops",
    "tag_keys": ["team"],
    "teams": {
        "finops": {},
        "web": {"tag_values": ["frontend"], "budget": {"amount": 100}},
        "data": {"accounts": ["222222222222"], "budget": {"amount": 1000, "period": "month"}},
    },
})


def test_owner_expression_follows_the_resolvers_order(tmp_path):
    rows = [row(date(2026, 3, 1), "1", resource="a", tags={"team": "Frontend"}),           # tag value alias
            row(date(2026, 3, 1), "1", resource="b", tags={"team": "web"}, account="222222222222"),  # tag beats account
            row(date(2026, 3, 1), "1", resource="c", account="222222222222"),              # account
            row(date(2026, 3, 1), "1", resource="d", tags={"team": "unknown-team"})]       # nothing: default
    df = _rollup(rows, tmp_path).with_columns(owner_expr(OWNERS).alias("owner")).collect()
    assert dict(zip(df["ResourceId"], df["owner"])) == {"a": "web", "b": "web", "c": "data", "d": "finops"}
    unconfigured = OwnersConfig.model_validate({"tag_keys": ["team"]})
    df = _rollup(rows, tmp_path).with_columns(owner_expr(unconfigured).alias("owner")).collect()
    assert dict(zip(df["ResourceId"], df["owner"])) == {"a": "Frontend", "b": "web", "c": None, "d": "unknown-team"}


def test_team_budgets_check_the_spend_each_team_owns(tmp_path):
    rows = [row(d, "20", resource="web-1", tags={"team": "frontend"}) for d in days(date(2026, 3, 1), 10)]
    rows += [row(d, "30", resource="db-1", account="222222222222") for d in days(date(2026, 3, 1), 10)]
    (rule,) = _rules(tmp_path, """
        - id: team-budgets
          kind: budget
          severity: warning
          teams: true
          thresholds:
            - {on: actual, percent: 100, severity: critical}
            - {on: forecast, percent: 100, severity: warning}
        """)
    res = evaluate([rule], RuleContext(as_of=date(2026, 3, 10), costs=_rollup(rows, tmp_path), owners=OWNERS))
    by = {f.owner: f for f in res.findings}
    # web: 200 of 100 spent; data: 300 of 1000 at 30/day, forecast 930 — below both thresholds
    assert set(by) == {"web"}
    assert by["web"].evidence["actual"] == D(200) and by["web"].severity == "critical"
    assert by["web"].evidence["days_to_breach"] == 0 and by["web"].owner_reason == "team budget in owners.yaml (teams.web.budget)"
    # the owner a rule gives is kept by the resolver (the team's budget belongs to the team)
    assert OwnerResolver(OWNERS).apply([by["web"]], {})[0].owner == "web"


def test_absolute_thresholds_and_days_to_breach(tmp_path):
    rows = [row(d, "100", resource="i-1") for d in days(date(2026, 3, 1), 10)]
    (rule,) = _rules(tmp_path, """
        - id: b
          kind: budget
          severity: warning
          amount: 2000
          thresholds:
            - {on: actual, amount: 900, severity: info}
            - {on: forecast, percent: 100, severity: warning}
        """)
    (f,) = evaluate([rule], RuleContext(as_of=date(2026, 3, 10), costs=_rollup(rows, tmp_path))).findings
    assert f.severity == "warning" and f.evidence["forecast"] == D(3100)
    # 1000 spent by the 10th at 100/day: 2000 is reached 10 days after the last data day
    assert f.evidence["days_to_breach"] == 10 and f.evidence["breach_day"] == "2026-03-20"
    assert "At this rate it is spent in 10 day(s), on 2026-03-20." in f.summary
    assert [t["amount"] for t in f.evidence["thresholds_crossed"]] == [D(900), None]
    with pytest.raises(ConfigError, match="either percent"):
        _rules(tmp_path, """
            - {id: x, kind: budget, severity: info, amount: 1, thresholds: [{on: actual, percent: 1, amount: 2, severity: info}]}
            """)
    with pytest.raises(ConfigError, match="exactly one of"):
        _rules(tmp_path, """
            - {id: x, kind: budget, severity: info, amount: 1, teams: true, thresholds: [{on: actual, percent: 1, severity: info}]}
            """)


def test_native_budgets_from_providers_are_checked_with_their_own_figures(tmp_path):
    budgets = [
        NativeBudget("aws-org", "prod-monthly", D(1000), "USD", "month", actual=D(1200), forecast=D(1500)),
        NativeBudget("aws-org", "dev-monthly", D(1000), "USD", "month", actual=D(100), forecast=D(300)),
        NativeBudget("azure", "prod-sub", D(500), "EUR", "month", actual=D(400), forecast=D(600)),
    ]
    (rule,) = _rules(tmp_path, """
        - id: cloud-budgets
          kind: budget
          severity: warning
          native: "prod-*"
          thresholds:
            - {on: actual, percent: 100, severity: critical}
            - {on: forecast, percent: 100, severity: warning}
        """)
    res = evaluate([rule], RuleContext(as_of=date(2026, 3, 10), costs=_rollup([row(date(2026, 3, 1), "1")], tmp_path), budgets=budgets))
    by = {f.evidence["budget"]["native"]["name"]: f for f in res.findings}
    assert set(by) == {"prod-monthly", "prod-sub"}
    assert by["prod-monthly"].severity == "critical" and by["prod-monthly"].source == "aws-org"
    assert by["prod-sub"].currency == "EUR" and by["prod-sub"].severity == "warning"
    assert by["prod-sub"].evidence["days_to_breach"] is not None
    assert by["prod-monthly"].fingerprint != by["prod-sub"].fingerprint


def test_team_budget_end_to_end_with_owners_file(cli, tmp_path):
    write(tmp_path / "exports" / "a.csv", [row(d, "50", resource="web-1", tags={"team": "web"}) for d in days(date(2026, 3, 1), 5)])
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "b.yaml").write_text(
        "- {id: teams, kind: budget, severity: warning, teams: true, thresholds: [{on: actual, percent: 100, severity: critical}]}\n")
    (tmp_path / "owners.yaml").write_text("teams:\n  web:\n    budget: {amount: 200, currency: USD}\n")
    cfg = write_config(tmp_path, """
        state: {url: "sqlite:///state.db", lake: lake}
        providers: [{name: s, type: focus, paths: ["exports/*.csv"]}]
        rules: [rules/]
        owners: owners.yaml
        """)
    cli("run", "--once", "-c", cfg, "--as-of", "2026-03-05")
    (f,) = cli.json("findings", "-c", cfg)
    assert f["owner"] == "web" and f["title"].startswith("team web monthly budget: actual $250 is 125% of $200")


def test_native_budgets_use_their_own_alerts_and_skip_another_period(tmp_path):
    read = date(2026, 3, 10)
    budgets = [
        NativeBudget("aws-org", "prod", D(1000), "USD", "month", actual=D(850), forecast=D(1100), read_on=read,
                     thresholds=({"on": "ACTUAL", "value": D(80), "type": "PERCENTAGE"},
                                 {"on": "FORECASTED", "value": D(120), "type": "PERCENTAGE"})),
        NativeBudget("aws-org", "daily", D(10), "USD", "day", actual=D(12), read_on=read),
    ]
    (rule,) = _rules(tmp_path, """
        - id: cloud
          kind: budget
          severity: warning
          native: true
          native_thresholds: true
          thresholds: [{on: actual, percent: 100, severity: critical}]
        """)
    costs = _rollup([row(date(2026, 3, 1), "1")], tmp_path)
    by = {f.evidence["budget"]["native"]["name"]: f for f in
          evaluate([rule], RuleContext(as_of=read, costs=costs, budgets=budgets)).findings}
    # prod's own 80% alert fired (850 of 1000); its 120% forecast alert did not (1100 < 1200)
    assert by["prod"].severity == "warning" and by["prod"].evidence["threshold_percent"] == D(80)
    # a daily budget is compared with that day, with the rule's thresholds (it defines none)
    assert by["daily"].severity == "critical" and by["daily"].evidence["period"]["end"] == "2026-03-11"
    # a backtest in another month has no cloud figures for that month: nothing is judged
    assert evaluate([rule], RuleContext(as_of=date(2026, 2, 10), costs=costs, budgets=budgets)).findings == []
