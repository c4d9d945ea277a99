"""Cost Explorer (``ce:GetCostAndUsage``) → FOCUS-shaped daily rows.

One request covers a whole planned window: DAILY, grouped by LINKED_ACCOUNT and SERVICE, paged
with NextPageToken. With ``tag_key`` the rows are grouped by SERVICE and that tag instead, with
one request per account (Cost Explorer allows two group-bys). A daily run therefore costs a small
constant number of requests (month to date in one window) per organisation, or per account with
a tag key, however many resources exist.

Every request is paid ($0.01): they are counted, and ``max_paid_requests`` is checked before each
one. A window is pulled completely or not at all: its rows are held until the last page arrived,
so a day is never stored half (a failure fails the pull and the lake keeps what it had).

The rows are marked as Cost Explorer aggregates by ``ChargeDescription`` (kept with the stored
rows) and by their origin ``ce:GetCostAndUsage …`` in the ingest ledger of the run record.
CE has no list or contracted price: ListCost and ContractedCost carry the unblended cost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import date, timedelta
from typing import Any

import polars as pl

from costguard import focus
from costguard.model import Window
from costguard.providers.aws.clients import PullFailed, RequestCounter
from costguard.providers.aws.config import CostExplorerCosts
from costguard.providers.base import Horizon, Part

METRICS = ("UnblendedCost", "AmortizedCost")
PUBLISHER = "Amazon Web Services, Inc."
#: Cost Explorer SERVICE names → (ChargeCategory, ServiceCategory) where the default (Usage, from
#: the keyword table) is wrong.
SPECIAL = {"Tax": ("Tax", "Other"), "Savings Plans for AWS Compute usage": ("Purchase", "Compute"),
           "AWS Support (Business)": ("Purchase", "Management and Governance"),
           "AWS Support (Developer)": ("Purchase", "Management and Governance"),
           "AWS Support (Enterprise)": ("Purchase", "Management and Governance")}
KEYWORDS = (
    ("Elastic Compute Cloud", "Compute"), ("EC2", "Compute"), ("Lambda", "Compute"), ("Container", "Compute"),
    ("Elastic Kubernetes", "Compute"), ("Fargate", "Compute"), ("Lightsail", "Compute"), ("Batch", "Compute"),
    ("Simple Storage Service", "Storage"), ("Elastic File System", "Storage"), ("Glacier", "Storage"), ("Backup", "Storage"),
    ("FSx", "Storage"), ("Relational Database", "Databases"), ("DynamoDB", "Databases"), ("ElastiCache", "Databases"),
    ("Redshift", "Databases"), ("DocumentDB", "Databases"), ("Neptune", "Databases"), ("Aurora", "Databases"),
    ("CloudFront", "Networking"), ("Virtual Private Cloud", "Networking"), ("Load Balancing", "Networking"),
    ("Route 53", "Networking"), ("Direct Connect", "Networking"), ("Data Transfer", "Networking"), ("API Gateway", "Networking"),
    ("CloudWatch", "Management and Governance"), ("CloudTrail", "Management and Governance"), ("Config", "Management and Governance"),
    ("Systems Manager", "Management and Governance"), ("Key Management", "Security"), ("Secrets Manager", "Security"),
    ("GuardDuty", "Security"), ("WAF", "Security"), ("Security Hub", "Security"), ("Simple Queue", "Integration"),
    ("Simple Notification", "Integration"), ("EventBridge", "Integration"), ("Step Functions", "Integration"),
    ("Athena", "Analytics"), ("Glue", "Analytics"), ("Kinesis", "Analytics"), ("OpenSearch", "Analytics"), ("EMR", "Analytics"),
    ("SageMaker", "AI and Machine Learning"), ("Bedrock", "AI and Machine Learning"), ("CodeBuild", "Developer Tools"),
    ("CodeArtifact", "Developer Tools"), ("CodeCommit", "Developer Tools"), ("CodePipeline", "Developer Tools"),
)
ROW_SCHEMA = {c: pl.String for c in (
    "ChargePeriodStart", "ChargePeriodEnd", "BillingPeriodStart", "BillingPeriodEnd", "BillingAccountId",
    "BillingCurrency", "SubAccountId", "SubAccountName", "ServiceName", "ServiceCategory", "ChargeCategory",
    "ChargeFrequency", "ChargeDescription", "ProviderName", "PublisherName", "InvoiceIssuerName", "Tags",
    "BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "ChargeClass", "BillingAccountName",
    "PricingQuantity", "PricingUnit",
)}


def categories(service: str) -> tuple[str, str]:
    """(ChargeCategory, ServiceCategory) of a Cost Explorer service name."""
    if service in SPECIAL:
        return SPECIAL[service]
    for word, cat in KEYWORDS:
        if word.lower() in service.lower():
            return "Usage", cat
    return "Usage", "Other"


class CostExplorerSource:
    """The ``cost_explorer`` cost source of one provider."""

    def __init__(self, cfg: CostExplorerCosts, ce: Callable[[], Any], *, counter: RequestCounter,
                 payer: Callable[[], str], accounts: Callable[[], list[str]], backfill_days: int) -> None:
        self.cfg = cfg
        self._ce = ce
        self.counter = counter
        self._payer = payer
        self._accounts = accounts
        self.backfill_days = backfill_days

    def available_days(self, horizon: Horizon) -> dict[date, str | None]:
        """Every day of the backfill (bounded by ``history_days``) up to the as-of day. No
        signature: the planner re-pulls the trailing days and the month to date each run."""
        span = min(self.backfill_days, self.cfg.history_days)
        first = max(horizon.as_of - timedelta(days=span - 1), horizon.earliest)
        out: dict[date, str | None] = {}
        d = first
        while d <= horizon.as_of:
            out[d] = None
            d += timedelta(days=1)
        return out

    def costs(self, windows: Sequence[Window], horizon: Horizon) -> Iterator[Part]:
        for w in windows:
            if self.cfg.tag_key:
                for account in self._accounts():
                    flt = {"Dimensions": {"Key": "LINKED_ACCOUNT", "Values": [account]}}
                    group = [{"Type": "DIMENSION", "Key": "SERVICE"}, {"Type": "TAG", "Key": self.cfg.tag_key}]
                    rows, pages = self._pull(w, group, flt, fixed_account=account)
                    yield self._part(rows, f"ce:GetCostAndUsage {w.start}..{w.end} account {account} "
                                           f"(DAILY by SERVICE, TAG {self.cfg.tag_key}; {pages} request(s))")
            else:
                group = [{"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}, {"Type": "DIMENSION", "Key": "SERVICE"}]
                rows, pages = self._pull(w, group, None)
                yield self._part(rows, f"ce:GetCostAndUsage {w.start}..{w.end} (DAILY by LINKED_ACCOUNT, SERVICE; {pages} request(s))")

    # ---- internals ----------------------------------------------------------------------------
    def _request(self, params: dict[str, Any]) -> dict[str, Any]:
        used = self.counter.paid_total("ce")
        if used >= self.cfg.max_paid_requests:
            raise PullFailed(f"Cost Explorer request cap reached: {used} paid request(s) this run "
                             f"(costs.max_paid_requests: {self.cfg.max_paid_requests}); nothing of this pull is "
                             "stored; raise the cap, or lower ingest.backfill_days for the first run")
        return self._ce().get_cost_and_usage(**params)

    def _pull(self, w: Window, group: list[dict[str, str]], flt: dict[str, Any] | None,
              fixed_account: str | None = None) -> tuple[list[dict[str, str | None]], int]:
        params: dict[str, Any] = {"TimePeriod": {"Start": w.start.isoformat(), "End": w.end.isoformat()},
                                  "Granularity": "DAILY", "Metrics": list(METRICS), "GroupBy": group}
        if flt:
            params["Filter"] = flt
        rows: list[dict[str, str | None]] = []
        names: dict[str, str] = {}
        pages = 0
        payer = self._payer()
        while True:
            resp = self._request(params)
            pages += 1
            for attr in resp.get("DimensionValueAttributes") or []:
                desc = (attr.get("Attributes") or {}).get("description")
                if desc:
                    names[attr["Value"]] = desc
            for day in resp.get("ResultsByTime") or []:
                start = date.fromisoformat(day["TimePeriod"]["Start"][:10])
                for g in day.get("Groups") or []:
                    rows.append(self._row(start, g, payer, fixed_account))
            token = resp.get("NextPageToken")
            if not token:
                break
            params["NextPageToken"] = token
        for r in rows:
            if r["SubAccountName"] is None and r["SubAccountId"] in names:
                r["SubAccountName"] = names[r["SubAccountId"]]  # type: ignore[index]
        return rows, pages

    def _row(self, day: date, g: dict[str, Any], payer: str, fixed_account: str | None) -> dict[str, str | None]:
        keys = list(g.get("Keys") or [])
        if fixed_account is not None:
            service, tag = keys[0], (keys[1] if len(keys) > 1 else "")
            account = fixed_account
        else:
            account, service, tag = keys[0], keys[1] if len(keys) > 1 else "", ""
        metrics = g.get("Metrics") or {}
        unblended = metrics.get("UnblendedCost") or {}
        amortized = metrics.get("AmortizedCost") or unblended
        charge, category = categories(service)
        tags = None
        if tag and "$" in tag:
            k, _, v = tag.partition("$")
            tags = None if not v else _json({k: v})
        month = day.replace(day=1)
        nxt = (month + timedelta(days=32)).replace(day=1)
        billed = unblended.get("Amount")
        return {
            "ChargePeriodStart": f"{day.isoformat()}T00:00:00Z",
            "ChargePeriodEnd": f"{(day + timedelta(days=1)).isoformat()}T00:00:00Z",
            "BillingPeriodStart": f"{month.isoformat()}T00:00:00Z",
            "BillingPeriodEnd": f"{nxt.isoformat()}T00:00:00Z",
            "BillingAccountId": payer,
            "BillingCurrency": unblended.get("Unit") or amortized.get("Unit"),
            "SubAccountId": account,
            "SubAccountName": None,
            "ServiceName": service or None,
            "ServiceCategory": category,
            "ChargeCategory": charge,
            "ChargeFrequency": "Usage-Based" if charge == "Usage" else "One-Time",
            "ChargeDescription": f"AWS Cost Explorer daily UnblendedCost of {service or 'unknown service'}",
            "ProviderName": "AWS",
            "PublisherName": PUBLISHER,
            "InvoiceIssuerName": PUBLISHER,
            "Tags": tags,
            "BilledCost": billed,
            "EffectiveCost": amortized.get("Amount"),
            "ListCost": billed,
            "ContractedCost": billed,
            "ChargeClass": None,
            "BillingAccountName": None,
            "PricingQuantity": None,  # usage of different units cannot be added up per service
            "PricingUnit": None,
        }

    def _part(self, rows: list[dict[str, str | None]], origin: str) -> Part:
        frame = pl.DataFrame(rows, schema=ROW_SCHEMA, orient="row") if rows else pl.DataFrame(schema=ROW_SCHEMA)
        numbered = frame.lazy().with_row_index(focus.LINE, offset=1)
        return Part(focus.normalize(numbered, file=origin), origin=origin, rows_read=len(rows))


def _json(d: dict[str, str]) -> str:
    import json

    return json.dumps(d, ensure_ascii=False)

