"""Plain, frozen value types shared by every part of costguard.

Money is ``Decimal``; time is UTC; windows are half-open ``[start, end)`` like FOCUS periods.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

COST_METRICS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")
KINDS = ("tag", "budget", "rightsizing", "idle", "anomaly", "commitment", "data")
SEVERITIES = ("info", "warning", "critical")
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}
#: Classes of the inventory contract (``costguard.inventory.INVENTORY_SCHEMA``'s ``resource_class``).
RESOURCE_CLASSES = ("instance", "volume", "address", "snapshot", "load_balancer", "nat_gateway",
                    "database", "log_group", "bucket")


@dataclass(frozen=True, slots=True, order=True)
class Window:
    """A half-open range of days ``[start, end)``."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"empty window: {self.start} .. {self.end}")

    @classmethod
    def day(cls, d: date) -> "Window":
        return cls(d, d + timedelta(days=1))

    def days(self) -> Iterator[date]:
        d = self.start
        while d < self.end:
            yield d
            d += timedelta(days=1)

    def __len__(self) -> int:
        return (self.end - self.start).days

    def __str__(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"


def contiguous_windows(days: set[date] | list[date]) -> list[Window]:
    """Group days into the fewest contiguous windows (sorted)."""
    out: list[Window] = []
    for d in sorted(set(days)):
        if out and out[-1].end == d:
            out[-1] = Window(out[-1].start, d + timedelta(days=1))
        else:
            out.append(Window.day(d))
    return out


class ConnectionStatus(StrEnum):
    """Actionable per-provider states (after OpenCost's connection states)."""

    UNKNOWN = "unknown"
    OK = "ok"
    PARTIAL = "partial"
    INVALID_CONFIGURATION = "invalid_configuration"
    FAILED_CONNECTION = "failed_connection"
    PARSE_ERROR = "parse_error"
    MISSING_DATA = "missing_data"


def fingerprint(rule: str, provider: str | None, account_id: str | None, scope: str | None) -> str:
    """Stable identity of a finding: rule, provider, account, resource-or-scope. Never amounts."""
    parts = [rule, provider or "-", account_id or "-", scope or "-"]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class Finding:
    """What a rule found in one evaluation. The store adds status, first_seen and last_seen."""

    fingerprint: str
    rule: str
    kind: str
    severity: str
    title: str
    summary: str
    monthly_cost: Decimal
    monthly_savings: Decimal | None
    currency: str
    provider: str | None = None
    billing_account_id: str | None = None
    account_id: str | None = None
    region: str | None = None
    service: str | None = None
    resource_id: str | None = None
    resource_type: str | None = None
    owner: str | None = None
    owner_reason: str | None = None
    source: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def with_owner(self, owner: str | None, reason: str | None) -> "Finding":
        from dataclasses import replace

        return replace(self, owner=owner, owner_reason=reason)


@dataclass(frozen=True, slots=True)
class NativeBudget:
    """A budget defined in the cloud itself (AWS Budgets, Azure budgets, GCP budgets)."""

    source: str
    name: str
    amount: Decimal
    currency: str
    period: str                      # month | quarter | year | week | custom
    actual: Decimal | None = None
    forecast: Decimal | None = None
    scope: Mapping[str, Any] = field(default_factory=dict)
    #: alert thresholds defined with the budget: ``{"on": actual|forecast, "value": Decimal,
    #: "type": percent|absolute, "comparison": gt|lt|eq}``
    thresholds: tuple[Mapping[str, Any], ...] = ()
    provider: str | None = None      # FOCUS ProviderName
    account_id: str | None = None    # the account (subscription, project) the budget belongs to
    read_on: date | None = None      # the day actual/forecast were read (they describe that day's period)


def new_run_id(now: datetime) -> str:
    """A run id that sorts by start time: ``20260131T060000Z-3f2a9c``."""
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def money(value: Decimal | float | int | None, places: int = 2) -> str:
    """Format an amount for humans (rounding only happens here, never in stored values)."""
    if value is None:
        return "-"
    q = Decimal(value).quantize(Decimal(1).scaleb(-places))
    return f"{q:,}"
