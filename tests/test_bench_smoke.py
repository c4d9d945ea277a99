"""Smoke test of the synthetic generator (costguard.sim), the DuckDB baseline and the cycle benchmark
(bench/run_cycle.py: one real ``costguard run`` child process plus the reconciliation), at ~20k rows."""

from __future__ import annotations

import importlib.util
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

pytest.importorskip("numpy")

from costguard.sim import SimSpec, generate, parse_rows  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SPEC = SimSpec(rows=20_000, days=12, end=date(2026, 3, 3), seed=7)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "a"
    generate(SPEC, out)
    return out


def _expected(p: Path) -> dict:
    return json.loads((p / "expected.json").read_text())


def _rows(p: Path) -> pl.DataFrame:
    return pl.read_parquet(str(p / "focus" / "data" / "**" / "*.parquet"))


def test_layout_types_and_row_count(dataset):
    files = sorted((dataset / "focus" / "data").rglob("*.parquet"))
    assert len(files) == SPEC.days
    assert files[0].parent.name == "day=2026-02-19" and files[0].parent.parent.name == "BILLING_PERIOD=2026-02"
    df = _rows(dataset)
    assert df.height == SPEC.rows == _expected(dataset)["rows"]
    assert df.schema["BilledCost"] == pl.Decimal(38, 10)
    assert df.schema["ChargePeriodStart"] == pl.Datetime("us", "UTC")
    spec_cols = [c["ColumnId"] for c in json.loads((REPO / "costguard/spec/focus_columns_v1.2.json").read_text())["columns"]]
    assert df.columns == spec_cols
    for c in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "ChargeCategory", "ProviderName"):
        assert df[c].null_count() == 0, c
    assert ((df["ChargePeriodEnd"] - df["ChargePeriodStart"]).dt.total_hours().is_in([1, 24])).all()


def test_same_seed_same_data_other_seed_differs(dataset, tmp_path):
    generate(SPEC, tmp_path / "b")
    a, b = _expected(dataset), _expected(tmp_path / "b")
    assert a["totals"] == b["totals"] and a["planted"] == b["planted"]
    day = "day=2026-02-25"
    fa = next((dataset / "focus/data").glob(f"*/{day}/part-00000.parquet"))
    fb = next((tmp_path / "b/focus/data").glob(f"*/{day}/part-00000.parquet"))
    assert pl.read_parquet(fa).equals(pl.read_parquet(fb))
    generate(SimSpec(rows=SPEC.rows, days=SPEC.days, end=SPEC.end, seed=8), tmp_path / "c")
    assert _expected(tmp_path / "c")["totals"]["billed_cost_by_provider"] != a["totals"]["billed_cost_by_provider"]


def test_partial_last_day(dataset):
    e = _expected(dataset)
    rows = e["totals"]["rows_by_day"]
    last = rows.pop("2026-03-02")
    assert e["partial_day"] == "2026-03-02" and e["last_complete_day"] == "2026-03-01"
    full = sorted(rows.values())[len(rows) // 2]
    assert 0.25 * full <= last <= 0.45 * full
    df = _rows(dataset).filter(pl.col("ChargePeriodStart").dt.date() == date(2026, 3, 2))
    assert df["ChargePeriodStart"].dt.hour().max() < e["partial_hours"] < 24


def test_expected_totals_match_parquet_exactly(dataset):
    e = _expected(dataset)
    df = _rows(dataset)
    by_prov = {r["ProviderName"]: r["BilledCost"] for r in df.group_by("ProviderName").agg(pl.col("BilledCost").sum()).to_dicts()}
    assert by_prov == {k: Decimal(v) for k, v in e["totals"]["billed_cost_by_provider"].items()}
    by_day = df.group_by(pl.col("ChargePeriodStart").dt.date().alias("d")).agg(pl.col("BilledCost").sum())
    assert {r["d"].isoformat(): r["BilledCost"] for r in by_day.to_dicts()} == {
        k: Decimal(v) for k, v in e["totals"]["billed_cost_by_day"].items()}
    by_acct = df.group_by("SubAccountId").agg(pl.col("BilledCost").sum())
    got = {r["SubAccountId"]: r["BilledCost"] for r in by_acct.to_dicts()}
    want = {k: Decimal(v) for k, v in e["totals"]["billed_cost_by_sub_account"].items()}
    assert got == {k: v for k, v in want.items() if k in got} and not any(v for k, v in want.items() if k not in got)
    # tag coverage ("application", EffectiveCost, Usage rows, last complete days)
    tc = e["tag_coverage"]
    win = df.filter((pl.col("ChargeCategory") == "Usage")
                    & pl.col("ChargePeriodStart").dt.date().is_between(date.fromisoformat(tc["window_start"]),
                                                                       date.fromisoformat(tc["window_end_exclusive"]), closed="left"))
    num = win.filter(pl.col("Tags").is_not_null() & pl.col("Tags").str.contains('"application":')).select(pl.col("EffectiveCost").sum()).item()
    assert win.select(pl.col("EffectiveCost").sum()).item() == Decimal(tc["denominator"])
    assert num == Decimal(tc["numerator"])
    cal = e["calibration"]
    assert 0.25 < cal["zero_row_share"] < 0.45 and 0.005 < cal["negative_row_share"] < 0.03


def test_planted_resources_are_in_inventory_and_data(dataset):
    e = _expected(dataset)
    inv = pl.read_parquet(dataset / "inventory.parquet")
    assert set(inv.columns) >= {"provider", "account_id", "region", "resource_id", "resource_type", "name", "tags",
                                "state", "sku", "created_at", "cpu_p95", "mem_p95"}
    by_id = {r["resource_id"]: r for r in inv.to_dicts()}
    p = e["planted"]
    assert p["idle_instances"] and p["oversized_instances"] and p["unattached_volumes"]
    for it in p["idle_instances"]:
        assert by_id[it["resource_id"]]["cpu_p95"] < 3
    for it in p["oversized_instances"]:
        r = by_id[it["resource_id"]]
        assert 3 <= r["cpu_p95"] < 20 and r["sku"] == it["instance_type"] != it["expected_type"]
        assert Decimal(it["expected_hourly_cost"]) < Decimal(it["hourly_cost"])
    for it in p["unattached_volumes"]:
        assert by_id[it["resource_id"]]["state"] == "available"
    flagged = {r["resource_id"] for r in inv.filter(pl.col("cpu_p95") < 20).to_dicts()}
    assert flagged == {i["resource_id"] for i in p["idle_instances"] + p["oversized_instances"]}
    df = _rows(dataset)
    some = p["oversized_instances"][0]
    cost = df.filter(pl.col("ResourceId") == some["resource_id"]).select(pl.col("BilledCost").sum()).item()
    assert cost == Decimal(some["billed_cost_in_data"]) > 0


def test_parse_rows():
    assert parse_rows("100k") == 100_000 and parse_rows("1M") == 1_000_000 and parse_rows("1.5m") == 1_500_000
    assert parse_rows("20000") == 20_000
    with pytest.raises(ValueError):
        parse_rows("lots")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_duckdb_baseline_agrees(dataset, tmp_path):
    pytest.importorskip("duckdb")
    res = _load("duckdb_baseline").run(dataset, lake=tmp_path / "lake")
    e = _expected(dataset)
    assert {k: Decimal(v) for k, v in res["billed_cost_by_provider"].items()} == {
        k: Decimal(v) for k, v in e["totals"]["billed_cost_by_provider"].items()}
    assert Decimal(res["month_to_date"]["billed_cost"]) == Decimal(e["totals"]["month_to_date"]["billed_cost"])
    assert res["tag_coverage"]["numerator"] == e["tag_coverage"]["numerator_normalized_keys"]
    assert res["rollup_rows"] > 0
    e_rows = _expected(dataset)["totals"]["rows_by_day"]
    assert res["lake_rows"] == sum(v for d, v in e_rows.items() if d <= res["as_of"])
    assert sorted(p.name for p in (tmp_path / "lake").iterdir())[0] == "day=2026-02-19"


def test_config_writer_lake_modes(tmp_path):
    from costguard.config import load_config

    rc = _load("run_cycle")
    a = rc.write_config(tmp_path / "a", "x/**/*.parquet", None).read_text()
    b = rc.write_config(tmp_path / "b", "x/**/*.parquet", None, keep_rows=False).read_text()
    assert "keep_rows" not in a and "ingest: {keep_rows: false}" in b
    assert load_config(tmp_path / "a" / "costguard.yaml").config.ingest.keep_rows is True
    assert load_config(tmp_path / "b" / "costguard.yaml").config.ingest.keep_rows is False


def test_cycle_benchmark_end_to_end(dataset, tmp_path, capsys):
    """run_cycle.main at 20k rows: the duckdb child, the plain polars floor child, one real
    ``costguard run --once`` child and the ``costguard costs`` reconciliation against expected.json
    (to the cent)."""
    pytest.importorskip("duckdb")
    rc = _load("run_cycle")
    if rc.costguard_cmd() is None:
        pytest.skip("costguard CLI not runnable")
    code = rc.main(["--data", str(dataset), "--tier", "smoke", "--results", str(tmp_path),
                    "--skip", "duckdb+lake", "--skip", "costguard-rollup-only"])
    res = json.loads((tmp_path / "smoke.json").read_text())
    by = {c["contender"]: c for c in res["contenders"]}
    assert by.keys() == {"duckdb", "polars-floor", "costguard"}
    floor = by["polars-floor"]
    assert floor["status"] == "ok", floor.get("stderr_tail")
    # the floor copied every row of the days up to as-of, and rolled up the same rows
    exp = _expected(dataset)
    last = exp["last_complete_day"]
    assert floor["result"]["copy_rows"] == sum(n for d, n in exp["totals"]["rows_by_day"].items() if d <= last)
    assert floor["result"]["rollup_rows"] > 0 and "costguard / polars-floor" in res["ratios"]
    assert by["costguard"]["status"] == "ok", by["costguard"].get("stderr_tail")
    assert by["costguard"]["reconciles"] is True, by["costguard"]
    assert by["costguard"]["peak_rss_mb"] > 0 and "costguard / duckdb" in res["ratios"]
    assert code == 0
    out = capsys.readouterr().out
    assert "costguard / duckdb: wall x" in out and "costguard / polars-floor: wall x" in out


def test_ingest_bench_reads_every_row_into_each_kind_of_lake(dataset, capsys):
    """bench/ingest.py (the in-process ingest timing): every row of the days up to as-of lands."""
    ing = _load("ingest")
    exp = _expected(dataset)
    want = sum(n for d, n in exp["totals"]["rows_by_day"].items() if d <= exp["last_complete_day"])
    for extra in ([], ["--rollup-only"]):
        assert ing.main(["--data", str(dataset), *extra]) == 0
        out = capsys.readouterr().out
        assert f"{want:,} rows" in out and ("rollup only" if extra else "keep_rows") in out, out
