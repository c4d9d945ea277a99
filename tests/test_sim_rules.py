"""``costguard sim`` plants a case for every rule kind in a full-contract inventory, and one real
cycle with the demo's rule pack (through the focus provider's ``inventory:`` file) finds each of
them, priced, with the check or kind the generator's ``expected.json`` names."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from costguard.catalog import bundled
from costguard.inventory import INVENTORY_SCHEMA, RESOURCE_CLASSES, read_inventory
from costguard.sim import SimSpec, generate

from conftest import write_config

REPO = Path(__file__).resolve().parents[1]
END = date(2026, 4, 2)
SPEC = SimSpec(rows=30_000, days=40, end=END, seed=11, spike=(1.0, 0.8), commitment_coverage=0.15, commitment_unused=0.3)


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    from typer.testing import CliRunner

    from costguard.cli import app

    root = tmp_path_factory.mktemp("simrules")
    generate(SPEC, root / "data")
    cfg = write_config(root, """
        state: {url: "sqlite:///state/state.db", lake: state/lake}
        providers:
          - {name: sim, type: focus, paths: ["data/focus/data/**/*.parquet"], inventory: data/inventory.parquet}
        rules: [%s]
        """ % json.dumps(str(REPO / "costguard" / "demo" / "rules")))
    runner = CliRunner()
    r = runner.invoke(app, ["run", "--once", "-c", str(cfg), "--as-of", (END - timedelta(days=1)).isoformat()])
    assert r.exit_code == 0, r.stdout + r.stderr
    r = runner.invoke(app, ["findings", "-c", str(cfg), "--format", "json"])
    return json.loads((root / "data" / "expected.json").read_text()), json.loads(r.stdout), root


def test_inventory_has_the_whole_contract_and_every_class(outcome):
    _e, _f, root = outcome
    inv = read_inventory(str(root / "data" / "inventory.parquet"))
    assert inv.columns == list(INVENTORY_SCHEMA)
    classes = set(inv["resource_class"].to_list())
    assert {"instance", "volume", "address", "snapshot", "load_balancer", "nat_gateway", "log_group"} <= classes <= set(RESOURCE_CLASSES)
    vols = inv.filter(pl.col("resource_class") == "volume")
    assert vols["size_gb"].null_count() == 0 and vols.filter(pl.col("state") == "in-use")["attached_to"].null_count() == 0
    inst = inv.filter((pl.col("resource_class") == "instance") & pl.col("cpu_p95").is_not_null())
    assert (inst["cpu_max"] >= inst["cpu_p95"]).all() and inst["metrics_days"].min() >= 1


def _by_resource(findings):
    out: dict[str, list[dict]] = {}
    for f in findings:
        out.setdefault(f["resource_id"], []).append(f)
    return out


def test_every_planted_case_is_found_and_priced(outcome):
    expected, findings, _root = outcome
    p = expected["planted"]
    res = _by_resource(findings)
    checks = {"unattached_volumes": "unattached_volume", "idle_instances": "idle_instance",
              "unassociated_addresses": "unassociated_address", "stopped_instances": "stopped_instance",
              "idle_load_balancers": "idle_load_balancer", "idle_nat_gateways": "idle_nat_gateway",
              "log_groups": "log_retention", "previous_generation": "previous_generation"}
    for key, check in checks.items():
        assert p[key], key
        for it in p[key]:
            (f,) = [f for f in res[it["resource_id"]] if f["kind"] == "idle"]
            assert check in [c["check"] for c in f["evidence"]["checks"]], (key, f["evidence"]["checks"])
            assert f["monthly_cost"] > 0 and f["monthly_savings"] is not None, f
    for it in p["snapshots"]:
        (f,) = res[it["resource_id"]]
        assert it["check"] in [c["check"] for c in f["evidence"]["checks"]]
    prev = res[p["previous_generation"][0]["resource_id"]]
    assert [f["evidence"]["price_source"] for f in prev if f["kind"] == "idle"] == ["catalogue"]  # launched before its first bill
    lb = [f for f in res[p["idle_load_balancers"][0]["resource_id"]] if f["kind"] == "idle"][0]
    assert lb["evidence"]["price_source"] == "lake"                                               # billed: cost from the lake
    for it in p["oversized_instances"]:
        (f,) = [f for f in res[it["resource_id"]] if f["kind"] == "rightsizing"]
        # the generator's label is the cheapest fit of the same family; the rule may also pick a c/m/r sibling, never a dearer one
        got = bundled().price("AWS", "instance", f["evidence"]["recommended_type"], it["region"])
        label = bundled().price("AWS", "instance", it["expected_type"], it["region"])
        assert got.amount <= label.amount and f["monthly_savings"] > 0, (f["evidence"]["recommended_type"], it["expected_type"])
    data = [f for f in findings if f["kind"] == "data"]
    listed = {r["resource_id"] for f in data for r in f["evidence"]["resources"]}
    assert {it["resource_id"] for it in p["no_metrics_instances"]} <= listed
    (tag,) = [f for f in res[p["tag_policy"][0]["resource_id"]] if f["kind"] == "tag"]
    assert tag["evidence"]["violations"][0]["value"] == "production" and tag["monthly_cost"] >= 50
    (cm,) = [f for f in findings if f["kind"] == "commitment" and f["evidence"]["check"] == "utilization"]
    assert cm["resource_id"] == p["commitments"][0]["commitment_id"]
    assert Decimal(str(cm["evidence"]["utilization"])) == Decimal(p["commitments"][0]["utilization"])
    spike = expected["events"]["spike"]
    (an,) = [f for f in findings if f["kind"] == "anomaly"]
    assert an["account_id"] == spike["sub_account_id"] and an["evidence"]["day"] == spike["day"]
    assert an["evidence"]["root_cause"]["dimension"] == "ResourceId"
    assert {f["kind"] for f in findings} >= {"tag", "rightsizing", "idle", "anomaly", "commitment", "data"}
    assert all(f["monthly_cost"] is not None for f in findings)
