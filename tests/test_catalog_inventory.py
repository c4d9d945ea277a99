"""The price catalogue (bundled prices with sources, region estimates, user files layered on top,
errors naming file, line and column) and the bring-your-own inventory file (values that do not
parse are errors naming file, row and column)."""

from __future__ import annotations

import csv
import gzip
from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from costguard.catalog import DATA, aws_family_group, bundled, load_catalog
from costguard.errors import ConfigError, DataError
from costguard.inventory import INVENTORY_SCHEMA, read_inventory

from conftest import SAMPLE

D = Decimal
SHARED = Path("/work/shared/data/aws-ec2-catalog")


def test_bundled_prices_and_their_sources():
    c = bundled()
    m5a = c.price("AWS", "instance", "m5a.xlarge", "us-east-1")
    assert (m5a.amount, m5a.unit, m5a.currency, m5a.source) == (D("0.172"), "hour", "USD", "karpenter")
    assert c.price("aws", "instance", "M5A.XLARGE", "us-east-2").source == "libcloud"       # provider and sku ignore case
    assert c.price("AWS", "volume", "gp2", "ap-south-1").amount == D("0.114")              # observed in the FOCUS sample
    est = c.price("AWS", "volume", "gp2", "eu-west-1")                                      # not listed: estimated
    assert est.estimated and est.factor == D("1.1176") and est.amount == D("0.111760")
    assert "estimated" in est.describe() and est.as_evidence()["region_factor"] == D("1.1176")
    assert c.price("AWS", "address", "public_ipv4", "sa-east-1").amount == D("0.005")      # any region
    assert c.price("AWS", "volume", "gp2", "mars-1") is None and c.price("Oracle", "instance", "x", "y") is None
    t = c.instance_type("AWS", "instance", "m6g.large")
    assert (t.vcpu, t.memory_gib, t.architecture, t.group) == (D(2), D(8), "arm64", "cmr6g")
    assert aws_family_group("r5a") == "cmr5a" and aws_family_group("t3") == "t3" and aws_family_group("c7i-flex") == "cmr7i-flex"


def test_every_other_price_cites_a_source_that_holds_it():
    """Each hand-written price names where it comes from; the focus_sample.csv lines it cites print that price."""
    sample = SAMPLE.read_text().splitlines()
    rows = list(csv.DictReader((DATA / "aws_other_prices.csv").open()))
    assert rows and all(r["source"] for r in rows)
    for r in rows:
        for ref in r["source"].split():
            if ref.startswith("focus_sample.csv:"):
                line = sample[int(ref.split(":")[1]) - 1]
                assert f"${r['usd']} per" in line or f"${r['usd']}0 per" in line, (r, line[:200])


@pytest.mark.skipif(not SHARED.exists(), reason="the shared data set is not on this machine")
def test_generated_catalogue_is_reproducible(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_catalog", Path(__file__).parents[1] / "scripts" / "build_catalog.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.build(SHARED, tmp_path)
    for name in ("aws_instance_types.csv", "aws_instance_prices.csv.gz", "aws_region_factors.csv"):
        assert (tmp_path / name).read_bytes() == (DATA / name).read_bytes(), name
    with gzip.open(DATA / "aws_instance_prices.csv.gz", "rt") as fh:
        assert next(csv.reader(fh)) == ["instance_type", "region", "usd_per_hour", "source"]


def test_user_catalogue_overrides_and_adds(tmp_path):
    f = tmp_path / "prices.csv"
    f.write_text("provider,resource_class,sku,region,unit,price,currency,vcpu,memory_gib,source\n"
                 "AWS,instance,m5a.xlarge,us-east-1,hour,0.12,USD,,,EDP price sheet 2026\n"
                 "Google Cloud,instance,n2-standard-4,europe-west1,hour,0.21,EUR,4,16,\n"
                 "AWS,database,db.r5.large,*,hour,0.25,USD,2,16,\n")
    c = load_catalog([f])
    assert c.price("AWS", "instance", "m5a.xlarge", "us-east-1").source == "EDP price sheet 2026"
    assert c.price("AWS", "instance", "m5a.xlarge", "us-east-1").amount == D("0.12")
    assert c.price("AWS", "instance", "m5a.large", "us-east-1").amount == D("0.086")    # bundled rows stay
    g = c.instance_type("Google Cloud", "instance", "n2-standard-4")
    assert (g.family, g.group, g.vcpu) == ("n2-standard-4", "n2-standard-4", D(4))
    assert c.price("aws", "database", "db.r5.large", "eu-west-3").region == "*"
    assert c.files == (str(f),) and bundled().price("AWS", "instance", "m5a.xlarge", "us-east-1").amount == D("0.172")


def test_user_catalogue_errors_name_file_line_and_column(tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text("provider,resource_class,sku,region,unit,price,currency,vcpu,memory_gib\n"
                 "AWS,instance,x.large,us-east-1,hour,lots,USD,,\n"
                 "AWS,instance,y.large,us-east-1,day,1,usd,2,\n")
    with pytest.raises(ConfigError) as e:
        load_catalog([f, tmp_path / "missing.csv"])
    got = {(i.line, i.key) for i in e.value.issues}
    assert got == {(2, "price"), (3, "unit"), (3, "currency"), (3, "memory_gib"), (None, "")}
    assert all(i.file in (str(f), str(tmp_path / "missing.csv")) for i in e.value.issues)
    (tmp_path / "cols.csv").write_text("provider,sku,price\nAWS,x,1\n")
    with pytest.raises(ConfigError, match="missing column"):
        load_catalog([tmp_path / "cols.csv"])


def test_validate_reports_a_bad_catalogue(cli, tmp_path):
    (tmp_path / "p.csv").write_text("provider,resource_class,sku,region,unit,price,currency\nAWS,volume,gp3,*,gb_month,-1,USD\n")
    (tmp_path / "c.yaml").write_text("rules: []\ncatalog: [p.csv]\n")
    r = cli("validate", "-c", tmp_path / "c.yaml", expect=2)
    assert f"{tmp_path / 'p.csv'}:2: price:" in r.stderr


# ---------------------------------------------------------------------------------------- inventory
def test_inventory_values_that_do_not_parse_are_errors(tmp_path):
    f = tmp_path / "inv.csv"
    f.write_text("provider,account_id,resource_id,resource_class,size_gb,created_at,metrics_days,cpu_p95\n"
                 "AWS,1,vol-1,volume,100,2026-01-01,14,\n"
                 "AWS,1,vol-2,volume,lots,2026-01-01T10:00:00Z,14,\n"
                 "AWS,1,i-3,instances,,someday,14.5,high\n")
    with pytest.raises(DataError) as e:
        read_inventory(str(f))
    msg = str(e.value)
    assert msg.startswith(f"{f}: 5 inventory value(s) cannot be read: ")
    for part in ("row 2 (line 3), column size_gb: 'lots' is not a number",
                 "row 3 (line 4), column created_at: 'someday' is not a date/time",
                 "row 3 (line 4), column metrics_days: '14.5' is not a whole number",
                 "row 3 (line 4), column cpu_p95: 'high' is not a number",
                 "row 3 (line 4), column resource_class: 'instances' is not one of instance, volume"):
        assert part in msg, part
    assert "nothing was loaded" in msg


def test_inventory_reads_every_contract_column(tmp_path):
    f = tmp_path / "inv.csv"
    f.write_text("Provider, Account_Id ,resource_id,resource_class,size_gb,iops,created_at,tags,metrics_days,bytes_30d\n"
                 'AWS,1,vol-1,volume, 100 ,3000,2026-01-01,"{"" Team "": ""a""}",14.0,\n'
                 "AWS,1,vol-2,,,,2026-01-02 10:00:00+02:00,,,5e7\n")
    df = read_inventory(str(f))
    assert df.columns == list(INVENTORY_SCHEMA) and df.schema == pl.Schema(INVENTORY_SCHEMA)
    a, b = df.to_dicts()
    assert (a["size_gb"], a["iops"], a["metrics_days"], a["x_tags"]) == (100.0, 3000, 14, '{"team":"a"}')
    assert b["created_at"].isoformat() == "2026-01-02T08:00:00+00:00" and b["bytes_30d"] == 5e7
    p = tmp_path / "inv.parquet"
    df.drop("x_tags").write_parquet(p)
    assert read_inventory(str(p)).equals(df)


def test_a_bad_inventory_fails_its_provider_and_keeps_what_was_stored(cli, tmp_path):
    import focus_rows
    from conftest import write_config

    focus_rows.write(tmp_path / "exports" / "e.csv", [focus_rows.row(d, "1") for d in focus_rows.days(date(2026, 3, 1), 5)])
    inv = tmp_path / "inventory.csv"
    inv.write_text("provider,account_id,resource_id,resource_class,size_gb\nAWS,1,vol-1,volume,10\n")
    cfg = write_config(tmp_path, """
        state: {url: "sqlite:///state/state.db", lake: state/lake}
        providers: [{name: exports, type: focus, paths: ["exports/*.csv"], inventory: inventory.csv}]
        rules: []
        """)
    cli("run", "--once", "-c", cfg, "--as-of", "2026-03-05")
    before = cli.json("costs", "-c", cfg, "--by", "ProviderName")
    focus_rows.write(tmp_path / "exports" / "e.csv", [focus_rows.row(d, "2") for d in focus_rows.days(date(2026, 3, 1), 6)])
    inv.write_text("provider,account_id,resource_id,resource_class,size_gb\nAWS,1,vol-1,volume,lots\n")
    r = cli("run", "--once", "-c", cfg, "--as-of", "2026-03-06", expect=3)
    assert "inventory.csv: 1 inventory value(s) cannot be read: row 1 (line 2), column size_gb: 'lots' is not a number" in r.stdout
    assert cli.json("costs", "-c", cfg, "--by", "ProviderName") == before == [{"ProviderName": "AWS", "BilledCost": 5, "BillingCurrency": "USD"}]
    snap = pl.read_parquet(tmp_path / "state" / "lake" / "inventory" / "source=exports" / "snapshot.parquet")
    assert snap["size_gb"].to_list() == [10.0]
