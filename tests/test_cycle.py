"""End to end through the real CLI: ingest → lake → rules → findings store → console."""

from __future__ import annotations

import csv
import json
import shutil
import textwrap
from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl

from costguard.store import Store

from conftest import SAMPLE, write_config
from focus_rows import days, row, write

EXPECTED = {"AWS": 18.006639, "Microsoft": 1.976514, "Oracle": 0.537074}


def _csv_totals(path: Path, *, metric: str = "BilledCost") -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    with path.open(newline="") as fh:
        for r in csv.DictReader(fh):
            out[r["ProviderName"]] = out.get(r["ProviderName"], Decimal(0)) + Decimal(r[metric])
    return out


def _by_provider(cli, cfg: Path, *extra: str) -> dict[str, float]:
    rows = cli.json("costs", "-c", cfg, "--by", "ProviderName", *extra)
    return {r["ProviderName"]: r["BilledCost"] for r in rows}


def test_sample_totals_and_conformance(cli, sample_project):
    cfg = sample_project / "costguard.yaml"
    r = cli("run", "--once", "-c", cfg, "--as-of", "2024-09-30")
    assert "ChargeFrequency:allowed_values" in r.stdout
    assert "ContractedCost:nullability" in r.stdout
    rows = cli.json("costs", "-c", cfg, "--by", "ProviderName")
    assert {x["ProviderName"]: x["BilledCost"] for x in rows} == EXPECTED
    assert list(rows[0].keys()) == ["ProviderName", "BillingCurrency", "BilledCost"]
    assert {x["BillingCurrency"] for x in rows} == {"USD"}
    # exact to the cent and beyond, against the source file itself
    exact = _csv_totals(SAMPLE)
    assert {k: Decimal(str(v)) for k, v in EXPECTED.items()} == {k: v.quantize(Decimal("0.000001")) for k, v in exact.items()}
    full = cli.json("costs", "-c", cfg, "--by", "ProviderName", "--metric", "BilledCost")
    assert sum(Decimal(str(x["BilledCost"])) for x in full).quantize(Decimal("0.01")) == sum(exact.values()).quantize(Decimal("0.01"))
    store = Store.open(f"sqlite:///{sample_project / 'state' / 'state.db'}")
    run = store.last_run()
    store.close()
    checks = run["conformance"]["sample"]["checks"]
    assert checks["ChargeFrequency:allowed_values"]["count"] == 7
    assert checks["ContractedCost:nullability"]["count"] == 7
    assert run["providers"]["sample"]["rows"] == 1000  # flagged rows are kept
    phases = run["stats"]["phase_seconds"]  # which phase a slow cycle spent its time in
    assert list(phases) == ["ingest", "evaluate", "reconcile", "deliver", "report"]
    assert all(isinstance(v, float) and v >= 0 for v in phases.values())


def test_the_cycle_gives_frozen_objects_back_to_the_garbage_collector(cli, sample_project):
    """A cycle keeps the collector off what lives for the whole cycle, and gives it back after:
    a daemon or a test runs many cycles in one process."""
    import gc

    assert gc.get_freeze_count() == 0
    cli("run", "--once", "-c", sample_project / "costguard.yaml", "--as-of", "2024-09-30")
    assert gc.get_freeze_count() == 0


def test_reingest_same_window_keeps_totals(cli, sample_project):
    cfg = sample_project / "costguard.yaml"
    cli("run", "--once", "-c", cfg, "--as-of", "2024-09-30")
    files_before = sorted(p.relative_to(sample_project) for p in (sample_project / "state/lake").rglob("*.parquet"))
    cli("run", "--once", "-c", cfg, "--as-of", "2024-09-30")
    files_after = sorted(p.relative_to(sample_project) for p in (sample_project / "state/lake").rglob("*.parquet"))
    assert _by_provider(cli, cfg) == EXPECTED
    assert files_before == files_after


def test_restated_export_is_re_read_and_unchanged_days_are_skipped(cli, tmp_path):
    src = tmp_path / "exports" / "focus.csv"
    shutil.copy(SAMPLE, src.parent.mkdir(parents=True) or src)
    cfg = write_config(tmp_path, """
        state: {url: "sqlite:///state.db", lake: lake}
        ingest: {restate_days: 2, month_to_date: false}
        providers: [{name: sample, type: focus, paths: ["exports/*.csv"]}]
        rules: []
        """)
    cli("run", "--once", "-c", cfg, "--as-of", "2024-09-30")
    again = cli("run", "--once", "-c", cfg, "--as-of", "2024-09-30")
    assert "2 day(s) pulled, 28 day(s) already stored" in again.stdout  # unchanged: only the trailing days
    # restate: the last day (in the trailing window) and the first day (not in it) both change
    df = pl.read_csv(src, infer_schema=False)
    bump = pl.col("ChargePeriodStart").str.starts_with("2024-09-30") | pl.col("ChargePeriodStart").str.starts_with("2024-09-01")
    df = df.with_columns(pl.when(bump & (pl.col("ProviderName") == "AWS")).then(pl.lit("1.25")).otherwise(pl.col("BilledCost")).alias("BilledCost"))
    df.write_csv(src, null_value="NULL")
    r = cli("run", "--once", "-c", cfg, "--as-of", "2024-09-30")
    assert "30 day(s) pulled, 0 day(s) already stored" in r.stdout  # the file changed: every day it holds
    new = _csv_totals(src)
    got = _by_provider(cli, cfg)
    assert Decimal(str(got["AWS"])) == new["AWS"].quantize(Decimal("0.000001"))
    assert got["Microsoft"] == EXPECTED["Microsoft"]
    on_30 = cli.json("costs", "-c", cfg, "--by", "ProviderName", "--from", "2024-09-30", "--to", "2024-10-01")
    n30 = sum(1 for x in csv.DictReader(src.open()) if x["ChargePeriodStart"].startswith("2024-09-30") and x["ProviderName"] == "AWS")
    assert {x["ProviderName"]: x["BilledCost"] for x in on_30}["AWS"] == float(Decimal("1.25") * n30)


def test_one_bad_source_never_stops_the_others_and_loses_nothing(cli, tmp_path):
    (tmp_path / "good").mkdir()
    (tmp_path / "bad").mkdir()
    shutil.copy(SAMPLE, tmp_path / "good" / "a.csv")
    shutil.copy(SAMPLE, tmp_path / "bad" / "b.csv")
    cfg = write_config(tmp_path, """
        state: {url: "sqlite:///state.db", lake: lake}
        providers:
          - {name: good, type: focus, paths: ["good/*.csv"]}
          - {name: other, type: focus, paths: ["bad/*.csv"]}
        rules: []
        """)
    cli("run", "--once", "-c", cfg, "--as-of", "2024-09-30")
    both = cli.json("costs", "-c", cfg, "--by", "source")
    assert len(both) == 2
    # now the second export loses a mandatory column
    df = pl.read_csv(tmp_path / "bad" / "b.csv", infer_schema=False).drop("BilledCost")
    df.write_csv(tmp_path / "bad" / "b.csv")
    r = cli("run", "--once", "-c", cfg, "--as-of", "2024-09-30", expect=3)
    assert "b.csv" in r.stdout and "BilledCost" in r.stdout and "FAILED" in r.stdout
    after = cli.json("costs", "-c", cfg, "--by", "source")
    assert after == both  # nothing already stored was lost or half-overwritten


def test_truncated_parquet_marks_provider_failed(cli, tmp_path):
    (tmp_path / "x").mkdir()
    pq = tmp_path / "x" / "export.parquet"
    pl.read_csv(SAMPLE, infer_schema=False, null_values=["NULL"]).write_parquet(pq)
    data = pq.read_bytes()
    pq.write_bytes(data[: len(data) // 2])
    cfg = write_config(tmp_path, """
        state: {url: "sqlite:///state.db", lake: lake}
        providers: [{name: x, type: focus, paths: ["x/*.parquet"]}]
        rules: []
        """)
    r = cli("run", "--once", "-c", cfg, "--as-of", "2024-09-30", expect=3)
    assert "export.parquet" in r.stdout


def _tag_rules(folder: Path) -> None:
    (folder / "rules").mkdir(exist_ok=True)
    (folder / "rules" / "tags.yaml").write_text(textwrap.dedent("""
        - id: app-tag
          kind: tag-coverage
          severity: warning
          keys: [application]
          metric: EffectiveCost
          window_days: 10
          min_coverage: 0.9
          group_by: [ProviderName]
          resource_cost_floor: 10
        """))


def _lifecycle_export(folder: Path, tagged: bool) -> None:
    rows = []
    for d in days(date(2026, 3, 1), 10):
        rows.append(row(d, "5.00", resource="i-web", tags={"Application": "web", "team": "payments"}))
        rows.append(row(d, "3.00", resource="i-batch", tags={" application ": "batch"} if tagged else {"team": "data"}))
    write(folder / "exports" / "costs.csv", rows)


def test_findings_lifecycle_new_resolved_regressed(cli, tmp_path):
    _tag_rules(tmp_path)
    cfg = write_config(tmp_path, """
        state: {url: "sqlite:///state.db", lake: lake}
        providers: [{name: aws, type: focus, paths: ["exports/*.csv"]}]
        rules: [rules/]
        owners: owners.yaml
        """)
    (tmp_path / "owners.yaml").write_text("default: finops\nteams:\n  finops: {}\n  data: {}\n  payments: {}\n")
    _lifecycle_export(tmp_path, tagged=False)
    r1 = cli("run", "--once", "-c", cfg, "--as-of", "2026-03-10")
    assert "this cycle: 2 new" in r1.stdout
    found = cli.json("findings", "-c", cfg, "--status", "all")
    by_res = {f["resource_id"]: f for f in found}
    res = by_res["i-batch"]
    assert res["status"] == "open" and res["kind"] == "tag"
    assert res["monthly_cost"] == 90.0  # $3/day untagged → $90 per 30 days
    assert res["owner"] == "data" and res["owner_reason"] == "tag team=data"
    scope = by_res[None]
    assert scope["evidence"]["coverage"] == 0.625  # 50 of 80 dollars tagged
    fp = res["fingerprint"]

    _lifecycle_export(tmp_path, tagged=True)
    r2 = cli("run", "--once", "-c", cfg, "--as-of", "2026-03-10")
    assert "this cycle: 2 resolved" in r2.stdout
    assert {f["status"] for f in cli.json("findings", "-c", cfg, "--status", "all")} == {"resolved"}

    _lifecycle_export(tmp_path, tagged=False)
    r3 = cli("run", "--once", "-c", cfg, "--as-of", "2026-03-10")
    assert "this cycle: 2 back again" in r3.stdout
    again = {f["fingerprint"]: f for f in cli.json("findings", "-c", cfg)}
    assert again[fp]["status"] == "open"
    assert again[fp]["first_seen"] == res["first_seen"]
    assert again[fp]["times_regressed"] == 1


def test_budget_finding_and_dry_run(cli, tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "budget.yaml").write_text(textwrap.dedent("""
        - id: aws-monthly
          kind: budget
          severity: warning
          filter: {ProviderName: AWS}
          amount: 1000
          period: month
          metric: BilledCost
          thresholds:
            - {on: actual, percent: 80, severity: warning}
            - {on: forecast, percent: 100, severity: critical}
        """))
    rows = [row(d, "40.00") for d in days(date(2026, 4, 1), 14)] + [row(date(2026, 4, 15), "10.00")]
    write(tmp_path / "exports" / "c.csv", rows)
    cfg = write_config(tmp_path, """
        state: {url: "sqlite:///state.db", lake: lake}
        providers: [{name: aws, type: focus, paths: ["exports/*.csv"]}]
        rules: [rules/]
        """)
    dry = cli("run", "--once", "--dry-run", "-c", cfg, "--as-of", "2026-04-15")
    assert "dry run" in dry.stdout.lower()
    assert cli.json("findings", "-c", cfg, "--status", "all") == []
    cli("run", "--once", "-c", cfg, "--as-of", "2026-04-15")
    (f,) = cli.json("findings", "-c", cfg)
    # actual 14*40 + 10 = 570; rate 40/day ignoring the partial 15th; forecast 560 + 40 + 15*40 = 1200
    assert f["evidence"]["actual"] == 570.0
    assert f["evidence"]["forecast"] == 1200.0
    assert f["severity"] == "critical" and f["evidence"]["threshold_percent"] == 100.0
    assert f["monthly_savings"] is None and f["evidence"]["overage"]["forecast"] == 200.0


def test_snooze_and_findings_formats(cli, tmp_path):
    _tag_rules(tmp_path)
    _lifecycle_export(tmp_path, tagged=False)
    cfg = write_config(tmp_path, """
        state: {url: "sqlite:///state.db", lake: lake}
        providers: [{name: aws, type: focus, paths: ["exports/*.csv"]}]
        rules: [rules/]
        """)
    cli("run", "--once", "-c", cfg, "--as-of", "2026-03-10")
    f = next(x for x in cli.json("findings", "-c", cfg) if x["resource_id"] == "i-batch")
    r = cli("snooze", f["fingerprint"][:10], "--until", "2099-01-01", "--reason", "migrating", "-c", cfg)
    assert "snoozed" in r.stdout
    snoozed = cli.json("findings", "-c", cfg, "--status", "snoozed")
    assert [x["fingerprint"] for x in snoozed] == [f["fingerprint"]]
    assert snoozed[0]["snooze_reason"] == "migrating"
    table = cli("findings", "-c", cfg).stdout
    assert "fingerprint" in table and "i-batch" not in table  # snoozed ones are not "open"
    out = cli("findings", "-c", cfg, "--status", "all", "--format", "csv").stdout
    assert out.splitlines()[0].startswith("fingerprint,")
    cli("snooze", "nope-nope", "--until", "2099-01-01", "--reason", "x", "-c", cfg, expect=1)


def test_costs_by_tag_and_dates(cli, tmp_path):
    _lifecycle_export(tmp_path, tagged=False)
    cfg = write_config(tmp_path, """
        state: {url: "sqlite:///state.db", lake: lake}
        providers: [{name: aws, type: focus, paths: ["exports/*.csv"]}]
        rules: []
        """)
    cli("run", "--once", "-c", cfg, "--as-of", "2026-03-10")
    rows = cli.json("costs", "-c", cfg, "--by", "tag:team", "--metric", "EffectiveCost", "--from", "2026-03-01", "--to", "2026-03-03")
    assert {r["tag:team"]: r["EffectiveCost"] for r in rows} == {"payments": 10.0, "data": 6.0}
    r = cli("costs", "-c", cfg, "--by", "NoSuchColumn", expect=2)
    assert "NoSuchColumn" in r.stderr


def test_env_config_and_missing_config(cli, sample_project, monkeypatch):
    monkeypatch.setenv("COSTGUARD_CONFIG", str(sample_project / "costguard.yaml"))
    cli("run", "--once", "--as-of", "2024-09-30")
    assert json.loads(cli("costs", "--by", "ProviderName", "--format", "json").stdout)
    monkeypatch.delenv("COSTGUARD_CONFIG")
    r = cli("findings", expect=2)
    assert "COSTGUARD_CONFIG" in r.stderr


def test_a_resource_belongs_to_the_team_its_latest_tags_name(cli, tmp_path):
    """A resource re-tagged from one team to another belongs to the team of its latest day."""
    from notify_env import AS_OF, project

    cfg = project(tmp_path, "receivers: {}\n")
    rows = [row(d, "5.00", resource="i-moved", tags={"team": "data" if d.day <= 5 else "payments"})
            for d in days(date(2026, 3, 1), 10)]
    write(tmp_path / "exports" / "costs.csv", rows)
    cli("run", "--once", "-c", cfg, "--as-of", AS_OF)
    moved = [f for f in cli.json("findings", "-c", cfg) if f["resource_id"] == "i-moved"]
    assert moved and {f["owner"] for f in moved} == {"payments"}, moved
