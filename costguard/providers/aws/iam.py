"""The IAM actions behind every AWS request costguard makes, and the least-privilege policies.

``ACTIONS`` maps each ``service:Operation`` the adapter sends (as :class:`RequestCounter` names
them) to the IAM action(s) that allow it and to the role that needs it: ``costguard`` (the role
the daemon runs as, in the management or payer account) or ``member`` (the role it assumes in each
account for inventory and budgets; the daemon's own account uses its own role for those, so they
are in both). The policy documents, the Terraform snippet in ``docs/aws-iam/`` and the fix hints
of ``costguard doctor`` are all generated from this table, and a test checks that every request
the adapter makes in the test suite is in it.

Regenerate the files with ``python -m costguard.providers.aws.iam docs/aws-iam``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path

BOTH = ("costguard", "member")
#: service:Operation -> (IAM actions, roles that need them, what it is for)
ACTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "sts:GetCallerIdentity": ((), ("costguard",), "which account the credentials belong to (needs no permission)"),
    "sts:AssumeRole": (("sts:AssumeRole",), ("costguard",), "member account sessions"),
    "organizations:ListAccounts": (("organizations:ListAccounts",), ("costguard",), "account discovery"),
    "ec2:DescribeRegions": (("ec2:DescribeRegions",), ("costguard",), "enabled regions when regions: is not set"),
    # costs: exports and Athena
    "s3:ListObjectsV2": (("s3:ListBucket",), ("costguard",), "export billing periods and manifests"),
    "s3:GetObject": (("s3:GetObject",), ("costguard",), "export manifests and data files"),
    "s3:HeadObject": (("s3:GetObject",), ("costguard",), "export data files (multipart download)"),
    "athena:StartQueryExecution": (("athena:StartQueryExecution",), ("costguard",), "daily rollup pushed to Athena"),
    "athena:GetQueryExecution": (("athena:GetQueryExecution",), ("costguard",), "Athena query state and bytes scanned"),
    "athena:GetQueryResults": (("athena:GetQueryResults",), ("costguard",), "Athena rollup rows"),
    "athena:StopQueryExecution": (("athena:StopQueryExecution",), ("costguard",), "cancel a query past its timeout"),
    "glue:GetTable": (("glue:GetTable",), ("costguard",), "the export table's columns (Athena source)"),
    "athena:GetWorkGroup": (("athena:GetWorkGroup",), ("costguard",), "doctor: the workgroup and its output location"),
    # costs: Cost Explorer
    "ce:GetCostAndUsage": (("ce:GetCostAndUsage",), ("costguard",), "daily costs by account and service ($0.01 a request)"),
    # budgets
    "budgets:DescribeBudgets": (("budgets:ViewBudget",), BOTH, "AWS Budgets: limit, actual and forecast spend"),
    "budgets:DescribeNotificationsForBudget": (("budgets:ViewBudget",), BOTH, "AWS Budgets: alert thresholds"),
    # inventory
    "ec2:DescribeInstances": (("ec2:DescribeInstances",), BOTH, "instances"),
    "ec2:DescribeVolumes": (("ec2:DescribeVolumes",), BOTH, "EBS volumes"),
    "ec2:DescribeAddresses": (("ec2:DescribeAddresses",), BOTH, "Elastic IPs"),
    "ec2:DescribeSnapshots": (("ec2:DescribeSnapshots",), BOTH, "EBS snapshots"),
    "ec2:DescribeNatGateways": (("ec2:DescribeNatGateways",), BOTH, "NAT gateways"),
    "elbv2:DescribeLoadBalancers": (("elasticloadbalancing:DescribeLoadBalancers",), BOTH, "load balancers"),
    "elbv2:DescribeTargetGroups": (("elasticloadbalancing:DescribeTargetGroups",), BOTH, "load balancer target groups"),
    "elbv2:DescribeTargetHealth": (("elasticloadbalancing:DescribeTargetHealth",), BOTH, "healthy targets"),
    "rds:DescribeDBInstances": (("rds:DescribeDBInstances",), BOTH, "RDS instances"),
    "logs:DescribeLogGroups": (("logs:DescribeLogGroups",), BOTH, "log groups and their retention"),
    "resourcegroupstaggingapi:GetResources": (("tag:GetResources",), BOTH, "tags of every taggable resource"),
    "cloudwatch:GetMetricData": (("cloudwatch:GetMetricData",), BOTH, "CPU, memory and NAT bytes ($0.01 per 1,000 metrics)"),
    "cloudwatch:ListMetrics": (("cloudwatch:ListMetrics",), BOTH, "which instances publish memory (CloudWatch agent)"),
    "compute-optimizer:GetEC2InstanceRecommendations": (("compute-optimizer:GetEC2InstanceRecommendations",), BOTH,
                                                         "Compute Optimizer recommendations (when enabled)"),
    "compute-optimizer:GetEnrollmentStatus": (("compute-optimizer:GetEnrollmentStatus",), BOTH, "doctor: Compute Optimizer is opted in"),
    # prices
    "pricing:GetProducts": (("pricing:GetProducts",), ("costguard",), "EC2 price catalogue refresh (when enabled)"),
}
ATHENA_EXTRA = ("glue:GetTable", "glue:GetDatabase", "glue:GetPartitions", "glue:GetPartition")
ATHENA_OUTPUT = ("s3:GetBucketLocation", "s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload", "s3:ListBucket")


def actions_for(api: str) -> tuple[str, ...]:
    """IAM actions that allow one ``service:Operation`` (empty when none is needed)."""
    return ACTIONS[api][0] if api in ACTIONS else ()


def fix_for(api: str, *, role: str = "the role costguard uses") -> str:
    """The fix line ``doctor`` and problems print for a denied request."""
    acts = actions_for(api)
    if not acts:
        return f"check the credentials of {role}"
    return f"allow {', '.join(acts)} for {role} (docs/aws.md, IAM policy)"


def unknown(apis: Iterable[str]) -> list[str]:
    """Requests the table does not know (a test keeps this empty)."""
    return sorted(a for a in set(apis) if a not in ACTIONS)


def _actions(role: str) -> list[str]:
    out = {a for acts, roles, _ in ACTIONS.values() if role in roles for a in acts}
    return sorted(out)


def costguard_policy() -> dict:
    """For the role the daemon runs as (management or payer account). Narrow ``Resource`` to your
    export bucket, Athena workgroup and member role names where the comments say so."""
    own = [a for a in _actions("costguard") if not a.startswith(("s3:", "athena:", "glue:", "sts:"))]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ReadCostsAccountsInventoryBudgets", "Effect": "Allow", "Action": own, "Resource": "*"},
            {"Sid": "AssumeTheMemberRole", "Effect": "Allow", "Action": ["sts:AssumeRole"],
             "Resource": "arn:aws:iam::*:role/CostguardReadOnly"},
            {"Sid": "ListTheExportPrefix", "Effect": "Allow", "Action": ["s3:ListBucket"],
             "Resource": "arn:aws:s3:::BILLING-BUCKET"},
            {"Sid": "ReadTheExportFiles", "Effect": "Allow", "Action": ["s3:GetObject"],
             "Resource": "arn:aws:s3:::BILLING-BUCKET/EXPORT-PREFIX/*"},
            {"Sid": "AthenaRollupOnly", "Effect": "Allow",
             "Action": sorted(a for a in _actions("costguard") if a.startswith("athena:")),
             "Resource": "arn:aws:athena:*:*:workgroup/primary"},
            {"Sid": "AthenaReadsTheGlueTable", "Effect": "Allow", "Action": sorted(ATHENA_EXTRA), "Resource": "*"},
            {"Sid": "AthenaResultsLocation", "Effect": "Allow", "Action": sorted(set(ATHENA_OUTPUT)),
             "Resource": ["arn:aws:s3:::ATHENA-RESULTS-BUCKET", "arn:aws:s3:::ATHENA-RESULTS-BUCKET/*"]},
        ],
    }


def member_policy() -> dict:
    """For the role assumed in each member account: read-only inventory, metrics and budgets."""
    return {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "CostguardInventoryAndBudgets", "Effect": "Allow", "Action": _actions("member"), "Resource": "*"}],
    }


def member_trust_policy() -> dict:
    """Who may assume the member role: costguard's role, with the external id you configure."""
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::MANAGEMENT-ACCOUNT-ID:role/costguard"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": "EXTERNAL-ID"}},
        }],
    }


def terraform() -> str:
    """The same policies as a Terraform snippet (aws provider)."""
    def hcl_list(items: Iterable[str], indent: int) -> str:
        pad = " " * indent
        return "[\n" + "".join(f'{pad}  "{i}",\n' for i in items) + f"{pad}]"

    cg = costguard_policy()["Statement"]
    blocks = []
    for st in cg:
        res = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        blocks.append(
            "  statement {\n"
            f'    sid       = "{st["Sid"]}"\n'
            f"    actions   = {hcl_list(st['Action'], 4)}\n"
            f"    resources = {hcl_list(res, 4)}\n"
            "  }\n"
        )
    member = _actions("member")
    return (
        "# Generated by `python -m costguard.providers.aws.iam docs/aws-iam`; do not edit by hand.\n"
        "# Replace the UPPER-CASE placeholders (bucket, prefix, results bucket, account id).\n\n"
        'variable "external_id" {\n  type      = string\n  sensitive = true\n}\n\n'
        'data "aws_iam_policy_document" "costguard" {\n' + "".join(blocks) + "}\n\n"
        'resource "aws_iam_policy" "costguard" {\n  name   = "costguard"\n'
        "  policy = data.aws_iam_policy_document.costguard.json\n}\n\n"
        "# In every member account (e.g. with a StackSet or one provider alias per account):\n"
        'data "aws_iam_policy_document" "costguard_member" {\n  statement {\n'
        '    sid       = "CostguardInventoryAndBudgets"\n'
        f"    actions   = {hcl_list(member, 4)}\n"
        '    resources = ["*"]\n  }\n}\n\n'
        'data "aws_iam_policy_document" "costguard_member_trust" {\n  statement {\n'
        '    actions = ["sts:AssumeRole"]\n    principals {\n      type        = "AWS"\n'
        '      identifiers = ["arn:aws:iam::MANAGEMENT-ACCOUNT-ID:role/costguard"]\n    }\n'
        '    condition {\n      test     = "StringEquals"\n      variable = "sts:ExternalId"\n'
        "      values   = [var.external_id]\n    }\n  }\n}\n\n"
        'resource "aws_iam_role" "costguard_member" {\n  name               = "CostguardReadOnly"\n'
        "  assume_role_policy = data.aws_iam_policy_document.costguard_member_trust.json\n}\n\n"
        'resource "aws_iam_role_policy" "costguard_member" {\n  role   = aws_iam_role.costguard_member.id\n'
        "  policy = data.aws_iam_policy_document.costguard_member.json\n}\n"
    )


def files() -> dict[str, str]:
    """File name -> content of everything under ``docs/aws-iam/``."""
    def js(d: dict) -> str:
        return json.dumps(d, indent=2) + "\n"

    return {
        "costguard-policy.json": js(costguard_policy()),
        "member-policy.json": js(member_policy()),
        "member-trust-policy.json": js(member_trust_policy()),
        "costguard-iam.tf": terraform(),
    }


def main(argv: list[str]) -> int:  # pragma: no cover - a maintainer's tool
    out = Path(argv[0] if argv else "docs/aws-iam")
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files().items():
        (out / name).write_text(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
