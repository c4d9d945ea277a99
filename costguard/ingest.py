"""Plan which days to pull from a source, stage them, check the ingest ledger, land them.

Days already stored are skipped, except: the trailing ``restate_days`` (always re-pulled, bills
are restated), days whose source data changed (a different signature), and, for sources that
cannot tell (APIs), every day of the current month when ``month_to_date`` is on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import polars as pl

from costguard import focus
from costguard.errors import CycleCancelled, DataError, ProviderError
from costguard.ingest_ledger import IngestLedger
from costguard.lake import Lake
from costguard.logs import get_logger
from costguard.model import ConnectionStatus, NativeBudget, contiguous_windows
from costguard.providers import Horizon, Provider
from costguard.staging import Batch

log = get_logger("costguard.ingest")


def plan_days(
    available: Mapping[date, str | None],
    stored: Mapping[date, str | None],
    as_of: date,
    *,
    restate_days: int,
    month_to_date: bool,
) -> list[date]:
    """The days to (re)pull, given each day's source signature and the signature it was stored with.

    - a day not stored yet: pulled;
    - the trailing ``restate_days`` (ending at ``as_of``): always re-pulled;
    - a stored day whose source signature changed (a restated export, even of a closed month):
      re-pulled;
    - ``month_to_date``: days of the current month from sources that give no signature (APIs)
      are re-pulled, since nothing proves them unchanged;
    - other stored days: skipped.
    """
    trailing = {as_of - timedelta(days=i) for i in range(restate_days)}
    month_start = as_of.replace(day=1)
    out = []
    for d, sig in available.items():
        if d > as_of:
            continue
        if d not in stored or d in trailing:
            out.append(d)
        elif sig is not None and stored[d] is not None and stored[d] != sig:
            out.append(d)
        elif month_to_date and d >= month_start and (sig is None or stored[d] != sig):
            out.append(d)
    return sorted(out)


@dataclass
class SourceResult:
    """How one source's ingest went: what the run record, the summary and /healthz show."""

    source: str
    status: str = str(ConnectionStatus.UNKNOWN)
    detail: str | None = None
    rows: int = 0
    days: int = 0
    skipped_days: int = 0
    windows: list[str] = field(default_factory=list)
    report: focus.ConformanceReport | None = None
    ledger: IngestLedger | None = None
    inventory_rows: int | None = None
    inventory: pl.DataFrame | None = None  # the fresh snapshot (kept in memory for a run that does not persist)
    budgets: list[NativeBudget] = field(default_factory=list)
    api_requests: dict[str, int] = field(default_factory=dict)
    paid_requests: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == str(ConnectionStatus.OK)

    @property
    def usable(self) -> bool:
        """Its data landed (ok or partial): findings of this source may be resolved."""
        return self.status in (str(ConnectionStatus.OK), str(ConnectionStatus.PARTIAL))

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "detail": self.detail,
            "rows": self.rows,
            "days": self.days,
            "skipped_days": self.skipped_days,
            "windows": self.windows,
            "inventory_rows": self.inventory_rows,
            "budgets": [
                {"name": b.name, "amount": b.amount, "currency": b.currency, "period": b.period,
                 "actual": b.actual, "forecast": b.forecast}
                for b in self.budgets
            ],
            "ledger": self.ledger.to_dict() if self.ledger else None,
            "api_requests": self.api_requests,
            "paid_requests": self.paid_requests,
            "problems": self.problems,
            "conformance": self.report.to_dict() if self.report else None,
        }


@dataclass
class Staged:
    """A source's ingest, staged: land it (``commit``) or throw it away (dry runs, backtests)."""

    result: SourceResult
    batch: Batch | None = None


def ingest_source(
    provider: Provider,
    lake: Lake,
    *,
    horizon: Horizon,
    restate_days: int,
    month_to_date: bool,
    run_id: str,
    check_cancel: Callable[[], None],
    progress: Callable[[str], None] = lambda _m: None,
) -> Staged:
    """Pull the planned days of one source into a staged batch (not yet in the lake) and check its
    ledger. Never raises for the source's own failures: they end in ``result.status``."""
    res = SourceResult(provider.name)
    batch: Batch | None = None
    try:
        available = provider.available_days(horizon)
        stored = lake.stored_days(provider.name)
        days = plan_days(available, stored, horizon.as_of, restate_days=restate_days, month_to_date=month_to_date)
        res.skipped_days = len([d for d in available if d <= horizon.as_of]) - len(days)
        if stored and res.skipped_days:
            log.info("days_skipped", source=provider.name, days=res.skipped_days, reason="stored and unchanged")
        windows = contiguous_windows(days)
        res.windows = [str(w) for w in windows]
        progress(f"{provider.name}: {len(days)} day(s) to pull in {len(windows)} window(s), {res.skipped_days} already stored")
        batch = lake.begin(provider.name, planned=days, horizon=horizon, signatures=available,
                           run_id=run_id, check_cancel=check_cancel)
        batch.add_all(provider.costs(windows, horizon))
        aliases = getattr(provider, "aliases", None)
        if callable(aliases):
            batch.ledger.aliases = aliases()
        res.ledger = batch.finish()
        res.report = batch.report
        res.rows = res.ledger.rows_stored
        res.days = len(batch.days)
        log.info("source_staged", source=provider.name, rows=res.rows, rejected=res.ledger.rows_rejected,
                 skipped=res.ledger.rows_skipped, flagged=res.report.flagged_rows if res.report else 0)
        progress(f"{provider.name}: {res.rows:,} rows in {res.days} day(s) staged"
                 + (f", {res.ledger.rows_rejected:,} rejected" if res.ledger.rows_rejected else ""))
        inv = provider.inventory()
        if inv is not None:
            res.inventory, res.inventory_rows = inv, inv.height
        res.budgets = list(provider.budgets())
        st = provider.status()
        res.api_requests, res.paid_requests = dict(st.api_requests), dict(st.paid_requests)
        res.problems = list(st.problems)
        if res.api_requests:
            progress(f"{provider.name}: {sum(res.api_requests.values()):,} API request(s)"
                     + (f", {sum(res.paid_requests.values()):,} of them paid" if res.paid_requests else ""))
        rejected = (f"{res.ledger.rows_rejected:,} row(s) rejected: "
                    + "; ".join(f"{k} ({v.count:,})" for k, v in sorted(res.ledger.rejected.items()))) if res.ledger.rows_rejected else None
        if st.state not in (ConnectionStatus.OK, ConnectionStatus.UNKNOWN, ConnectionStatus.PARTIAL):
            res.status, res.detail = str(st.state), st.detail
        elif res.problems or rejected or st.state == ConnectionStatus.PARTIAL:
            res.status = str(ConnectionStatus.PARTIAL)
            res.detail = "; ".join([*res.problems, *([rejected] if rejected else [])]) or st.detail
        else:
            res.status, res.detail = str(ConnectionStatus.OK), st.detail
    except CycleCancelled:
        if batch is not None:
            batch.discard()
        raise
    except ProviderError as e:
        res.status, res.detail = e.status, str(e)
        log.error("ingest_failed", source=provider.name, error=str(e))
        _requests_of(provider, res)
    except DataError as e:
        res.status, res.detail = str(ConnectionStatus.PARSE_ERROR), f"provider {provider.name!r}: {e}"
        log.error("ingest_failed", source=provider.name, error=str(e))
    if not res.usable and batch is not None:
        batch.discard()
        batch = None
    return Staged(res, batch)


def _requests_of(provider: Provider, res: SourceResult) -> None:
    """A failed source still reports the requests (and partial problems) it made before failing."""
    try:
        st = provider.status()
    except Exception:  # noqa: BLE001 - the failure being reported matters more
        return
    res.api_requests, res.paid_requests = dict(st.api_requests), dict(st.paid_requests)
    res.problems = list(st.problems)


def land(staged: Staged, lake: Lake, record_day: Callable[[str, date, int, list[str]], None]) -> None:
    """Commit a staged source: its days swap in together, then its inventory snapshot."""
    res, batch = staged.result, staged.batch
    if batch is not None:
        batch.commit()
        for d in batch.planned:
            rows, accounts = batch.days.get(d, (0, []))
            record_day(res.source, d, rows, accounts)
        staged.batch = None
    if res.inventory is not None:
        lake.write_inventory(res.source, res.inventory)
