"""Money never mixes currencies, totals people will quote add up, backtests leave live state
alone (issue "Trust the numbers" §2-§4). Real files through the real CLI."""

from __future__ import annotations

import json
import textwrap
from datetime import date
from decimal import Decimal
from pathlib import Path

from costguard.cycle import footer_lines

from conftest import write_config
from focus_rows import days, row, write


def _eur(d: date, cost: str, **kw) -> dict:
    r = row(d, cost, **kw)
    r["BillingCurrency"] = "EUR"
    return r


def _rules(folder: Path, text: str) -> None:
    (folder / "rules").mkdir(exist_ok=True)
    (folder / "rules" / "r.yaml").write_text(textwrap.dedent(text))


def _cfg(folder: Path) -> Path:
    return write_config(folder, """
        state: {url: "sqlite:///state.db", lake: lake}
        providers: [{name: s, type: focus, paths: ["exports/*.csv"]}]
        rules: [rules/]
        """)


COVERAGE = """
    - id: app-tag
      kind: tag-coverage
      severity: warning
      keys: [application]
      window_days: 10
      min_coverage: 0.9
      group_by: [ProviderName]
    """


def test_costs_sum_each_currency_apart_and_print_exact_decimals(cli, tmp_path):
    rows = [row(date(2026, 3, 1), "0.000094"), row(date(2026, 3, 1), "12345678901234567.89", resource="i-2")]
    rows += [_eur(date(2026, 3, 1), "10.50", resource="i-3")]
    write(tmp_path / "exports" / "a.csv", rows)
    cfg = write_config(tmp_path, """
        state: {url: "sqlite:///state.db", lake: lake}
        providers: [{name: s, type: focus, paths: ["exports/*.csv"]}]
        rules: []
        """)
    cli("run", "--once", "-c", cfg, "--as-of", "2026-03-31")
    out = cli("costs", "-c", cfg, "--by", "ProviderName", "--format", "json").stdout
    assert "e-" not in out and "E-" not in out  # never 9.4e-05
    got = json.loads(out, parse_float=Decimal)
    assert got == [{"ProviderName": "AWS", "BillingCurrency": "USD", "BilledCost": Decimal("12345678901234567.890094")},
                   {"ProviderName": "AWS", "BillingCurrency": "EUR", "BilledCost": Decimal("10.5")}]
    csv_out = cli("costs", "-c", cfg, "--by", "ProviderName", "--format", "csv").stdout.splitlines()
    assert csv_out == ["ProviderName,BillingCurrency,BilledCost", "AWS,USD,12345678901234567.890094", "AWS,EUR,10.5"]
    small = json.loads(cli("costs", "-c", cfg, "--by", "ResourceId", "--format", "json", "--exact").stdout, parse_float=Decimal)
    assert {r["ResourceId"]: r["BilledCost"] for r in small}["i-1"] == Decimal("0.000094")


def test_a_second_currency_never_changes_a_coverage_finding_identity(cli, tmp_path):
    _rules(tmp_path, COVERAGE)
    usd = [row(d, "10.00", resource="i-web", tags={"application": "web"}) for d in days(date(2026, 3, 1), 10)]
    usd += [row(d, "5.00", resource="i-batch") for d in days(date(2026, 3, 1), 10)]
    write(tmp_path / "exports" / "a.csv", usd)
    cfg = _cfg(tmp_path)
    cli("run", "--once", "-c", cfg, "--as-of", "2026-03-10")
    (first,) = cli.json("findings", "-c", cfg)
    fp = first["fingerprint"]
    cli("snooze", fp, "--until", "2099-01-01", "--reason", "known", "-c", cfg)
    # EUR spend appears in the same provider: USD coverage keeps its identity (and its snooze)
    eur = [_eur(d, "100.00", resource="vm-1") for d in days(date(2026, 3, 1), 10)]
    write(tmp_path / "exports" / "a.csv", usd + eur)
    r = cli("run", "--once", "-c", cfg, "--as-of", "2026-03-10")
    assert "resolved" not in r.stdout
    found = {f["currency"]: f for f in cli.json("findings", "-c", cfg, "--status", "all")}
    assert found["USD"]["fingerprint"] == fp and found["USD"]["status"] == "snoozed"
    assert found["EUR"]["fingerprint"] != fp and found["EUR"]["status"] == "open"
    assert found["EUR"]["evidence"]["total_cost"] == 1000.0  # EUR coverage is measured on EUR alone
    assert found["USD"]["evidence"]["total_cost"] == 150.0


def test_budget_compares_only_its_currency_or_converts_with_configured_rates(cli, tmp_path):
    rows = [row(d, "10.00") for d in days(date(2026, 3, 1), 10)] + [_eur(d, "50.00") for d in days(date(2026, 3, 1), 10)]
    write(tmp_path / "exports" / "a.csv", rows)
    _rules(tmp_path, """
        - id: usd-only
          kind: budget
          severity: warning
          amount: 200
          thresholds: [{on: actual, percent: 10, severity: info}]
        - id: usd-with-eur
          kind: budget
          severity: warning
          amount: 200
          rates: {EUR: 1.10}
          thresholds: [{on: actual, percent: 100, severity: critical}]
        """)
    cfg = _cfg(tmp_path)
    cli("run", "--once", "-c", cfg, "--as-of", "2026-03-10")
    by = {f["rule"]: f for f in cli.json("findings", "-c", cfg)}
    assert by["usd-only"]["evidence"]["actual"] == 100.0
    assert by["usd-only"]["evidence"]["excluded"] == {"EUR": 500.0}
    assert "Leaves out €500.00 spent in EUR" in by["usd-only"]["summary"]
    assert by["usd-with-eur"]["evidence"]["actual"] == 650.0  # 100 USD + 500 EUR × 1.10
    assert "Includes €500.00 converted at 1.1 USD/EUR" in by["usd-with-eur"]["summary"]
    assert by["usd-with-eur"]["monthly_savings"] is None and by["usd-with-eur"]["evidence"]["overage"]["actual"] == 450.0


def test_coverage_just_below_target_never_prints_as_the_target(cli, tmp_path):
    _rules(tmp_path, COVERAGE.replace("min_coverage: 0.9", "min_coverage: 0.99"))
    rows = [row(date(2026, 3, 1), "98.95", resource="i-web", tags={"application": "web"}),
            row(date(2026, 3, 1), "1.05", resource="i-batch")]
    write(tmp_path / "exports" / "a.csv", rows)
    cfg = _cfg(tmp_path)
    cli("run", "--once", "-c", cfg, "--as-of", "2026-03-10")
    (f,) = cli.json("findings", "-c", cfg)
    assert f["title"] == "AWS: 98.9% of EffectiveCost carries application (target 99%)"  # rounded down, never up


def _f(**kw) -> dict:
    base = {"fingerprint": "x", "kind": "tag", "severity": "warning", "currency": "USD", "provider": "AWS",
            "account_id": "1", "resource_id": None, "monthly_cost": Decimal(0), "monthly_savings": None}
    return {**base, **kw}


def test_footer_adds_up_only_what_does_not_overlap_and_says_what_it_sums():
    findings = [
        _f(fingerprint="scope", monthly_cost=Decimal("1000")),                         # coverage gap: contains the next
        _f(fingerprint="r1", resource_id="i-1", monthly_cost=Decimal("300")),          # untagged resource
        _f(fingerprint="r1-idle", kind="idle", resource_id="i-1", monthly_cost=Decimal("300"), monthly_savings=Decimal("300")),
        _f(fingerprint="r1-gp3", kind="idle", resource_id="i-1", monthly_cost=Decimal("300"), monthly_savings=Decimal("60")),
        _f(fingerprint="r2", kind="rightsizing", resource_id="i-2", monthly_cost=Decimal("200"), monthly_savings=Decimal("80")),
        _f(fingerprint="b", kind="budget", severity="critical", monthly_cost=Decimal("255124")),
        _f(fingerprint="eur", resource_id="vm-1", currency="EUR", monthly_cost=Decimal("40")),
    ]
    lines = footer_lines(findings)
    assert lines[0] == "open findings: 7 (1 critical, 6 warning)"
    assert "  USD: $500.00/month on 2 flagged resource(s), each counted once · acting on them saves $380.00/month" in lines
    assert "  EUR: €40.00/month on 1 flagged resource(s), each counted once" in lines
    assert lines[-1] == "  scope findings (not added to the sums above): 1 budget(s) over a threshold, 1 tag coverage gap(s)"
    assert not any("255,124" in x for x in lines)


def test_backtest_does_not_touch_live_findings_unless_recorded(cli, tmp_path):
    _rules(tmp_path, COVERAGE)
    rows = [row(d, "10.00", resource="i-web", tags={"application": "web"}) for d in days(date(2026, 3, 1), 20)]
    rows += [row(d, "5.00", resource="i-batch") for d in days(date(2026, 3, 11), 10)]  # untagged from the 11th
    write(tmp_path / "exports" / "a.csv", rows)
    cfg = _cfg(tmp_path)
    cli("run", "--once", "-c", cfg, "--as-of", "2026-03-20")
    live = cli.json("findings", "-c", cfg, "--status", "all")
    assert [f["status"] for f in live] == ["open"]
    lake_files = sorted(p.relative_to(tmp_path) for p in (tmp_path / "lake").rglob("*.parquet"))
    # as of the 5th nothing was untagged: a backtest shows that, and changes nothing
    r = cli("run", "--once", "-c", cfg, "--as-of", "2026-03-05")
    assert "BACKTEST" in r.stdout and "0 finding(s) this cycle (the findings store was not changed)" in r.stdout
    assert cli.json("findings", "-c", cfg, "--status", "all") == live
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "lake").rglob("*.parquet")) == lake_files
    nxt = cli("run", "--once", "-c", cfg, "--as-of", "2026-03-20")
    assert "back again" not in nxt.stdout and "No finding changed" in nxt.stdout
    # --record makes it a recorded run: the finding is resolved as of the 5th
    rec = cli("run", "--once", "-c", cfg, "--as-of", "2026-03-05", "--record")
    assert "BACKTEST" not in rec.stdout and "1 resolved" in rec.stdout


def test_dry_run_writes_nothing_to_the_lake_but_evaluates_what_it_would_ingest(cli, tmp_path):
    _rules(tmp_path, COVERAGE)
    write(tmp_path / "exports" / "a.csv", [row(d, "5.00", resource="i-batch") for d in days(date(2026, 3, 1), 10)])
    cfg = _cfg(tmp_path)
    r = cli("run", "--once", "-c", cfg, "--as-of", "2026-03-10", "--dry-run")
    assert "DRY RUN" in r.stdout and "1 new" in r.stdout
    assert not list((tmp_path / "lake").rglob("*.parquet"))
    assert cli.json("findings", "-c", cfg, "--status", "all") == []
