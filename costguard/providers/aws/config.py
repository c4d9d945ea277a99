"""The ``type: aws`` config model: accounts, regions, the cost source, inventory, budgets, prices.

Every section is a frozen pydantic model with ``extra="forbid"``, so a misspelt key is an error
naming file:line (``config.py`` builds the provider union from the registry).
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from costguard.build import BuildContext
from costguard.providers.base import PROVIDERS, Provider, ProviderConfig

REGION = r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$"
ACCOUNT_ID = r"^\d{12}$"

#: Inventory resource groups, each one describe call (or one family of calls) per account and region.
RESOURCE_GROUPS = ("instances", "volumes", "addresses", "snapshots", "load_balancers", "nat_gateways",
                   "databases", "log_groups", "tags")


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AccountsConfig(_Section):
    """Which accounts to cover. Without this section: the account of the credentials only."""

    discover: Literal["organization"] | None = Field(
        None, description="organization: every ACTIVE account from Organizations ListAccounts")
    ids: list[Annotated[str, Field(pattern=ACCOUNT_ID)]] = Field(
        default_factory=list, description="explicit 12-digit account ids (instead of discover)")
    assume_role: str | None = Field(
        None, description="role name (or full ARN with {account}) assumed in each member account")
    external_id: str | None = Field(None, min_length=2, max_length=1224, pattern=r"^[\w+=,.@:/-]+$",
                                    description="sts:ExternalId the member roles require, if any (2-1224 of letters, digits, _+=,.@:/-)")
    include: list[str] = Field(default_factory=list, description="only these account ids or names")
    exclude: list[str] = Field(default_factory=list, description="never these account ids or names")
    session_duration: int = Field(3600, ge=900, le=43200, description="seconds; credentials are refreshed before they expire")

    @model_validator(mode="after")
    def _one_way(self) -> "AccountsConfig":
        if self.discover and self.ids:
            raise ValueError("set either discover: organization or ids: [...], not both")
        if (self.discover or len(self.ids) > 1) and not self.assume_role:
            raise ValueError("several accounts need assume_role: the role costguard assumes in each member account "
                             "(e.g. OrganizationAccountAccessRole or a read-only role of your own)")
        return self

    def role_arn(self, account_id: str) -> str | None:
        if not self.assume_role:
            return None
        if self.assume_role.startswith("arn:"):
            return self.assume_role.replace("{account}", account_id)
        return f"arn:aws:iam::{account_id}:role/{self.assume_role}"


class ExportCosts(_Section):
    """AWS Data Exports in S3: FOCUS 1.2 ("FOCUS with AWS columns") or CUR 2.0, parquet or gzip CSV."""

    source: Literal["focus_export", "cur2_export"]
    uri: str = Field(pattern=r"^s3://[^/]+/.*$", description="s3://bucket/prefix/<export-name>/ (holds data/ and metadata/)")

    @field_validator("uri")
    @classmethod
    def _slash(cls, v: str) -> str:
        return v if v.endswith("/") else v + "/"


class CostExplorerCosts(_Section):
    """Cost Explorer GetCostAndUsage, DAILY, by linked account and service (paid: $0.01 a request)."""

    source: Literal["cost_explorer"]
    tag_key: str | None = Field(None, min_length=1, description="also split by this cost allocation tag (one request per account)")
    max_paid_requests: int = Field(40, ge=1, description="stop (and fail the pull) before making more paid requests in one run")
    history_days: int = Field(365, ge=1, le=395, description="never ask for days older than this (Cost Explorer keeps ~13 months daily)")


class AthenaCosts(_Section):
    """The daily rollup computed by Athena over a FOCUS export table: no row crosses the network."""

    source: Literal["athena"]
    uri: str = Field(pattern=r"^s3://[^/]+/.*$", description="the export's S3 root (its manifests tell which billing periods changed)")
    table: str = Field(pattern=r"^[A-Za-z0-9_]+\.[A-Za-z0-9_]+$", description="database.table of the FOCUS export in the Glue catalog")
    catalog: str = "AwsDataCatalog"
    workgroup: str = "primary"
    output_location: str | None = Field(None, pattern=r"^s3://", description="query results location (unless the workgroup enforces one)")
    partition_column: str = Field("billing_period", pattern=r"^[A-Za-z0-9_]+$", description="the table's BILLING_PERIOD partition column")
    max_scanned_gb: float = Field(500.0, gt=0, description="stop issuing queries in a run once this much was scanned")
    poll_seconds: float = Field(1.0, gt=0, le=60)
    timeout_seconds: float = Field(900.0, gt=0)

    @field_validator("uri")
    @classmethod
    def _slash(cls, v: str) -> str:
        return v if v.endswith("/") else v + "/"


class NoCosts(_Section):
    """Inventory and budgets only (costs come from another provider entry, e.g. a focus one)."""

    source: Literal["none"]


CostsConfig = Annotated[Union[ExportCosts, CostExplorerCosts, AthenaCosts, NoCosts], Field(discriminator="source")]  # noqa: UP007


class InventoryConfig(_Section):
    """The one inventory pass shared by every rule."""

    enabled: bool = True
    resources: list[Literal["instances", "volumes", "addresses", "snapshots", "load_balancers", "nat_gateways",
                            "databases", "log_groups", "tags"]] = Field(default_factory=lambda: list(RESOURCE_GROUPS))
    lookback_days: int = Field(14, ge=1, le=63, description="CPU / memory / NAT bytes over this many days")
    memory: bool = Field(True, description="read mem_used_percent where the CloudWatch agent publishes it (one ListMetrics per account and region)")
    compute_optimizer: bool = Field(False, description="also read Compute Optimizer EC2 recommendations")


class PricesConfig(_Section):
    """EC2 prices refreshed from the Pricing API into a user price catalogue (list it under ``catalog:``)."""

    refresh: bool = False
    out: str = Field("prices/aws-ec2.csv", description="the catalogue file written (relative to the config file)")


@PROVIDERS.register("aws")
class AwsConfig(ProviderConfig):
    """AWS: costs from Data Exports (FOCUS 1.2 / CUR 2.0), Cost Explorer or Athena; Organizations
    accounts; budgets; one inventory pass with utilisation. Needs ``pip install 'costguard[aws]'``.

    ```yaml
    - name: aws-org
      type: aws
      regions: [us-east-1, eu-west-1]
      accounts: {discover: organization, assume_role: CostguardReadOnly}
      costs: {source: focus_export, uri: "s3://billing/focus/costguard-focus/"}
    ```
    """

    type: Literal["aws"] = "aws"
    regions: list[Annotated[str, Field(pattern=REGION)]] = Field(default_factory=list, description="default: every region enabled in the account")
    endpoint_url: str | None = Field(None, description="one endpoint for every service (emulators, VPC endpoints); AWS_ENDPOINT_URL works too")
    profile: str | None = Field(None, description="a named profile of the shared AWS config (default: the standard credential chain)")
    accounts: AccountsConfig = AccountsConfig()
    costs: CostsConfig = Field(default_factory=lambda: NoCosts(source="none"), description="where costs come from (default: none)")
    inventory: InventoryConfig = InventoryConfig()
    budgets: bool = Field(True, description="read AWS Budgets (DescribeBudgets) in every account")
    prices: PricesConfig = PricesConfig()
    max_attempts: int = Field(8, ge=1, le=20, description="botocore adaptive retries: attempts per request")
    max_workers: int = Field(4, ge=1, le=32, description="accounts × regions read in parallel")

    def build(self, ctx: BuildContext) -> Provider:
        from costguard.providers.aws.provider import build_provider

        return build_provider(self, ctx)
