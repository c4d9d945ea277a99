"""The aws provider's cost sources against moto's server: Data Exports (FOCUS 1.2 and CUR 2.0) in
S3, Cost Explorer (seeded through moto's API) and Athena (the call flow; the rows come from the
generated SQL run on DuckDB over the same parquet)."""

from __future__ import annotations

import json
from decimal import Decimal

import polars as pl
import pytest

pytest.importorskip("moto.server")

from aws_env import MANAGEMENT, moto_endpoint, seed_athena, seed_ce, world  # noqa: E402,F401
from aws_exports import expected_billed, put_export, sample_aws, to_cur2, typed_focus  # noqa: E402
from conftest import write_config  # noqa: E402

ROOT = "exports/costguard-focus/"


def aws_config(tmp_path, world, costs: str, *, extra: str = "", ingest: str = "") -> str:
    return write_config(tmp_path, f"""
        state: {{url: "sqlite:///state.db", lake: lake}}
        {ingest}
        providers:
          - name: aws-billing
            type: aws
            endpoint_url: "{world.endpoint}"
            regions: [us-east-1]
            costs: {costs}
            inventory: {{enabled: false}}
            budgets: false
            max_attempts: 2
            {extra}
        rules: []
        """)


def lake_total(cli, cfg) -> dict:
    return {(r["ProviderName"], r["BillingCurrency"]): Decimal(str(r["BilledCost"]))
            for r in cli.json("costs", "-c", cfg, "--by", "ProviderName", "--exact")}


@pytest.mark.parametrize("fmt", ["focus_export", "cur2_export"])
def test_export_totals_equal_the_export_to_the_cent(cli, tmp_path, world, fmt):
    rows = sample_aws()
    s3 = world.client("s3")
    s3.create_bucket(Bucket="billing")
    typed = typed_focus(rows) if fmt == "focus_export" else to_cur2(rows)
    half = typed.height // 2
    put_export(s3, "billing", ROOT, "costguard-focus", "2024-09", [typed.slice(0, half), typed.slice(half)])
    cfg = aws_config(tmp_path, world, f'{{source: {fmt}, uri: "s3://billing/{ROOT}"}}')
    r = cli("run", "--once", "-c", cfg, "--as-of", "2024-10-15")
    assert "aws-billing: ok" in r.stdout, r.stdout
    got = lake_total(cli, cfg)
    assert got[("AWS", "USD")].quantize(Decimal("0.01")) == expected_billed(rows).quantize(Decimal("0.01"))
    assert abs(got[("AWS", "USD")] - Decimal("18.006639")) < Decimal("0.000001")
    accounts = cli.json("costs", "-c", cfg, "--by", "SubAccountId")
    assert len(accounts) == rows["SubAccountId"].n_unique()
    by_tag = {r["tag:application"] for r in cli.json("costs", "-c", cfg, "--by", "tag:application")}
    assert "BrightLensMatrix" in by_tag  # user_application → application in CUR 2.0


def test_unchanged_manifest_is_not_read_again_and_a_restated_period_replaces_the_old(cli, tmp_path, world):
    rows = sample_aws()
    s3 = world.client("s3")
    s3.create_bucket(Bucket="billing")
    typed = typed_focus(rows)
    put_export(s3, "billing", ROOT, "costguard-focus", "2024-09", [typed])
    cfg = aws_config(tmp_path, world, f'{{source: focus_export, uri: "s3://billing/{ROOT}"}}')
    cli("run", "--once", "-c", cfg, "--as-of", "2024-10-15")
    first = world.proxy.apis()
    assert first["s3:GetObject"] == 2  # the manifest and the one data file
    world.proxy.clear()
    r = cli("run", "--once", "-c", cfg, "--as-of", "2024-10-15")
    assert "30 day(s) already stored" in r.stdout
    assert world.proxy.apis() == {"s3:ListObjectsV2": 1}  # the listing says nothing changed: no download
    # restatement: a new execution with one charge of the first day corrected
    fixed = typed.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.col("BilledCost") + 100).otherwise(pl.col("BilledCost")).alias("BilledCost"))
    put_export(s3, "billing", ROOT, "costguard-focus", "2024-09", [fixed], execution="exec-2")
    world.proxy.clear()
    r = cli("run", "--once", "-c", cfg, "--as-of", "2024-10-15")
    assert world.proxy.apis()["s3:GetObject"] == 2
    got = lake_total(cli, cfg)[("AWS", "USD")]
    assert abs(got - (Decimal("18.006639") + 100)) < Decimal("0.000001")  # replaced, not added


def test_create_new_deliveries_read_only_the_manifest_files(cli, tmp_path, world):
    rows = sample_aws()
    s3 = world.client("s3")
    s3.create_bucket(Bucket="billing")
    typed = typed_focus(rows)
    put_export(s3, "billing", ROOT, "costguard-focus", "2024-09", [typed.head(100)], execution="exec-1", overwrite=False)
    put_export(s3, "billing", ROOT, "costguard-focus", "2024-09", [typed], execution="exec-2", overwrite=False)
    cfg = aws_config(tmp_path, world, f'{{source: focus_export, uri: "s3://billing/{ROOT}"}}')
    cli("run", "--once", "-c", cfg, "--as-of", "2024-10-15")
    got = lake_total(cli, cfg)[("AWS", "USD")]
    assert abs(got - Decimal("18.006639")) < Decimal("0.000001")  # exec-1 is not counted twice


def test_a_cur2_file_read_as_focus_says_which_source_to_use(cli, tmp_path, world):
    s3 = world.client("s3")
    s3.create_bucket(Bucket="billing")
    put_export(s3, "billing", ROOT, "x", "2024-09", [to_cur2(sample_aws())])
    cfg = aws_config(tmp_path, world, f'{{source: focus_export, uri: "s3://billing/{ROOT}"}}')
    r = cli("run", "--once", "-c", cfg, "--as-of", "2024-10-15", expect=3)
    assert "this is not a FOCUS file but looks like an AWS Cost and Usage Report 2.0" in r.stdout
    assert "costs: {source: cur2_export}" in r.stdout
    assert cli.json("costs", "-c", cfg, "--by", "ProviderName") == []


def test_export_bucket_denied_names_the_action(cli, tmp_path, world):
    s3 = world.client("s3")
    s3.create_bucket(Bucket="billing")
    world.proxy.rules.append(lambda r: (403, {"Content-Type": "application/xml"},
                                        b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>")
                             if r.service == "s3" else None)
    cfg = aws_config(tmp_path, world, f'{{source: focus_export, uri: "s3://billing/{ROOT}"}}')
    r = cli("run", "--once", "-c", cfg, "--as-of", "2024-10-15", expect=3)
    assert "s3:ListObjectsV2 denied (AccessDenied" in r.stdout and "allow s3:ListBucket" in r.stdout


# ---- Cost Explorer -------------------------------------------------------------------------------


def ce_result(days: list[str], groups: dict[tuple[str, ...], str], *, token: str | None = None, keys=("LINKED_ACCOUNT", "SERVICE")) -> dict:
    out = {
        "GroupDefinitions": [{"Type": "TAG" if k.startswith("TAG:") else "DIMENSION", "Key": k.removeprefix("TAG:")} for k in keys],
        "ResultsByTime": [{"TimePeriod": {"Start": d, "End": d}, "Total": {}, "Estimated": False,
                           "Groups": [{"Keys": list(k), "Metrics": {"UnblendedCost": {"Amount": v, "Unit": "USD"},
                                                                   "AmortizedCost": {"Amount": v, "Unit": "USD"}}}
                                      for k, v in groups.items()]} for d in days],
        "DimensionValueAttributes": [{"Value": "111122223333", "Attributes": {"description": "payments-prod"}}],
    }
    if token:
        out["NextPageToken"] = token
    return out


def test_cost_explorer_one_request_per_window_paged_and_counted(cli, tmp_path, world):
    days = ["2026-11-01", "2026-11-02", "2026-11-03"]
    seed_ce(world.moto, [
        ce_result(days[:2], {("111122223333", "Amazon Elastic Compute Cloud - Compute"): "10.1234567891",
                             ("111122223333", "Tax"): "1.50"}, token="page-2"),
        ce_result(days[2:], {("444455556666", "Amazon Simple Storage Service"): "0.0000001"}),
    ])
    cfg = aws_config(tmp_path, world, "{source: cost_explorer, max_paid_requests: 5}", ingest="ingest: {backfill_days: 3}")
    r = cli("run", "--once", "-c", cfg, "--as-of", "2026-11-03")
    assert "aws-billing: ok" in r.stdout and "2 of them paid" in r.stderr
    assert world.proxy.apis() == {"ce:GetCostAndUsage": 2, "sts:GetCallerIdentity": 1}
    rows = cli.json("costs", "-c", cfg, "--by", "SubAccountId,SubAccountName,ServiceCategory", "--exact")
    got = {(r["SubAccountId"], r["ServiceCategory"]): Decimal(str(r["BilledCost"])) for r in rows}
    assert got == {("111122223333", "Compute"): Decimal("20.2469135782"), ("111122223333", "Other"): Decimal("3.0"),
                   ("444455556666", "Storage"): Decimal("0.0000001")}
    assert {r["SubAccountName"] for r in rows if r["SubAccountId"] == "111122223333"} == {"payments-prod"}
    run = cli.json("findings", "-c", cfg, "--status", "all")  # no rules: nothing, but the run record holds the counts
    assert run == []
    import sqlite3

    rec = json.loads(sqlite3.connect(tmp_path / "state.db").execute("select providers from runs order by started_at desc").fetchone()[0])
    src = rec["aws-billing"]
    assert src["paid_requests"] == {"ce:GetCostAndUsage": 2}
    assert "ce:GetCostAndUsage 2026-11-01..2026-11-04" in json.dumps(src["ledger"])  # the lake's rows are marked CE-derived


def test_cost_explorer_cap_fails_the_pull_and_keeps_the_lake(cli, tmp_path, world):
    seed_ce(world.moto, [ce_result(["2026-11-01"], {("111122223333", "AWS Lambda"): "1"}, token="more"),
                         ce_result(["2026-11-02"], {("111122223333", "AWS Lambda"): "1"})])
    cfg = aws_config(tmp_path, world, "{source: cost_explorer, max_paid_requests: 1}", ingest="ingest: {backfill_days: 2}")
    r = cli("run", "--once", "-c", cfg, "--as-of", "2026-11-02", expect=3)
    assert "Cost Explorer request cap reached: 1 paid request(s) this run (costs.max_paid_requests: 1)" in r.stdout
    assert world.proxy.apis()["ce:GetCostAndUsage"] == 1  # the cap is checked before the request, never after
    assert cli.json("costs", "-c", cfg, "--by", "ProviderName") == []  # nothing half-pulled was stored


def test_cost_explorer_with_a_tag_key_asks_per_account(cli, tmp_path, world):
    seed_ce(world.moto, [
        ce_result(["2026-11-01"], {("AWS Lambda", "team$payments"): "2", ("AWS Lambda", "team$"): "3"}, keys=("SERVICE", "TAG:team")),
        ce_result(["2026-11-01"], {("Amazon Simple Storage Service", "team$search"): "4"}, keys=("SERVICE", "TAG:team")),
    ])
    cfg = aws_config(tmp_path, world, "{source: cost_explorer, tag_key: team}", ingest="ingest: {backfill_days: 1}",
                     extra='accounts: {ids: ["111122223333", "444455556666"], assume_role: CostguardReadOnly}')
    cli("run", "--once", "-c", cfg, "--as-of", "2026-11-01")
    assert world.proxy.apis()["ce:GetCostAndUsage"] == 2  # one per account, whatever the number of resources
    rows = cli.json("costs", "-c", cfg, "--by", "SubAccountId,tag:team")
    assert {(r["SubAccountId"], r["tag:team"], r["BilledCost"]) for r in rows} == {
        ("111122223333", "payments", 2), ("111122223333", None, 3), ("444455556666", "search", 4)}


def test_gzip_csv_export_with_a_bad_amount_rejects_that_row_and_names_it(cli, tmp_path, world):
    import gzip

    rows = sample_aws()
    bad = rows.with_columns(pl.when(pl.int_range(pl.len()) == 4).then(pl.lit("12,5")).otherwise(pl.col("BilledCost")).alias("BilledCost"))
    s3 = world.client("s3")
    s3.create_bucket(Bucket="billing")
    key = f"{ROOT}data/BILLING_PERIOD=2024-09/costguard-focus-00001.csv.gz"
    s3.put_object(Bucket="billing", Key=key, Body=gzip.compress(bad.write_csv(null_value="NULL").encode()))
    s3.put_object(Bucket="billing", Key=f"{ROOT}metadata/BILLING_PERIOD=2024-09/costguard-focus-Manifest.json",
                  Body=json.dumps({"executionId": "e1", "dataFiles": [f"s3://billing/{key}"]}).encode())
    cfg = aws_config(tmp_path, world, f'{{source: focus_export, uri: "s3://billing/{ROOT}"}}')
    r = cli("run", "--once", "-c", cfg, "--as-of", "2024-10-15", expect=3)
    assert "source aws-billing: PARTIAL" in r.stdout and "BilledCost is not a decimal number" in r.stdout
    assert f"s3://billing/{key}" in r.stdout and "line 6" in r.stdout  # header is line 1, the fifth row line 6
    got = lake_total(cli, cfg)[("AWS", "USD")]
    assert got == expected_billed(rows) - Decimal(rows["BilledCost"][4])  # every other row stored, to the last digit


def test_sts_failing_after_the_costs_keeps_the_costs_and_reports_the_rest(cli, tmp_path, world):
    from aws_env import denied

    rows = sample_aws()
    s3 = world.client("s3")
    s3.create_bucket(Bucket="billing")
    put_export(s3, "billing", ROOT, "costguard-focus", "2024-09", [typed_focus(rows)])
    cfg = write_config(tmp_path, f"""
        state: {{url: "sqlite:///state.db", lake: lake}}
        providers:
          - name: aws-billing
            type: aws
            endpoint_url: "{world.endpoint}"
            regions: [us-east-1]
            costs: {{source: focus_export, uri: "s3://billing/{ROOT}"}}
            max_attempts: 2
        rules: []
        """)
    world.proxy.rules.append(lambda r: denied("query", "InvalidClientTokenId") if r.api == "sts:GetCallerIdentity" else None)
    r = cli("run", "--once", "-c", cfg, "--as-of", "2024-10-15", expect=3)
    assert "source aws-billing: PARTIAL" in r.stdout and "inventory not read" in r.stdout and "budgets not read" in r.stdout
    assert abs(lake_total(cli, cfg)[("AWS", "USD")] - Decimal("18.006639")) < Decimal("0.000001")


def test_spool_files_live_as_long_as_their_parts(tmp_path, world):
    import gc
    from datetime import date

    from costguard.model import Window
    from costguard.providers.aws.exports import ExportReader
    from costguard.providers.base import Horizon

    s3 = world.client("s3")
    s3.create_bucket(Bucket="billing")
    typed = typed_focus(sample_aws())
    put_export(s3, "billing", ROOT, "costguard-focus", "2024-09", [typed.slice(0, 400), typed.slice(400)])
    spool = tmp_path / "spool"
    spool.mkdir()
    reader = ExportReader(f"s3://billing/{ROOT}", "focus", lambda: world.client("s3"), backfill_days=90, chunk_rows=300, spool=str(spool))
    parts = list(reader.costs([Window(date(2024, 9, 1), date(2024, 10, 1))], Horizon(date(2024, 10, 15))))
    assert len(parts) == 4 and sum(p.rows_read for p in parts) == 942  # 400 → 300 + 100, 542 → 300 + 242
    assert sum(p.rows.collect().height for p in parts) == 942  # every part still readable after the generator ended
    assert len(list(spool.rglob("*.parquet"))) == 2
    del parts
    gc.collect()
    assert list(spool.iterdir()) == []  # the files and their folder went with the last part


def test_inventory_only_provider_lands_its_snapshot(cli, tmp_path, world):
    world.client("ec2").run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, InstanceType="t3.micro")
    cfg = write_config(tmp_path, f"""
        state: {{url: "sqlite:///state.db", lake: lake}}
        providers:
          - name: aws-inv
            type: aws
            endpoint_url: "{world.endpoint}"
            regions: [us-east-1]
            inventory: {{resources: [instances], memory: false}}
        rules: []
        """)
    r = cli("run", "--once", "-c", cfg)
    assert "source aws-inv: ok" in r.stdout and "0 rows in 0 day(s)" in r.stdout
    inv = pl.read_parquet(tmp_path / "lake" / "inventory" / "source=aws-inv" / "snapshot.parquet")
    assert inv["sku"].to_list() == ["t3.micro"] and inv["account_id"].to_list() == [MANAGEMENT]
