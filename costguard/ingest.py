"""Plan which days to pull from a source and write them to the lake (OpenCost's ingestor idea).

Days already stored are skipped, except the trailing ``restate_days`` and (optionally) every day
of the current month, which are always re-pulled because bills are restated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import structlog

from costguard import focus
from costguard.errors import CycleCancelled, DataError, ProviderError
from costguard.lake import Lake
from costguard.model import ConnectionStatus, Window, contiguous_windows
from costguard.providers import Provider

log = structlog.get_logger("costguard.ingest")


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
    - the current month (``month_to_date``): re-pulled unless the source proves the day unchanged,
      i.e. it gives a signature equal to the stored one (file exports do; APIs cannot);
    - older stored days: skipped.
    """
    trailing = {as_of - timedelta(days=i) for i in range(restate_days)}
    month_start = as_of.replace(day=1)
    out = []
    for d, sig in available.items():
        if d > as_of:
            continue
        if d not in stored or d in trailing:
            out.append(d)
        elif month_to_date and d >= month_start and (sig is None or stored[d] != sig):
            out.append(d)
    return sorted(out)


@dataclass
class SourceResult:
    """How one source's ingest went: what the run record and /healthz show."""

    source: str
    status: str = str(ConnectionStatus.UNKNOWN)
    detail: str | None = None
    rows: int = 0
    days: int = 0
    skipped_days: int = 0
    windows: list[str] = field(default_factory=list)
    report: focus.ConformanceReport | None = None
    inventory_rows: int | None = None
    budgets: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == str(ConnectionStatus.OK)

    def to_dict(self) -> dict:
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
            "conformance": self.report.to_dict() if self.report else None,
        }


def ingest_source(
    provider: Provider,
    lake: Lake,
    *,
    as_of: date,
    restate_days: int,
    month_to_date: bool,
    record_day: Callable[[str, date, int, list[str]], None],
    check_cancel: Callable[[], None],
    progress: Callable[[str], None] = lambda _m: None,
) -> SourceResult:
    """Pull the planned days of one source into the lake. Never raises for the source's own failures."""
    res = SourceResult(provider.name)
    try:
        available = provider.available_days(as_of)
        stored = lake.stored_days(provider.name)
        days = plan_days(available, stored, as_of, restate_days=restate_days, month_to_date=month_to_date)
        res.skipped_days = len([d for d in available if d <= as_of]) - len(days)
        if len(stored) and res.skipped_days:
            log.info("days_skipped", source=provider.name, days=res.skipped_days, reason="stored and unchanged")
        windows = contiguous_windows(days)
        progress(f"{provider.name}: {len(days)} day(s) to pull in {len(windows)} window(s), {res.skipped_days} already stored")
        for w in windows:
            check_cancel()
            wrote = lake.write_window(provider.name, w, provider.costs(w), signatures=available, check_cancel=check_cancel)
            for d, n in sorted(wrote.rows_by_day.items()):
                record_day(provider.name, d, n, wrote.billing_accounts.get(d, []))
            res.rows += wrote.rows
            res.days += len(wrote.rows_by_day)
            res.windows.append(str(w))
            if wrote.report is not None:
                res.report = wrote.report if res.report is None else res.report.merge(wrote.report)
            log.info("window_ingested", source=provider.name, window=str(w), rows=wrote.rows,
                     flagged=wrote.report.flagged_rows if wrote.report else 0)
            progress(f"{provider.name}: {w} → {wrote.rows:,} rows")
        inv = provider.inventory()
        if inv is not None:
            res.inventory_rows = lake.write_inventory(provider.name, inv)
        res.budgets = list(provider.budgets())
        status, detail = provider.status()
        if status == ConnectionStatus.UNKNOWN or status == ConnectionStatus.OK:
            res.status, res.detail = str(ConnectionStatus.OK), detail
        else:
            res.status, res.detail = str(status), detail
    except CycleCancelled:
        raise
    except ProviderError as e:
        res.status, res.detail = e.status, str(e)
        log.error("ingest_failed", source=provider.name, error=str(e))
    except DataError as e:
        res.status, res.detail = str(ConnectionStatus.PARSE_ERROR), f"provider {provider.name!r}: {e}"
        log.error("ingest_failed", source=provider.name, error=str(e))
    return res

