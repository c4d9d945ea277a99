"""Every row accounted for: stored, rejected with a reason the user sees, or skipped; nothing
dropped or counted twice silently (issue "Trust the numbers" §1). Real files, the real CLI."""

from __future__ import annotations

import csv
import os
import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from costguard.store import Store

from conftest import FIXTURES, SAMPLE, write_config
from focus_rows import HEADER, days, row, write

SAAS = FIXTURES / "focus" / "saas"
EXPORTS = FIXTURES / "exports"


def _project(tmp_path: Path, paths: str = '["exports/**/*.csv"]', extra: str = "") -> Path:
    return write_config(tmp_path, f"""
        state: {{url: "sqlite:///state.db", lake: lake}}
        providers:
          - {{name: s, type: focus, paths: {paths}{extra}}}
        rules: []
        """)


def _last_run(tmp_path: Path) -> dict:
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        return store.last_run()


def _total(cli, cfg: Path) -> Decimal:
    rows = cli.json("costs", "-c", cfg, "--by", "ProviderName", "--exact")
    return sum((Decimal(str(r["BilledCost"])) for r in rows), Decimal(0))


def _write_raw(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=HEADER)
        w.writeheader()
        w.writerows(rows)
    return path


def test_unreadable_or_missing_charge_period_start_is_rejected_with_file_and_line(cli, tmp_path):
    good = [row(d, "1.00") for d in days(date(2026, 3, 1), 3)]
    bad = [row(date(2026, 3, 1), "2.00"), row(date(2026, 3, 1), "3.00"), row(date(2026, 3, 1), "4.00")]
    bad[0]["ChargePeriodStart"] = "12/01/2026 10:00"
    bad[1]["ChargePeriodStart"] = "not-a-date"
    bad[2]["ChargePeriodStart"] = "NULL"
    _write_raw(tmp_path / "exports" / "a.csv", good + bad)
    _write_raw(tmp_path / "exports" / "all-bad.csv", [dict(bad[1]), dict(bad[2])])  # a file of nothing but bad rows
    cfg = _project(tmp_path)
    r = cli("run", "--once", "-c", cfg, "--as-of", "2026-03-31", expect=3)
    assert "PARTIAL" in r.stdout
    assert "read 8 rows from 2 file(s): 3 stored, 5 rejected, 0 skipped" in r.stdout
    assert "BilledCost USD: read 19.00, stored 3.00, rejected 16.00" in r.stdout
    assert "exports/a.csv line 5: '12/01/2026 10:00'" in r.stdout
    assert "REJECTED 2 row(s): ChargePeriodStart is null" in r.stdout
    assert _total(cli, cfg) == Decimal(3)
    ledger = _last_run(tmp_path)["providers"]["s"]["ledger"]
    assert (ledger["rows_read"], ledger["rows_stored"], ledger["rows_rejected"]) == (8, 3, 5)
    assert ledger["billed_cost"]["USD"]["read"] == Decimal("19") and ledger["billed_cost"]["USD"]["rejected"] == Decimal("16")
    assert {f["origin"]: f["rejected"] for f in ledger["files"]} == {"exports/a.csv": 3, "exports/all-bad.csv": 2}
    # the rejected rows are kept aside with why, not lost
    kept = pl.read_parquet(next((tmp_path / "lake" / "rejected" / "source=s").iterdir()))
    assert kept.height == 5 and set(kept["x_Reject"]) == {"ChargePeriodStart is null", "ChargePeriodStart is not a date/time (ISO 8601 expected)"}
    # the next run: the file with undated rows is read again, so the source stays partial until it is fixed
    again = cli("run", "--once", "-c", cfg, "--as-of", "2026-03-31", expect=3)
    assert "5 rejected" in again.stdout


def test_integer_charge_period_start_in_parquet_is_rejected_not_dropped(cli, tmp_path):
    df = pl.read_csv(SAMPLE, infer_schema=False, null_values=["NULL"]).head(10)
    df = df.with_columns(pl.when(pl.int_range(pl.len()) < 2).then(pl.lit(None)).otherwise(pl.col("ChargePeriodStart")).alias("ChargePeriodStart"))
    ints = df.with_columns(pl.lit(1727301600, pl.Int64).alias("ChargePeriodStart"))
    (tmp_path / "exports").mkdir()
    ints.write_parquet(tmp_path / "exports" / "ints.parquet")
    cfg = _project(tmp_path, '["exports/*.parquet"]')
    r = cli("run", "--once", "-c", cfg, "--as-of", "2024-09-30", expect=3)
    assert "read 10 rows from 1 file(s): 0 stored, 10 rejected" in r.stdout
    assert "ChargePeriodStart is not a date/time" in r.stdout and "row 1: '1727301600'" in r.stdout


def test_dates_outside_the_accepted_range_are_rejected_and_do_not_move_a_forecast(cli, tmp_path):
    rows = [row(d, "10.00") for d in days(date(2026, 3, 1), 10)]
    rows += [row(date(9999, 1, 1), "5000.00"), row(date(1900, 1, 1), "7000.00")]
    write(tmp_path / "exports" / "a.csv", rows)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "b.yaml").write_text(
        "- {id: b, kind: budget, severity: warning, amount: 1000, thresholds: [{on: actual, percent: 1, severity: info}]}\n")
    cfg = write_config(tmp_path, """
        state: {url: "sqlite:///state.db", lake: lake}
        providers: [{name: s, type: focus, paths: ["exports/*.csv"]}]
        rules: [rules/]
        """)
    r = cli("run", "--once", "-c", cfg, "--as-of", "2026-03-10", expect=3)
    assert "REJECTED 2 row(s): ChargePeriodStart outside the accepted range 2000-01-01 .. 2027-03-11" in r.stdout
    assert "'9999-01-01'" in r.stdout and "'1900-01-01'" in r.stdout
    assert _total(cli, cfg) == Decimal(100)
    budget = cli.json("findings", "-c", cfg)[0]
    assert budget["evidence"]["actual"] == 100.0  # the 1900 row is not spend of March


def test_earliest_date_is_configurable(cli, tmp_path):
    write(tmp_path / "exports" / "a.csv", [row(date(2015, 6, 1), "1.00"), row(date(2026, 3, 1), "2.00")])
    cfg = write_config(tmp_path, """
        state: {url: "sqlite:///state.db", lake: lake}
        ingest: {earliest_date: 2020-01-01}
        providers: [{name: s, type: focus, paths: ["exports/*.csv"]}]
        rules: []
        """)
    r = cli("run", "--once", "-c", cfg, "--as-of", "2026-03-01", expect=3)
    assert "outside the accepted range 2020-01-01 .. " in r.stdout and _total(cli, cfg) == Decimal(2)


def test_symlinked_folder_and_overlapping_globs_count_each_row_once(cli, tmp_path):
    write(tmp_path / "exports" / "2026-03" / "a.csv", [row(d, "1.00") for d in days(date(2026, 3, 1), 5)])
    os.symlink(tmp_path / "exports" / "2026-03", tmp_path / "exports" / "latest")
    cfg = _project(tmp_path, '["exports/**/*.csv", "exports/2026-03/*.csv"]')
    r = cli("run", "--once", "-c", cfg, "--as-of", "2026-03-31")
    assert "read 5 rows from 1 file(s): 5 stored" in r.stdout
    assert "read once: exports/2026-03/ (also matched as exports/latest/)" in r.stdout
    assert _total(cli, cfg) == Decimal(5)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder")
def test_unreadable_sub_folder_is_an_error_not_skipped(cli, tmp_path):
    write(tmp_path / "exports" / "a" / "x.csv", [row(date(2026, 3, 1), "1.00")])
    write(tmp_path / "exports" / "b" / "y.csv", [row(date(2026, 3, 1), "1.00")])
    (tmp_path / "exports" / "b").chmod(0)
    try:
        cfg = _project(tmp_path)
        r = cli("run", "--once", "-c", cfg, "--as-of", "2026-03-31", expect=3)
        assert "exports/b: cannot read this folder" in r.stdout
    finally:
        (tmp_path / "exports" / "b").chmod(0o755)


def test_unreadable_folder_walk_is_an_error(tmp_path, monkeypatch):
    """The same check as above without relying on file permissions (the tests may run as root)."""
    from costguard import focus
    from costguard.errors import DataError

    write(tmp_path / "exports" / "b" / "y.csv", [row(date(2026, 3, 1), "1.00")])
    real_scandir = os.scandir

    def scandir(path="."):
        if str(path).endswith("/b"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)  # the OS refusing a folder, not costguard code
    with pytest.raises(DataError, match=r"exports/b: cannot read this folder \(Permission denied\)"):
        focus.discover(["exports/**/*.csv"], tmp_path)


def test_unparsable_billed_cost_is_rejected_with_file_line_and_conformance_is_recorded(cli, tmp_path):
    rows = [row(d, "1.00") for d in days(date(2026, 3, 1), 5)]
    rows[3]["BilledCost"] = "12,50"
    write(tmp_path / "exports" / "a.csv", rows)
    cfg = _project(tmp_path)
    r = cli("run", "--once", "-c", cfg, "--as-of", "2026-03-31", expect=3)
    assert "REJECTED 1 row(s): BilledCost is not a decimal number (e.g. exports/a.csv line 5: '12,50')" in r.stdout
    run = _last_run(tmp_path)
    assert run["conformance"]["s"] is not None and run["conformance"]["s"]["rows"] == 4
    assert run["providers"]["s"]["ledger"]["billed_cost"]["USD"]["unreadable_rows"] == 1


def test_one_bad_row_among_974_lands_the_rest_and_costs_warns(cli, tmp_path):
    rows = [row(d, "1.00", resource=f"i-{i}") for i, d in enumerate(days(date(2026, 1, 1), 974)) if True]
    rows = [row(date(2026, 1, 1 + i % 28), "1.00", resource=f"i-{i}") for i in range(974)]
    rows[500]["EffectiveCost"] = "oops"
    write(tmp_path / "exports" / "a.csv", rows)
    cfg = _project(tmp_path)
    r = cli("run", "--once", "-c", cfg, "--as-of", "2026-01-31", expect=3)
    assert "read 974 rows from 1 file(s): 973 stored, 1 rejected" in r.stdout
    assert _total(cli, cfg) == Decimal(973)
    c = cli("costs", "-c", cfg, "--by", "ProviderName")
    assert "warning: source s: its last ingest" in c.stderr and "ended partial" in c.stderr
    assert "EffectiveCost is not a decimal number" in c.stderr
    assert "warning" not in c.stdout  # stdout stays the table


def test_focus_saas_examples_are_rejected_with_reasons_or_read_with_a_date_format(cli, tmp_path):
    (tmp_path / "exports").mkdir()
    for f in SAAS.glob("s*.csv"):
        shutil.copy(f, tmp_path / "exports" / f.name)
    cfg = _project(tmp_path, '["exports/*.csv"]')
    r = cli("run", "--once", "-c", cfg, "--as-of", "2026-06-30", expect=3)
    assert "read 43 rows from 9 file(s): 0 stored, 43 rejected" in r.stdout
    assert "ChargePeriodStart is not a date/time (ISO 8601 expected)" in r.stdout and "'4/1/25'" in r.stdout
    # the export's own M/D/YY dialect, declared: rows land; "$10,000.00" amounts are still refused
    cfg = _project(tmp_path, '["exports/*.csv"]', ', timestamp_format: "%m/%d/%y"')
    r = cli("run", "--once", "-c", cfg, "--as-of", "2026-06-30", expect=3)
    assert "read 43 rows from 9 file(s): 36 stored, 7 rejected" in r.stdout
    assert "BilledCost is not a decimal number" in r.stdout and "'$10,000.00'" in r.stdout
    assert _total(cli, cfg) == Decimal("4800")


def test_every_file_missing_columns_is_named_at_once(cli, tmp_path):
    (tmp_path / "exports").mkdir()
    for f in SAAS.glob("virtual_currency_pricing_model_a*.csv"):
        shutil.copy(f, tmp_path / "exports" / f.name)
    cfg = _project(tmp_path, '["exports/*.csv"]')
    r = cli("run", "--once", "-c", cfg, "--as-of", "2026-06-30", expect=3)
    assert "virtual_currency_pricing_model_a1.csv: missing mandatory FOCUS column(s): ServiceCategory" in r.stdout
    assert "virtual_currency_pricing_model_a2.csv: missing mandatory FOCUS column(s): ServiceCategory" in r.stdout
    assert "nothing of this source was stored" in r.stdout


def test_end_before_start_and_non_iso_currencies_are_flagged_and_kept(cli, tmp_path):
    rows = [row(date(2026, 3, d), "1.00") for d in range(1, 6)]
    rows[0]["ChargePeriodEnd"] = "2026-02-28 00:00:00"
    rows[1]["BillingCurrency"] = "usd"
    rows[2]["BillingCurrency"] = "US$"
    rows[3]["BillingCurrency"] = "XXXX"
    rows[4]["BilledCost"] = "NULL"  # null BilledCost: kept, flagged, sums as 0 (documented)
    write(tmp_path / "exports" / "a.csv", rows)
    cfg = _project(tmp_path)
    r = cli("run", "--once", "-c", cfg, "--as-of", "2026-03-31")
    assert "ChargePeriodEnd:after_start  1 rows" in r.stdout
    assert "BillingCurrency:iso4217  3 rows" in r.stdout and "'usd'" in r.stdout
    assert "BilledCost:nullability  1 rows" in r.stdout
    got = {x["BillingCurrency"]: x["BilledCost"] for x in cli.json("costs", "-c", cfg, "--by", "ProviderName")}
    assert got == {"USD": 1.0, "usd": 1.0, "US$": 1.0, "XXXX": 1.0}  # kept apart, never summed together


@pytest.mark.parametrize("name,provider", [
    ("aws_cur_legacy.csv", "aws"), ("aws_cur2.csv", "aws"), ("azure_ea.csv", "azure"),
    ("azure_payg_german.csv", "azure"), ("gcp_billing_export.csv", "gcp"),
])
def test_a_known_non_focus_export_names_the_provider_type_that_reads_it(cli, tmp_path, name, provider):
    (tmp_path / "exports").mkdir()
    shutil.copy(EXPORTS / name, tmp_path / "exports" / name)
    cfg = _project(tmp_path, '["exports/*.csv"]')
    r = cli("run", "--once", "-c", cfg, "--as-of", "2026-06-30", expect=3)
    assert f"{name}: this is not a FOCUS file but looks like" in r.stdout
    assert f"provider of type {provider}" in r.stdout and "missing mandatory" not in r.stdout


def test_a_source_lands_together_or_not_at_all(cli, tmp_path):
    write(tmp_path / "exports" / "a.csv", [row(d, "1.00") for d in days(date(2026, 3, 1), 3)])
    cfg = _project(tmp_path)
    cli("run", "--once", "-c", cfg, "--as-of", "2026-03-31")
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "lake").rglob("*.parquet"))
    # a restated first file plus a second file that is truncated: neither lands
    write(tmp_path / "exports" / "a.csv", [row(d, "9.00") for d in days(date(2026, 3, 1), 3)])
    (tmp_path / "exports" / "b.csv").write_text(",".join(HEADER) + "\n" + "1.00,999,payer")
    r = cli("run", "--once", "-c", cfg, "--as-of", "2026-03-31", expect=3)
    assert "b.csv: line 2 has 3 fields but the header has" in r.stdout
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "lake").rglob("*.parquet")) == before
    assert _total(cli, cfg) == Decimal(3)


def test_focus_1_3_and_1_4_files_map_onto_the_lake_beside_older_ones(cli, tmp_path):
    from costguard import focus, focus_versions

    assert set(focus.CARRIED) == set(focus_versions.CARRIED_COLUMNS)
    old = pl.read_csv(SAMPLE, infer_schema=False)
    new = (old.head(50)
           .with_columns(pl.col("BillingAccountId") + "-13",
                         pl.col("ProviderName").alias("ServiceProviderName"),
                         pl.lit("AWS").alias("HostProviderName"),
                         pl.lit("Proportional").alias("AllocatedMethodId"),
                         pl.lit('{"team": "platform"}').alias("AllocatedTags"),
                         pl.lit("inv-42").alias("InvoiceDetailId"))
           .drop("ProviderName", "PublisherName"))  # 1.4 drops them
    (tmp_path / "exports").mkdir()
    old.write_csv(tmp_path / "exports" / "v10.csv")
    new.write_csv(tmp_path / "exports" / "v14.csv")
    cfg = _project(tmp_path, '["exports/*.csv"]')
    r = cli("run", "--once", "-c", cfg, "--as-of", "2024-09-30")
    assert "read 1,050 rows from 2 file(s): 1,050 stored" in r.stdout
    by = {x["ProviderName"]: Decimal(str(x["BilledCost"])) for x in cli.json("costs", "-c", cfg, "--by", "ProviderName", "--exact")}
    extra = {}
    for rec in new.iter_rows(named=True):
        extra[rec["ServiceProviderName"]] = extra.get(rec["ServiceProviderName"], Decimal(0)) + Decimal(rec["BilledCost"])
    assert by["AWS"] == Decimal("18.0066386184") + extra.get("AWS", Decimal(0))
    hosts = {x["HostProviderName"]: x["BilledCost"] for x in cli.json("costs", "-c", cfg, "--by", "HostProviderName")}
    assert set(hosts) == {"AWS", None}  # carried as-is: only the 1.4 rows have it
    assert cli.json("costs", "-c", cfg, "--by", "AllocatedMethodId")[0]["AllocatedMethodId"] in ("Proportional", None)
