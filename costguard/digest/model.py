"""The digest's data: frozen records, and ``Digest.to_data()`` → the JSON shape documented in
docs/digest.md (``FORMAT`` is bumped when that shape changes incompatibly).

Money is ``Decimal`` per currency (never two currencies in one number); ratios are ``Decimal``
fractions (0.042 = 4.2 %); days are ``date``; weeks are ``YYYY-Www`` strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

FORMAT = 1


@dataclass(frozen=True, slots=True)
class Amounts:
    """Spend of one group in one currency.

    ``this_week`` / ``last_week`` are the full weeks (what ``costguard costs`` returns);
    ``change`` compares like with like: only (source, weekday) pairs that have data in both weeks,
    so a day that has not arrived yet is not shown as a drop. ``four_week_average`` is the mean of
    the complete weeks among the four before this one (``four_week_average_weeks`` of them)."""

    currency: str
    this_week: Decimal
    last_week: Decimal
    four_week_average: Decimal | None
    four_week_average_weeks: int
    compared_this_week: Decimal      # this week's days that take part in the change
    compared_last_week: Decimal      # the same weekdays of last week
    change: Decimal                  # compared_this_week - compared_last_week
    change_ratio: Decimal | None     # change / compared_last_week
    vs_average: Decimal | None       # this_week - four_week_average (null when this week has missing days)
    vs_average_ratio: Decimal | None


@dataclass(frozen=True, slots=True)
class Spend:
    """One row of a breakdown: its labels (``provider``, ``service``, ``account_id`` …) and amounts."""

    labels: dict[str, str | None]
    amounts: Amounts


@dataclass(frozen=True, slots=True)
class Driver:
    """An account or resource inside a mover, with its share of the mover's change."""

    level: str                       # "account" | "resource" | "service"
    id: str | None
    name: str | None
    account_id: str | None
    this_week: Decimal
    last_week: Decimal
    change: Decimal
    share: Decimal | None            # of the mover's change
    status: str                      # "new" (nothing last week) | "gone" (nothing this week) | "changed"


@dataclass(frozen=True, slots=True)
class Mover:
    """A service whose like-for-like spend moved most, and what moved it."""

    provider: str | None
    service: str | None
    currency: str
    this_week: Decimal
    last_week: Decimal
    change: Decimal
    change_ratio: Decimal | None
    root_cause: Driver
    top_accounts: list[Driver]
    top_resources: list[Driver]


@dataclass(frozen=True, slots=True)
class DayCost:
    day: date
    currency: str
    cost: Decimal


@dataclass(frozen=True, slots=True)
class WeekData:
    """Which days of one week have data: ``missing`` (per source: a day after the source's first
    day, already over, with no data), ``unsettled`` (per source: a day whose source has not been
    read since ``digest.settle_hours`` after the day ended, so it may still be arriving) and
    ``not_yet`` (days not over when the digest was made)."""

    week: str
    start: date
    end: date
    complete: bool
    missing: dict[str, list[date]]
    unsettled: dict[str, list[date]]
    not_yet: list[date]


@dataclass(frozen=True, slots=True)
class DataNotes:
    this_week: WeekData
    last_week: WeekData
    like_for_like: bool              # the change compares fewer days than the full weeks
    compared_days: list[date]        # this week's days that take part in the comparison
    sources: list[str]
    gaps: dict[str, list[date]]      # missing or unsettled days per source over the eight charted weeks
    settle_hours: int                # a day read sooner than this after it ended counts as unsettled
    warnings: list[str]


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """One budget a ``budget`` rule checks (its own amount, or a team's budget from owners.yaml)."""

    rule: str
    name: str                        # what the budget is: "AWS", "team payments", or the rule id
    period: str
    period_start: date
    period_end: date
    metric: str
    currency: str
    amount: Decimal | None
    actual: Decimal | None
    actual_ratio: Decimal | None
    forecast: Decimal | None
    forecast_ratio: Decimal | None
    daily_rate: Decimal | None
    as_of: date
    last_data_day: date | None
    status: str                      # ok | at_risk (forecast over) | breached | error
    breach_date: date | None
    days_to_breach: int | None
    filter: dict[str, Any]
    team: str | None
    converted: dict[str, Decimal]    # spend in other currencies counted at the rule's rates
    excluded: dict[str, Decimal]     # spend in currencies without a rate, left out
    covers_digest: bool              # it keeps every cost the digest shows (its line belongs on the daily chart)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class CoveragePoint:
    week: str
    coverage: Decimal | None
    tagged: Decimal
    total: Decimal


@dataclass(frozen=True, slots=True)
class CoverageSeries:
    """Cost-weighted tag coverage of one tag-coverage rule (Usage cost carrying every key), per week."""

    rule: str
    keys: list[str]
    metric: str
    currency: str
    target: Decimal
    this_week: Decimal | None
    last_week: Decimal | None
    change: Decimal | None
    weeks: list[CoveragePoint]


@dataclass(frozen=True, slots=True)
class KindMoney:
    currency: str
    monthly_cost: Decimal            # resource-level findings, each resource once (its largest)
    monthly_savings: Decimal | None  # findings that have one, each resource/scope once (its largest)
    resources: int


@dataclass(frozen=True, slots=True)
class KindSummary:
    kind: str
    open: int
    by_severity: dict[str, int]
    scope_findings: int
    new: int
    fixed: int
    money: list[KindMoney]


@dataclass(frozen=True, slots=True)
class FindingLine:
    fingerprint: str
    kind: str
    severity: str
    status: str
    title: str
    owner: str | None
    resource_id: str | None
    monthly_cost: Decimal
    monthly_savings: Decimal | None
    currency: str
    at: datetime | None              # when it became new / was fixed (the event time)


@dataclass(frozen=True, slots=True)
class Realised:
    """Savings measured on the bill for a fixed finding: the resource's cost per 30 days before
    (the 7 days before it was last seen open) and after (up to 7 days with data after the day it
    was resolved). ``realised`` is null until a full day after the fix has data."""

    fingerprint: str
    title: str
    resource_id: str
    currency: str
    expected_monthly_savings: Decimal | None
    before_monthly: Decimal | None
    after_monthly: Decimal | None
    realised_monthly_savings: Decimal | None
    before_days: int
    after_days: int


@dataclass(frozen=True, slots=True)
class MoneyTotal:
    currency: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class FindingsSummary:
    open: int
    by_kind: list[KindSummary]
    new_this_week: list[FindingLine]
    fixed_this_week: list[FindingLine]
    realised_savings: list[Realised]
    realised_savings_total: list[MoneyTotal]
    state_as_of: datetime | None     # open counts are the store's state when the digest was made


@dataclass(frozen=True, slots=True)
class Anomaly:
    fingerprint: str
    title: str
    severity: str
    status: str
    provider: str | None
    account_id: str | None
    service: str | None
    resource_id: str | None
    owner: str | None
    monthly_cost: Decimal
    currency: str
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class Digest:
    week: str
    start: date
    end: date                        # exclusive
    timezone: str
    team: str | None
    metric: str
    generated_at: datetime
    data: DataNotes
    totals: list[Amounts]
    by_provider: list[Spend]
    by_account: list[Spend]
    by_service: list[Spend]
    by_team: list[Spend]
    movers: list[Mover]
    daily: list[DayCost]
    budgets: list[BudgetStatus]
    coverage: list[CoverageSeries]
    findings: FindingsSummary | None
    anomalies: list[Anomaly] | None  # None: no anomaly rule kind in this version
    teams: list[str] = field(default_factory=list)   # owner teams known to the config

    @property
    def audience(self) -> str:
        return f"team:{self.team}" if self.team else "org"

    def currencies(self) -> list[str]:
        """Currencies, largest this-week spend first."""
        return [a.currency for a in sorted(self.totals, key=lambda a: (-a.this_week, a.currency))]

    def to_data(self) -> dict[str, Any]:
        """The JSON data file's content (Decimals, dates and datetimes still typed)."""
        out = {"format": FORMAT, **{f.name: _plain(getattr(self, f.name)) for f in fields(self)}}
        return out


def _plain(v: Any) -> Any:
    if isinstance(v, Spend):
        return {**v.labels, **_plain(v.amounts)}
    if is_dataclass(v) and not isinstance(v, type):
        return {f.name: _plain(getattr(v, f.name)) for f in fields(v)}
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v
