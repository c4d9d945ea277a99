"""The rule kinds on constructed data with answers worked out by hand: idle, rightsizing (the
recorded Cost Optimization Hub case), anomaly, commitment (the FOCUS spec's examples) and
tag-policy, plus tag-coverage's aliases. Real rule files, the real loader and the real engine."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from costguard.catalog import load_catalog
from costguard.errors import ConfigError
from costguard.model import fingerprint
from costguard.rollup import rollup_schema
from costguard.rules import RuleContext

from rule_data import D, cost, costs, daily, resource, rules, run

AS_OF = date(2026, 3, 31)
MONTH = date(2026, 3, 2)  # the 30 days ending AS_OF
FIXTURES = Path(__file__).parent / "fixtures"


def one(tmp_path, text):
    (rule,) = rules(tmp_path, text)
    return rule


# ------------------------------------------------------------------------------------------- idle
IDLE = "- {id: waste, kind: idle, severity: warning}\n"


def by_id(found):
    return {f.resource_id: f for f in found}


def test_idle_each_check_and_its_dollars(tmp_path):
    rule = one(tmp_path, IDLE)
    inv = [
        resource("vol-unatt", "volume", sku="gp2", size_gb=100, state="available", created_at=date(2025, 1, 1)),
        resource("vol-new", "volume", sku="gp3", size_gb=100, state="available", created_at=AS_OF),     # < 1 day old
        resource("vol-io1", "volume", sku="io1", size_gb=100, iops=40000, state="in-use", attached_to="i-run"),
        resource("vol-io1-small", "volume", sku="io1", size_gb=100, iops=3000, state="in-use", attached_to="i-run"),
        resource("vol-big-gp2", "volume", sku="gp2", size_gb=2000, state="in-use", attached_to="i-run"),
        resource("eip-free", "address"),
        resource("eip-used", "address", attached_to="i-run"),
        resource("snap-old", "snapshot", size_gb=100, created_at=date(2025, 12, 1), source_id="vol-unatt"),
        resource("snap-orphan", "snapshot", size_gb=40, created_at=date(2026, 3, 20), source_id="vol-gone"),
        resource("lb-idle", "load_balancer", sku="network", healthy_targets=0),
        resource("lb-unknown", "load_balancer", sku="network"),                   # no target count: not judged
        resource("nat-idle", "nat_gateway", bytes_30d=10**9),                     # exactly 1 GB: idle
        resource("nat-busy", "nat_gateway", bytes_30d=2 * 10**9),
        resource("i-idle", "instance", sku="m5.large", state="running", cpu_p95=2.9, metrics_days=7),
        resource("i-idle-short", "instance", sku="m5.large", state="running", cpu_p95=1, metrics_days=6),
        resource("i-run", "instance", sku="m5.large", state="running", cpu_p95=40, metrics_days=30),
        resource("lg-forever", "log_group", size_gb=10, created_at=date(2025, 4, 1)),
        resource("lg-kept", "log_group", size_gb=10, created_at=date(2025, 4, 1), retention_days=30),
    ]
    f = by_id(run(rule, AS_OF, [], inv))
    assert set(f) == {"vol-unatt", "vol-io1", "vol-io1-small", "vol-big-gp2", "eip-free", "snap-old", "snap-orphan",
                      "lb-idle", "nat-idle", "i-idle", "lg-forever"}
    u = f["vol-unatt"]
    # 100 GB gp2 at $0.10: the unattached check (delete, $10) beats gp2 → gp3 ($2)
    assert (u.monthly_cost, u.monthly_savings, u.kind) == (D(10), D(10), "idle")
    assert [c["check"] for c in u.evidence["checks"]] == ["unattached_volume", "gp2_volume"]
    assert u.evidence["check"] == "unattached_volume" and u.evidence["price_source"] == "catalogue"
    assert u.fingerprint == fingerprint("waste", "AWS", "111", "vol-unatt")
    # io1 → io2: same $0.065 up to 32,000 IOPS, $0.0455 for the 8,000 above: 8000 × 0.0195 = $156
    assert (f["vol-io1"].monthly_cost, f["vol-io1"].monthly_savings) == (D("2612.5"), D(156))
    assert f["vol-io1-small"].monthly_savings == 0
    # 2000 GB gp2 has 6,000 baseline IOPS: gp3 needs 3,000 more at $0.005: 200 − (160 + 15) = $25
    assert f["vol-big-gp2"].monthly_savings == D(25) and f["vol-big-gp2"].evidence["checks"][0]["gp3_iops"] == 6000
    assert f["eip-free"].monthly_cost == D("3.65")                         # $0.005 × 730 h
    assert f["snap-old"].evidence["check"] == "old_snapshot" and f["snap-old"].monthly_savings == D(5)
    assert f["snap-orphan"].evidence["check"] == "orphan_snapshot" and f["snap-orphan"].monthly_cost == D(2)
    assert f["lb-idle"].monthly_cost == D("16.425")                        # $0.0225 × 730
    assert f["nat-idle"].monthly_cost == D("32.895")                       # $0.045 × 730 + 1 GB × $0.045
    assert f["i-idle"].monthly_savings == D("70.08")                       # m5.large $0.096 × 730
    lg = f["lg-forever"]
    # storage 10 GB × $0.03 = $0.30; keeping 30 of 364 days drops 334/364 of it
    assert lg.monthly_cost == D("0.3") and lg.monthly_savings == (D("0.3") * (1 - D(30) / D(364))).quantize(D("1e-10"))
    assert "even arrival" in lg.evidence["monthly_savings_formula"]


def test_idle_uses_lake_cost_and_scales_savings(tmp_path):
    rule = one(tmp_path, IDLE)
    inv = [resource("vol-1", "volume", sku="gp2", size_gb=50, state="in-use", attached_to="i-1")]
    (f,) = run(rule, AS_OF, daily(MONTH, 30, "0.3", ResourceId="VOL-1"), inv)  # ids match ignoring case
    # lake: $9 a month; list $5 → $4: the 20% saving applied to the lake's $9
    assert (f.monthly_cost, f.monthly_savings) == (D(9), D("1.8"))
    assert f.evidence["price_source"] == "lake" and f.evidence["lake_cost"] == D(9)
    assert (f.service, f.billing_account_id, f.source) == ("Amazon Elastic Compute Cloud", "999", "test")
    # a resource first billed 10 days ago: its 10 days are scaled to 30
    (g,) = run(rule, AS_OF, daily(AS_OF - timedelta(days=9), 10, "0.3", ResourceId="vol-1"), inv)
    assert g.monthly_cost == D(9) and g.evidence["lake_days"] == 10


def test_idle_stopped_instance_owns_its_storage_and_checks_switch_off(tmp_path):
    rule = one(tmp_path, IDLE)
    inv = [
        resource("i-stop", "instance", sku="m5.large", state="stopped"),
        resource("vol-s", "volume", sku="gp2", size_gb=20, state="in-use", attached_to="i-stop"),
        resource("eip-s", "address", attached_to="i-stop"),
    ]
    (f,) = run(rule, AS_OF, daily(MONTH, 30, "0.1", ResourceId="vol-s"), inv)
    assert f.resource_id == "i-stop" and f.evidence["check"] == "stopped_instance"
    assert f.monthly_cost == f.monthly_savings == D(3) + D("3.65")   # the volume from the lake, the address from the catalogue
    assert {a["resource_id"]: a["price_source"] for a in f.evidence["checks"][0]["attached"]} == {"vol-s": "lake", "eip-s": "catalogue"}
    off = one(tmp_path, IDLE.replace("severity: warning}", "severity: warning, checks: {stopped_instance: {enabled: false}, gp2_volume: {severity: critical}}}"))
    (g,) = run(off, AS_OF, daily(MONTH, 30, "0.1", ResourceId="vol-s"), inv)
    assert g.resource_id == "vol-s" and g.severity == "critical" and g.evidence["check"] == "gp2_volume"


def test_idle_unpriced_resources_are_counted_not_dropped(tmp_path):
    rule = one(tmp_path, IDLE)
    inv = [resource("lb-x", "load_balancer", sku="mystery", healthy_targets=0, region="mars-1"),
           resource("lb-y", "load_balancer", sku="mystery", healthy_targets=0, region="mars-1", account_id="222")]
    found = run(rule, AS_OF, [], inv)
    assert sorted((f.kind, f.account_id, f.evidence["count"]) for f in found) == [("data", "111", 1), ("data", "222", 1)]
    assert all(f.monthly_cost == 0 and f.monthly_savings is None for f in found)
    assert found[0].evidence["resources"][0]["reason"] == "no price"


def test_idle_previous_generation_and_filters(tmp_path):
    rule = one(tmp_path, "- {id: w, kind: idle, severity: info, filter: {RegionId: eu-west-1}}\n")
    inv = [resource("i-old", "instance", sku="m4.large", region="eu-west-1", state="running"),
           resource("i-old-us", "instance", sku="m4.large", state="running")]
    (f,) = run(rule, AS_OF, [], inv)
    c = f.evidence["checks"][0]
    assert f.resource_id == "i-old" and c["to"] == "m5a.large" and c["from_price"]["source"] == "libcloud"
    # eu-west-1 libcloud list prices: m4.large 0.111, m5a.large 0.096
    assert f.monthly_savings == ((D("0.111") - D("0.096")) * 730).quantize(D("1e-10"))
    with pytest.raises(ConfigError) as e:
        rules(tmp_path, "- {id: w, kind: idle, severity: info, filter: {ChargeCategory: Usage}}\n")
    assert "filter.ChargeCategory" in str(e.value) and "resource rules filter on" in str(e.value)


# ------------------------------------------------------------------------------------ rightsizing
RS = "- {id: rs, kind: rightsizing, severity: warning}\n"
RECORDED = dict(account_id="644160558196", region="us-east-2", sku="m5a.xlarge", state="running", cpu_p95=30,
                cpu_max=45, mem_p95=60, metrics_days=14)


def test_rightsizing_reproduces_cost_optimization_hub(tmp_path):
    """aws-api-responses-custodian/test_ec2_costhub_resize: m5a.xlarge → r5a.large, the new type
    costs $82.49/month and the change saves $43.07 (35%)."""
    rule = one(tmp_path, RS)
    (f,) = run(rule, AS_OF, [], [resource("i-000ce83ee0c70e572", "instance", **RECORDED)])
    ev = f.evidence
    assert (ev["current_type"], ev["recommended_type"]) == ("m5a.xlarge", "r5a.large")
    assert ev["recommended"]["monthly_cost"] == D("82.49") and f.monthly_savings == D("43.07")
    assert f.monthly_cost == D("125.56") and (f.monthly_savings / f.monthly_cost).quantize(D("0.01")) == D("0.34")
    assert ev["need"] == {"vcpu": D("1.8"), "memory_gib": D("12")}  # max(4 × 30% / 0.8, 4 × 45%); 16 × 60% / 0.8
    assert (f.kind, f.resource_id, f.account_id, f.region) == ("rightsizing", "i-000ce83ee0c70e572", "644160558196", "us-east-2")
    assert f.title == "i-000ce83ee0c70e572: m5a.xlarge → r5a.large saves $43.07/month"
    # the same family only: r5a is out, nothing in m5a is smaller with 12 GiB → no finding
    same = one(tmp_path, RS.replace("severity: warning}", "severity: warning, family_scope: same}"))
    assert run(same, AS_OF, [], [resource("i-1", "instance", **RECORDED)]) == []
    # memory not measured: memory is kept (16 GiB), CPU alone → still r5a.large (2 vCPU, 16 GiB)
    (g,) = run(rule, AS_OF, [], [resource("i-1", "instance", **{**RECORDED, "mem_p95": None})])
    assert g.evidence["recommended_type"] == "r5a.large" and g.evidence["need"]["memory_gib"] == D("16")
    # a max that needs the whole machine: no recommendation
    assert run(rule, AS_OF, [], [resource("i-1", "instance", **{**RECORDED, "cpu_max": 90})]) == []


def test_rightsizing_caps_by_lake_and_discounts_commitments(tmp_path):
    rule = one(tmp_path, RS)
    inv = [resource("i-1", "instance", **RECORDED)]
    rows = daily(MONTH, 30, 1, ResourceId="i-1") + daily(MONTH, 30, 1, ResourceId="i-1", CommitmentDiscountId="ri-1")
    (f,) = run(rule, AS_OF, rows, inv)
    # lake: $60 a month, half of it under a commitment → min(43.07, 60) × 0.5
    assert f.monthly_cost == D(60) and f.monthly_savings == D("21.535") and f.evidence["committed_share"] == D("0.5")
    (g,) = run(rule, AS_OF, daily(MONTH, 30, 1, ResourceId="i-1"), inv)
    assert g.monthly_savings == D("30") and "capped at the lake's monthly cost" in g.evidence["monthly_savings_formula"]


def test_rightsizing_never_guesses_without_metrics(tmp_path):
    rule = one(tmp_path, RS.replace("severity: warning}", "severity: warning, skip_idle_below: 3}"))
    inv = [resource("i-none", "instance", sku="m5.xlarge", state="running"),
           resource("i-short", "instance", sku="m5.xlarge", state="running", cpu_p95=5, metrics_days=13),
           resource("i-unknown", "instance", sku="q9.mega", state="running", cpu_p95=5, metrics_days=20),
           resource("i-idle", "instance", sku="m5.xlarge", state="running", cpu_p95=2, metrics_days=20),
           resource("i-other", "instance", sku="m5.xlarge", account_id="222", state="running"),
           resource("i-off", "instance", sku="m5.xlarge", state="stopped")]
    found = sorted(run(rule, AS_OF, [], inv), key=lambda f: f.account_id)
    assert [(f.kind, f.account_id, f.evidence["count"]) for f in found] == [("data", "111", 3), ("data", "222", 1)]
    d = found[0]
    assert d.evidence["reasons"] == {"metrics cover fewer than 14 days": 1, "no CPU p95": 1, "type not in the catalogue": 1}
    assert d.monthly_cost == D("280.32") and d.fingerprint == fingerprint("rs", "AWS", "111", "data:without the data to rightsize them")
    # percentile p99 reads cpu_p99
    p99 = one(tmp_path, RS.replace("severity: warning}", "severity: warning, percentile: p99}"))
    (f,) = run(p99, AS_OF, [], [resource("i-1", "instance", **{**RECORDED, "cpu_p99": 30, "cpu_p95": None})])
    assert f.evidence["recommended_type"] == "r5a.large" and f.evidence["utilisation"]["cpu_p99"] == 30


def test_rightsizing_other_clouds_from_a_user_catalogue(tmp_path):
    (tmp_path / "azure.csv").write_text(
        "provider,resource_class,sku,region,unit,price,currency,vcpu,memory_gib,family\n"
        "Microsoft,instance,Standard_D4s_v5,westeurope,hour,0.23,EUR,4,16,Dsv5\n"
        "Microsoft,instance,Standard_D2s_v5,westeurope,hour,0.115,EUR,2,8,Dsv5\n"
        "Microsoft,instance,Standard_E2s_v5,westeurope,hour,0.15,EUR,2,16,Esv5\n")
    cat = load_catalog([tmp_path / "azure.csv"])
    rule = one(tmp_path, RS)
    vm = resource("/subscriptions/s/vm1", "instance", provider="Microsoft", account_id="s", region="westeurope",
                  sku="Standard_D4s_v5", state="running", cpu_p95=20, mem_p95=30, metrics_days=30)
    (f,) = run(rule, AS_OF, [], [vm], catalog=cat)
    assert f.evidence["recommended_type"] == "Standard_D2s_v5" and f.currency == "EUR"
    assert f.monthly_savings == D("83.95")  # (0.23 − 0.115) × 730
    assert f.evidence["current"]["price"]["source"] == "azure.csv:2"


# ---------------------------------------------------------------------------------------- anomaly
AN = "- {id: an, kind: anomaly, severity: warning}\n"
MONDAY = date(2026, 1, 5)


def weekly(days: int, weekday: int = 1000, weekend: int = 600, noise: int = 5, **cols) -> list[dict]:
    out = []
    for i in range(days):
        d = MONDAY + timedelta(days=i)
        out.append(cost(d, (weekday if d.weekday() < 5 else weekend) + (i % 3) * noise, **cols))
    return out


def test_anomaly_spike_found_next_day_with_root_cause(tmp_path):
    rule = one(tmp_path, AN)
    spike = MONDAY + timedelta(days=45)  # a Friday
    rows = weekly(60, noise=0, ResourceId="i-web", SkuId="BoxUsage:m5.large") + daily(MONDAY, 60, 200, ResourceId="i-db", RegionId="eu-west-1")
    rows.append(cost(spike, 900, ResourceId="i-gpu", SkuId="BoxUsage:g5.12xlarge", RegionId="us-west-2"))
    assert run(rule, spike, rows) == []                   # the spike day itself is still arriving
    (f,) = run(rule, spike + timedelta(days=1), rows)     # found the next day
    ev = f.evidence
    assert ev["day"] == spike.isoformat() and ev["direction"] == "up"
    assert ev["actual"] == D(2100) and ev["expected"] == D(1200) and f.monthly_cost == D(900)
    assert ev["root_cause"] == {"dimension": "ResourceId", "value": "i-gpu", "change": D(900), "actual": D(900), "share": D(1)}
    assert {c["dimension"]: c["value"] for c in ev["root_causes"]} == {"ResourceId": "i-gpu", "RegionId": "us-west-2",
                                                                        "SkuId": "BoxUsage:g5.12xlarge"}
    assert f.fingerprint == fingerprint("an", "AWS", "111", "anomaly:ProviderName=AWS,SubAccountId=111,ServiceName=Amazon Elastic Compute Cloud")
    assert f.monthly_savings is None and "Root cause: ResourceId i-gpu +$900.00 (100% of the change)" in f.summary


def test_anomaly_ignores_weekly_seasonality_and_the_partial_last_day(tmp_path):
    rule = one(tmp_path, AN)
    rows = weekly(70, weekday=1000, weekend=400)
    for as_of in (MONDAY + timedelta(days=n) for n in range(35, 70)):
        assert run(rule, as_of, rows) == [], as_of
    last = MONDAY + timedelta(days=70)
    partial = rows + [cost(last, 150)]                    # a day that has only started arriving
    assert run(rule, last, partial) == []
    # a second source lagging a day behind does not turn the first source's day into a drop
    lagging = rows[:-1] + [cost(MONDAY + timedelta(days=69), 10, x_Source="other"), cost(MONDAY + timedelta(days=68), 10, x_Source="other")]
    assert run(rule, MONDAY + timedelta(days=70), lagging) == []
    # without the weekday effect, weekends are drops
    flat = one(tmp_path, AN.replace("severity: warning}", "severity: warning, weekday_effect: false}"))
    sat = MONDAY + timedelta(days=68)
    assert any(f.evidence["direction"] == "down" for f in run(flat, sat + timedelta(days=1), rows))


def test_anomaly_a_continuing_spike_is_one_finding_updated(tmp_path):
    rule = one(tmp_path, AN)
    shift = MONDAY + timedelta(days=40)
    rows = weekly(70) + [cost(shift + timedelta(days=i), 500, ResourceId="i-new") for i in range(30)]
    seen = {}
    for n in range(1, 12):
        (f,) = run(rule, shift + timedelta(days=n), rows)
        seen.setdefault(f.fingerprint, []).append(f.evidence["episode"])
    (episodes,) = seen.values()                           # one identity all along, the episode growing
    assert [e["days"] for e in episodes][:8] == list(range(1, 9)) and {e["start"] for e in episodes} == {shift.isoformat()}
    assert episodes[-1]["days"] >= 9 and episodes[-1]["total_impact"] >= D(500) * episodes[-1]["days"] - 100
    # once the baseline has absorbed the new level, the finding resolves (no finding)
    assert run(rule, shift + timedelta(days=25), rows) == []


def test_anomaly_new_service_drop_thresholds_and_tag_groups(tmp_path):
    rule = one(tmp_path, AN)
    day = MONDAY + timedelta(days=50)
    new = weekly(60) + [cost(day, 400, ServiceName="Amazon SageMaker", ResourceId="nb-1")]
    (f,) = run(rule, day + timedelta(days=1), new)
    assert f.service == "Amazon SageMaker" and f.evidence["expected"] == 0 and f.evidence["impact_percent"] is None
    assert "(new spend)" in f.title
    drop = [r for r in weekly(60) if r["x_ChargeDate"] != day] + [cost(day, 100)]
    (g,) = run(rule, day + timedelta(days=1), drop)
    assert g.evidence["direction"] == "down" and g.monthly_cost > 0
    up_only = one(tmp_path, AN.replace("severity: warning}", "severity: warning, direction: up}"))
    assert run(up_only, day + timedelta(days=1), drop) == []
    small = [r for r in weekly(60) if r["x_ChargeDate"] != day] + [cost(day, 1090)]  # +$90: under min_impact
    assert run(rule, day + timedelta(days=1), small) == []
    teams = one(tmp_path, "- {id: t, kind: anomaly, severity: info, group_by: ['tag:team'], min_impact: 50}\n")
    tagged = daily(MONDAY, 60, 100, tags={"Team": "data"}) + daily(MONDAY, 60, 300, tags={"team": "web"}) \
        + [cost(day, 400, tags={"team": "data"}, ResourceId="big")]
    (h,) = run(teams, day + timedelta(days=1), tagged)
    assert h.evidence["group"] == {"tag:team": "data"} and h.evidence["root_cause"]["value"] == "big"


# ------------------------------------------------------------------------------------- commitment
CM = "- {id: cm, kind: commitment, severity: warning}\n"


def focus_example(name: str) -> pl.LazyFrame:
    """A FOCUS spec example as rollup rows: its own columns as they are, plus the dimensions the
    example leaves out (provider, accounts, currency, source)."""
    df = pl.read_csv(FIXTURES / "focus-commitments" / name, null_values=["null"], infer_schema=False)
    df = df.with_columns(pl.col("ChargePeriodStart").str.slice(0, 10).str.to_date().alias("x_ChargeDate"))
    schema = rollup_schema()
    cols = []
    for c, t in schema.items():
        if c in df.columns:
            cols.append(pl.col(c).cast(t))
        else:
            cols.append(pl.lit({"x_Source": "spec", "ProviderName": "Example", "BillingAccountId": "ba", "SubAccountId": "sa",
                                "BillingCurrency": "USD", "ServiceCategory": "Compute", "x_RowCount": 1}.get(c), dtype=t).alias(c))
    return df.select(cols).lazy()


@pytest.mark.parametrize("name, used, unused", [
    ("commitment_discount_usage_scenario_1.csv", "1.00", "0"),
    ("commitment_discount_usage_scenario_2.csv", "0", "1.00"),
    ("commitment_discount_usage_scenario_3.csv", "0.75", "0.25"),
    ("commitment_discount_usage_scenario_4.csv", "1.00", "0"),
    ("one_hundred_percent_utilization_without_commitment_discount_flexibility.csv", "1.50", "0"),
    ("one_hundred_percent_utilization_with_commitment_discount_flexibility_with_1_resource.csv", "0.50", "0"),
    ("one_hundred_percent_utilization_with_commitment_discount_flexibility_with_2_resources.csv", "2.00", "0"),
    ("zero_percent_utilization_without_commitment_discount_flexibility.csv", "0", "1.50"),
])
def test_commitment_matches_the_focus_spec_examples(tmp_path, name, used, unused):
    from costguard.rules.commitment import Commitment

    lf = focus_example(name)
    day = lf.select(pl.col("x_ChargeDate").min()).collect().item()
    (row,) = Commitment.utilization_table(lf, day, day).to_dicts()
    assert (row["used"] or 0, row["unused"] or 0) == (D(used), D(unused))
    rule = one(tmp_path, CM.replace("severity: warning}", "severity: warning, utilization: {min_utilization: 0.9, min_monthly_unused: 0}}"))
    found = rule.impl.evaluate(rule, RuleContext(as_of=day, costs=lf))
    if D(unused) == 0:
        assert found == []                                 # fully used: nothing to say
    else:
        (f,) = found
        util = D(used) / (D(used) + D(unused))
        assert f.evidence["utilization"] == util.quantize(D("1e-6")) and f.evidence["unused"] == D(unused)
        assert f.monthly_savings == D(unused) * 30 and f.resource_id == "<my-commitment-discount-id>"


def test_commitment_purchases_are_not_counted_twice():
    """Purchase rows carry the commitment's BilledCost with no EffectiveCost: the amortised cost lives
    in the Used/Unused usage rows only (FOCUS purchase scenarios 1-3)."""
    for n in (1, 2, 3):
        lf = focus_example(f"commitment_discount_purchase_scenario_{n}.csv")
        got = lf.select(pl.col("EffectiveCost").sum(), pl.col("BilledCost").sum()).collect().row(0)
        assert got[0] == 0 and got[1] == {1: D(8760), 2: D(3), 3: D("4381.5")}[n]


def test_commitment_on_demand_steady_spend(tmp_path):
    rule = one(tmp_path, CM)
    rows = (daily(MONTH, 29, 100, ResourceId="i-1", PricingCategory="Standard")
            + daily(MONTH, 29, 50, ResourceId="i-2", PricingCategory="Committed", CommitmentDiscountId="sp")
            + [cost(MONTH + timedelta(days=i), 300, ResourceId="burst") for i in range(0, 29, 7)]
            + [cost(AS_OF, 10, ResourceId="i-1")]                        # the still-arriving last day
            + daily(MONTH, 29, 999, ServiceCategory="Storage", ResourceId="vol"))  # not coverable
    (f,) = run(rule, AS_OF, rows)
    ev = f.evidence
    assert ev["check"] == "on_demand" and ev["days"] == 29 and ev["steady_daily"] == D(100)
    assert f.monthly_savings == D(750) and ev["recommended_hourly_commitment"] == D("3.125")
    assert ev["on_demand_total"] == D(100 * 29 + 300 * 5) and ev["coverage"] == (D(1450) / D(1450 + 4400)).quantize(D("1e-6"))
    assert f.monthly_cost == (D(4400) * 30 / 29).quantize(D("1e-10"))
    short = rows[: 10]
    assert run(rule, MONTH + timedelta(days=10), short) == []            # under min_days of history


# ------------------------------------------------------------------------------------- tag policy
TP = """\
- id: tp
  kind: tag-policy
  severity: warning
  mandatory: [application, environment]
  prohibited: ["temp*"]
  allowed_values: {environment: [dev, prod], cost-center: {regex: "^cc-[0-9]{3}$"}}
  aliases: {env: environment}
  max_tags: 4
"""


def test_tag_policy_every_check(tmp_path):
    rule = one(tmp_path, TP)
    inv = [
        resource("i-ok", "instance", sku="m5.large", state="running", tags={"Application": "a", " ENV": " Prod ", "cost-center": "cc-101"}),
        resource("i-bad", "instance", sku="m5.large", state="running",
                 tags={"application": "a", "env": "staging", "TempOwner": "x", "cost-center": "cc-1", "more": "1"}),
        resource("i-missing", "instance", sku="m5.large", state="running", tags={"team": "x"}),
    ]
    f = by_id(run(rule, AS_OF, daily(MONTH, 30, 1, ResourceId="arn:lake-only", tags={"application": "b"}), inv))
    assert set(f) == {"i-bad", "i-missing", "arn:lake-only"}
    checks = [(v["check"], v.get("key")) for v in f["i-bad"].evidence["violations"]]
    assert checks == [("prohibited", "tempowner"), ("value", "environment"), ("value", "cost-center"), ("max_tags", None)]
    assert f["i-bad"].evidence["violations"][1]["tag_key"] == "env"           # found through the alias
    assert [v["check"] for v in f["i-missing"].evidence["violations"]] == ["mandatory", "mandatory"]
    assert f["i-missing"].evidence["violations"][1]["message"] == "no environment tag (nor env)"
    assert f["i-missing"].monthly_cost == D("70.08") and f["i-missing"].monthly_savings is None
    lake = f["arn:lake-only"]
    assert lake.monthly_cost == D(30) and lake.evidence["price_source"] == "lake" and lake.kind == "tag"


def test_tag_policy_cost_floor_classes_and_config_errors(tmp_path):
    rule = one(tmp_path, TP.replace("max_tags: 4\n", "max_tags: 4\n  min_monthly_cost: 50\n  resource_classes: [volume]\n"))
    inv = [resource("vol-cheap", "volume", sku="gp3", size_gb=10, tags={}), resource("vol-dear", "volume", sku="gp3", size_gb=1000, tags={}),
           resource("i-x", "instance", sku="m5.large", tags={})]
    assert [f.resource_id for f in run(rule, AS_OF, [], inv)] == ["vol-dear"]
    for bad, why in (("mandatory: [a]\n  prohibited: [a*]", "both mandatory and prohibited"),
                     ("allowed_values: {x: {regex: '('}}", "not a valid regular expression"),
                     ("aliases: {env: environment, environment: env}", "both an alias and aliased to"),
                     ("max_tags: 0", "greater than or equal to 1")):
        with pytest.raises(ConfigError) as e:
            rules(tmp_path, f"- id: x\n  kind: tag-policy\n  severity: info\n  {bad}\n")
        assert why in str(e.value), str(e.value)
    with pytest.raises(ConfigError, match="needs at least one of"):
        rules(tmp_path, "- {id: x, kind: tag-policy, severity: info}\n")


def test_tag_coverage_counts_aliases(tmp_path):
    text = "- {id: c, kind: tag-coverage, severity: info, keys: [environment], min_coverage: 0.99, group_by: []%s}\n"
    rows = daily(MONTH, 30, 3, ResourceId="a", tags={"Env": "prod"}) + daily(MONTH, 30, 1, ResourceId="b", tags={"environment": ""}) \
        + daily(MONTH, 30, 1, ResourceId="c", tags={"environment": "", "env": "dev"})
    (plain,) = run(one(tmp_path, text % ""), AS_OF, rows)
    (aliased,) = run(one(tmp_path, text % ", aliases: {env: environment}"), AS_OF, rows)
    assert plain.evidence["coverage"] == 0 and aliased.evidence["coverage"] == D("0.8")
    assert plain.fingerprint == aliased.fingerprint
    # the digest's weekly coverage of the same rule counts the alias the same way
    from costguard.digest.coverage import coverage_series
    from costguard.digest.weeks import IsoWeek
    (series,) = coverage_series(costs(rows), [one(tmp_path, text % ", aliases: {env: environment}")],
                                week=IsoWeek.of(AS_OF - timedelta(days=7)), weeks=1)
    assert series.this_week == D("0.8"), series


def test_rightsizing_databases_from_a_user_catalogue(tmp_path):
    (tmp_path / "rds.csv").write_text(
        "provider,resource_class,sku,region,unit,price,currency,vcpu,memory_gib,family\n"
        "AWS,database,db.r5.xlarge,*,hour,0.50,USD,4,32,db.r5\n"
        "AWS,database,db.r5.large,*,hour,0.25,USD,2,16,db.r5\n")
    rule = one(tmp_path, "- {id: db, kind: rightsizing, severity: info, resource_classes: [database]}\n")
    inv = [resource("db-1", "database", sku="db.r5.xlarge", region="eu-west-1", state="available",
                    cpu_p95=20, mem_p95=40, metrics_days=30),
           resource("i-1", "instance", **RECORDED)]                          # not a database: not looked at
    (f,) = run(rule, AS_OF, [], inv, catalog=load_catalog([tmp_path / "rds.csv"]))
    assert (f.resource_id, f.evidence["recommended_type"], f.monthly_savings) == ("db-1", "db.r5.large", D("182.5"))
    (g,) = run(rule, AS_OF, [], inv)                                           # the bundled catalogue has no RDS sizes
    assert g.kind == "data" and g.evidence["reasons"] == {"type not in the catalogue": 1}
