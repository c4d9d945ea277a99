"""One inventory pass per run, shared by every rule: accounts × regions → ``INVENTORY_SCHEMA`` rows.

Per account and region (in parallel, ``max_workers``), each enabled resource group is one
describe call (paged): instances, EBS volumes, Elastic IPs, EBS snapshots (owned by the account),
load balancers (with their target groups' health), NAT gateways, RDS instances, log groups; and
the Resource Groups Tagging API once for the tags of every taggable resource (which also adds
tagged resources of other services, e.g. S3 buckets). Utilisation comes from CloudWatch in as few
GetMetricData requests as the batching allows (500 queries each): CPU of running instances and
RDS instances, memory where the CloudWatch agent publishes ``mem_used_percent``, NAT bytes.

A request that fails (denied, throttled after every retry) is recorded as a problem naming the
account, region and API, and that resource group is left out for that account and region; the
rest of the pass goes on. ``resource_id`` is what the bill's ResourceId says for the resource:
instance, volume and Elastic IP allocation ids; ARNs for snapshots, NAT gateways, load
balancers, RDS instances and log groups; the bucket name for S3.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import polars as pl

from costguard import focus
from costguard.inventory import INVENTORY_SCHEMA
from costguard.logs import get_logger
from costguard.providers.aws.accounts import Account, AccountError, Sessions
from costguard.providers.aws.clients import Clients, Problems, is_aws_error
from costguard.providers.aws.config import InventoryConfig
from costguard.providers.aws.utilisation import MetricError, MetricQuery, get_metric_data, summarise, total

log = get_logger("costguard.providers.aws")

NAT_DAYS = 30
ARN_CLASSES = {("s3", ""): "bucket", ("ec2", "instance"): "instance", ("ec2", "volume"): "volume",
               ("ec2", "snapshot"): "snapshot", ("ec2", "natgateway"): "nat_gateway", ("ec2", "elastic-ip"): "address",
               ("elasticloadbalancing", "loadbalancer"): "load_balancer", ("rds", "db"): "database",
               ("logs", "log-group"): "log_group"}


def _tags(items: Iterable[dict[str, Any]] | None) -> dict[str, str]:
    return {str(t.get("Key")): str(t.get("Value", "")) for t in items or [] if t.get("Key") is not None}


def _ts(v: Any) -> datetime | None:
    if isinstance(v, datetime):
        return v.astimezone(timezone.utc) if v.tzinfo else v.replace(tzinfo=timezone.utc)
    if isinstance(v, (int, float)):  # epoch milliseconds (CloudWatch Logs)
        return datetime.fromtimestamp(v / 1000, tz=timezone.utc)
    return None


def parse_arn(arn: str) -> tuple[str, str, str, str, str]:
    """(service, region, account, resource type, resource id) of an ARN."""
    parts = arn.split(":", 5)
    if len(parts) < 6:
        return "", "", "", "", arn
    service, region, account, resource = parts[2], parts[3], parts[4], parts[5]
    if service == "s3":
        return service, region, account, "", resource
    for sep in ("/", ":"):
        if sep in resource:
            rtype, _, rid = resource.partition(sep)
            return service, region, account, rtype, rid
    return service, region, account, "", resource


@dataclass
class Row:
    """One resource as the inventory contract wants it (unset columns stay null)."""

    values: dict[str, Any]
    arn: str | None = None


class InventoryPass:
    """Reads the inventory of every account × region once per run."""

    def __init__(self, *, provider: str, cfg: InventoryConfig, sessions: Sessions, accounts: list[Account],
                 regions: Callable[[Clients], list[str]], problems: Problems, clock: Callable[[], datetime],
                 max_workers: int) -> None:
        self.provider = provider
        self.cfg = cfg
        self.sessions = sessions
        self.accounts = accounts
        self.regions = regions
        self.problems = problems
        self.clock = clock
        self.max_workers = max_workers

    def collect(self) -> pl.DataFrame:
        tasks: list[tuple[Account, Clients, str]] = []
        for a in self.accounts:
            try:
                clients = self.sessions.clients(a.id)
            except AccountError as e:
                self.problems.add(f"account {a.id}", e.api, e.cause, role="costguard's role (and the member role's trust policy)")
                continue
            try:
                regions = self.regions(clients)
            except Exception as e:  # noqa: BLE001 - only botocore errors are expected here
                if not is_aws_error(e):
                    raise
                self.problems.add(f"account {a.id}", "ec2:DescribeRegions", e, role="the role costguard uses")
                continue
            tasks += [(a, clients, r) for r in regions]
        rows: list[dict[str, Any]] = []
        with ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="aws-inventory") as pool:
            for got in pool.map(lambda t: self._one(*t), tasks):
                rows.extend(got)
        df = pl.DataFrame(rows, schema=INVENTORY_SCHEMA, orient="row") if rows else pl.DataFrame(schema=INVENTORY_SCHEMA)
        log.info("inventory_collected", source=self.provider, resources=df.height, account_regions=len(tasks))
        return df

    # ---- one account and region -----------------------------------------------------------------
    def _one(self, account: Account, clients: Clients, region: str) -> list[dict[str, Any]]:
        where = f"account {account.id} {region}"
        got: dict[str, Row] = {}
        by_arn: dict[str, str] = {}

        def call(api: str, fn: Callable[[], list[Row]]) -> None:
            try:
                rows = fn()
            except Exception as e:  # noqa: BLE001 - botocore errors become problems, others surface
                if not is_aws_error(e):
                    raise
                self.problems.add(where, api, e)
                return
            for r in rows:
                got[r.values["resource_id"]] = r
                if r.arn:
                    by_arn[r.arn] = r.values["resource_id"]

        base = {"provider": "AWS", "account_id": account.id, "region": region}
        groups = set(self.cfg.resources)
        ec2 = clients.client("ec2", region)
        if "instances" in groups:
            call("ec2:DescribeInstances", lambda: self._instances(ec2, base))
        if "volumes" in groups:
            call("ec2:DescribeVolumes", lambda: self._volumes(ec2, base))
        if "addresses" in groups:
            call("ec2:DescribeAddresses", lambda: self._addresses(ec2, base))
        if "snapshots" in groups:
            call("ec2:DescribeSnapshots", lambda: self._snapshots(ec2, base))
        if "nat_gateways" in groups:
            call("ec2:DescribeNatGateways", lambda: self._nat_gateways(ec2, base))
        if "load_balancers" in groups:
            call("elbv2:DescribeLoadBalancers", lambda: self._load_balancers(clients.client("elbv2", region), base, where))
        if "databases" in groups:
            call("rds:DescribeDBInstances", lambda: self._databases(clients.client("rds", region), base))
        if "log_groups" in groups:
            call("logs:DescribeLogGroups", lambda: self._log_groups(clients.client("logs", region), base))
        if "tags" in groups:
            try:
                self._tagging(clients.client("resourcegroupstaggingapi", region), base, got, by_arn)
            except Exception as e:  # noqa: BLE001
                if not is_aws_error(e):
                    raise
                self.problems.add(where, "resourcegroupstaggingapi:GetResources", e)
        self._utilisation(clients, region, where, got)
        if self.cfg.compute_optimizer and any(r.values.get("resource_class") == "instance" for r in got.values()):
            self._recommendations(clients, region, where, got)
        out = []
        for r in got.values():
            v = r.values
            tags = v.pop("_tags", None)
            if tags is not None:
                v["tags"] = json.dumps(tags, ensure_ascii=False, sort_keys=True) if tags else None
                v["x_tags"] = focus.normalize_tags(v["tags"]) if v["tags"] else None
                if not v.get("name"):
                    v["name"] = tags.get("Name")
            out.append(v)
        return out

    # ---- resource groups --------------------------------------------------------------------------
    @staticmethod
    def _pages(client: Any, op: str, key: str, **kw: Any) -> Iterable[dict[str, Any]]:
        for page in client.get_paginator(op).paginate(**kw):
            yield from page.get(key) or []

    def _instances(self, ec2: Any, base: dict[str, Any]) -> list[Row]:
        out = []
        for res in self._pages(ec2, "describe_instances", "Reservations"):
            for i in res.get("Instances") or []:
                state = (i.get("State") or {}).get("Name")
                if state == "terminated":
                    continue
                out.append(Row({**base, "resource_id": i["InstanceId"], "resource_class": "instance",
                                "resource_type": "AWS::EC2::Instance", "_tags": _tags(i.get("Tags")),
                                "state": state, "sku": i.get("InstanceType"), "architecture": i.get("Architecture"),
                                "created_at": _ts(i.get("LaunchTime")),
                                "platform": i.get("PlatformDetails") or ("Windows" if i.get("Platform") == "windows" else "Linux/UNIX")},
                               arn=None))
        return out

    def _volumes(self, ec2: Any, base: dict[str, Any]) -> list[Row]:
        out = []
        for v in self._pages(ec2, "describe_volumes", "Volumes"):
            attached = [a.get("InstanceId") for a in v.get("Attachments") or [] if a.get("State") in ("attached", "attaching") and a.get("InstanceId")]
            out.append(Row({**base, "resource_id": v["VolumeId"], "resource_class": "volume", "resource_type": "AWS::EC2::Volume",
                            "_tags": _tags(v.get("Tags")), "state": v.get("State"), "sku": v.get("VolumeType"),
                            "created_at": _ts(v.get("CreateTime")), "size_gb": float(v["Size"]) if v.get("Size") is not None else None,
                            "iops": v.get("Iops"), "attached_to": attached[0] if attached else None}))
        return out

    def _addresses(self, ec2: Any, base: dict[str, Any]) -> list[Row]:
        out = []
        for a in ec2.describe_addresses().get("Addresses") or []:
            associated = bool(a.get("AssociationId"))  # moto answers "" for InstanceId when unassociated
            target = (a.get("InstanceId") or a.get("NetworkInterfaceId")) if associated else None
            rid = a.get("AllocationId") or a.get("PublicIp")
            tags = _tags(a.get("Tags"))
            out.append(Row({**base, "resource_id": rid, "resource_class": "address", "resource_type": "AWS::EC2::EIP",
                            "_tags": tags, "name": tags.get("Name") or a.get("PublicIp"),
                            "state": "associated" if associated else "unassociated", "attached_to": target or None}))
        return out

    def _snapshots(self, ec2: Any, base: dict[str, Any]) -> list[Row]:
        out = []
        for s in self._pages(ec2, "describe_snapshots", "Snapshots", OwnerIds=["self"]):
            arn = f"arn:aws:ec2:{base['region']}::snapshot/{s['SnapshotId']}"
            vol = s.get("VolumeId")
            out.append(Row({**base, "resource_id": arn, "resource_class": "snapshot", "resource_type": "AWS::EC2::Snapshot",
                            "_tags": _tags(s.get("Tags")), "name": s["SnapshotId"], "state": s.get("State"),
                            "created_at": _ts(s.get("StartTime")),
                            "size_gb": float(s["VolumeSize"]) if s.get("VolumeSize") is not None else None,
                            "source_id": None if not vol or vol == "vol-ffffffff" else vol}, arn=arn))
        return out

    def _nat_gateways(self, ec2: Any, base: dict[str, Any]) -> list[Row]:
        out = []
        for n in self._pages(ec2, "describe_nat_gateways", "NatGateways"):
            if n.get("State") in ("deleted", "deleting"):
                continue
            arn = f"arn:aws:ec2:{base['region']}:{base['account_id']}:natgateway/{n['NatGatewayId']}"
            out.append(Row({**base, "resource_id": arn, "resource_class": "nat_gateway", "resource_type": "AWS::EC2::NatGateway",
                            "_tags": _tags(n.get("Tags")), "name": n["NatGatewayId"], "state": n.get("State"),
                            "sku": n.get("ConnectivityType"), "created_at": _ts(n.get("CreateTime"))}, arn=arn))
        return out

    def _load_balancers(self, elb: Any, base: dict[str, Any], where: str) -> list[Row]:
        lbs = list(self._pages(elb, "describe_load_balancers", "LoadBalancers"))
        if not lbs:
            return []
        healthy: dict[str, int] = {lb["LoadBalancerArn"]: 0 for lb in lbs}
        try:
            for tg in self._pages(elb, "describe_target_groups", "TargetGroups"):
                if not tg.get("LoadBalancerArns"):
                    continue
                try:
                    desc = elb.describe_target_health(TargetGroupArn=tg["TargetGroupArn"]).get("TargetHealthDescriptions") or []
                except Exception as e:  # noqa: BLE001
                    if not is_aws_error(e):
                        raise
                    self.problems.add(where, "elbv2:DescribeTargetHealth", e)
                    for arn in tg["LoadBalancerArns"]:
                        healthy[arn] = None  # type: ignore[assignment]  # unknown, not zero
                    continue
                n = sum(1 for d in desc if (d.get("TargetHealth") or {}).get("State") == "healthy")
                for arn in tg["LoadBalancerArns"]:
                    if healthy.get(arn) is not None:
                        healthy[arn] = healthy.get(arn, 0) + n
        except Exception as e:  # noqa: BLE001
            if not is_aws_error(e):
                raise
            self.problems.add(where, "elbv2:DescribeTargetGroups", e)
            healthy = {k: None for k in healthy}  # type: ignore[misc]
        out = []
        for lb in lbs:
            arn = lb["LoadBalancerArn"]
            out.append(Row({**base, "resource_id": arn, "resource_class": "load_balancer",
                            "resource_type": "AWS::ElasticLoadBalancingV2::LoadBalancer", "name": lb.get("LoadBalancerName"),
                            "state": (lb.get("State") or {}).get("Code"), "sku": lb.get("Type"),
                            "created_at": _ts(lb.get("CreatedTime")), "healthy_targets": healthy.get(arn)}, arn=arn))
        return out

    def _databases(self, rds: Any, base: dict[str, Any]) -> list[Row]:
        out = []
        for d in self._pages(rds, "describe_db_instances", "DBInstances"):
            arn = d.get("DBInstanceArn") or f"arn:aws:rds:{base['region']}:{base['account_id']}:db:{d['DBInstanceIdentifier']}"
            out.append(Row({**base, "resource_id": arn, "resource_class": "database", "resource_type": "AWS::RDS::DBInstance",
                            "_tags": _tags(d.get("TagList")), "name": d["DBInstanceIdentifier"], "state": d.get("DBInstanceStatus"),
                            "sku": d.get("DBInstanceClass"), "created_at": _ts(d.get("InstanceCreateTime")),
                            "size_gb": float(d["AllocatedStorage"]) if d.get("AllocatedStorage") is not None else None,
                            "iops": d.get("Iops"), "platform": d.get("Engine")}, arn=arn))
        return out

    def _log_groups(self, logs: Any, base: dict[str, Any]) -> list[Row]:
        out = []
        for g in self._pages(logs, "describe_log_groups", "logGroups"):
            arn = str(g.get("arn") or f"arn:aws:logs:{base['region']}:{base['account_id']}:log-group:{g['logGroupName']}")
            arn = arn[:-2] if arn.endswith(":*") else arn
            stored = g.get("storedBytes")
            out.append(Row({**base, "resource_id": arn, "resource_class": "log_group", "resource_type": "AWS::Logs::LogGroup",
                            "name": g["logGroupName"], "created_at": _ts(g.get("creationTime")),
                            "size_gb": round(float(stored) / 1e9, 6) if stored is not None else None,
                            "retention_days": g.get("retentionInDays")}, arn=arn))
        return out

    def _tagging(self, tagging: Any, base: dict[str, Any], got: dict[str, Row], by_arn: dict[str, str]) -> None:
        """Tags of every tagged resource: merged into described ones, other resources added."""
        for m in self._pages(tagging, "get_resources", "ResourceTagMappingList", ResourcesPerPage=100):
            arn = m["ResourceARN"]
            tags = _tags(m.get("Tags"))
            service, _region, _acct, rtype, rid = parse_arn(arn)
            key = by_arn.get(arn) or (rid if (service, rtype) in (("ec2", "instance"), ("ec2", "volume"), ("ec2", "elastic-ip")) else None)
            if key is not None and key in got:
                row = got[key].values
                merged = dict(row.get("_tags") or {})
                merged.update(tags)
                row["_tags"] = merged
                continue
            if (service, rtype) in (("ec2", "instance"), ("ec2", "volume"), ("ec2", "snapshot"), ("ec2", "natgateway"),
                                    ("ec2", "elastic-ip"), ("rds", "db"), ("logs", "log-group"),
                                    ("elasticloadbalancing", "loadbalancer")) and service_described(service, rtype, self.cfg.resources):
                continue  # described above and gone since (or outside the described filters): not re-added
            cls = ARN_CLASSES.get((service, rtype))
            rid_out = rid if service == "s3" else arn
            got[rid_out] = Row({**base, "resource_id": rid_out, "resource_class": cls,
                                "resource_type": f"{service}:{rtype}" if rtype else service, "_tags": tags,
                                "name": rid if service == "s3" else None}, arn=arn)

    # ---- utilisation ------------------------------------------------------------------------------
    def _utilisation(self, clients: Clients, region: str, where: str, got: dict[str, Row]) -> None:
        now = self.clock().astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
        hourly: list[MetricQuery] = []
        daily: list[MetricQuery] = []
        instances = {k: r for k, r in got.items() if r.values.get("resource_class") == "instance" and r.values.get("state") == "running"}
        for iid in instances:
            hourly.append(MetricQuery((iid, "cpu"), "AWS/EC2", "CPUUtilization", (("InstanceId", iid),)))
        for k, r in got.items():
            v = r.values
            if v.get("resource_class") == "database" and v.get("state") == "available":
                hourly.append(MetricQuery((k, "cpu"), "AWS/RDS", "CPUUtilization", (("DBInstanceIdentifier", v["name"]),)))
            if v.get("resource_class") == "nat_gateway" and v.get("state") == "available":
                nid = v["name"]
                daily.append(MetricQuery((k, "nat_out_dst"), "AWS/NATGateway", "BytesOutToDestination", (("NatGatewayId", nid),), "Sum", 86400))
                daily.append(MetricQuery((k, "nat_out_src"), "AWS/NATGateway", "BytesOutToSource", (("NatGatewayId", nid),), "Sum", 86400))
        if not hourly and not daily:
            return
        cw = clients.client("cloudwatch", region)
        if instances and self.cfg.memory:
            try:
                for m in self._pages(cw, "list_metrics", "Metrics", Namespace="CWAgent", MetricName="mem_used_percent"):
                    dims = tuple((d["Name"], d["Value"]) for d in m.get("Dimensions") or [])
                    iid = dict(dims).get("InstanceId")
                    if iid in instances:
                        hourly.append(MetricQuery((iid, "mem"), "CWAgent", "mem_used_percent", dims))
            except Exception as e:  # noqa: BLE001
                if not is_aws_error(e):
                    raise
                self.problems.add(where, "cloudwatch:ListMetrics", e)
        series = {}
        for queries, days in ((hourly, self.cfg.lookback_days), (daily, NAT_DAYS)):
            if not queries:
                continue
            try:
                series.update(get_metric_data(cw, queries, now - timedelta(days=days), now))
            except MetricError as e:
                self.problems.note(f"{where}: cloudwatch:GetMetricData: {e}")
            except Exception as e:  # noqa: BLE001
                if not is_aws_error(e):
                    raise
                self.problems.add(where, "cloudwatch:GetMetricData", e)
                return
        for k, r in got.items():
            v = r.values
            measured = (k in instances) or (v.get("resource_class") == "database" and v.get("state") == "available")
            if measured:  # asked for: no datapoints means 0 days measured, not unknown
                cpu = summarise(series.get((k, "cpu")))
                v.update(cpu_p90=cpu.p90, cpu_p95=cpu.p95, cpu_p99=cpu.p99, cpu_max=cpu.max, metrics_days=cpu.days or 0)
            if (k, "mem") in series:
                v["mem_p95"] = summarise(series[(k, "mem")]).p95
            if v.get("resource_class") == "nat_gateway" and v.get("state") == "available":
                v["bytes_30d"] = total(series.get((k, "nat_out_dst")), series.get((k, "nat_out_src"))) or 0.0

    def _recommendations(self, clients: Clients, region: str, where: str, got: dict[str, Row]) -> None:
        co = clients.client("compute-optimizer", region)
        params: dict[str, Any] = {}
        try:
            while True:
                page = co.get_ec2_instance_recommendations(**params)
                for rec in page.get("instanceRecommendations") or []:
                    iid = parse_arn(rec.get("instanceArn", ""))[4]
                    if iid not in got:
                        continue
                    options = sorted(rec.get("recommendationOptions") or [], key=lambda o: o.get("rank", 99))
                    best = options[0] if options else {}
                    saving = ((best.get("savingsOpportunity") or {}).get("estimatedMonthlySavings") or {})
                    got[iid].values["recommendation"] = json.dumps({
                        "source": "compute-optimizer", "finding": rec.get("finding"),
                        "reasons": rec.get("findingReasonCodes") or [], "current": rec.get("currentInstanceType"),
                        "sku": best.get("instanceType"), "monthly_savings": str(saving.get("value")) if saving.get("value") is not None else None,
                        "currency": saving.get("currency"),
                        "lookback_days": rec.get("lookBackPeriodInDays"),
                    }, sort_keys=True)
                token = page.get("nextToken")
                if not token:
                    break
                params["nextToken"] = token
        except Exception as e:  # noqa: BLE001
            if not is_aws_error(e):
                raise
            self.problems.add(where, "compute-optimizer:GetEC2InstanceRecommendations", e)


def service_described(service: str, rtype: str, resources: list[str]) -> bool:
    """True when the describe call for this ARN type is enabled (its rows come from there)."""
    group = {("ec2", "instance"): "instances", ("ec2", "volume"): "volumes", ("ec2", "snapshot"): "snapshots",
             ("ec2", "natgateway"): "nat_gateways", ("ec2", "elastic-ip"): "addresses", ("rds", "db"): "databases",
             ("logs", "log-group"): "log_groups", ("elasticloadbalancing", "loadbalancer"): "load_balancers"}.get((service, rtype))
    return group in resources if group else False
