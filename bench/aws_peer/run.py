"""costguard vs Cloud Custodian (c7n-org) on the same moto organisation: requests, wall time, findings.

    python bench/aws_peer/run.py --c7n-org /path/to/venv/bin/c7n-org [--out bench/results/aws_peer.json]

The scenario (issue 11): an organisation of 2 member accounts × 2 regions (us-east-1, eu-west-1),
each region holding a tagged busy instance, an untagged idle one (CPU 2 %), their root volumes, an
unattached gp2 volume and an unassociated Elastic IP; 14 days of hourly CPU datapoints; and a
FOCUS export of the last 30 days in the management account's S3 that bills every one of those
resources at list price (so a finding can carry its cost).

Six checks: two missing-tag (instances and volumes without ``team``), unattached EBS, gp2 → gp3,
unassociated EIP, low CPU. Cloud Custodian answers them with ``policies.yml`` through ``c7n-org``
(installed in a venv of its own: it is never a costguard dependency). costguard answers them
with its ``tag-coverage`` and ``idle`` rules (``rules/``) over one inventory pass; every finding is
priced from the bill (or, for a resource the bill does not show yet, the price catalogue).

Both tools run as child processes against moto's server through a recording proxy on 127.0.0.1
(``tests/aws_env.py``), which counts every request each of them sends.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import boto3
import polars as pl

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the recording proxy the tests use

from aws_env import CREDS, Proxy  # noqa: E402

REGIONS = ("us-east-1", "eu-west-1")
ROLE = "CostguardReadOnly"
PRICE_H = {"m5.large": Decimal("0.096"), "m5.xlarge": Decimal("0.192")}
GB_MONTH = Decimal("0.10")  # gp2, us-east-1 list price
EIP_H = Decimal("0.005")


def client(ep: str, service: str, region: str = "us-east-1", account: str | None = None):
    if account is None:
        return boto3.client(service, region_name=region, endpoint_url=ep)
    c = boto3.client("sts", region_name="us-east-1", endpoint_url=ep).assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/setup", RoleSessionName="bench-setup")["Credentials"]
    return boto3.client(service, region_name=region, endpoint_url=ep, aws_access_key_id=c["AccessKeyId"],
                        aws_secret_access_key=c["SecretAccessKey"], aws_session_token=c["SessionToken"])


def build(ep: str, now: datetime, extra: int = 0) -> dict:
    org = client(ep, "organizations")
    org.create_organization(FeatureSet="ALL")
    members = [org.create_account(AccountName=f"member-{i}", Email=f"m{i}@example.com")["CreateAccountStatus"]["AccountId"] for i in (1, 2)]
    resources = []  # (account, region, resource_id, kind, size, tags)
    hour = now.replace(minute=0, second=0, microsecond=0)
    for acct in members:
        for region in REGIONS:
            ec2 = client(ep, "ec2", region, acct)
            team = [{"Key": "team", "Value": "payments"}, {"Key": "application", "Value": "shop"}]
            busy = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, InstanceType="m5.large",
                                     TagSpecifications=[{"ResourceType": "instance", "Tags": team},
                                                        {"ResourceType": "volume", "Tags": team}])["Instances"][0]
            idle = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, InstanceType="m5.xlarge")["Instances"][0]
            vol = ec2.create_volume(Size=100, AvailabilityZone=f"{region}a", VolumeType="gp2",
                                    TagSpecifications=[{"ResourceType": "volume", "Tags": team}])["VolumeId"]
            eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
            more = [i["InstanceId"] for i in ec2.run_instances(ImageId="ami-12345678", MinCount=extra, MaxCount=extra,
                                                                InstanceType="m5.large")["Instances"]] if extra else []
            roots = {a["InstanceId"]: v for v in ec2.describe_volumes()["Volumes"] for a in v["Attachments"]}
            resources += [(acct, region, busy["InstanceId"], "m5.large", 0, {t["Key"]: t["Value"] for t in team}),
                          (acct, region, idle["InstanceId"], "m5.xlarge", 0, {}),
                          (acct, region, roots[busy["InstanceId"]]["VolumeId"], "gp2", roots[busy["InstanceId"]]["Size"], {t["Key"]: t["Value"] for t in team}),
                          (acct, region, roots[idle["InstanceId"]]["VolumeId"], "gp2", roots[idle["InstanceId"]]["Size"], {}),
                          (acct, region, vol, "gp2", 100, {t["Key"]: t["Value"] for t in team}),
                          (acct, region, eip, "eip", 0, {})]
            roots = {a["InstanceId"]: v for v in ec2.describe_volumes()["Volumes"] for a in v["Attachments"]}
            resources += [(acct, region, iid, "m5.large", 0, {}) for iid in more]
            resources += [(acct, region, roots[iid]["VolumeId"], "gp2", roots[iid]["Size"], {}) for iid in more]
            cw = client(ep, "cloudwatch", region, acct)
            points = [{"MetricName": "CPUUtilization", "Dimensions": [{"Name": "InstanceId", "Value": iid}],
                       "Timestamp": hour - timedelta(hours=h), "Value": v, "Unit": "Percent"}
                      for iid, v in ((busy["InstanceId"], 45.0), (idle["InstanceId"], 2.0), *((m, 3.0) for m in more))
                      for h in range(1, 14 * 24 + 1)]
            for i in range(0, len(points), 1000):
                cw.put_metric_data(Namespace="AWS/EC2", MetricData=points[i:i + 1000])
    bill = []
    first = (now.date().replace(day=1) - timedelta(days=1)).replace(day=1)  # whole billing periods, as AWS delivers them
    for day in range((now.date() - first).days):
        d = first + timedelta(days=day)
        for acct, region, rid, kind, size, tags in resources:
            cost = (PRICE_H[kind] * 24 if kind in PRICE_H else EIP_H * 24 if kind == "eip" else GB_MONTH * size / 30)
            bill.append({"BilledCost": float(cost), "EffectiveCost": float(cost), "ListCost": float(cost), "ContractedCost": float(cost),
                         "BillingAccountId": "123456789012", "BillingCurrency": "USD", "SubAccountId": acct, "RegionId": region,
                         "ResourceId": rid, "ServiceName": "Amazon Elastic Compute Cloud", "ServiceCategory": "Compute",
                         "ChargeCategory": "Usage", "ChargeClass": None, "ChargeDescription": kind, "ChargeFrequency": "Usage-Based",
                         "ChargePeriodStart": datetime(d.year, d.month, d.day, tzinfo=timezone.utc),
                         "ChargePeriodEnd": datetime(d.year, d.month, d.day, tzinfo=timezone.utc) + timedelta(days=1),
                         "BillingPeriodStart": datetime(d.year, d.month, 1, tzinfo=timezone.utc),
                         "BillingPeriodEnd": datetime(d.year + (d.month == 12), d.month % 12 + 1, 1, tzinfo=timezone.utc),
                         "InvoiceIssuerName": "Amazon Web Services, Inc.", "PublisherName": "Amazon Web Services, Inc.",
                         "ProviderName": "AWS", "PricingQuantity": None, "PricingUnit": None, "BillingAccountName": None,
                         "Tags": json.dumps(tags) if tags else None})
    s3 = client(ep, "s3")
    s3.create_bucket(Bucket="billing")
    df = pl.DataFrame(bill)
    for (period,), part in df.group_by(pl.col("ChargePeriodStart").dt.strftime("%Y-%m")):
        key = f"focus/costguard/data/BILLING_PERIOD={period}/costguard-00001.snappy.parquet"
        path = Path(tempfile.mkstemp(suffix=".parquet")[1])
        part.write_parquet(path)
        s3.put_object(Bucket="billing", Key=key, Body=path.read_bytes())
        path.unlink()
        s3.put_object(Bucket="billing", Key=f"focus/costguard/metadata/BILLING_PERIOD={period}/costguard-Manifest.json",
                      Body=json.dumps({"executionId": "e1", "dataFiles": [f"s3://billing/{key}"]}).encode())
    return {"members": members, "resources": resources}


CPU: dict[str, float] = {}


def run_timed(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    """Wall time of the child; its CPU time (user + sys, with its own children) lands in CPU["last"].
    The emulator runs in this process, so the CPU time is the tool's own work only."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU["last"] = round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 2)
    return wall, p


def c7n(bin_: str, proxy: Proxy, members: list[str], work: Path, env: dict[str, str]) -> dict:
    accounts = {"accounts": [{"account_id": a, "name": f"member-{i + 1}", "role": f"arn:aws:iam::{a}:role/{ROLE}",
                              "regions": list(REGIONS)} for i, a in enumerate(members)]}
    (work / "accounts.yml").write_text(json.dumps(accounts))
    out = work / "c7n-out"
    proxy.clear()
    wall, p = run_timed([bin_, "run", "-c", "accounts.yml", "-u", str(HERE / "policies.yml"), "-s", str(out)], env, work)
    if p.returncode != 0:
        raise SystemExit(f"c7n-org failed ({p.returncode}):\n{p.stderr[-3000:]}")
    found: dict[str, int] = {}
    for f in out.rglob("resources.json"):
        policy = f.parent.name
        found[policy] = found.get(policy, 0) + len(json.loads(f.read_text()))
    return {"tool": "c7n-org", "wall_seconds": round(wall, 2), "cpu_seconds": CPU["last"], "moto_seconds": round(proxy.upstream_seconds(), 2),
            "requests": sum(proxy.apis().values()),
            "by_api": dict(sorted(proxy.apis().items())), "findings": dict(sorted(found.items())),
            "findings_total": sum(found.values()), "priced": 0}


def costguard(proxy: Proxy, members: list[str], work: Path, env: dict[str, str], *, full: bool) -> list[dict]:
    state = work / ("cg-full" if full else "cg")
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir()
    shutil.copytree(HERE / "rules", state / "rules")
    inventory = "{memory: false}" if full else "{resources: [instances, volumes, addresses], memory: false}"
    (state / "costguard.yaml").write_text(f"""
state: {{url: "sqlite:///state.db", lake: lake}}
providers:
  - name: aws-org
    type: aws
    endpoint_url: "{proxy.endpoint}"
    regions: [{", ".join(REGIONS)}]
    accounts: {{ids: [{", ".join(repr(m) for m in members)}], assume_role: {ROLE}}}
    costs: {{source: focus_export, uri: "s3://billing/focus/costguard/"}}
    inventory: {inventory}
    budgets: {"true" if full else "false"}
rules: [rules/]
""")
    cmd = [sys.executable, "-m", "costguard", "run", "--once", "-c", str(state / "costguard.yaml")]
    out = []
    for label in ("first run", "daily run (export unchanged)"):
        proxy.clear()
        wall, p = run_timed(cmd, env, state)
        if p.returncode not in (0, 3):
            raise SystemExit(f"costguard failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
        out.append({"tool": f"costguard{' (full inventory + budgets)' if full else ''}", "run": label,
                    "wall_seconds": round(wall, 2), "cpu_seconds": CPU["last"], "moto_seconds": round(proxy.upstream_seconds(), 2),
                    "requests": sum(proxy.apis().values()),
                    "by_api": dict(sorted(proxy.apis().items())), "exit": p.returncode})
    findings = json.loads(subprocess.run([sys.executable, "-m", "costguard", "findings", "-c", str(state / "costguard.yaml"),
                                          "--format", "json"], env=env, capture_output=True, text=True, check=True).stdout)
    tag = [f for f in findings if f["kind"] == "tag" and f["resource_id"]]
    waste: dict[str, dict] = {}
    for f in findings:
        if f["kind"] != "idle":
            continue
        for c in f["evidence"].get("checks") or []:
            w = waste.setdefault(c["check"], {"count": 0, "priced": 0, "monthly_savings": Decimal(0)})
            w["count"] += 1
            w["priced"] += f["monthly_cost"] is not None
            w["monthly_savings"] += Decimal(str(c.get("monthly_savings") or 0))
    for o in out:
        o["tag_findings"] = {"count": len(tag), "priced": sum(1 for f in tag if f["monthly_cost"] is not None),
                             "monthly_cost": str(sum((Decimal(str(f["monthly_cost"])) for f in tag), Decimal(0)))}
        o["idle_findings"] = {k: {**v, "monthly_savings": str(v["monthly_savings"])} for k, v in sorted(waste.items())}
        o["findings_total"] = len(findings)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--c7n-org", required=True, help="path of the c7n-org executable (its own venv)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "aws_peer.json"))
    ap.add_argument("--extra-instances", type=int, default=0, help="more idle m5.large instances per account and region (scaling)")
    args = ap.parse_args()
    os.environ.update({**CREDS, "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"})
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    srv = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    srv.start()
    host, port = srv.get_host_and_port()
    moto = f"http://{host}:{port}"
    proxy = Proxy(moto)
    work = Path(tempfile.mkdtemp(prefix="cg-aws-peer-"))
    try:
        now = datetime.now(timezone.utc)
        world = build(moto, now, args.extra_instances)
        env = {**os.environ, **CREDS, "AWS_ENDPOINT_URL": proxy.endpoint, "COSTGUARD_LOG_LEVEL": "warning",
               "PYTHONPATH": str(ROOT)}
        rows = [c7n(args.c7n_org, proxy, world["members"], work, env)]
        rows += costguard(proxy, world["members"], work, env, full=False)
        rows += costguard(proxy, world["members"], work, env, full=True)
        load = os.getloadavg()[0]
    finally:
        proxy.stop()
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)
    result = {"measured_at": now.isoformat(timespec="seconds"), "load_1min_after": round(load, 2),
              "scenario": {"members": 2, "regions": list(REGIONS), "resources": len(world["resources"]),
                           "extra_instances_per_region": args.extra_instances}, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for r in rows:
        print(f"{r['tool']:<42} {r.get('run', ''):<30} requests {r['requests']:>4}  wall {r['wall_seconds']:>6.2f} s"
              f"  cpu {r['cpu_seconds']:>6.2f} s  (in moto {r['moto_seconds']:>6.2f} s)")
    print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
