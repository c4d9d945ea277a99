"""End to end: ``costguard run --once`` and ``costguard doctor`` with a config pointing at moto's
server (an Organization with 3 members, resources in two regions, a FOCUS export in S3, AWS
Budgets), through the recording proxy."""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

pytest.importorskip("moto.server")

from aws_env import denied, moto_endpoint, world  # noqa: E402,F401
from aws_exports import by_month, put_export, sample_aws, shift_days, typed_focus  # noqa: E402
from conftest import write_config  # noqa: E402
from costguard.app import utcnow  # noqa: E402
from costguard.config import load_config  # noqa: E402
from costguard.daemon import CycleWorker  # noqa: E402
from costguard.metrics import Metrics  # noqa: E402
from costguard.providers.aws.iam import ACTIONS, costguard_policy, member_policy, unknown  # noqa: E402
from costguard.server import HealthState  # noqa: E402
from costguard.store import Store  # noqa: E402

REGIONS = ("us-east-1", "eu-west-1")


def build(world, tmp_path: Path) -> dict:
    """The organisation, its resources, budgets and a month of FOCUS export; returns what was made."""
    m = world.organization(3)
    now = datetime.now(timezone.utc)
    hour = now.replace(minute=0, second=0, microsecond=0)
    made: dict = {"members": m}
    # member 1, us-east-1: a tagged busy instance, an untagged idle one, an unattached gp2 volume, a free EIP
    ec2 = world.client("ec2", "us-east-1", m[0])
    busy = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, InstanceType="m5.xlarge",
                             TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "team", "Value": "payments"}]}])
    idle = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, InstanceType="m5.2xlarge")
    made["busy"], made["idle"] = busy["Instances"][0]["InstanceId"], idle["Instances"][0]["InstanceId"]
    made["volume"] = ec2.create_volume(Size=100, AvailabilityZone="us-east-1a", VolumeType="gp2")["VolumeId"]
    made["eip"] = ec2.allocate_address(Domain="vpc")["AllocationId"]
    cw = world.client("cloudwatch", "us-east-1", m[0])
    cw.put_metric_data(Namespace="AWS/EC2", MetricData=[
        {"MetricName": "CPUUtilization", "Dimensions": [{"Name": "InstanceId", "Value": iid}], "Timestamp": hour - timedelta(hours=h),
         "Value": v, "Unit": "Percent"} for iid, v in ((made["busy"], 71.0), (made["idle"], 1.5)) for h in range(1, 73)])
    # member 2, eu-west-1: an instance and an unassociated EIP
    ec2b = world.client("ec2", "eu-west-1", m[1])
    made["eu_instance"] = ec2b.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, InstanceType="t3.large")["Instances"][0]["InstanceId"]
    made["eu_eip"] = ec2b.allocate_address(Domain="vpc")["AllocationId"]
    # budgets: member 1 over its limit, member 2 well under
    for acct, actual, forecast in ((m[0], "130", "150"), (m[1], "10", "20")):
        world.client("budgets", account=acct).create_budget(AccountId=acct, Budget={
            "BudgetName": f"{acct}-monthly", "BudgetLimit": {"Amount": "100", "Unit": "USD"}, "TimeUnit": "MONTHLY",
            "BudgetType": "COST", "CalculatedSpend": {"ActualSpend": {"Amount": actual, "Unit": "USD"},
                                                       "ForecastedSpend": {"Amount": forecast, "Unit": "USD"}}},
            NotificationsWithSubscribers=[{"Notification": {"NotificationType": "ACTUAL", "ComparisonOperator": "GREATER_THAN",
                                                            "Threshold": 80, "ThresholdType": "PERCENTAGE"},
                                           "Subscribers": [{"SubscriptionType": "EMAIL", "Address": "finops@example.com"}]}])
    # the bill: the sample's AWS month moved to end yesterday, its accounts mapped onto the members,
    # and the two member-1 instances billed by id (the idle one untagged)
    rows = sample_aws()
    last = datetime(2024, 9, 30).date()
    rows = shift_days(rows, (now.date() - timedelta(days=1) - last).days)
    accounts = sorted(rows["SubAccountId"].unique())
    remap = {a: m[i % 3] for i, a in enumerate(accounts)}
    rows = rows.with_columns(pl.col("SubAccountId").replace_strict(remap).alias("SubAccountId"),
                             pl.lit("123456789012").alias("BillingAccountId"))
    ec2_rows = (pl.col("ServiceName") == "Amazon Elastic Compute Cloud") & pl.col("ResourceId").str.starts_with("i-")
    idx = pl.int_range(pl.len())
    rows = rows.with_columns(
        pl.when(ec2_rows & (idx % 3 == 0)).then(pl.lit(made["busy"])).when(ec2_rows & (idx % 3 == 1)).then(pl.lit(made["idle"]))
        .otherwise(pl.col("ResourceId")).alias("ResourceId"))
    rows = rows.with_columns(
        pl.when(pl.col("ResourceId").is_in([made["busy"], made["idle"]])).then(pl.lit(m[0])).otherwise(pl.col("SubAccountId")).alias("SubAccountId"),
        pl.when(pl.col("ResourceId") == made["busy"]).then(pl.lit('{"team": "payments"}'))
        .when(pl.col("ResourceId") == made["idle"]).then(pl.lit(None)).otherwise(pl.col("Tags")).alias("Tags"))
    s3 = world.client("s3")
    s3.create_bucket(Bucket="billing")
    for period, part in by_month(rows).items():
        put_export(s3, "billing", "focus/costguard/", "costguard", period, [typed_focus(part)])
    made["rows"] = rows
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "aws.yaml").write_text("""
- id: team-tag
  kind: tag-coverage
  severity: warning
  filter: {ProviderName: AWS}
  keys: [team]
  min_coverage: 0.99
  group_by: [SubAccountId]
  resource_cost_floor: 0
- id: waste
  kind: idle
  severity: warning
  checks:
    unattached_volume: {min_age_days: 0}
    idle_instance: {cpu_p95_below: 3, min_metrics_days: 2}
- id: aws-budgets
  kind: budget
  severity: warning
  native: true
  thresholds:
    - {on: actual, percent: 100, severity: critical}
    - {on: forecast, percent: 100, severity: warning}
""")
    made["config"] = write_config(tmp_path, f"""
        state: {{url: "sqlite:///state.db", lake: lake}}
        providers:
          - name: aws-org
            type: aws
            endpoint_url: "{world.endpoint}"
            regions: [us-east-1, eu-west-1]
            accounts: {{discover: organization, assume_role: CostguardReadOnly, external_id: "${{CG_EXTERNAL_ID}}"}}
            costs: {{source: focus_export, uri: "s3://billing/focus/costguard/"}}
            max_attempts: 2
        rules: [rules/]
        """)
    return made


def test_run_once_against_moto_gives_priced_findings_per_member_account(cli, tmp_path, world, monkeypatch):
    monkeypatch.setenv("CG_EXTERNAL_ID", "shared-with-the-member-roles")
    made = build(world, tmp_path)
    m, cfg = made["members"], made["config"]
    r = cli("run", "--once", "-c", cfg)
    assert "source aws-org: ok" in r.stdout, r.stdout
    findings = cli.json("findings", "-c", cfg)
    tag = [f for f in findings if f["kind"] == "tag"]
    budget = [f for f in findings if f["kind"] == "budget"]
    # tag coverage per member account, and the untagged instance by itself in member 1
    scope = {f["account_id"]: f for f in tag if f["resource_id"] is None}
    assert set(scope) <= set(m) and m[0] in scope
    idle = [f for f in tag if f["resource_id"] == made["idle"]]
    assert len(idle) == 1 and idle[0]["account_id"] == m[0] and idle[0]["monthly_cost"] > 0
    assert all(f["monthly_cost"] is not None and f["currency"] == "USD" for f in findings)
    # the budget over its limit in member 1 (and only that one)
    assert len(budget) == 1
    b = budget[0]
    assert b["account_id"] == m[0] and b["monthly_cost"] == 130 and b["evidence"]["amount"] == 100
    assert b["evidence"]["actual"] == 130 and b["evidence"]["forecast"] == 150 and b["severity"] == "critical"
    assert b["monthly_savings"] is None and b["source"] == "aws-org" and b["provider"] == "AWS"
    # idle findings from the inventory pass, in the member account and region they are in, each priced
    idle_f = {f["resource_id"]: f for f in findings if f["kind"] == "idle"}
    for rid, acct, region in ((made["volume"], m[0], "us-east-1"), (made["eip"], m[0], "us-east-1"),
                              (made["eu_eip"], m[1], "eu-west-1"), (made["idle"], m[0], "us-east-1")):
        f = idle_f[rid]
        assert (f["account_id"], f["region"], f["provider"]) == (acct, region, "AWS"), f
        assert f["monthly_cost"] > 0 and f["monthly_savings"] > 0 and f["currency"] == "USD", f
    assert made["busy"] not in idle_f  # 71 % CPU is not idle
    # the inventory columns the idle and rightsizing rules read
    inv = pl.read_parquet(tmp_path / "lake" / "inventory" / "source=aws-org" / "snapshot.parquet")
    row = {r["resource_id"]: r for r in inv.iter_rows(named=True)}
    assert row[made["volume"]]["attached_to"] is None and row[made["volume"]]["sku"] == "gp2" and row[made["volume"]]["account_id"] == m[0]
    assert row[made["eip"]]["attached_to"] is None and row[made["eu_eip"]]["account_id"] == m[1] and row[made["eu_eip"]]["region"] == "eu-west-1"
    assert row[made["idle"]]["cpu_p95"] == 1.5 and row[made["idle"]]["cpu_max"] == 1.5 and row[made["idle"]]["metrics_days"] >= 3
    assert row[made["busy"]]["cpu_p95"] == 71.0 and row[made["busy"]]["sku"] == "m5.xlarge"
    # the member roles were assumed with the external id, never written in the config
    assume = [r.form() for r in world.proxy.requests if r.api == "sts:AssumeRole"]
    assert len(assume) == 3 and all(a["ExternalId"] == "shared-with-the-member-roles" for a in assume)
    # every request is counted in the run record, is what went over the wire, and is in the IAM policy
    run = json.loads(sqlite3.connect(tmp_path / "state.db").execute("select providers from runs").fetchone()[0])["aws-org"]
    assert run["api_requests"] == world.proxy.apis()
    assert unknown(run["api_requests"]) == []
    allowed = {a for st in costguard_policy()["Statement"] for a in st["Action"]} | set(member_policy()["Statement"][0]["Action"])
    assert all(set(ACTIONS[api][0]) <= allowed for api in run["api_requests"])
    # the daemon's worker turns the run record into the request metrics
    store = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    metrics = Metrics()
    worker = CycleWorker(load_config(cfg).path, store=store, metrics=metrics, health=HealthState(), stop=threading.Event(), clock=utcnow)
    worker.observe(store.last_run())
    get = metrics.registry.get_sample_value
    assert get("costguard_api_requests_total", {"provider": "aws-org", "api": "ec2:DescribeInstances"}) == 4 * 2
    assert get("costguard_paid_api_requests_total", {"provider": "aws-org", "api": "cloudwatch:GetMetricData"}) == run["paid_requests"]["cloudwatch:GetMetricData"]
    store.close()


def test_access_denied_for_one_member_exits_3_and_keeps_the_others(cli, tmp_path, world, monkeypatch):
    monkeypatch.setenv("CG_EXTERNAL_ID", "ext-id-42")
    made = build(world, tmp_path)
    m, cfg = made["members"], made["config"]
    world.proxy.rules.append(lambda r: denied("query") if r.api == "sts:AssumeRole" and m[1] in r.form().get("RoleArn", "") else None)
    r = cli("run", "--once", "-c", cfg, expect=3)
    assert "source aws-org: PARTIAL" in r.stdout and f"account {m[1]}: sts:AssumeRole denied" in r.stdout
    assert "fix: allow sts:AssumeRole" in r.stdout
    findings = cli.json("findings", "-c", cfg)
    assert [f["account_id"] for f in findings if f["kind"] == "budget"] == [m[0]]  # member 1's budget still read
    inv = pl.read_parquet(tmp_path / "lake" / "inventory" / "source=aws-org" / "snapshot.parquet")
    assert set(inv["account_id"]) == {m[0]}  # member 2 (denied) missing; member 3 has no resources
    total = cli.json("costs", "-c", cfg, "--by", "ProviderName", "--exact")
    assert Decimal(str(total[0]["BilledCost"])).quantize(Decimal("0.01")) == Decimal("18.01")  # costs unaffected


def test_doctor_passes_then_names_the_fix_for_a_denied_member(cli, tmp_path, world, monkeypatch):
    monkeypatch.setenv("CG_EXTERNAL_ID", "ext-id-42")
    made = build(world, tmp_path)
    m, cfg = made["members"], made["config"]
    r = cli("doctor", "-c", cfg)
    out = r.stdout
    assert "aws-org (type aws)" in out and "FAIL" not in out
    assert "PASS  credentials: arn:aws:sts::123456789012:user/moto" in out
    assert f"PASS  account {m[2]}: assume CostguardReadOnly" in out
    assert "PASS  export s3://billing/focus/costguard/: 2 billing period(s)" in out
    assert "PASS  export freshness: newest day" in out
    assert f"PASS  account {m[0]} us-east-1: budgets (budgets:DescribeBudgets)" in out
    world.proxy.rules.append(lambda r: denied("query") if r.api == "sts:AssumeRole" and m[1] in r.form().get("RoleArn", "") else None)
    world.proxy.rules.append(lambda r: denied("ec2", "UnauthorizedOperation") if r.api == "ec2:DescribeVolumes" and r.account == m[2] else None)
    r = cli("doctor", "-c", cfg, expect=1)
    out = r.stdout
    assert f"FAIL  account {m[1]}: assume CostguardReadOnly: sts:AssumeRole: AccessDenied" in out
    assert f"fix: create the role arn:aws:iam::{m[1]}:role/CostguardReadOnly" in out
    assert f"FAIL  account {m[2]} us-east-1: volumes (ec2:DescribeVolumes): ec2:DescribeVolumes: UnauthorizedOperation" in out
    assert f"fix: allow ec2:DescribeVolumes for the role CostguardReadOnly in account {m[2]}" in out
    assert "2 failed" in out.splitlines()[-1]


def test_focus_provider_doctor_reports_files_and_version(cli, tmp_path):
    from conftest import SAMPLE

    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "a.csv").write_bytes(SAMPLE.read_bytes())
    cfg = write_config(tmp_path, """
        providers:
          - {name: files, type: focus, paths: ["exports/*.csv"]}
          - {name: missing, type: focus, paths: ["nowhere/*.parquet"]}
        rules: []
        """)
    r = cli("doctor", "-c", cfg, expect=1)
    assert "files (type focus)" in r.stdout and "PASS  export files: 1 file(s)" in r.stdout
    assert "FOCUS 1.0" in r.stdout and "PASS  newest day: 2024-09-30" in r.stdout
    assert "FAIL  export files: nowhere/*.parquet: no files match" in r.stdout and "fix: fix the paths" in r.stdout
