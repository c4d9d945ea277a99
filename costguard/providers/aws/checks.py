"""``costguard doctor`` for ``type: aws``: one cheap read per thing the adapter needs, each with
the exact IAM action or set-up step that fixes it.

Order: credentials → account discovery → each account's role → regions → the cost source (export
present and fresh, Cost Explorer answering, Athena table and workgroup) → per account, in its first
region, one request of every enabled inventory API and budgets. Paid requests are marked
(a Cost Explorer check costs $0.01; a one-metric GetMetricData $0.00001).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from costguard.errors import DataError
from costguard.providers.aws.accounts import AccountError
from costguard.providers.aws.clients import Clients, classify, is_aws_error
from costguard.providers.aws.config import AthenaCosts, CostExplorerCosts, ExportCosts
from costguard.providers.aws.exports import ExportReader
from costguard.providers.aws.iam import fix_for
from costguard.providers.base import Check

if TYPE_CHECKING:
    from costguard.providers.aws.provider import AwsProvider

FRESH_DAYS = 2  # an export refreshed daily has yesterday or the day before


def _try(name: str, api: str, fn: Callable[[], str], *, role: str, paid: bool = False) -> Check:
    try:
        return Check(name, True, fn(), paid=paid)
    except DataError as e:
        return Check(name, False, str(e), "see docs/aws.md: set-up", paid=paid)
    except Exception as e:  # noqa: BLE001
        if not is_aws_error(e):
            raise
        f = classify(e)
        fix = fix_for(api, role=role) if f.kind == "denied" else (
            "retry later (throttled or unavailable)" if f.kind in ("throttled", "unavailable") else "see the error; docs/aws.md")
        return Check(name, False, f"{api}: {f.describe()}", fix, paid=paid)


def run_checks(p: "AwsProvider") -> Iterator[Check]:
    n = p.name
    cred = _try(f"{n}: credentials", "sts:GetCallerIdentity",
                lambda: p.base().client("sts").get_caller_identity()["Arn"], role="costguard")
    if not cred.ok:
        yield Check(cred.name, False, cred.detail,
                    "give costguard AWS credentials: environment, a profile (profile:), a web identity token (EKS) or an instance role")
        return
    yield cred
    accounts = p.accounts()
    problems = p.problems.items()
    if p.cfg.accounts.discover:
        failed = [x for x in problems if "organizations:ListAccounts" in x]
        yield Check(f"{n}: accounts (organizations:ListAccounts)", not failed,
                    failed[0] if failed else f"{len(accounts)} account(s): {', '.join(a.id for a in accounts[:10])}"
                    + (" …" if len(accounts) > 10 else ""),
                    fix_for("organizations:ListAccounts", role="costguard's role (in the management or a delegated admin account)") if failed else "")
    member: dict[str, Clients] = {}
    for a in accounts:
        if a.id == p.caller():
            member[a.id] = p.base()
            continue
        try:
            member[a.id] = p.sessions().clients(a.id)
            ident = member[a.id].client("sts").get_caller_identity()["Arn"]
            yield Check(f"{n}: account {a.id}: assume {p.cfg.accounts.assume_role}", True, ident)
        except AccountError as e:
            f = classify(e.cause)
            yield Check(f"{n}: account {a.id}: assume {p.cfg.accounts.assume_role}", False, f"sts:AssumeRole: {f.describe()}",
                        f"create the role {p.cfg.accounts.role_arn(a.id)} (docs/aws-iam/member-policy.json) trusting costguard's "
                        "role (member-trust-policy.json), and allow sts:AssumeRole on it for costguard's role")
        except Exception as e:  # noqa: BLE001
            if not is_aws_error(e):
                raise
            yield Check(f"{n}: account {a.id}: assume {p.cfg.accounts.assume_role}", False, classify(e).describe(), "check the role's trust policy")
    try:
        regions = p.regions(p.base())
        yield Check(f"{n}: regions", True, ", ".join(regions) + ("" if p.cfg.regions else " (enabled in the account)"))
    except Exception as e:  # noqa: BLE001
        if not is_aws_error(e):
            raise
        yield Check(f"{n}: regions", False, classify(e).describe(), "set regions: [...] in the config, or " + fix_for("ec2:DescribeRegions"))
        regions = []
    yield from _cost_checks(p)
    for acct, clients in member.items():
        role = "costguard's role" if acct == p.caller() else f"the role {p.cfg.accounts.assume_role} in account {acct}"
        yield from _account_checks(p, acct, clients, regions[0] if regions else "us-east-1", role)


def _cost_checks(p: "AwsProvider") -> Iterator[Check]:
    n, c = p.name, p.cfg.costs
    role = "costguard's role"
    if isinstance(c, (ExportCosts, AthenaCosts)):
        reader = ExportReader(c.uri, "cur2" if getattr(c, "source", "") == "cur2_export" else "focus",
                              lambda: p.base().client("s3"), backfill_days=p.backfill_days)

        def periods() -> str:
            got = reader.periods()
            if not got:
                raise DataError(f"no BILLING_PERIOD=YYYY-MM folders under {c.uri}: create an AWS Data Exports export "
                                "(FOCUS 1.2 or CUR 2.0, parquet) delivering to this bucket and prefix; the first delivery takes up to 24 h")
            last = list(got.values())[-1]
            return f"{len(got)} billing period(s), latest {last.key} ({'manifest' if last.manifest else 'NO manifest'}, {len(last.data)} file(s))"

        chk = _try(f"{n}: export {c.uri}", "s3:ListObjectsV2", periods, role=role)
        yield chk
        if chk.ok:
            def fresh() -> str:
                last = list(reader.periods().values())[-1]
                newest = reader.newest_day(last, p.storage_options())
                today = p.clock().date()
                if newest is None:
                    raise DataError(f"billing period {last.key} has no rows yet")
                if (today - newest).days > FRESH_DAYS + (0 if last.end > today else 45):
                    raise DataError(f"newest day in the export is {newest} ({(today - newest).days} days ago): "
                                    "the export stopped refreshing; check it in Billing → Data Exports")
                return f"newest day {newest} in {last.key}"

            yield _try(f"{n}: export freshness", "s3:GetObject", fresh, role=role)
    if isinstance(c, AthenaCosts):
        athena = lambda: p.base().client("athena")  # noqa: E731

        def workgroup() -> str:
            wg = athena().get_work_group(WorkGroup=c.workgroup)["WorkGroup"]
            conf = wg.get("Configuration") or {}
            out = (conf.get("ResultConfiguration") or {}).get("OutputLocation") or c.output_location
            if not out:
                raise DataError(f"workgroup {c.workgroup} has no query result location: set costs.output_location: s3://…")
            limit = conf.get("BytesScannedCutoffPerQuery")
            return f"{c.workgroup}: results to {out}" + (f", per-query cutoff {limit / 1024 ** 3:.1f} GB" if limit else "")

        yield _try(f"{n}: Athena workgroup", "athena:GetWorkGroup", workgroup, role=role)

        def table() -> str:
            db, _, t = c.table.partition(".")
            got = p.base().client("glue").get_table(DatabaseName=db, Name=t)["Table"]
            cols = {x["Name"].lower() for x in ((got.get("StorageDescriptor") or {}).get("Columns") or []) + (got.get("PartitionKeys") or [])}
            missing = [x for x in ("chargeperiodstart", "billedcost", "billingcurrency") if x not in cols]
            if missing:
                raise DataError(f"{c.table} lacks {', '.join(missing)}: it is not a FOCUS table (costs.table)")
            part = "" if c.partition_column.lower() in cols else f"; no partition column {c.partition_column} (every query scans the whole table)"
            return f"{c.table}: {len(cols)} columns{part}"

        yield _try(f"{n}: Athena table (Glue catalog)", "glue:GetTable", table, role=role)
    if isinstance(c, CostExplorerCosts):
        def ce() -> str:
            end = p.clock().date()
            got = p.base().client("ce").get_cost_and_usage(
                TimePeriod={"Start": (end - timedelta(days=1)).isoformat(), "End": end.isoformat()},
                Granularity="DAILY", Metrics=["UnblendedCost"])
            return f"answers ({len(got.get('ResultsByTime') or [])} day(s))"

        yield _try(f"{n}: Cost Explorer (paid, $0.01)", "ce:GetCostAndUsage", ce, role=role, paid=True)


def _account_checks(p: "AwsProvider", acct: str, clients: Clients, region: str, role: str) -> Iterator[Check]:
    n = p.name
    groups = set(p.cfg.inventory.resources) if p.cfg.inventory.enabled else set()
    calls: list[tuple[str, str, Callable[[], Any], bool]] = []
    ec2 = lambda: clients.client("ec2", region)  # noqa: E731
    if "instances" in groups:
        calls.append(("instances", "ec2:DescribeInstances", lambda: ec2().describe_instances(MaxResults=5), False))
    if "volumes" in groups:
        calls.append(("volumes", "ec2:DescribeVolumes", lambda: ec2().describe_volumes(MaxResults=5), False))
    if "addresses" in groups:
        calls.append(("addresses", "ec2:DescribeAddresses", lambda: ec2().describe_addresses(), False))
    if "snapshots" in groups:
        calls.append(("snapshots", "ec2:DescribeSnapshots", lambda: ec2().describe_snapshots(OwnerIds=["self"], MaxResults=5), False))
    if "nat_gateways" in groups:
        calls.append(("NAT gateways", "ec2:DescribeNatGateways", lambda: ec2().describe_nat_gateways(MaxResults=5), False))
    if "load_balancers" in groups:
        calls.append(("load balancers", "elbv2:DescribeLoadBalancers",
                      lambda: clients.client("elbv2", region).describe_load_balancers(PageSize=1), False))
        calls.append(("target groups", "elbv2:DescribeTargetGroups",
                      lambda: clients.client("elbv2", region).describe_target_groups(PageSize=1), False))
    if "databases" in groups:
        calls.append(("RDS", "rds:DescribeDBInstances", lambda: clients.client("rds", region).describe_db_instances(MaxRecords=20), False))
    if "log_groups" in groups:
        calls.append(("log groups", "logs:DescribeLogGroups", lambda: clients.client("logs", region).describe_log_groups(limit=1), False))
    if "tags" in groups:
        calls.append(("tags", "resourcegroupstaggingapi:GetResources",
                      lambda: clients.client("resourcegroupstaggingapi", region).get_resources(ResourcesPerPage=1), False))
    if groups & {"instances", "databases", "nat_gateways"}:
        now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
        calls.append(("CloudWatch metrics", "cloudwatch:GetMetricData", lambda: clients.client("cloudwatch", region).get_metric_data(
            MetricDataQueries=[{"Id": "q0", "MetricStat": {"Metric": {"Namespace": "AWS/EC2", "MetricName": "CPUUtilization"},
                                                           "Period": 3600, "Stat": "Maximum"}}],
            StartTime=now - timedelta(hours=1), EndTime=now), True))
        if p.cfg.inventory.memory:
            calls.append(("CloudWatch agent metrics", "cloudwatch:ListMetrics",
                          lambda: clients.client("cloudwatch", region).list_metrics(Namespace="CWAgent", MetricName="mem_used_percent"), False))
    if p.cfg.inventory.enabled and p.cfg.inventory.compute_optimizer:
        calls.append(("Compute Optimizer", "compute-optimizer:GetEnrollmentStatus",
                      lambda: _enrolled(clients.client("compute-optimizer", region)), False))
    if p.cfg.budgets:
        calls.append(("budgets", "budgets:DescribeBudgets",
                      lambda: clients.client("budgets").describe_budgets(AccountId=acct, MaxResults=1), False))
    for label, api, fn, paid in calls:
        yield _try(f"{n}: account {acct} {region}: {label} ({api})", api, lambda fn=fn: _ok(fn()), role=role, paid=paid)
    if p.cfg.prices.refresh and acct == p.caller():
        yield _try(f"{n}: prices (pricing:GetProducts)", "pricing:GetProducts",
                   lambda: _ok(p.base().client("pricing").get_products(ServiceCode="AmazonEC2", MaxResults=1)), role="costguard's role")


def _enrolled(co: Any) -> str:
    status = co.get_enrollment_status().get("status")
    if status != "Active":
        raise DataError(f"Compute Optimizer is {status}: opt in (Compute Optimizer console, or "
                        "aws compute-optimizer update-enrollment-status --status Active), or set inventory.compute_optimizer: false")
    return "Active"


def _ok(result: Any) -> str:
    return result if isinstance(result, str) else "allowed"
