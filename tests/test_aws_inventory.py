"""The aws provider's accounts and inventory: real boto3 over HTTP against moto's server (through a
recording proxy that can answer chosen requests with AWS errors)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import boto3
import numpy as np
import polars as pl
import pytest
from botocore.stub import Stubber

pytest.importorskip("moto.server")

from aws_env import MANAGEMENT, denied, moto_endpoint, throttled, world  # noqa: E402,F401
from costguard.build import BuildContext  # noqa: E402
from costguard.inventory import INVENTORY_SCHEMA  # noqa: E402
from costguard.model import ConnectionStatus  # noqa: E402
from costguard.providers.aws.config import AwsConfig  # noqa: E402
from costguard.providers.aws.iam import unknown  # noqa: E402

REGIONS = ("us-east-1", "eu-west-1")


def provider(world, tmp_path: Path, **over):
    data = {"name": "aws-org", "type": "aws", "regions": list(REGIONS), "endpoint_url": world.endpoint,
            "accounts": {"discover": "organization", "assume_role": "CostguardReadOnly"}, "max_attempts": 2}
    data.update(over)
    cfg = AwsConfig.model_validate(data)
    ctx = BuildContext(base_dir=tmp_path, clock=lambda: datetime.now(timezone.utc), backfill_days=30)
    return cfg.build(ctx)


def seed(world, members: list[str], regions=REGIONS) -> dict[str, dict[str, str]]:
    """Resources in each member and region; returns ids by account."""
    out: dict[str, dict[str, str]] = {}
    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    for n, acct in enumerate(members):
        ids: dict[str, str] = {}
        for region in regions:
            ec2 = world.client("ec2", region, acct)
            tagged = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, InstanceType="m5.large",
                                       TagSpecifications=[{"ResourceType": "instance", "Tags": [
                                           {"Key": "team", "Value": f"team-{n}"}, {"Key": "Name", "Value": f"web-{n}"}]}])
            ids[f"{region}/tagged"] = tagged["Instances"][0]["InstanceId"]
            bare = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, InstanceType="t3.micro")
            ids[f"{region}/untagged"] = bare["Instances"][0]["InstanceId"]
            ids[f"{region}/volume"] = ec2.create_volume(Size=50, AvailabilityZone=f"{region}a", VolumeType="gp2")["VolumeId"]
            ids[f"{region}/eip"] = ec2.allocate_address(Domain="vpc")["AllocationId"]
            snap = ec2.create_snapshot(VolumeId=ids[f"{region}/volume"])
            ids[f"{region}/snapshot"] = snap["SnapshotId"]
            logs = world.client("logs", region, acct)
            logs.create_log_group(logGroupName=f"/app/{n}")
            cw = world.client("cloudwatch", region, acct)
            iid = ids[f"{region}/tagged"]
            cw.put_metric_data(Namespace="AWS/EC2", MetricData=[
                {"MetricName": "CPUUtilization", "Dimensions": [{"Name": "InstanceId", "Value": iid}],
                 "Timestamp": now - timedelta(hours=h), "Value": float(h % 10), "Unit": "Percent"} for h in range(1, 49)])
        out[acct] = ids
    return out


def test_organization_inventory_in_two_regions(world, tmp_path):
    members = world.organization(3)
    ids = seed(world, members)
    p = provider(world, tmp_path)
    inv = p.inventory()
    st = p.status()
    assert st.problems == [], st.problems
    assert inv.schema == pl.Schema(INVENTORY_SCHEMA)
    # every member in both regions; the management account (its own credentials) is read too, and empty
    assert set(inv["account_id"]) == set(members)
    assert world.proxy.apis()["ec2:DescribeInstances"] == 4 * 2
    by = {r["resource_id"]: r for r in inv.iter_rows(named=True)}
    for acct, got in ids.items():
        for region in REGIONS:
            tagged = by[got[f"{region}/tagged"]]
            assert (tagged["account_id"], tagged["region"], tagged["resource_class"], tagged["sku"]) == (acct, region, "instance", "m5.large")
            assert json.loads(tagged["tags"])["team"].startswith("team-") and tagged["name"].startswith("web-")
            assert tagged["state"] == "running" and tagged["architecture"] == "x86_64" and tagged["platform"]
            assert by[got[f"{region}/untagged"]]["tags"] is None
            vol = by[got[f"{region}/volume"]]
            assert (vol["resource_class"], vol["sku"], vol["size_gb"], vol["attached_to"]) == ("volume", "gp2", 50.0, None)
            eip = by[got[f"{region}/eip"]]
            assert (eip["resource_class"], eip["attached_to"], eip["state"]) == ("address", None, "unassociated")
            snap = by[f"arn:aws:ec2:{region}::snapshot/{got[f'{region}/snapshot']}"]
            assert snap["source_id"] == got[f"{region}/volume"] and snap["size_gb"] == 50.0
            lg = [r for r in by.values() if r["resource_class"] == "log_group" and r["account_id"] == acct and r["region"] == region]
            assert len(lg) == 1 and lg[0]["retention_days"] is None and lg[0]["resource_id"].startswith("arn:aws:logs:")
    # root volumes of running instances are attached to them
    roots = inv.filter((pl.col("resource_class") == "volume") & pl.col("attached_to").is_not_null())
    assert roots.height == 2 * 2 * 3 and set(roots["attached_to"]) <= set(inv.filter(pl.col("resource_class") == "instance")["resource_id"])


def test_cpu_p95_and_max_from_the_datapoints_put(world, tmp_path):
    members = world.organization(1)
    ids = seed(world, members, regions=["us-east-1"])
    inv = provider(world, tmp_path, regions=["us-east-1"], accounts={"ids": members, "assume_role": "CostguardReadOnly"}).inventory()
    row = inv.filter(pl.col("resource_id") == ids[members[0]]["us-east-1/tagged"]).row(0, named=True)
    values = [float(h % 10) for h in range(1, 49)]
    assert row["cpu_p95"] == pytest.approx(float(np.percentile(values, 95)))
    assert row["cpu_p90"] == pytest.approx(float(np.percentile(values, 90))) and row["cpu_p99"] == pytest.approx(float(np.percentile(values, 99)))
    assert row["cpu_max"] == 9.0 and row["metrics_days"] >= 2
    idle = inv.filter(pl.col("resource_id") == ids[members[0]]["us-east-1/untagged"]).row(0, named=True)
    assert idle["cpu_p95"] is None and idle["metrics_days"] == 0  # running, no datapoints: known to be unmeasured
    assert row["mem_p95"] is None  # no CloudWatch agent on it


def test_memory_where_the_cloudwatch_agent_publishes_it(world, tmp_path):
    members = world.organization(1)
    ids = seed(world, members, regions=["us-east-1"])
    iid = ids[members[0]]["us-east-1/tagged"]
    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    world.client("cloudwatch", "us-east-1", members[0]).put_metric_data(Namespace="CWAgent", MetricData=[
        {"MetricName": "mem_used_percent", "Dimensions": [{"Name": "InstanceId", "Value": iid}, {"Name": "InstanceType", "Value": "m5.large"}],
         "Timestamp": now - timedelta(hours=h), "Value": 30.0 + h % 5, "Unit": "Percent"} for h in range(1, 25)])
    p = provider(world, tmp_path, regions=["us-east-1"], accounts={"ids": members, "assume_role": "R"})
    inv = p.inventory()
    row = inv.filter(pl.col("resource_id") == iid).row(0, named=True)
    assert row["mem_p95"] == pytest.approx(float(np.percentile([30.0 + h % 5 for h in range(1, 25)], 95)))
    assert p.status().api_requests["cloudwatch:GetMetricData"] == 1  # CPU and memory in the same batched request


def test_requests_counted_as_sent_and_every_one_in_the_iam_table(world, tmp_path):
    members = world.organization(1)
    seed(world, members)
    world.proxy.clear()
    p = provider(world, tmp_path)
    p.inventory()
    p.budgets()
    requests, paid = p.status().api_requests, p.status().paid_requests
    assert requests == world.proxy.apis()  # the provider's count is what went over the wire
    assert paid == {"cloudwatch:GetMetricData": requests["cloudwatch:GetMetricData"]}
    assert unknown(requests) == []
    # one shared pass: each describe call once per account and region (2 accounts × 2 regions)
    assert requests["ec2:DescribeInstances"] == 4 and requests["sts:AssumeRole"] == 1
    assert requests["cloudwatch:GetMetricData"] == 2  # batched: one per account and region with running instances


def test_access_denied_for_one_member_leaves_the_others(world, tmp_path):
    members = world.organization(3)
    ids = seed(world, members, regions=["us-east-1"])
    blocked = members[1]
    world.proxy.rules.append(lambda r: denied("query") if r.api == "sts:AssumeRole" and blocked in r.form().get("RoleArn", "") else None)
    p = provider(world, tmp_path, regions=["us-east-1"])
    inv = p.inventory()
    st = p.status()
    assert st.state == ConnectionStatus.PARTIAL
    assert set(inv["account_id"]) == {members[0], members[2]}
    assert ids[members[0]]["us-east-1/tagged"] in set(inv["resource_id"])
    [problem] = st.problems
    assert f"account {blocked}" in problem and "sts:AssumeRole denied" in problem and "fix: allow sts:AssumeRole" in problem


def test_one_api_denied_in_one_account_is_reported_for_that_account_and_api(world, tmp_path):
    members = world.organization(2)
    seed(world, members)
    target = members[0]
    p = provider(world, tmp_path, inventory={"resources": ["instances", "addresses"]})
    world.proxy.rules.append(lambda r: denied("ec2", "UnauthorizedOperation")
                             if r.api == "ec2:DescribeAddresses" and r.account == target else None)
    inv = p.inventory()
    st = p.status()
    assert len(st.problems) == 2  # both regions of that account
    assert all(f"account {target}" in x and "ec2:DescribeAddresses denied (UnauthorizedOperation" in x
               and "fix: allow ec2:DescribeAddresses" in x for x in st.problems)
    addresses = inv.filter(pl.col("resource_class") == "address")
    assert target not in set(addresses["account_id"]) and members[1] in set(addresses["account_id"])
    assert target in set(inv.filter(pl.col("resource_class") == "instance")["account_id"])  # the rest of that account is read


def test_throttling_burst_ends_partial_not_a_crash(world, tmp_path):
    members = world.organization(1)
    seed(world, members, regions=["us-east-1"])
    p = provider(world, tmp_path, regions=["us-east-1"])
    world.proxy.rules.append(lambda r: throttled("json") if r.api == "logs:DescribeLogGroups" else None)
    world.proxy.rules.append(lambda r: (503, {}, b"") if r.api == "ec2:DescribeSnapshots" else None)
    inv = p.inventory()
    st = p.status()
    assert st.state == ConnectionStatus.PARTIAL
    assert any("logs:DescribeLogGroups throttled after every retry" in x for x in st.problems)
    assert any("ec2:DescribeSnapshots unavailable after every retry" in x for x in st.problems)
    assert inv.filter(pl.col("resource_class") == "instance").height == 2
    # adaptive retries: every throttled request was tried max_attempts (2) times
    assert world.proxy.apis()["logs:DescribeLogGroups"] == 2 * 2


def test_assumed_credentials_are_refreshed_before_they_expire(world, tmp_path):
    members = world.organization(1)
    seed(world, members, regions=["us-east-1"])
    # 900 s credentials are inside botocore's 15-minute refresh window from the start, so every
    # use renews them: the first AssumeRole plus at least one refresh
    p = provider(world, tmp_path, regions=["us-east-1"], accounts={"ids": members, "assume_role": "R", "session_duration": 900})
    p.inventory()
    assert world.proxy.apis()["sts:AssumeRole"] >= 2
    assert p.status().problems == []
    name = {r.form().get("RoleSessionName") for r in world.proxy.requests if r.api == "sts:AssumeRole"}
    assert name == {"costguard-aws-org"}


def test_compute_optimizer_recommendations_via_stubber(world, tmp_path):
    members = world.organization(1)
    ids = seed(world, members, regions=["us-east-1"])
    acct, iid = members[0], ids[members[0]]["us-east-1/tagged"]
    p = provider(world, tmp_path, regions=["us-east-1"], accounts={"ids": members, "assume_role": "R"},
                 inventory={"compute_optimizer": True, "resources": ["instances"]})
    co = p.sessions().clients(acct).client("compute-optimizer", "us-east-1")  # moto has no Compute Optimizer
    with Stubber(co) as stub:
        stub.add_response("get_ec2_instance_recommendations", {
            "instanceRecommendations": [{
                "instanceArn": f"arn:aws:ec2:us-east-1:{acct}:instance/{iid}", "accountId": acct,
                "currentInstanceType": "m5.large", "finding": "OVER_PROVISIONED", "findingReasonCodes": ["CPUOverprovisioned"],
                "lookBackPeriodInDays": 14.0,
                "recommendationOptions": [
                    {"instanceType": "t3.medium", "rank": 2, "savingsOpportunity": {"estimatedMonthlySavings": {"currency": "USD", "value": 30.0}}},
                    {"instanceType": "m5.large", "rank": 1, "savingsOpportunity": {"estimatedMonthlySavings": {"currency": "USD", "value": 0.0}}},
                    {"instanceType": "t3.small", "rank": 3},
                ]}],
            "errors": []}, {})
        inv = p.inventory()
        stub.assert_no_pending_responses()
    rec = json.loads(inv.filter(pl.col("resource_id") == iid)["recommendation"].item())
    assert rec == {"source": "compute-optimizer", "finding": "OVER_PROVISIONED", "reasons": ["CPUOverprovisioned"],
                   "current": "m5.large", "sku": "m5.large", "monthly_savings": "0.0", "currency": "USD", "lookback_days": 14.0}
    assert inv.filter(pl.col("resource_id") != iid)["recommendation"].null_count() == inv.height - 1


def test_load_balancers_nat_gateways_databases_and_log_retention(world, tmp_path):
    [acct] = world.organization(1)
    ec2 = world.client("ec2", "us-east-1", acct)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"us-east-1{z}")["Subnet"]["SubnetId"]
               for i, z in enumerate("ab")]
    nat = ec2.create_nat_gateway(SubnetId=subnets[0], AllocationId=ec2.allocate_address(Domain="vpc")["AllocationId"])["NatGateway"]["NatGatewayId"]
    web = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, InstanceType="t3.small", SubnetId=subnets[0])["Instances"][0]["InstanceId"]
    elb = world.client("elbv2", "us-east-1", acct)
    busy = elb.create_load_balancer(Name="busy", Subnets=subnets, Type="application")["LoadBalancers"][0]["LoadBalancerArn"]
    empty = elb.create_load_balancer(Name="empty", Subnets=subnets, Type="application")["LoadBalancers"][0]["LoadBalancerArn"]
    tg = elb.create_target_group(Name="web", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="instance")["TargetGroups"][0]["TargetGroupArn"]
    elb.create_listener(LoadBalancerArn=busy, Protocol="HTTP", Port=80, DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}])
    elb.register_targets(TargetGroupArn=tg, Targets=[{"Id": web}])
    elb.add_tags(ResourceArns=[empty], Tags=[{"Key": "team", "Value": "edge"}])
    rds = world.client("rds", "us-east-1", acct)
    rds.create_db_instance(DBInstanceIdentifier="orders", DBInstanceClass="db.m5.large", Engine="postgres", AllocatedStorage=100,
                           MasterUsername="admin", MasterUserPassword="not-a-real-one-1")
    logs = world.client("logs", "us-east-1", acct)
    logs.create_log_group(logGroupName="/kept")
    logs.put_retention_policy(logGroupName="/kept", retentionInDays=30)
    logs.create_log_group(logGroupName="/forever", tags={"team": "ops"})
    world.client("s3", "us-east-1", acct).create_bucket(Bucket="tagged-bucket")
    world.client("s3", "us-east-1", acct).put_bucket_tagging(Bucket="tagged-bucket", Tagging={"TagSet": [{"Key": "team", "Value": "data"}]})
    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    world.client("cloudwatch", "us-east-1", acct).put_metric_data(Namespace="AWS/NATGateway", MetricData=[
        {"MetricName": name, "Dimensions": [{"Name": "NatGatewayId", "Value": nat}], "Timestamp": now - timedelta(days=d, hours=1),
         "Value": 1000.0, "Unit": "Bytes"} for name in ("BytesOutToDestination", "BytesOutToSource") for d in range(3)])
    p = provider(world, tmp_path, regions=["us-east-1"], accounts={"ids": [acct], "assume_role": "R"})
    inv = p.inventory()
    assert p.status().problems == []
    by = {r["resource_id"]: r for r in inv.iter_rows(named=True)}
    assert by[busy]["healthy_targets"] == 1 and by[busy]["resource_class"] == "load_balancer" and by[busy]["sku"] == "application"
    assert by[empty]["healthy_targets"] == 0 and json.loads(by[empty]["tags"]) == {"team": "edge"}  # tags from the tagging API
    nat_row = by[f"arn:aws:ec2:us-east-1:{acct}:natgateway/{nat}"]
    assert nat_row["resource_class"] == "nat_gateway" and nat_row["bytes_30d"] == 6000.0
    db = by[f"arn:aws:rds:us-east-1:{acct}:db:orders"]
    assert (db["resource_class"], db["sku"], db["size_gb"], db["platform"]) == ("database", "db.m5.large", 100.0, "postgres")
    kept = by[f"arn:aws:logs:us-east-1:{acct}:log-group:/kept"]
    forever = by[f"arn:aws:logs:us-east-1:{acct}:log-group:/forever"]
    assert kept["retention_days"] == 30 and forever["retention_days"] is None and json.loads(forever["tags"]) == {"team": "ops"}
    bucket = by["tagged-bucket"]
    assert bucket["resource_class"] == "bucket" and json.loads(bucket["tags"]) == {"team": "data"}
    assert len(by) == inv.height  # each resource once, whichever calls saw it


def test_price_catalogue_refresh_via_stubber(world, tmp_path):
    from costguard.providers.aws import pricing

    [acct] = world.organization(1)
    ec2 = world.client("ec2", "us-east-1", acct)
    ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, InstanceType="m5.large")
    p = provider(world, tmp_path, regions=["us-east-1"], accounts={"ids": [acct], "assume_role": "R"},
                 inventory={"resources": ["instances"]}, prices={"refresh": True, "out": "prices/ec2.csv"})
    product = {"product": {"attributes": {"instanceType": "m5.large", "instanceFamily": "General purpose", "vcpu": "2",
                                          "memory": "8 GiB", "processorArchitecture": "64-bit", "regionCode": "us-east-1",
                                          "physicalProcessor": "Intel Xeon Platinum 8175", "currentGeneration": "Yes"}},
               "terms": {"OnDemand": {"X.Y": {"priceDimensions": {"X.Y.Z": {"unit": "Hrs", "pricePerUnit": {"USD": "0.0990000000"}}}}}}}
    with Stubber(p.base().client("pricing")) as stub:  # moto has no Pricing API
        stub.add_response("get_products", {"PriceList": [json.dumps(product)], "FormatVersion": "aws_v1"}, {
            "ServiceCode": "AmazonEC2", "FormatVersion": "aws_v1", "MaxResults": 100, "Filters": [
                {"Type": "ANY_OF", "Field": "instanceType", "Value": "m5.large"},
                {"Type": "TERM_MATCH", "Field": "regionCode", "Value": "us-east-1"},
                {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": "Linux"},
                {"Type": "TERM_MATCH", "Field": "tenancy", "Value": "Shared"},
                {"Type": "TERM_MATCH", "Field": "preInstalledSw", "Value": "NA"},
                {"Type": "TERM_MATCH", "Field": "capacitystatus", "Value": "Used"}]})
        p.inventory()
        stub.assert_no_pending_responses()
    cat = pl.read_csv(tmp_path / "prices" / "ec2.csv", infer_schema=False)
    assert list(cat.columns) == list(pricing.COLUMNS)
    [row] = cat.to_dicts()
    assert (row["provider"], row["resource_class"], row["sku"], row["region"], row["unit"], row["price"], row["currency"]) == (
        "AWS", "instance", "m5.large", "us-east-1", "hour", "0.0990000000", "USD")
    assert (row["vcpu"], row["memory_gib"], row["architecture"], row["current_generation"]) == ("2", "8", "x86_64", "true")
    # the file is a user price catalogue: the rules read it on top of the bundled one
    from costguard.catalog import load_catalog

    price = load_catalog([tmp_path / "prices" / "ec2.csv"]).price("AWS", "instance", "m5.large", "us-east-1")
    assert price is not None and price.amount == Decimal("0.099") and "Pricing API" in price.source

def test_enabled_regions_and_the_endpoint_from_aws_endpoint_url(world, tmp_path, monkeypatch):
    world.client("ec2", "ap-southeast-2").run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, InstanceType="t3.nano")
    monkeypatch.setenv("AWS_ENDPOINT_URL", world.endpoint)  # no endpoint_url in the config: botocore reads the variable
    cfg = AwsConfig.model_validate({"name": "solo", "type": "aws", "inventory": {"resources": ["instances"], "memory": False}})
    p = cfg.build(BuildContext(base_dir=tmp_path, clock=lambda: datetime.now(timezone.utc)))
    inv = p.inventory()
    apis = world.proxy.apis()
    assert apis["ec2:DescribeRegions"] == 1 and apis["ec2:DescribeInstances"] > 10  # every enabled region, asked once
    assert inv["region"].to_list() == ["ap-southeast-2"] and inv["account_id"].to_list() == [MANAGEMENT]
    assert sum(apis.values()) == sum(p.status().api_requests.values())


def test_get_metric_data_batches_500_queries_a_request(world):
    from costguard.providers.aws.utilisation import MetricQuery, get_metric_data

    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    cw = world.client("cloudwatch")
    ids = [f"i-{n:017x}" for n in range(501)]
    for b in range(0, len(ids), 500):
        cw.put_metric_data(Namespace="AWS/EC2", MetricData=[
            {"MetricName": "CPUUtilization", "Dimensions": [{"Name": "InstanceId", "Value": iid}],
             "Timestamp": now - timedelta(hours=2), "Value": float(n % 100), "Unit": "Percent"} for n, iid in enumerate(ids[b:b + 500], b)])
    queries = [MetricQuery((iid, "cpu"), "AWS/EC2", "CPUUtilization", (("InstanceId", iid),), "Maximum", 86400) for iid in ids]
    proxied = boto3.client("cloudwatch", region_name="us-east-1", endpoint_url=world.endpoint)
    got = get_metric_data(proxied, queries, now - timedelta(days=1), now)
    assert world.proxy.apis() == {"cloudwatch:GetMetricData": 2}  # 501 queries: 500 + 1
    assert {k[0]: s.values for k, s in got.items()} == {iid: [float(n % 100)] for n, iid in enumerate(ids)}
