"""Deterministic, calibrated FOCUS 1.2 billing-data generator (AWS Data Exports layout).

``generate(SimSpec(rows=..., days=..., end=...), out_dir)`` writes

* ``out_dir/focus/data/BILLING_PERIOD=YYYY-MM/day=YYYY-MM-DD/part-00000.parquet`` — FOCUS 1.2
  columns with FOCUS types (costs and quantities ``Decimal(38,10)``, times ``Datetime(us, UTC)``,
  ``Tags``/``SkuPriceDetails`` as JSON strings), hourly charge periods;
* ``out_dir/inventory.parquet`` — the inventory contract (``costguard.inventory.INVENTORY_SCHEMA``):
  instances and volumes with utilisation, plus planted cases for every rule kind (idle, oversized
  and metric-less instances, unattached volumes, unassociated addresses, old and orphaned
  snapshots, a stopped instance still paying for storage, an idle load balancer and NAT gateway, a
  previous-generation instance, a log group kept forever, resources breaking the tag policy);
* ``out_dir/expected.json`` — the planted resources with their expected findings and exact totals
  (``Decimal`` strings) computed from the very integers that were written;
* ``out_dir/manifest.json`` — files, row counts, spec and timing (also the return value).

Design: every amount is drawn as an integer number of 1e-10 USD and only turned into a Decimal
column when a day is written, so expected totals are exact. A fixed "universe" (accounts, fleet,
volumes, long-tail usage resources) is drawn once from the seed; each day then draws its rows with
numpy from an RNG seeded by ``(seed, day)`` and writes its parquet file directly, so memory stays
flat (one day in memory) and any day can be regenerated alone. Nothing is done per row in Python.

Calibration (see shared data README, "Calibrating a synthetic generator"): service row/cost mix
with EC2 dominant, ~33% exact-zero and ~1.3% negative rows, heavy-tailed long-tail costs, ~70% of
rows / ~95% of spend tagged with messy keys and Zipf application/business_unit values, power-law
account concentration (top 7 of 66 ≈ 90% of cost), AWS region mix, weekend dip, a step change, a
one-day spike, a partial trailing day, ResourceId null on ~7.5% of rows.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from costguard.inventory import INVENTORY_SCHEMA

GENERATOR_VERSION = "costguard.sim/2"
UNIT = 10**10  # amounts are integers of 1e-10 USD (Decimal scale 10)
DEC = pl.Decimal(38, 10)
TS = pl.Datetime("us", "UTC")
SIMDATA = Path(__file__).with_name("simdata")
US_PER_HOUR = 3_600_000_000
HOURS_PER_MONTH = 730

# Rightsizing label used in expected.json: the cheapest type of the same family whose vCPU and
# memory cover p95 utilisation divided by this target (so p95 on the new type stays <= 80%).
RIGHTSIZE_TARGET_UTIL = 0.8
IDLE_CPU_P95 = 3.0
OVERSIZED_CPU_P95 = 20.0


@dataclass(frozen=True)
class SimSpec:
    """What to generate. ``end`` is exclusive; the last generated day ``end - 1`` is partial."""

    rows: int
    days: int
    end: date
    seed: int = 42
    accounts: int = 66
    providers: tuple[str, ...] = ("AWS",)
    partial_last_day: float = 0.35  # share of a normal day's hours present on the last day
    tag_coverage: float = 0.70  # approximate share of rows that carry Tags
    commitment_coverage: float = 0.005  # share of instances covered by a Savings Plan
    step_change: tuple[float, float] | None = (0.5, 0.4)  # (at fraction of days, +40% compute)
    spike: tuple[float, float] | None = (0.8, 0.8)  # (at fraction of days, +80% of a day's cost)
    idle_share: float = 0.06  # planted idle instances (cpu_p95 < 3%)
    oversized_share: float = 0.20  # planted oversized instances (cpu_p95 < 20%)
    unattached_share: float = 0.05  # planted unattached volumes, relative to instances
    compression: str = "zstd"
    commitment_unused: float = 0.0  # share of the savings plan nothing uses (billed as CommitmentDiscountStatus=Unused rows)
    no_metrics_share: float = 0.10  # normal instances without CPU/memory metrics (no rightsizing without them)
    dialect_quirks: float = 0.0  # share of rows with real-world FOCUS deviations (ChargeFrequency "Usage-based")

    def __post_init__(self) -> None:
        if self.rows < 100:
            raise ValueError("rows must be >= 100")
        if self.days < 2:
            raise ValueError("days must be >= 2 (the last day is partial)")
        if not 0.05 <= self.partial_last_day <= 1.0:
            raise ValueError("partial_last_day must be in [0.05, 1]")
        if self.accounts < 8:
            raise ValueError("accounts must be >= 8")
        unknown = [p for p in self.providers if p != "AWS"]
        if unknown or not self.providers:
            raise ValueError(f"only the AWS profile is implemented (got {self.providers!r})")
        if not 0 <= self.commitment_unused < 1:
            raise ValueError("commitment_unused must be in [0, 1)")

    @property
    def start(self) -> date:
        return self.end - timedelta(days=self.days)


# ----------------------------------------------------------------------------------------------
# Static profile data (AWS)

REGIONS = [  # id, name, share of rows, price multiplier vs us-east-1
    ("us-west-2", "US West (Oregon)", 0.45, 1.00),
    ("us-east-1", "US East (N. Virginia)", 0.33, 1.00),
    ("us-east-2", "US East (Ohio)", 0.046, 1.00),
    ("eu-central-1", "EU (Frankfurt)", 0.039, 1.15),
    ("ap-south-1", "Asia Pacific (Mumbai)", 0.031, 1.05),
    ("ap-northeast-1", "Asia Pacific (Tokyo)", 0.028, 1.25),
    ("eu-west-1", "EU (Ireland)", 0.030, 1.10),
    ("ap-southeast-2", "Asia Pacific (Sydney)", 0.020, 1.20),
    ("ca-central-1", "Canada (Central)", 0.016, 1.10),
    ("sa-east-1", "South America (Sao Paulo)", 0.010, 1.55),
]

FAMILY_WEIGHTS = {  # base fleet instance families (g5 only appears in the spike)
    "m5": 0.20, "m5a": 0.07, "c5": 0.12, "r5": 0.10, "r5a": 0.04, "t3": 0.15,
    "m6i": 0.10, "c6i": 0.08, "r6i": 0.06, "m6g": 0.04, "c6g": 0.02, "r6g": 0.02,
}
SIZE_WEIGHTS = {"nano": 0.2, "micro": 0.5, "small": 1, "medium": 2, "large": 8, "xlarge": 8,
                "2xlarge": 6, "4xlarge": 3, "8xlarge": 1, "12xlarge": 0.5, "16xlarge": 0.3,
                "24xlarge": 0.2, "32xlarge": 0.1}

VOLUME_TYPES = [  # type, USD per GB-month, weight, description
    ("gp3", "0.08", 0.6, "General Purpose SSD (gp3) provisioned storage"),
    ("gp2", "0.10", 0.3, "General Purpose SSD (gp2) provisioned storage"),
    ("io1", "0.125", 0.05, "Provisioned IOPS SSD (io1) provisioned storage"),
    ("st1", "0.045", 0.05, "Throughput Optimized HDD (st1) provisioned storage"),
]

# Long-tail services: key, ServiceName, ServiceCategory, ServiceSubcategory, share of all rows,
# share of total cost, P(row cost == 0), lognormal sigma, P(resource tagged), regional?,
# arn (service, type), usages [(usage type, unit, USD unit price, description)].
_S = "Amazon Web Services, Inc."
SERVICES: list[tuple] = [
    ("ec2x", "Amazon Elastic Compute Cloud", "Compute", "Compute / Virtual Machines", 27.0, 0.060, 0.55, 2.0, 0.75, True,
     ("ec2", "natgateway"), [
         ("DataTransfer-Regional-Bytes", "GB", "0.01", "$0.01 per GB - regional data transfer - in/out/between EC2 AZs or using elastic IPs or ELB"),
         ("NatGateway-Hours", "Hours", "0.045", "$0.045 per NAT Gateway Hour"),
         ("EBS:SnapshotUsage", "GB-Mo", "0.05", "$0.05 per GB-Month of snapshot data stored - {region}"),
         ("DataTransfer-In-Bytes", "GB", "0", "$0.00 per GB - data transfer in per month - {region}")]),
    ("elb", "Elastic Load Balancing", "Networking", "Networking / Application Networking", 10.3, 0.017, 0.45, 1.6, 0.61, True,
     ("elasticloadbalancing", "loadbalancer/app"), [
         ("LoadBalancerUsage", "Hours", "0.0225", "$0.0225 per Application LoadBalancer-hour (or partial hour)"),
         ("LCUUsage", "LCU-Hrs", "0.008", "$0.008 per used Application load balancer capacity unit-hour (or partial hour)")]),
    ("cw", "AmazonCloudWatch", "Management and Governance", "Management and Governance / Observability", 6.7, 0.012, 0.60, 3.0, 0.08, True,
     ("logs", "log-group:/aws"), [
         ("CW:MetricMonitorUsage", "Metrics", "0.30", "$0.30 per metric-month - first 10,000 metrics - {region}"),
         ("DataProcessing-Bytes", "GB", "0.50", "$0.50 per GB custom log data ingested - {region}"),
         ("CW:Requests", "Requests", "0.00001", "$0.01 per 1,000 metrics requested using GetMetricData API - {region}")]),
    ("vpc", "Amazon Virtual Private Cloud", "Networking", "Networking / Network Connectivity", 6.1, 0.006, 0.65, 2.5, 0.61, True,
     ("ec2", "vpc-endpoint"), [
         ("VpcEndpoint-Hours", "Hours", "0.01", "$0.01 per VPC Endpoint Hour"),
         ("PublicIPv4:InUseAddress", "Hrs", "0.005", "$0.005 per In-use public IPv4 address per hour")]),
    ("ecs", "Amazon Elastic Container Service", "Compute", "Compute / Containers", 4.2, 0.005, 0.25, 1.5, 0.85, True,
     ("ecs", "service"), [
         ("Fargate-vCPU-Hours:perCPU", "hours", "0.04048", "$0.04048 per hour per vCPU for Linux/X86 - {region}"),
         ("Fargate-GB-Hours", "hours", "0.004445", "$0.004445 per GB-hours for Linux/X86 - {region}")]),
    ("s3", "Amazon Simple Storage Service", "Storage", "Storage / Object Storage", 3.8, 0.008, 0.50, 3.0, 0.73, True,
     ("s3", ""), [
         ("TimedStorage-ByteHrs", "GB-Mo", "0.023", "$0.023 per GB - first 50 TB / month of storage used"),
         ("Requests-Tier1", "Requests", "0.000005", "$0.005 per 1,000 PUT, COPY, POST, or LIST requests"),
         ("Requests-Tier2", "Requests", "0.0000004", "$0.0004 per 10,000 GET and all other requests")]),
    ("sqs", "Amazon Simple Queue Service", "Integration", "Integration / Messaging", 1.5, 0.0003, 0.55, 2.5, 0.11, True,
     ("sqs", ""), [("Requests-RBP", "Requests", "0.0000004", "$0.40 per million Amazon SQS standard requests")]),
    ("rds", "Amazon Relational Database Service", "Databases", "Databases / Relational Databases", 1.4, 0.042, 0.05, 1.0, 0.55, True,
     ("rds", "db"), [
         ("InstanceUsage:db.r5.large", "Hrs", "0.25", "$0.25 per RDS db.r5.large Multi-AZ instance hour (or partial hour) running MySQL"),
         ("RDS:GP2-Storage", "GB-Mo", "0.115", "$0.115 per GB-month of provisioned GP2 storage running MySQL")]),
    ("cf", "Amazon CloudFront", "Networking", "Networking / Content Delivery", 1.2, 0.003, 0.35, 2.5, 0.61, False,
     ("cloudfront", "distribution"), [
         ("DataTransfer-Out-Bytes", "GB", "0.085", "$0.085 per GB - first 10 TB / month data transfer out"),
         ("Requests-Tier1", "Requests", "0.0000075", "$0.0075 per 10,000 HTTP Requests")]),
    ("lambda", "AWS Lambda", "Compute", "Compute / Serverless Compute", 1.0, 0.002, 0.55, 2.5, 0.85, True,
     ("lambda", "function"), [
         ("Lambda-GB-Second", "Lambda-GB-Second", "0.0000166667", "AWS Lambda - Total Compute - {region}"),
         ("Request", "Requests", "0.0000002", "AWS Lambda - Total Requests - {region}")]),
    ("rosa", "Red Hat OpenShift Service on AWS", "Compute", "Compute / Containers", 0.4, 0.019, 0.02, 0.6, 0.90, True,
     ("rosa", "cluster"), [("ROSA-4vCPU-Hour", "vCPU-Hours", "0.171", "$0.171 per 4vCPU-hour for ROSA worker nodes")]),
    ("kms", "AWS Key Management Service", "Security", "Security / Other (Security)", 1.2, 0.001, 0.60, 2.0, 0.0, True,
     ("kms", "key"), [("KMS-Requests", "Requests", "0.000003", "$0.03 per 10,000 requests - {region}")]),
    ("config", "AWS Config", "Management and Governance", "Management and Governance / Compliance", 0.8, 0.0015, 0.40, 1.5, 0.076, True,
     ("config", "config-rule"), [("ConfigurationItemRecorded", "ConfigurationItem", "0.003", "$0.003 per Configuration Item recorded in {region}")]),
    ("ddb", "Amazon DynamoDB", "Databases", "Databases / NoSQL Databases", 0.8, 0.003, 0.40, 2.0, 0.55, True,
     ("dynamodb", "table"), [("ReadRequestUnits", "ReadRequestUnits", "0.00000025", "$0.25 per million read request units (US East (N. Virginia))")]),
    ("r53", "Amazon Route 53", "Networking", "Networking / Network Connectivity", 0.8, 0.0005, 0.30, 1.5, 0.30, False,
     ("route53", "hostedzone"), [("DNS-Queries", "Queries", "0.0000004", "$0.40 per 1,000,000 queries for the first 1 Billion queries")]),
    ("trail", "AWS CloudTrail", "Management and Governance", "Management and Governance / Observability", 0.5, 0.0005, 0.50, 2.0, 0.076, True,
     ("cloudtrail", "trail"), [("PaidEventsRecorded", "Events", "0.000002", "$0.00002 per paid event recorded in {region}")]),
    ("gd", "Amazon GuardDuty", "Security", "Security / Threat Detection and Response", 0.4, 0.0008, 0.20, 1.5, 0.0, True,
     ("guardduty", "detector"), [("PaidEventsAnalyzed", "Events", "0.000004", "Amazon GuardDuty - CloudTrail management events analyzed")]),
    ("sm", "AWS Secrets Manager", "Security", "Security / Secret Management", 0.4, 0.0003, 0.30, 1.2, 0.0, True,
     ("secretsmanager", "secret"), [("AWSSecretsManager-Secrets", "Secrets", "0.40", "$0.40 per secret per month")]),
    ("sns", "Amazon Simple Notification Service", "Integration", "Integration / Messaging", 0.5, 0.0002, 0.65, 2.0, 0.11, True,
     ("sns", ""), [("Requests-Tier1", "Requests", "0.0000005", "$0.50 per 1 million Amazon SNS API Requests")]),
]

APP_A = ["Next", "Vision", "Data", "Dynamic", "Quantum", "Smart", "Cloud", "Rapid", "Blue", "Nova",
         "Hyper", "Prime", "Agile", "Bright", "Core", "Deep", "Edge", "Fast", "Global", "Insight"]
APP_B = ["Scope", "Mind", "Focus", "Map", "Flow", "Pulse", "Stack", "Grid", "Wave", "Link",
         "Sync", "Forge", "Track", "Vault", "Logic"]
APP_C = ["Max", "Zone", "Drive", "Express", "Hub", "Pro", "Lab", "One", "Works", "Cloud"]
BU_A = ["Aurora", "Tarakan", "Shanghai", "Lyon", "Oslo", "Austin", "Pune", "Denver", "Lagos", "Kyoto",
        "Porto", "Quito", "Riga", "Sofia", "Tampa", "Utrecht", "Valencia", "Wuhan", "York", "Zagreb"]
BU_B = ["Finance", "SRE", "AI", "Retail", "Payments", "Security", "Analytics", "Marketing",
        "Platform", "Search", "Mobile", "Logistics", "Support", "Research", "Growth", "Identity"]
NAME_A = ["Nimbus", "Eclipse", "Zenith", "Apollo", "Odyssey", "Orion", "Vega", "Atlas", "Helix",
          "Polaris", "Summit", "Cobalt", "Meridian", "Falcon", "Ember", "Quartz"]
NOISE_KEYS = [  # key, value pool, probability on a tagged resource
    ("env", ["dev", "prod", "staging"], 0.04),
    ("Env", ["Dev", "Prod"], 0.03),
    ("org", ["platform", "data", "web"], 0.03),
    (" org", ["platform", "data"], 0.02),
    ("CostCenter", ["cc-101", "cc-204", "cc-310", "cc-455"], 0.05),
    ("Project", ["phoenix", "atlas", "kraken", "hermes"], 0.04),
    ("Cost department", ["R&D", "Ops"], 0.02),
    ("ms:Department", ["Engineering", "Sales"], 0.02),
    ("aks-managed-cluster-name", ["aks-prod-01", "aks-dev-02"], 0.02),
    ("CostAllocationTest", ["true"], 0.02),
]
ON_DEMAND_TERM = ".JRTCKXETXF.6YS6EN2CT7"
FOCUS_COLUMNS_FILE = Path(__file__).with_name("spec") / "focus_columns_v1.2.json"


def _focus_schema() -> dict[str, pl.DataType]:
    spec = json.loads(FOCUS_COLUMNS_FILE.read_text())
    types = {"String": pl.String(), "Decimal": DEC, "Date/Time": TS, "JSON": pl.String()}
    return {c["ColumnId"]: types[c["Data type"]] for c in spec["columns"]}


def _units(x: str | Decimal) -> int:
    """A decimal string in USD as integer 1e-10 units (exact)."""
    return int(Decimal(x) * UNIT)


def _dec(u: int) -> str:
    """Integer 1e-10 units as a canonical Decimal string with scale 10."""
    return str(Decimal(u).scaleb(-10).quantize(Decimal("1e-10")))


def _price_str(u: int) -> str:
    d = Decimal(u).scaleb(-10).normalize()
    return format(d, "f")


def _sku(*parts: str) -> str:
    h = hashlib.sha1("|".join(parts).encode()).digest()
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(alphabet[b % len(alphabet)] for b in h[:16])


def _hex(rng: np.random.Generator, n: int, width: int) -> list[str]:
    vals = rng.integers(0, 16, size=(n, width))
    digits = np.array(list("0123456789abcdef"))
    return ["".join(r) for r in digits[vals]]


def _zipf_p(n: int, a: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** a
    return w / w.sum()


def load_catalog() -> pl.DataFrame:
    df = pl.read_csv(SIMDATA / "ec2_catalog_us-east-1.csv", infer_schema_length=0)
    return df.select(
        pl.col("instance_type"), pl.col("family"), pl.col("size"),
        pl.col("vcpu").cast(pl.Int64), pl.col("memory_gib").cast(pl.Float64),
        pl.col("processor_architecture"), pl.col("on_demand_usd_per_hour"),
    )


# ----------------------------------------------------------------------------------------------
# Universe


@dataclass
class _Universe:
    spec: SimSpec
    payer_id: str
    payer_name: str
    acct_ids: list[str]
    acct_names: list[str]
    ent: pl.DataFrame  # one row per billing entity (string dimensions)
    ent_kind: np.ndarray  # 0 instance, 1 volume, 2 long tail, 3 credit, 4 adjustment, 5 purchase
    ent_price: np.ndarray  # int64 units per hour (instance/volume) or unit price (long tail)
    ent_acct: np.ndarray
    ent_has_app: np.ndarray  # exact key "application"
    ent_has_app_norm: np.ndarray  # key that normalises (strip+lower) to "application"
    ent_committed: np.ndarray  # bool: covered by the savings plan
    ent_svc: np.ndarray  # long-tail service index or -1
    base_inst: np.ndarray  # entity indices always running
    elastic_inst: np.ndarray  # subset of base that runs 08:00-20:00 on weekends
    step_inst: np.ndarray
    spike_inst: np.ndarray
    volumes: np.ndarray
    lt_idx: np.ndarray
    lt_p: np.ndarray
    lt_mu: np.ndarray  # per long-tail service
    lt_sigma: np.ndarray
    lt_zero: np.ndarray
    lt_cap: np.ndarray
    credit_idx: np.ndarray
    adjust_idx: np.ndarray
    purchase_idx: int | None
    credit_mean_units: float
    row_budget: list[int]
    step_day: date | None
    spike_day: date | None
    partial_hours: int
    inventory: pl.DataFrame
    planted: dict[str, list[dict[str, Any]]]
    sp_hourly_units: int  # savings plan commitment per hour (covered effective cost, plus the unused part)
    sp_id: str | None
    unused_idx: int | None  # entity billing the savings plan's unused part (CommitmentDiscountStatus=Unused)
    ent_tagged: np.ndarray
    ent_null_rid: np.ndarray
    vol_size: np.ndarray  # GB for volume entities, else 0


def _tags(rng: np.random.Generator, apps: list[str], bus: list[str], p_app: np.ndarray,
          p_bu: np.ndarray) -> tuple[dict[str, str], bool, bool]:
    tags: dict[str, str] = {}
    if rng.random() < 0.90:
        app = apps[rng.choice(len(apps), p=p_app)]
        key = "Application" if rng.random() < 0.01 else "application"
        tags[key] = app
        tags["environment"] = "dev" if rng.random() < 0.64 else "prod"
        tags["business_unit"] = bus[rng.choice(len(bus), p=p_bu)]
    for k, vals, p in NOISE_KEYS:
        if rng.random() < p:
            tags[k] = vals[int(rng.integers(len(vals)))]
    if not tags:
        tags["CostCenter"] = "cc-101"
    return tags, "application" in tags, any(k.strip().lower() == "application" for k in tags)


def _build_universe(spec: SimSpec) -> _Universe:  # noqa: C901 - one linear recipe
    rng = np.random.default_rng([spec.seed, 0x5EED])
    n_acct = spec.accounts
    cat = load_catalog()
    cat_rows = cat.to_dicts()
    by_type = {r["instance_type"]: r for r in cat_rows}
    fam_members: dict[str, list[dict]] = {}
    for r in cat_rows:
        fam_members.setdefault(r["family"], []).append(r)
    for v in fam_members.values():
        v.sort(key=lambda r: (r["vcpu"], r["memory_gib"]))

    payer_id = "".join(str(d) for d in rng.integers(0, 10, 12))
    payer_id = "1" + payer_id[1:]
    payer_name = NAME_A[int(rng.integers(len(NAME_A)))] + "Bird"
    acct_ids = sorted({"".join(str(d) for d in rng.integers(1, 10, 12)) for _ in range(n_acct * 2)})
    acct_ids = [acct_ids[i] for i in rng.permutation(len(acct_ids))[:n_acct]]
    acct_names = [f"{NAME_A[i % len(NAME_A)]} {NAME_A[(i * 7 + 3) % len(NAME_A)]}" +
                  ("" if i < len(NAME_A) else f" {i // len(NAME_A)}") for i in range(n_acct)]
    p_acct_cost = _zipf_p(n_acct, 2.0)
    p_acct_rows = _zipf_p(n_acct, 1.1)

    apps = sorted({a + b + c for a in APP_A for b in APP_B for c in APP_C})
    apps = [apps[i] for i in rng.permutation(len(apps))[:320]]
    bus = sorted({a + b for a in BU_A for b in BU_B})
    bus = [bus[i] for i in rng.permutation(len(bus))[:300]]
    p_app = _zipf_p(len(apps), 1.05)
    p_bu = _zipf_p(len(bus), 1.0)

    reg_ids = [r[0] for r in REGIONS]
    reg_names = {r[0]: r[1] for r in REGIONS}
    reg_mult = {r[0]: Decimal(str(r[3])) for r in REGIONS}
    p_reg = np.array([r[2] for r in REGIONS])
    p_reg = p_reg / p_reg.sum()

    # Row budget per day: equal full days, partial last day; total exactly spec.rows.
    full = spec.rows / (spec.days - 1 + spec.partial_last_day)
    weights = [1.0] * (spec.days - 1) + [spec.partial_last_day]
    budget = [int(full * w) for w in weights]
    budget[0] += spec.rows - sum(budget)
    partial_hours = max(1, min(24, round(24 * spec.partial_last_day)))

    start = spec.start
    step_day = start + timedelta(days=int(spec.days * spec.step_change[0])) if spec.step_change else None
    spike_day = start + timedelta(days=min(spec.days - 2, int(spec.days * spec.spike[0]))) if spec.spike else None

    ents: list[dict[str, Any]] = []
    kind: list[int] = []
    price: list[int] = []
    acct: list[int] = []
    has_app: list[bool] = []
    has_app_n: list[bool] = []
    committed: list[bool] = []
    svc_of: list[int] = []
    inventory: list[dict[str, Any]] = []
    start_dt = datetime(start.year, start.month, start.day, tzinfo=timezone.utc)

    def add(row: dict[str, Any], k: int, pr: int, a: int, tg: tuple[dict | None, bool, bool],
            commit: bool = False, svc: int = -1) -> int:
        row.setdefault("AvailabilityZone", None)
        row.setdefault("ResourceName", None)
        row.setdefault("ResourceType", None)
        row["SubAccountId"] = acct_ids[a]
        row["SubAccountName"] = acct_names[a]
        row["Tags"] = json.dumps(tg[0]) if tg[0] else None
        ents.append(row)
        kind.append(k)
        price.append(pr)
        acct.append(a)
        has_app.append(tg[1])
        has_app_n.append(tg[2])
        committed.append(commit)
        svc_of.append(svc)
        return len(ents) - 1

    def tagset(p: float) -> tuple[dict | None, bool, bool]:
        if rng.random() < p:
            return _tags(rng, apps, bus, p_app, p_bu)
        return None, False, False

    # --- instances ------------------------------------------------------------------------
    n_inst = max(8, int(full * 0.18 / 24))
    fams = list(FAMILY_WEIGHTS)
    p_fam = np.array([FAMILY_WEIGHTS[f] for f in fams])
    p_fam /= p_fam.sum()

    def draw_type() -> dict:
        fam = fams[rng.choice(len(fams), p=p_fam)]
        members = fam_members[fam]
        w = np.array([SIZE_WEIGHTS.get(m["size"], 0.1) for m in members])
        return members[rng.choice(len(members), p=w / w.sum())]

    def oversized_type(ratio: int) -> tuple[dict, dict]:
        while True:
            t = draw_type()
            if t["family"] == "t3":
                continue
            tgt = [m for m in fam_members[t["family"]]
                   if m["vcpu"] * ratio == t["vcpu"] and m["memory_gib"] * ratio == t["memory_gib"]]
            if tgt:
                return t, tgt[0]

    def inst_price(t: dict, region: str) -> int:
        p = (Decimal(t["on_demand_usd_per_hour"]) * reg_mult[region]).quantize(Decimal("0.0001"))
        return _units(p)

    planted: dict[str, list[dict[str, Any]]] = {"idle_instances": [], "oversized_instances": [],
                                                "unattached_volumes": []}
    n_idle = max(1, round(n_inst * spec.idle_share))
    n_over = max(2, round(n_inst * spec.oversized_share))
    n_commit = int(round(n_inst * spec.commitment_coverage))
    roles = ["idle"] * n_idle + ["over"] * n_over + ["normal"] * (n_inst - n_idle - n_over)
    roles = [roles[i] for i in rng.permutation(len(roles))]
    normal_pos = [i for i, r in enumerate(roles) if r == "normal"]
    commit_pos = set(normal_pos[:n_commit])
    sp_hourly = 0
    sp_id = (f"arn:aws:savingsplans::{payer_id}:savingsplan/"
             f"{_hex(rng, 1, 8)[0]}-{_hex(rng, 1, 4)[0]}-{_hex(rng, 1, 4)[0]}-{_hex(rng, 1, 12)[0]}")

    rng2 = np.random.default_rng([spec.seed, 0x1D1E])  # everything added for the rule pack: the original draws stay as they were
    end_dt = datetime(spec.end.year, spec.end.month, spec.end.day, tzinfo=timezone.utc)

    def make_instance(role: str, a: int, created: datetime, pos: int, t: dict | None = None,
                      region: str | None = None) -> int:
        nonlocal sp_hourly
        expected = None
        if t is None:
            if role == "over":
                t, expected = oversized_type(4 if rng.random() < 0.5 else 8)
            else:
                t = draw_type()
        region = region or reg_ids[rng.choice(len(reg_ids), p=p_reg)]
        pr = inst_price(t, region)
        rid = "i-0" + _hex(rng, 1, 16)[0]
        tg = tagset(0.99) if role == "normal" else _tags(rng, apps, bus, p_app, p_bu)
        name = None
        if tg[0] and rng.random() < 0.3:
            app = tg[0].get("application") or tg[0].get("Application") or "svc"
            name = f"{app.lower()}-{tg[0].get('environment', 'dev')}-{int(rng.integers(1, 99)):02d}"
        az = f"{region}{'abc'[int(rng.integers(3))]}"
        commit = pos in commit_pos
        row = {
            "kind": "instance", "RegionId": region, "RegionName": reg_names[region],
            "AvailabilityZone": az if rng.random() < 0.35 else None,
            "ServiceName": "Amazon Elastic Compute Cloud", "ServiceCategory": "Compute",
            "ServiceSubcategory": "Compute / Virtual Machines", "ResourceId": rid,
            "ResourceName": name if rng.random() < 0.2 else None,
            "ResourceType": "instance" if rng.random() < 0.4 else None,
            "ChargeDescription": f"${_price_str(pr)} per On Demand Linux {t['instance_type']} Instance Hour",
            "SkuMeter": f"BoxUsage:{t['instance_type']}", "ConsumedUnit": "Hours", "PricingUnit": "Hours",
            "SkuId": _sku("ec2", t["instance_type"], region),
        }
        row["SkuPriceId"] = row["SkuId"] + ON_DEMAND_TERM
        if role == "idle":
            cpu, mem = float(rng.uniform(0.2, 2.5)), float(rng.uniform(2.0, 9.0))
        elif role == "over":
            ratio = t["vcpu"] // expected["vcpu"]
            lo, hi = (12.6, 14.9) if ratio == 4 else (6.3, 7.4)
            cpu, mem = float(rng.uniform(lo, hi)), float(rng.uniform(3.0, 100 * 0.6 / ratio - 0.5))
        else:
            cpu, mem = float(rng.uniform(45, 90)), float(rng.uniform(30, 85))
        cpu, mem = round(cpu, 2), round(mem, 2)
        e = add(row, 0, pr, a, tg, commit)
        if commit:
            sp_hourly += _sp_rate(pr)
        spread = {"idle": (1.5, 3.0), "over": (1.1, 1.5)}.get(role, (1.1, 1.4))
        inv = {
            "provider": "AWS", "account_id": acct_ids[a], "region": region, "resource_id": rid,
            "resource_class": "instance", "resource_type": "AWS::EC2::Instance", "name": name,
            "tags": json.dumps(tg[0] or {}), "state": "running", "sku": t["instance_type"],
            "architecture": _arch(t["instance_type"]), "created_at": created,
            "cpu_p95": cpu, "cpu_max": round(min(100.0, cpu * float(rng2.uniform(*spread))), 2), "mem_p95": mem,
            "metrics_days": max(1, min(30, (end_dt - created).days)),
        }
        inventory.append(inv)
        info = {"resource_id": rid, "account_id": acct_ids[a], "region": region,
                "instance_type": t["instance_type"], "cpu_p95": cpu, "mem_p95": mem,
                "hourly_cost": _dec(pr), "monthly_cost_730h": _dec(pr * HOURS_PER_MONTH),
                "_entity": e}
        if role == "idle":
            info["expected_findings"] = ["idle"]
            info["note"] = "cpu_p95 < 3% also satisfies the oversized threshold; a pack that does not suppress rightsizing for idle resources flags it twice"
            info["rightsizing_type_if_flagged"] = _rightsize(t, cpu, mem, fam_members)["instance_type"]
            planted["idle_instances"].append(info)
        elif role == "over":
            assert expected is not None
            label = _rightsize(t, cpu, mem, fam_members)
            assert label["instance_type"] == expected["instance_type"], (t, label, expected)
            new_pr = inst_price(expected, region)
            info.update({
                "expected_findings": ["rightsizing"], "expected_type": expected["instance_type"],
                "expected_hourly_cost": _dec(new_pr),
                "monthly_savings_730h": _dec((pr - new_pr) * HOURS_PER_MONTH),
            })
            planted["oversized_instances"].append(info)
        return e

    base_inst = []
    for pos in range(n_inst):
        a = int(rng.choice(n_acct, p=p_acct_cost))
        created = start_dt - timedelta(days=int(rng.integers(30, 400)), seconds=int(rng.integers(86400)))
        base_inst.append(make_instance(roles[pos], a, created, pos))
    base_inst_a = np.array(base_inst, dtype=np.int64)
    normal_ent = np.array([base_inst[i] for i in normal_pos if i not in commit_pos], dtype=np.int64)
    elastic = normal_ent[rng.random(len(normal_ent)) < 0.25]

    step_inst: list[int] = []
    if spec.step_change:
        base_hourly = sum(price[e] for e in base_inst)
        target = base_hourly * spec.step_change[1]
        got = 0
        sday = datetime(step_day.year, step_day.month, step_day.day, tzinfo=timezone.utc)
        while got < target:
            e = make_instance("normal", 1, sday, -1)
            step_inst.append(e)
            got += price[e]

    spike_inst: list[int] = []
    if spec.spike:
        g5 = by_type.get("g5.12xlarge") or fam_members["g5"][-1]
        base_daily = sum(price[e] for e in base_inst) * 24 / 0.80
        g5_daily = inst_price(g5, "us-east-1") * 24
        n_spike = max(1, math.ceil(spec.spike[1] * base_daily / g5_daily))
        for _ in range(n_spike):
            rid = "i-0" + _hex(rng, 1, 16)[0]
            row = {
                "kind": "instance", "RegionId": "us-east-1", "RegionName": reg_names["us-east-1"],
                "ServiceName": "Amazon Elastic Compute Cloud", "ServiceCategory": "Compute",
                "ServiceSubcategory": "Compute / Virtual Machines", "ResourceId": rid, "ResourceType": "instance",
                "ChargeDescription": f"${_price_str(inst_price(g5, 'us-east-1'))} per On Demand Linux {g5['instance_type']} Instance Hour",
                "SkuMeter": f"BoxUsage:{g5['instance_type']}", "ConsumedUnit": "Hours", "PricingUnit": "Hours",
                "SkuId": _sku("ec2", g5["instance_type"], "us-east-1"),
            }
            row["SkuPriceId"] = row["SkuId"] + ON_DEMAND_TERM
            tg = ({"application": apps[1], "environment": "dev", "business_unit": bus[3],
                   "Project": "llm-finetune"}, True, True)
            spike_inst.append(add(row, 0, inst_price(g5, "us-east-1"), 3, tg))

    # --- volumes ------------------------------------------------------------------------------
    volumes: list[int] = []
    attach_to = [e for e in base_inst + step_inst if rng.random() < 0.3]
    n_unatt = max(2, round(n_inst * spec.unattached_share))
    vt_p = np.array([v[2] for v in VOLUME_TYPES])
    for j in range(len(attach_to) + n_unatt):
        unatt = j >= len(attach_to)
        if unatt:
            a = int(rng.choice(n_acct, p=p_acct_cost))
            region = reg_ids[rng.choice(len(reg_ids), p=p_reg)]
            created = start_dt - timedelta(days=int(rng.integers(60, 500)))
            tg = tagset(0.8)
        else:
            ie = attach_to[j]
            a, region = acct[ie], ents[ie]["RegionId"]
            inv_i = next(i for i in inventory if i["resource_id"] == ents[ie]["ResourceId"])
            created = inv_i["created_at"]
            tg = (json.loads(ents[ie]["Tags"]) if ents[ie]["Tags"] else None, has_app[ie], has_app_n[ie])
        vt = VOLUME_TYPES[rng.choice(len(VOLUME_TYPES), p=vt_p / vt_p.sum())]
        size = int(rng.choice([8, 20, 50, 100, 200, 500, 1000, 2000], p=[.15, .2, .2, .2, .1, .08, .05, .02]))
        gbm = (Decimal(vt[1]) * reg_mult[region]).quantize(Decimal("0.0001"))
        hourly = int((Decimal(size) * gbm * UNIT / HOURS_PER_MONTH).to_integral_value())
        rid = "vol-0" + _hex(rng, 1, 16)[0]
        row = {
            "kind": "volume", "RegionId": region, "RegionName": reg_names[region],
            "ServiceName": "Amazon Elastic Compute Cloud", "ServiceCategory": "Storage",
            "ServiceSubcategory": "Storage / Block Storage", "ResourceId": rid,
            "ResourceType": "volume" if rng.random() < 0.4 else None,
            "ChargeDescription": f"${_price_str(_units(gbm))} per GB-month of {vt[3]} - {reg_names[region]}",
            "SkuMeter": f"EBS:VolumeUsage.{vt[0]}", "ConsumedUnit": "GB-Mo", "PricingUnit": "GB-Mo",
            "SkuId": _sku("ebs", vt[0], region), "_size": size,
        }
        row["SkuPriceId"] = row["SkuId"] + ON_DEMAND_TERM
        e = add(row, 1, hourly, a, tg)
        volumes.append(e)
        inventory.append({
            "provider": "AWS", "account_id": acct_ids[a], "region": region, "resource_id": rid,
            "resource_class": "volume", "resource_type": "AWS::EC2::Volume", "name": None,
            "tags": json.dumps(tg[0] or {}), "state": "available" if unatt else "in-use", "sku": vt[0],
            "created_at": created, "size_gb": float(size), "iops": 3000 if vt[0] in ("gp3", "io1") else None,
            "attached_to": None if unatt else ents[attach_to[j]]["ResourceId"],
        })
        if unatt:
            planted["unattached_volumes"].append({
                "resource_id": rid, "account_id": acct_ids[a], "region": region, "volume_type": vt[0],
                "size_gb": size, "hourly_cost": _dec(hourly), "monthly_cost_730h": _dec(hourly * HOURS_PER_MONTH),
                "expected_findings": ["idle"], "_entity": e,
            })

    # --- long-tail usage resources ------------------------------------------------------------
    fixed_full = (len(base_inst) + len(step_inst) * 0.5 + len(volumes)) * 24
    lt_rows_full = max(50.0, full * (1 - 0.013) - fixed_full)
    row_w = np.array([s[4] for s in SERVICES])
    row_w /= row_w.sum()
    n_lt = max(len(SERVICES) * 4, int(lt_rows_full / 16))
    lt_idx: list[int] = []
    lt_w: list[float] = []
    svc_draw = rng.choice(len(SERVICES), size=n_lt, p=row_w)
    svc_draw[: len(SERVICES)] = np.arange(len(SERVICES))  # every service present
    activity = rng.lognormal(0, 0.8, size=n_lt)
    counts = np.bincount(svc_draw, minlength=len(SERVICES))
    names = _hex(rng, n_lt, 17)
    null_rid_p = (0.068 - 0.013) / max(0.05, lt_rows_full / full)
    for j in range(n_lt):
        k = int(svc_draw[j])
        key, sname, cat_, sub, _, _, _, _, tag_p, regional, (arn_svc, arn_type), usages = SERVICES[k]
        a = int(rng.choice(n_acct, p=p_acct_rows))
        region = reg_ids[rng.choice(len(reg_ids), p=p_reg)] if regional else None
        u = usages[int(rng.integers(len(usages)))]
        null_rid = rng.random() < null_rid_p
        if null_rid:
            rid, tg = None, (None, False, False)
        else:
            nm = names[j]
            rg = region or ""
            if arn_svc == "s3":
                rid = f"arn:aws:s3:::{key}-{nm[:10]}"
            elif arn_svc in ("sqs", "sns"):
                rid = f"arn:aws:{arn_svc}:{rg}:{acct_ids[a]}:{key}-{nm[:8]}"
            elif arn_svc == "ec2":
                rid = f"arn:aws:ec2:{rg}:{acct_ids[a]}:{arn_type}/{arn_type[:3]}-{nm}"
            else:
                rid = f"arn:aws:{arn_svc}:{rg}:{acct_ids[a]}:{arn_type}/{key}-{nm[:12]}"
            tg = tagset(min(1.0, tag_p * spec.tag_coverage / 0.70))
        row = {
            "kind": "longtail", "RegionId": region, "RegionName": reg_names[region] if region else None,
            "ServiceName": sname, "ServiceCategory": cat_, "ServiceSubcategory": sub, "ResourceId": rid,
            "ResourceType": (arn_type.split("/")[0].split(":")[0] or key) if rid and rng.random() < 0.3 else None,
            "ChargeDescription": u[3].format(region=reg_names[region] if region else "Global"),
            "SkuMeter": u[0], "ConsumedUnit": u[1], "PricingUnit": u[1],
            "SkuId": _sku(key, u[0], region or "global"),
        }
        row["SkuPriceId"] = row["SkuId"] + ON_DEMAND_TERM
        e = add(row, 2, _units(u[2]), a, tg, svc=k)
        lt_idx.append(e)
        lt_w.append(row_w[k] / counts[k] * activity[j])
    lt_p = np.array(lt_w)
    lt_p /= lt_p.sum()

    # Long-tail cost parameters per service, from the target cost share of a base day.
    base_fixed_daily = (sum(price[e] for e in base_inst) + sum(price[e] for e in volumes)) * 24
    lt_share = sum(s[5] for s in SERVICES)
    total_daily = base_fixed_daily / (1 - lt_share)
    mu, sig, zero, cap = [], [], [], []
    for k, s in enumerate(SERVICES):
        n_k = max(1.0, lt_rows_full * row_w[k])
        # non-zero rows: a TINY_P share of near-free lines (requests, metrics, ~1e-6 USD) and a main
        # component that carries the service's cost
        mean_nz = s[5] * total_daily / (n_k * (1 - s[6] * 0.88) * (1 - TINY_P))  # units per main row
        mu.append(math.log(max(mean_nz, 1.0)) - s[7] ** 2 / 2)
        sig.append(s[7])
        zero.append(s[6] * 0.88)
        cap.append(mean_nz * 300)

    # --- credits, adjustments, savings plan purchase --------------------------------------------
    credit_idx, adjust_idx = [], []
    for a in range(min(n_acct, 20)):
        for cat_k, lst, desc in ((3, credit_idx, "AWS Promotional Credit"), (4, adjust_idx, "Enterprise Discount Program adjustment")):
            row = {"kind": "credit", "RegionId": None, "RegionName": None,
                   "ServiceName": "Amazon Elastic Compute Cloud", "ServiceCategory": "Compute",
                   "ServiceSubcategory": "Compute / Virtual Machines", "ResourceId": None, "ChargeDescription": desc,
                   "SkuMeter": None, "ConsumedUnit": None, "PricingUnit": None, "SkuId": None, "SkuPriceId": None}
            lst.append(add(row, cat_k, 0, a, (None, False, False)))
    purchase_idx = None
    if sp_hourly > 0:
        row = {"kind": "purchase", "RegionId": None, "RegionName": None,
               "ServiceName": "Savings Plans for AWS Compute usage", "ServiceCategory": "Compute",
               "ServiceSubcategory": "Compute / Virtual Machines", "ResourceId": sp_id,
               "ChargeDescription": "Savings Plan recurring fee (1 year, No Upfront, Compute)",
               "SkuMeter": "ComputeSP:1yrNoUpfront", "ConsumedUnit": None, "PricingUnit": None,
               "SkuId": _sku("sp", payer_id), "SkuPriceId": None}
        purchase_idx = add(row, 5, sp_hourly, 0, (None, False, False))
    credit_mean = 0.008 * total_daily / max(1.0, 0.011 * full)

    unused_idx = None
    if sp_hourly > 0 and spec.commitment_unused > 0:
        unused_hourly = int((Decimal(sp_hourly) * Decimal(str(spec.commitment_unused))
                             / (1 - Decimal(str(spec.commitment_unused)))).to_integral_value())
        row = {"kind": "unused", "RegionId": None, "RegionName": None,
               "ServiceName": "Savings Plans for AWS Compute usage", "ServiceCategory": "Compute",
               "ServiceSubcategory": "Compute / Virtual Machines", "ResourceId": sp_id,
               "ChargeDescription": "Savings Plan commitment not used by any usage this hour",
               "SkuMeter": "ComputeSP:1yrNoUpfront", "ConsumedUnit": None, "PricingUnit": None,
               "SkuId": _sku("sp", payer_id), "SkuPriceId": None}
        unused_idx = add(row, 6, unused_hourly, 0, (None, False, False))
        planted["commitments"] = [{"commitment_id": sp_id, "hourly_used": _dec(sp_hourly), "hourly_unused": _dec(unused_hourly),
                                   "utilization": str((Decimal(sp_hourly) / Decimal(sp_hourly + unused_hourly)).quantize(Decimal("1e-6"))),
                                   "expected_findings": ["commitment"]}]
        sp_hourly += unused_hourly  # the purchase covers what is used and what is not
        if purchase_idx is not None:
            price[purchase_idx] = sp_hourly
    _plant_inventory(rng2, spec, inventory, planted, ents, lt_idx, normal_pos, base_inst, acct_ids, end_dt, price)
    inv_df = pl.DataFrame([{c: r.get(c) for c in _INVENTORY_COLUMNS} for r in inventory], schema=_INVENTORY_COLUMNS)
    ent_cols = ["RegionId", "RegionName", "AvailabilityZone", "ServiceName", "ServiceCategory",
                "ServiceSubcategory", "ResourceId", "ResourceName", "ResourceType", "ChargeDescription",
                "SkuMeter", "ConsumedUnit", "PricingUnit", "SkuId", "SkuPriceId", "SubAccountId",
                "SubAccountName", "Tags"]
    ent_df = pl.DataFrame({c: [r.get(c) for r in ents] for c in ent_cols},
                          schema={c: pl.String for c in ent_cols})
    return _Universe(
        spec=spec, payer_id=payer_id, payer_name=payer_name, acct_ids=acct_ids, acct_names=acct_names,
        ent=ent_df, ent_kind=np.array(kind, dtype=np.int8), ent_price=np.array(price, dtype=np.int64),
        ent_acct=np.array(acct, dtype=np.int64), ent_has_app=np.array(has_app),
        ent_has_app_norm=np.array(has_app_n), ent_committed=np.array(committed),
        ent_svc=np.array(svc_of, dtype=np.int64), base_inst=base_inst_a, elastic_inst=elastic,
        step_inst=np.array(step_inst, dtype=np.int64), spike_inst=np.array(spike_inst, dtype=np.int64),
        volumes=np.array(volumes, dtype=np.int64), lt_idx=np.array(lt_idx, dtype=np.int64), lt_p=lt_p,
        lt_mu=np.array(mu), lt_sigma=np.array(sig), lt_zero=np.array(zero), lt_cap=np.array(cap),
        credit_idx=np.array(credit_idx, dtype=np.int64), adjust_idx=np.array(adjust_idx, dtype=np.int64),
        purchase_idx=purchase_idx, credit_mean_units=credit_mean, row_budget=budget,
        step_day=step_day, spike_day=spike_day, partial_hours=partial_hours, inventory=inv_df,
        planted=planted, sp_hourly_units=sp_hourly, sp_id=sp_id if sp_hourly else None, unused_idx=unused_idx,
        ent_tagged=np.array([r["Tags"] is not None for r in ents]),
        ent_null_rid=np.array([r.get("ResourceId") is None for r in ents]),
        vol_size=np.array([r.get("_size", 0) for r in ents], dtype=np.int64),
    )


_INVENTORY_COLUMNS = {c: t for c, t in INVENTORY_SCHEMA.items() if c != "x_tags"}  # x_tags is derived when read


def _arch(instance_type: str) -> str:
    from costguard.catalog import bundled

    t = bundled().instance_type("AWS", "instance", instance_type)
    return t.architecture if t else "x86_64"


def _plant_inventory(rng: np.random.Generator, spec: SimSpec, inventory: list[dict[str, Any]],  # noqa: C901 - one recipe
                     planted: dict[str, list[dict[str, Any]]], ents: list[dict[str, Any]], lt_idx: list[int],
                     normal_pos: list[int], base_inst: list[int], acct_ids: list[str], end_dt: datetime,
                     prices: list[int]) -> None:
    """Inventory-only cases for the rule pack, drawn from their own RNG so the billing data of a
    seed stays what it was. Resources without billing rows are the "bill has not arrived yet" case:
    rules price them from the catalogue."""
    by_id = {r["resource_id"]: r for r in inventory}

    def hexid(prefix: str, n: int = 17) -> str:
        return prefix + "".join("0123456789abcdef"[int(x)] for x in rng.integers(0, 16, n))

    def days_ago(lo: int, hi: int) -> datetime:
        return end_dt - timedelta(days=int(rng.integers(lo, hi)), seconds=int(rng.integers(86400)))

    def base(ref: dict[str, Any], rid: str, cls: str, rtype: str, **kw: Any) -> dict[str, Any]:
        row = {"provider": "AWS", "account_id": ref["account_id"], "region": ref["region"], "resource_id": rid,
               "resource_class": cls, "resource_type": rtype, "tags": ref.get("tags") or "{}", **kw}
        inventory.append(row)
        by_id[rid] = row
        return row

    normal = [by_id[ents[base_inst[i]]["ResourceId"]] for i in normal_pos]
    if normal and spec.no_metrics_share > 0:
        n = max(1, round(len(normal) * spec.no_metrics_share))
        for i in sorted(rng.choice(len(normal), size=min(n, len(normal)), replace=False).tolist()):
            r = normal[i]
            r.update(cpu_p95=None, cpu_max=None, mem_p95=None, metrics_days=None)
            planted.setdefault("no_metrics_instances", []).append(
                {"resource_id": r["resource_id"], "account_id": r["account_id"], "instance_type": r["sku"],
                 "expected_findings": ["data"]})
    tagged = [(e, json.loads(ents[e]["Tags"])) for e in (base_inst[i] for i in normal_pos) if ents[e].get("Tags")]
    tagged = [(e, t) for e, t in tagged if "environment" in t]
    dear = [(e, t) for e, t in tagged if prices[e] * HOURS_PER_MONTH >= 60 * UNIT]  # worth a tag-policy finding
    tagged = dear or tagged
    if tagged:
        e, t = tagged[int(rng.integers(len(tagged)))]
        t["environment"] = "production"  # not one of dev / staging / prod
        ents[e]["Tags"] = json.dumps(t)
        by_id[ents[e]["ResourceId"]]["tags"] = json.dumps(t)
        planted["tag_policy"] = [{"resource_id": ents[e]["ResourceId"], "violation": "environment=production",
                                  "expected_findings": ["tag"]}]
    if not normal:
        return
    ref = normal[int(rng.integers(len(normal)))]
    for _ in range(2):
        r = base(ref, hexid("eipalloc-0"), "address", "AWS::EC2::EIP", sku="public_ipv4", state="unassociated",
                 created_at=days_ago(20, 300))
        planted.setdefault("unassociated_addresses", []).append({"resource_id": r["resource_id"], "expected_findings": ["idle"]})
    base(ref, hexid("eipalloc-0"), "address", "AWS::EC2::EIP", sku="public_ipv4", state="associated",
         attached_to=ref["resource_id"], created_at=days_ago(20, 300))
    vols = [r for r in inventory if r.get("resource_class") == "volume" and r.get("attached_to")]
    if vols:
        v = vols[int(rng.integers(len(vols)))]
        old = base(v, hexid("snap-0"), "snapshot", "AWS::EC2::Snapshot", sku="standard", size_gb=float(v["size_gb"]),
                   source_id=v["resource_id"], state="completed", created_at=days_ago(150, 400))
        orphan = base(v, hexid("snap-0"), "snapshot", "AWS::EC2::Snapshot", sku="standard", size_gb=50.0,
                      source_id=hexid("vol-0"), state="completed", created_at=days_ago(5, 20))
        base(v, hexid("snap-0"), "snapshot", "AWS::EC2::Snapshot", sku="standard", size_gb=float(v["size_gb"]),
             source_id=v["resource_id"], state="completed", created_at=days_ago(1, 5))
        planted["snapshots"] = [{"resource_id": old["resource_id"], "check": "old_snapshot", "expected_findings": ["idle"]},
                                {"resource_id": orphan["resource_id"], "check": "orphan_snapshot", "expected_findings": ["idle"]}]
    stopped = base(ref, hexid("i-0", 16), "instance", "AWS::EC2::Instance", sku="m5.large", architecture="x86_64",
                   state="stopped", created_at=days_ago(100, 300))
    base(ref, hexid("vol-0", 16), "volume", "AWS::EC2::Volume", sku="gp3", size_gb=100.0, iops=3000, state="in-use",
         attached_to=stopped["resource_id"], created_at=stopped["created_at"])
    base(ref, hexid("eipalloc-0"), "address", "AWS::EC2::EIP", sku="public_ipv4", state="associated",
         attached_to=stopped["resource_id"], created_at=stopped["created_at"])
    planted["stopped_instances"] = [{"resource_id": stopped["resource_id"], "expected_findings": ["idle"]}]
    prev = base(ref, hexid("i-0", 16), "instance", "AWS::EC2::Instance", sku="m4.xlarge", architecture="x86_64",
                state="running", created_at=days_ago(1, 3), cpu_p95=48.0, cpu_max=71.0, mem_p95=52.0, metrics_days=2)
    planted["previous_generation"] = [{"resource_id": prev["resource_id"], "instance_type": "m4.xlarge",
                                       "expected_findings": ["idle", "data"],
                                       "note": "launched 2 days ago: no bill yet (priced from the catalogue), metrics too short to rightsize"}]
    longtail = [ents[e] for e in lt_idx if ents[e].get("ResourceId")]

    def pick(pattern: str) -> dict[str, Any] | None:
        cands = [x for x in longtail if pattern in x["ResourceId"]]
        return cands[int(rng.integers(len(cands)))] if cands else None

    for pattern, cls, rtype, extra, key in (
        (":loadbalancer/", "load_balancer", "AWS::ElasticLoadBalancingV2::LoadBalancer",
         {"sku": "application", "healthy_targets": 0, "state": "active"}, "idle_load_balancers"),
        (":natgateway/", "nat_gateway", "AWS::EC2::NatGateway", {"bytes_30d": 5.0e7, "state": "available"}, "idle_nat_gateways"),
        (":log-group:", "log_group", "AWS::Logs::LogGroup", {"size_gb": 150.0, "retention_days": None}, "log_groups"),
    ):
        x = pick(pattern)
        if x is None:
            continue
        ref2 = {"account_id": x["SubAccountId"], "region": x["RegionId"] or ref["region"], "tags": x.get("Tags")}
        r = base(ref2, x["ResourceId"], cls, rtype, created_at=days_ago(200, 500), **extra)
        planted[key] = [{"resource_id": r["resource_id"], "expected_findings": ["idle"], "billed": True}]


SP_DISCOUNT = Decimal("0.28")
TINY_P = 0.72  # share of non-zero long-tail rows that are near-free
TINY_MU = math.log(2e-7 * UNIT)  # median 2e-7 USD


def _sp_rate(list_units: int) -> int:
    return int((Decimal(list_units) * (1 - SP_DISCOUNT)).to_integral_value())


def _rightsize(t: dict, cpu: float, mem: float, fam_members: dict[str, list[dict]]) -> dict:
    need_cpu = t["vcpu"] * cpu / 100 / RIGHTSIZE_TARGET_UTIL
    need_mem = t["memory_gib"] * mem / 100 / RIGHTSIZE_TARGET_UTIL
    ok = [m for m in fam_members[t["family"]] if m["vcpu"] >= need_cpu and m["memory_gib"] >= need_mem
          and m["processor_architecture"] == t["processor_architecture"]]
    return min(ok, key=lambda m: (Decimal(m["on_demand_usd_per_hour"]), m["vcpu"]))


# ----------------------------------------------------------------------------------------------
# Days


def _day_rows(u: _Universe, d: date, di: int) -> dict[str, np.ndarray]:
    """Integer arrays describing one day's rows (entity, hour, amounts)."""
    spec = u.spec
    rng = np.random.default_rng([spec.seed, d.toordinal(), 1])
    last = di == spec.days - 1
    hours = np.arange(u.partial_hours if last else 24, dtype=np.int64)
    weekend = d.weekday() >= 5
    parts_e, parts_h = [], []

    def block(ents: np.ndarray, hrs: np.ndarray) -> None:
        if len(ents) and len(hrs):
            parts_e.append(np.repeat(ents, len(hrs)))
            parts_h.append(np.tile(hrs, len(ents)))

    elastic = set(u.elastic_inst.tolist()) if weekend else set()
    always = np.array([e for e in u.base_inst if e not in elastic], dtype=np.int64) if elastic else u.base_inst
    block(always, hours)
    if elastic:
        block(u.elastic_inst, hours[(hours >= 8) & (hours < 20)])
    if u.step_day is not None and d >= u.step_day:
        block(u.step_inst, hours)
    if u.spike_day is not None and d == u.spike_day:
        block(u.spike_inst, hours)
    block(u.volumes, hours)
    if u.unused_idx is not None:
        block(np.array([u.unused_idx], dtype=np.int64), hours)
    fixed_e = np.concatenate(parts_e) if parts_e else np.zeros(0, np.int64)
    fixed_h = np.concatenate(parts_h) if parts_h else np.zeros(0, np.int64)
    n_fixed = len(fixed_e)

    budget = u.row_budget[di]
    n_credit = int(round(budget * 0.011))
    n_adj = int(round(budget * 0.002))
    n_purchase = 1 if (u.purchase_idx is not None and d.day == 1) else 0
    n_lt = max(0, budget - n_fixed - n_credit - n_adj - n_purchase)

    # fixed rows: exact hourly prices; savings-plan rows billed 0 with discounted effective cost
    f_price = u.ent_price[fixed_e]
    f_commit = u.ent_committed[fixed_e]
    f_eff = f_price.copy()
    if f_commit.any():
        f_eff[f_commit] = np.array([_sp_rate(int(x)) for x in np.unique(f_price[f_commit])], dtype=np.int64)[
            np.searchsorted(np.unique(f_price[f_commit]), f_price[f_commit])]
    f_billed = np.where(f_commit | (u.ent_kind[fixed_e] == 6), 0, f_price)
    f_qty = np.where(u.ent_kind[fixed_e] == 1, 0, UNIT).astype(np.int64)  # 1 hour
    vol = u.ent_kind[fixed_e] == 1
    if vol.any():  # GB-month per hour = size / 730, derived exactly from the price
        size_units = (u.vol_size[fixed_e[vol]] * UNIT) // HOURS_PER_MONTH
        f_qty[vol] = size_units

    # long tail
    lt_e = u.lt_idx[rng.choice(len(u.lt_idx), size=n_lt, p=u.lt_p)] if n_lt else np.zeros(0, np.int64)
    lt_h = rng.integers(0, len(hours), size=n_lt)
    k = u.ent_svc[lt_e]
    draw = np.exp(u.lt_mu[k] + u.lt_sigma[k] * rng.standard_normal(n_lt))
    draw = np.minimum(draw, u.lt_cap[k])
    tiny = rng.random(n_lt) < TINY_P
    draw = np.where(tiny, np.exp(TINY_MU + 2.0 * rng.standard_normal(n_lt)), draw)
    unit_price = u.ent_price[lt_e]
    is_zero = (rng.random(n_lt) < u.lt_zero[k]) | (unit_price == 0)
    lt_cost = np.where(is_zero, 0, np.maximum(1, np.rint(draw))).astype(np.int64)
    qty_f = np.where(unit_price > 0, lt_cost / np.maximum(unit_price, 1), draw / 1e8)
    qty_f = np.where(is_zero & (unit_price > 0), rng.lognormal(-2, 2, n_lt), qty_f)
    lt_qty = np.minimum(np.rint(qty_f * UNIT), 9e17).astype(np.int64)

    # credits and adjustments (negative), purchase
    cr_e = u.credit_idx[rng.integers(0, len(u.credit_idx), n_credit)]
    ad_e = u.adjust_idx[rng.integers(0, len(u.adjust_idx), n_adj)]
    neg = -np.maximum(1, np.rint(rng.lognormal(math.log(max(u.credit_mean_units, 2.0)) - 1.125, 1.5,
                                               n_credit + n_adj))).astype(np.int64)
    neg_h = rng.integers(0, len(hours), n_credit + n_adj)
    pu_e = np.array([u.purchase_idx] * n_purchase, dtype=np.int64)
    days_in_month = calendar.monthrange(d.year, d.month)[1]
    pu_amt = np.array([u.sp_hourly_units * 24 * days_in_month] * n_purchase, dtype=np.int64)

    z = np.zeros
    return {
        "e": np.concatenate([fixed_e, lt_e, cr_e, ad_e, pu_e]),
        "h": np.concatenate([fixed_h, lt_h, neg_h, z(n_purchase, np.int64)]),
        "billed": np.concatenate([f_billed, lt_cost, neg, pu_amt]),
        "effective": np.concatenate([f_eff, lt_cost, neg, z(n_purchase, np.int64)]),
        "list": np.concatenate([f_price, lt_cost, z(n_credit + n_adj, np.int64), pu_amt]),
        "qty": np.concatenate([f_qty, lt_qty, z(n_credit + n_adj + n_purchase, np.int64)]),
        "unit_price": np.concatenate([f_price, unit_price, z(n_credit + n_adj + n_purchase, np.int64)]),
        "purchase_day": np.concatenate([z(n_fixed + n_lt + n_credit + n_adj, bool), np.ones(n_purchase, bool)]),
    }


_KIND_CATEGORY = {0: "Usage", 1: "Usage", 2: "Usage", 3: "Credit", 4: "Adjustment", 5: "Purchase", 6: "Usage"}


def _day_frame(u: _Universe, d: date, r: dict[str, np.ndarray], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    e = r["e"]
    n = len(e)
    kind = u.ent_kind[e]
    committed = u.ent_committed[e] & (kind == 0)
    day_us = int(datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp()) * 1_000_000
    cps = day_us + r["h"] * US_PER_HOUR
    bps = date(d.year, d.month, 1)
    bpe = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    cpe = np.where(r["purchase_day"], day_us + 24 * US_PER_HOUR, cps + US_PER_HOUR)
    cps = np.where(r["purchase_day"], day_us, cps)

    cat_codes = np.array(["Usage", "Usage", "Usage", "Credit", "Adjustment", "Purchase", "Usage"])
    freq = np.where(kind == 5, "Recurring", np.where((kind >= 3) & (kind <= 4), "One-Time", "Usage-Based"))
    if u.spec.dialect_quirks > 0:  # AWS's FOCUS 1.0 export writes "Usage-based" (wrong case) on some rows
        idx = np.arange(len(freq), dtype=np.uint64)
        pick = ((idx * np.uint64(2654435761) + np.uint64(d.toordinal())) % np.uint64(100_000)) < int(u.spec.dialect_quirks * 100_000)
        freq = np.where(pick & (freq == "Usage-Based"), "Usage-based", freq)
    pricing_cat = np.where(kind == 6, "Committed", np.where(kind >= 3, None, np.where(committed, "Committed", "Standard")))

    scale = pl.lit(Decimal("1e-10"), dtype=DEC)

    def dec(a: np.ndarray) -> pl.Expr:
        return pl.Series(a).cast(DEC) * scale

    dims = u.ent.select(pl.all().gather(pl.Series(e)))
    is_sp = committed.any()
    frame = dims.with_columns(
        BilledCost=dec(r["billed"]), EffectiveCost=dec(r["effective"]), ListCost=dec(r["list"]),
        ContractedCost=dec(r["list"]),
        ConsumedQuantity=dec(r["qty"]), PricingQuantity=dec(r["qty"]),
        ListUnitPrice=dec(r["unit_price"]), ContractedUnitPrice=dec(r["unit_price"]),
        ChargePeriodStart=pl.Series(cps).cast(TS), ChargePeriodEnd=pl.Series(cpe).cast(TS),
        ChargeCategory=pl.Series(cat_codes[kind]), ChargeFrequency=pl.Series(freq),
        PricingCategory=pl.Series(pricing_cat, dtype=pl.String),
    ).with_columns(
        pl.when(pl.col("ChargeCategory").is_in(["Credit", "Adjustment", "Purchase"]) | pl.Series(kind == 6))
        .then(None).otherwise(pl.col(c)).alias(c)
        for c in ("ConsumedQuantity", "PricingQuantity", "ListUnitPrice", "ContractedUnitPrice")
    ).with_columns(
        PricingCurrencyEffectiveCost=pl.col("EffectiveCost"),
        PricingCurrencyListUnitPrice=pl.col("ListUnitPrice"),
        PricingCurrencyContractedUnitPrice=pl.col("ContractedUnitPrice"),
        PricingCurrency=pl.when(pl.col("ListUnitPrice").is_not_null()).then(pl.lit("USD")).otherwise(None),
        ConsumedQuantity=pl.when(pl.col("ConsumedUnit").is_null()).then(None).otherwise(pl.col("ConsumedQuantity")),
    )
    if is_sp:
        cm = pl.Series(committed)
        frame = frame.with_columns(
            CommitmentDiscountId=pl.when(cm).then(pl.lit(u.sp_id)).otherwise(None),
            CommitmentDiscountCategory=pl.when(cm).then(pl.lit("Spend")).otherwise(None),
            CommitmentDiscountType=pl.when(cm).then(pl.lit("Compute Savings Plan")).otherwise(None),
            CommitmentDiscountStatus=pl.when(cm).then(pl.lit("Used")).otherwise(None),
            CommitmentDiscountName=pl.when(cm).then(pl.lit("ComputeSP-1yr-NoUpfront")).otherwise(None),
            ContractedUnitPrice=pl.col("ContractedUnitPrice"),
        )
    if (kind == 6).any():
        un = pl.Series(kind == 6)
        frame = frame.with_columns(
            CommitmentDiscountId=pl.when(un).then(pl.lit(u.sp_id)).otherwise(pl.col("CommitmentDiscountId") if is_sp else None),
            CommitmentDiscountCategory=pl.when(un).then(pl.lit("Spend")).otherwise(pl.col("CommitmentDiscountCategory") if is_sp else None),
            CommitmentDiscountType=pl.when(un).then(pl.lit("Compute Savings Plan")).otherwise(pl.col("CommitmentDiscountType") if is_sp else None),
            CommitmentDiscountStatus=pl.when(un).then(pl.lit("Unused")).otherwise(pl.col("CommitmentDiscountStatus") if is_sp else None),
            CommitmentDiscountName=pl.when(un).then(pl.lit("ComputeSP-1yr-NoUpfront")).otherwise(pl.col("CommitmentDiscountName") if is_sp else None),
        )
        is_sp = True
    if (kind == 5).any():
        pu = pl.Series(kind == 5)
        frame = frame.with_columns(
            CommitmentDiscountId=pl.when(pu).then(pl.lit(u.sp_id)).otherwise(pl.col("CommitmentDiscountId") if is_sp else None),
            CommitmentDiscountCategory=pl.when(pu).then(pl.lit("Spend")).otherwise(pl.col("CommitmentDiscountCategory") if is_sp else None),
            CommitmentDiscountType=pl.when(pu).then(pl.lit("Compute Savings Plan")).otherwise(pl.col("CommitmentDiscountType") if is_sp else None),
        )
    consts = {
        "BillingAccountId": u.payer_id, "BillingAccountName": u.payer_name,
        "BillingAccountType": "Management Account", "SubAccountType": "Member Account",
        "BillingCurrency": "USD", "InvoiceIssuerName": _S, "PublisherName": _S, "ProviderName": "AWS",
    }
    frame = frame.with_columns(
        *(pl.lit(v).alias(k) for k, v in consts.items()),
        BillingPeriodStart=pl.lit(datetime(bps.year, bps.month, 1, tzinfo=timezone.utc)).cast(TS),
        BillingPeriodEnd=pl.lit(datetime(bpe.year, bpe.month, 1, tzinfo=timezone.utc)).cast(TS),
    )
    out = []
    for col, dtype in schema.items():
        if col in frame.columns:
            out.append(pl.col(col).cast(dtype))
        else:
            out.append(pl.lit(None, dtype=dtype).alias(col))
    assert frame.height == n
    return frame.select(out)


# ----------------------------------------------------------------------------------------------
# Public entry point


@dataclass
class _Totals:
    rows_by_day: dict[str, int] = field(default_factory=dict)
    billed_by_day: dict[str, int] = field(default_factory=dict)
    effective_by_day: dict[str, int] = field(default_factory=dict)
    billed_by_acct: dict[str, int] = field(default_factory=dict)
    effective_by_acct: dict[str, int] = field(default_factory=dict)
    billed_by_cat: dict[str, int] = field(default_factory=dict)
    zero_rows: int = 0
    neg_rows: int = 0
    tagged_rows: int = 0
    null_rid_rows: int = 0
    positive_billed: int = 0
    positive_billed_tagged: int = 0
    cov_num: int = 0
    cov_num_norm: int = 0
    cov_den: int = 0
    ent_billed: dict[int, int] = field(default_factory=dict)


def generate(spec: SimSpec, out_dir: Path, *, progress: Callable[[str], None] | None = None) -> dict:
    """Write the dataset described by ``spec`` under ``out_dir``; return (and write) the manifest."""
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    data_dir = out_dir / "focus" / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda _m: None)
    u = _build_universe(spec)
    schema = _focus_schema()
    say(f"universe: {len(u.base_inst)} instances, {len(u.volumes)} volumes, {len(u.lt_idx)} usage resources "
        f"({time.perf_counter() - t0:.1f}s)")

    last_complete = spec.end - timedelta(days=2)
    cov_start = spec.end - timedelta(days=31)
    tot = _Totals()
    tracked = np.concatenate([u.base_inst, u.volumes])
    files = []
    for di in range(spec.days):
        d = spec.start + timedelta(days=di)
        r = _day_rows(u, d, di)
        df = _day_frame(u, d, r, schema)
        part = data_dir / f"BILLING_PERIOD={d:%Y-%m}" / f"day={d.isoformat()}"
        part.mkdir(parents=True, exist_ok=True)
        path = part / "part-00000.parquet"
        df.write_parquet(path, compression=spec.compression, statistics=True, row_group_size=256_000)
        del df
        _accumulate(u, d, r, tot, tracked, cov_start <= d <= last_complete)
        files.append({"path": str(path.relative_to(out_dir)), "day": d.isoformat(), "rows": int(len(r["e"]))})
        say(f"{d} rows={len(r['e']):,} ({time.perf_counter() - t0:.1f}s)")

    inv_path = out_dir / "inventory.parquet"
    u.inventory.write_parquet(inv_path, compression=spec.compression)
    expected = _expected(u, tot, cov_start, last_complete)
    (out_dir / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=False) + "\n")
    spec_d = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in asdict(spec).items()}
    manifest = {
        "generator": GENERATOR_VERSION, "spec": spec_d, "rows": sum(f["rows"] for f in files),
        "days": spec.days, "first_day": spec.start.isoformat(),
        "last_day": (spec.end - timedelta(days=1)).isoformat(), "partial_day": (spec.end - timedelta(days=1)).isoformat(),
        "partial_hours": u.partial_hours, "glob": "focus/data/**/*.parquet", "inventory": "inventory.parquet",
        "expected": "expected.json", "files": files, "columns": list(schema),
        "elapsed_s": round(time.perf_counter() - t0, 3),
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def _accumulate(u: _Universe, d: date, r: dict[str, np.ndarray], tot: _Totals, tracked: np.ndarray,
                in_cov: bool) -> None:
    key = d.isoformat()
    e, billed, eff = r["e"], r["billed"], r["effective"]
    tot.rows_by_day[key] = len(e)
    tot.billed_by_day[key] = int(billed.sum())
    tot.effective_by_day[key] = int(eff.sum())
    acct = u.ent_acct[e]
    bsum = np.zeros(len(u.acct_ids), dtype=np.int64)
    esum = np.zeros(len(u.acct_ids), dtype=np.int64)
    np.add.at(bsum, acct, billed)
    np.add.at(esum, acct, eff)
    for i, a in enumerate(u.acct_ids):
        tot.billed_by_acct[a] = tot.billed_by_acct.get(a, 0) + int(bsum[i])
        tot.effective_by_acct[a] = tot.effective_by_acct.get(a, 0) + int(esum[i])
    kind = u.ent_kind[e]
    for kc, name in _KIND_CATEGORY.items():
        m = kind == kc
        if m.any():
            tot.billed_by_cat[name] = tot.billed_by_cat.get(name, 0) + int(billed[m].sum())
    tagged = u.ent_tagged[e]
    tot.zero_rows += int((billed == 0).sum())
    tot.neg_rows += int((billed < 0).sum())
    tot.tagged_rows += int(tagged.sum())
    tot.null_rid_rows += int(u.ent_null_rid[e].sum())
    pos = billed > 0
    tot.positive_billed += int(billed[pos].sum())
    tot.positive_billed_tagged += int(billed[pos & tagged].sum())
    if in_cov:
        usage = (kind <= 2) | (kind == 6)
        tot.cov_den += int(eff[usage].sum())
        tot.cov_num += int(eff[usage & u.ent_has_app[e]].sum())
        tot.cov_num_norm += int(eff[usage & u.ent_has_app_norm[e]].sum())
    m = np.isin(e, tracked)
    if m.any():
        ids, inv = np.unique(e[m], return_inverse=True)
        s = np.zeros(len(ids), dtype=np.int64)
        np.add.at(s, inv, billed[m])
        for i, v in zip(ids.tolist(), s.tolist()):
            tot.ent_billed[i] = tot.ent_billed.get(i, 0) + v


def _expected(u: _Universe, tot: _Totals, cov_start: date, last_complete: date) -> dict[str, Any]:
    spec = u.spec
    total = sum(tot.billed_by_day.values())
    rows = sum(tot.rows_by_day.values())
    planted = {}
    for k, items in u.planted.items():
        out = []
        for it in items:
            it = dict(it)
            e = it.pop("_entity", None)
            if e is not None:
                it["billed_cost_in_data"] = _dec(tot.ent_billed.get(e, 0))
            out.append(it)
        planted[k] = out
    mtd_start = last_complete.replace(day=1)
    mtd = sum(v for k, v in tot.billed_by_day.items() if mtd_start.isoformat() <= k <= last_complete.isoformat())
    acct_sorted = sorted(tot.billed_by_acct.items(), key=lambda kv: -kv[1])
    top7 = sum(v for _, v in acct_sorted[:7])
    ratio = (lambda n, d: str((Decimal(n) / Decimal(d)).quantize(Decimal("1e-10"))) if d else None)
    return {
        "generator": GENERATOR_VERSION,
        "seed": spec.seed,
        "first_day": spec.start.isoformat(),
        "last_complete_day": last_complete.isoformat(),
        "partial_day": (spec.end - timedelta(days=1)).isoformat(),
        "partial_hours": u.partial_hours,
        "rows": rows,
        "currency": "USD",
        "totals": {
            "billed_cost_by_provider": {"AWS": _dec(total)},
            "effective_cost_by_provider": {"AWS": _dec(sum(tot.effective_by_day.values()))},
            "billed_cost_by_day": {k: _dec(v) for k, v in tot.billed_by_day.items()},
            "effective_cost_by_day": {k: _dec(v) for k, v in tot.effective_by_day.items()},
            "billed_cost_by_provider_day": {"AWS": {k: _dec(v) for k, v in tot.billed_by_day.items()}},
            "rows_by_day": tot.rows_by_day,
            "billed_cost_by_sub_account": {k: _dec(v) for k, v in acct_sorted},
            "effective_cost_by_sub_account": {k: _dec(tot.effective_by_acct[k]) for k, _ in acct_sorted},
            "billed_cost_by_charge_category": {k: _dec(v) for k, v in tot.billed_by_cat.items()},
            "month_to_date": {"billing_period": f"{last_complete:%Y-%m}", "through": last_complete.isoformat(),
                              "billed_cost": _dec(mtd)},
        },
        "tag_coverage": {
            "key": "application", "metric": "EffectiveCost", "charge_category": "Usage",
            "window_start": cov_start.isoformat(), "window_end_exclusive": (last_complete + timedelta(days=1)).isoformat(),
            "note": "last 30 complete days (the partial day excluded), clipped to the generated range",
            "numerator": _dec(tot.cov_num), "denominator": _dec(tot.cov_den),
            "ratio": ratio(tot.cov_num, tot.cov_den),
            "numerator_normalized_keys": _dec(tot.cov_num_norm),
            "ratio_normalized_keys": ratio(tot.cov_num_norm, tot.cov_den),
        },
        "calibration": {
            "zero_row_share": round(tot.zero_rows / rows, 4),
            "negative_row_share": round(tot.neg_rows / rows, 4),
            "tagged_row_share": round(tot.tagged_rows / rows, 4),
            "tagged_positive_spend_share": round(tot.positive_billed_tagged / max(1, tot.positive_billed), 4),
            "resource_id_null_share": round(tot.null_rid_rows / rows, 4),
            "top7_sub_account_cost_share": round(top7 / total, 4) if total else None,
        },
        "events": {
            "step_change": {"day": u.step_day.isoformat(), "sub_account_id": u.acct_ids[1],
                            "added_hourly_cost": _dec(int(u.ent_price[u.step_inst].sum()))} if u.step_day else None,
            "spike": {"day": u.spike_day.isoformat(), "sub_account_id": u.acct_ids[3],
                      "added_cost": _dec(int(u.ent_price[u.spike_inst].sum()) * 24)} if u.spike_day else None,
            "savings_plan": {"id": u.sp_id, "hourly_commitment": _dec(u.sp_hourly_units)} if u.sp_id else None,
        },
        "rightsizing_rule": {
            "description": "cheapest type of the same family and architecture whose vCPU and memory cover p95 / target_util",
            "target_util": RIGHTSIZE_TARGET_UTIL, "idle_cpu_p95_below": IDLE_CPU_P95,
            "oversized_cpu_p95_below": OVERSIZED_CPU_P95,
            "robustness": "planted oversized types are 4x or 8x their target, with cpu_p95 chosen so the label is the same for any target_util in [0.6, 1.0]; non-planted instances have cpu_p95 >= 45",
        },
        "planted": planted,
    }


def parse_rows(text: str | int) -> int:
    """``"100k"`` → 100000, ``"1M"``/``"1.5m"`` → 1000000/1500000, ``"20000"`` → 20000."""
    if isinstance(text, int):
        return text
    s = text.strip().lower().replace("_", "").replace(",", "")
    mult = {"k": 10**3, "m": 10**6, "g": 10**9, "b": 10**9}.get(s[-1:], 1)
    num = s[:-1] if mult != 1 else s
    try:
        value = int(Decimal(num) * mult)
    except Exception as exc:  # decimal.InvalidOperation
        raise ValueError(f"not a row count: {text!r} (use e.g. 20000, 100k, 1M, 10M)") from exc
    if value < 100:
        raise ValueError(f"row count must be >= 100 (got {text!r})")
    return value
