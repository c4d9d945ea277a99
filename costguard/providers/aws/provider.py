"""The ``aws`` provider: accounts, a cost source, budgets and the inventory pass behind the
:class:`costguard.providers.base.Provider` protocol.

Failure behaviour:

- a cost pull (export, Cost Explorer, Athena) either completes or fails the source for this run
  (``ProviderError`` naming the request and its fix): the lake keeps what it had and the run
  exits 3; no day is ever stored half;
- a member account that cannot be assumed, or one API denied or throttled (after botocore's
  adaptive retries) in one account and region, is a **problem**: that part is left out, the
  rest is read, and the source ends ``partial`` (exit 3) with every problem in the run record.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime
from typing import Any

import polars as pl

from costguard.build import BuildContext
from costguard.errors import DataError, ProviderError
from costguard.logs import get_logger
from costguard.model import ConnectionStatus, NativeBudget, Window
from costguard.providers.aws import pricing
from costguard.providers.aws.accounts import Account, AccountError, Sessions, discover
from costguard.providers.aws.athena import AthenaSource
from costguard.providers.aws.budgets import read_budgets
from costguard.providers.aws.clients import Clients, Problems, PullFailed, RequestCounter, classify, is_aws_error
from costguard.providers.aws.config import AthenaCosts, AwsConfig, CostExplorerCosts, ExportCosts
from costguard.providers.aws.cost_explorer import CostExplorerSource
from costguard.providers.aws.exports import ExportReader
from costguard.providers.aws.iam import fix_for
from costguard.providers.aws.inventory import InventoryPass
from costguard.providers.base import Check, Horizon, Part, ProviderStatus

log = get_logger("costguard.providers.aws")


def build_provider(cfg: AwsConfig, ctx: BuildContext) -> "AwsProvider":
    def session() -> Any:
        try:
            import boto3
        except ImportError:
            raise ProviderError(cfg.name, "the aws provider needs boto3: pip install 'costguard[aws]'",
                                status=str(ConnectionStatus.INVALID_CONFIGURATION)) from None
        return boto3.Session(profile_name=cfg.profile) if cfg.profile else boto3.Session()

    return AwsProvider(cfg, session_factory=session, clock=ctx.clock, backfill_days=ctx.backfill_days,
                       resolve=ctx.resolve)


class AwsProvider:
    """One configured AWS source. Built per run; every request it makes is counted."""

    def __init__(self, cfg: AwsConfig, *, session_factory: Callable[[], Any], clock: Callable[[], datetime],
                 backfill_days: int, resolve: Callable[[str], str] = lambda p: p,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.name = cfg.name
        self.cfg = cfg
        self._session_factory = session_factory
        self.clock = clock
        self.backfill_days = backfill_days
        self._resolve = resolve
        self._sleep = sleep
        self.counter = RequestCounter()
        self.problems = Problems(cfg.name)
        self._lock = threading.Lock()
        self._base: Clients | None = None
        self._caller: str | None = None
        self._sessions: Sessions | None = None
        self._accounts: list[Account] | None = None
        self._regions: list[str] | None = None
        self._source: Any = None
        self._state = ConnectionStatus.UNKNOWN
        self._detail: str | None = None

    # ---- shared state -------------------------------------------------------------------------
    def base(self) -> Clients:
        """Clients of the credentials costguard runs with (created on first use)."""
        if self._base is None:
            region = self.cfg.regions[0] if self.cfg.regions else "us-east-1"
            self._base = Clients(self._session_factory(), counter=self.counter, endpoint_url=self.cfg.endpoint_url,
                                 max_attempts=self.cfg.max_attempts, default_region=region)
        return self._base

    def caller(self) -> str:
        """The account id of the credentials (``sts:GetCallerIdentity``, needs no permission)."""
        if self._caller is None:
            try:
                self._caller = str(self.base().client("sts").get_caller_identity()["Account"])
            except Exception as e:  # noqa: BLE001
                if not is_aws_error(e):
                    raise
                raise self._fail("sts:GetCallerIdentity", e, role="costguard", record=False) from None
        return self._caller

    def sessions(self) -> Sessions:
        if self._sessions is None:
            self._sessions = Sessions(self.base().session, self.base(), self.cfg.accounts, provider=self.name,
                                      caller=self.caller(), counter=self.counter, endpoint_url=self.cfg.endpoint_url,
                                      max_attempts=self.cfg.max_attempts)
        return self._sessions

    def accounts(self) -> list[Account]:
        """The covered accounts; when discovery fails, the caller's own account (and a problem)."""
        if self._accounts is None:
            try:
                self._accounts = discover(self.cfg.accounts, self.base(), self.caller())
            except Exception as e:  # noqa: BLE001
                if not is_aws_error(e):
                    raise
                self.problems.add("organization", "organizations:ListAccounts", e, role="costguard's role")
                self._accounts = [Account(self.caller())]
        return self._accounts

    def regions(self, clients: Clients) -> list[str]:
        """``regions:`` from the config, else the regions enabled for the first account asked."""
        with self._lock:
            if self._regions is None:
                if self.cfg.regions:
                    self._regions = list(self.cfg.regions)
                else:
                    got = clients.client("ec2").describe_regions(AllRegions=False).get("Regions") or []
                    self._regions = sorted(r["RegionName"] for r in got)
            return list(self._regions)

    def storage_options(self) -> dict[str, str] | None:
        """Credentials and endpoint for polars' own S3 reader (doctor reads one column in place)."""
        creds = self.base().session.get_credentials()
        if creds is None:
            return None
        f = creds.get_frozen_credentials()
        so = {"aws_access_key_id": f.access_key, "aws_secret_access_key": f.secret_key,
              "aws_region": self.base().default_region}
        if f.token:
            so["aws_session_token"] = f.token
        if self.cfg.endpoint_url:
            so["aws_endpoint_url"] = self.cfg.endpoint_url
        return so

    def source(self) -> Any:
        """The configured cost source (None for ``costs: {source: none}``)."""
        if self._source is None:
            c = self.cfg.costs
            s3 = lambda: self.base().client("s3")  # noqa: E731
            if isinstance(c, ExportCosts):
                self._source = ExportReader(c.uri, "cur2" if c.source == "cur2_export" else "focus", s3,
                                            backfill_days=self.backfill_days)
            elif isinstance(c, CostExplorerCosts):
                self._source = CostExplorerSource(c, lambda: self.base().client("ce"), counter=self.counter,
                                                  payer=self.caller, accounts=lambda: [a.id for a in self.accounts()],
                                                  backfill_days=self.backfill_days)
            elif isinstance(c, AthenaCosts):
                self._source = AthenaSource(c, lambda: self.base().client("athena"), lambda: self.base().client("glue"),
                                            ExportReader(c.uri, "focus", s3, backfill_days=self.backfill_days), sleep=self._sleep)
            else:
                self._source = False
        return self._source or None

    # ---- protocol -----------------------------------------------------------------------------
    def available_days(self, horizon: Horizon) -> dict[date, str | None]:
        src = self.source()
        if src is None:
            self._state = ConnectionStatus.OK
            return {}
        days = self._guard("available_days", lambda: src.available_days(horizon))
        self._state = ConnectionStatus.OK
        if not days:
            self._detail = f"no billing data on or before {horizon.as_of} in the last {self.backfill_days} days"
        return days

    def costs(self, windows: Sequence[Window], horizon: Horizon) -> Iterator[Part]:
        src = self.source()
        if src is None or not windows:
            return
        it = iter(self._guard("costs", lambda: src.costs(windows, horizon)))
        while True:
            try:
                part = self._guard("costs", lambda: next(it))
            except StopIteration:
                return
            yield part

    def inventory(self) -> pl.DataFrame | None:
        """The inventory snapshot; None (the lake keeps the last one) when not even the credentials'
        own account can be asked, which is then a problem, not a failure of the costs just pulled."""
        if not self.cfg.inventory.enabled:
            return None
        try:
            accounts, sessions = self.accounts(), self.sessions()
        except ProviderError as e:
            self.problems.note(f"inventory not read: {e}", "denied")
            return None
        inv = InventoryPass(provider=self.name, cfg=self.cfg.inventory, sessions=sessions, accounts=accounts,
                            regions=self.regions, problems=self.problems, clock=self.clock,
                            max_workers=self.cfg.max_workers).collect()
        if self.cfg.prices.refresh:
            self._refresh_prices(inv)
        return inv

    def budgets(self) -> list[NativeBudget]:
        if not self.cfg.budgets:
            return []
        out: list[NativeBudget] = []
        today = self.clock().date()
        try:
            accounts = self.accounts()
            self.sessions()
        except ProviderError as e:
            self.problems.note(f"budgets not read: {e}", "denied")
            return []
        for a in accounts:
            try:
                clients = self.sessions().clients(a.id)
            except AccountError as e:
                self.problems.add(f"account {a.id}", e.api, e.cause, role="costguard's role (and the member role's trust policy)")
                continue
            try:
                out += list(read_budgets(clients.client("budgets"), a.id, source=self.name, as_of=today))
            except Exception as e:  # noqa: BLE001
                if not is_aws_error(e):
                    raise
                self.problems.add(f"account {a.id}", "budgets:DescribeBudgets", e)
        return out

    def status(self) -> ProviderStatus:
        requests, paid = self.counter.snapshot()
        problems = self.problems.items()
        state = self._state
        if state in (ConnectionStatus.OK, ConnectionStatus.UNKNOWN) and problems:
            state = ConnectionStatus.PARTIAL
        return ProviderStatus(state, self._detail, api_requests=requests, paid_requests=paid, problems=problems)

    def checks(self) -> Iterator[Check]:
        from costguard.providers.aws.checks import run_checks

        yield from run_checks(self)

    # ---- internals ----------------------------------------------------------------------------
    def _guard(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run one step of a cost pull; every failure becomes a ProviderError with its fix."""
        try:
            return fn()
        except StopIteration:
            raise
        except ProviderError as e:
            self._state, self._detail = ConnectionStatus(e.status), str(e)
            raise
        except PullFailed as e:
            raise self._error(str(e), ConnectionStatus.FAILED_CONNECTION) from None
        except DataError as e:
            raise self._error(str(e), ConnectionStatus.PARSE_ERROR) from None
        except Exception as e:  # noqa: BLE001
            if not is_aws_error(e):
                raise
            raise self._fail(_api_of(e), e, role="costguard") from None

    def _fail(self, api: str, e: BaseException, *, role: str, record: bool = True) -> ProviderError:
        """The ProviderError for a failed request; ``record`` also makes it the provider's state
        (a cost pull) rather than leaving the caller to decide (inventory and budgets: a problem)."""
        f = classify(e)
        if f.kind == "denied":
            return self._error(f"{api} denied ({f.describe()}); fix: {fix_for(api, role=f'the role {role} runs as')}",
                               ConnectionStatus.INVALID_CONFIGURATION, record)
        if f.kind == "missing":
            return self._error(f"{api}: {f.describe()}; check costs.uri / costs.table and that the export exists "
                               "(`costguard doctor` checks the set-up)", ConnectionStatus.MISSING_DATA, record)
        what = f"{f.kind} after {self.cfg.max_attempts} attempts" if f.kind in ("throttled", "unavailable") else "failed"
        return self._error(f"{api} {what} ({f.describe()}); nothing of this pull is stored, the next run tries again",
                           ConnectionStatus.FAILED_CONNECTION, record)

    def _error(self, message: str, status: ConnectionStatus, record: bool = True) -> ProviderError:
        if record:
            self._state, self._detail = status, message
        return ProviderError(self.name, message, status=str(status))

    def _refresh_prices(self, inv: pl.DataFrame) -> None:
        inst = inv.filter(pl.col("resource_class") == "instance")
        if inst.is_empty():
            return
        try:
            fresh = pricing.fetch(self.base().client("pricing"), inst["sku"].drop_nulls().to_list(),
                                  inst["region"].drop_nulls().to_list(), today=self.clock().date())
        except Exception as e:  # noqa: BLE001
            if not is_aws_error(e):
                raise
            self.problems.add("prices", "pricing:GetProducts", e, role="costguard's role")
            return
        out = self._resolve(self.cfg.prices.out)
        pricing.write(fresh, out)
        log.info("prices_refreshed", source=self.name, rows=fresh.height, path=out)


def _api_of(e: BaseException) -> str:
    """``service:Operation`` of a botocore ClientError (the operation is on the error; the
    service is the one costguard calls that operation on)."""
    from costguard.providers.aws.iam import ACTIONS

    op = getattr(e, "operation_name", None)
    if not op:
        return type(e).__name__
    return next((k for k in ACTIONS if k.endswith(":" + op)), op)
