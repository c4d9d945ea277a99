"""The provider seam: what a source of costs implements, its config model, and the registry.

A provider type is one module under ``costguard/providers/`` holding a config model (a subclass
of :class:`ProviderConfig` registered with ``@PROVIDERS.register("<type>")``, whose ``build``
makes the provider) and the provider itself. Adding a cloud touches that module and one import
line in ``providers/__init__.py``; ``config.py`` builds its discriminated union from the
registry, so ``validate`` reports the new type's errors with file:line like any other key.

Cloud SDKs are imported inside the provider module's functions, never at its top, so a
focus-only install (no ``[aws]``/``[azure]``/``[gcp]`` extras) can load every config model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from costguard.build import BuildContext
from costguard.model import ConnectionStatus, NativeBudget, Window
from costguard.registry import Registry

#: Column names a provider adds to the lake columns of every row it yields (see :class:`Part`).
REJECT = "x_Reject"   # String: why the row cannot be stored (null: the row is usable)
LINE = "x_Line"       # Int64: where the row sits in its origin (CSV line or 1-based row number)
DEFAULT_EARLIEST = date(2000, 1, 1)
DEFAULT_AHEAD_DAYS = 366


@dataclass(frozen=True, slots=True)
class Horizon:
    """The days one run works with. ``as_of`` is the evaluation day; a row dated before
    ``earliest`` or after ``latest`` is rejected (``1900-01-01`` and ``9999-12-31`` are export
    bugs, not spend); a row after ``as_of`` but within ``latest`` waits for a later run."""

    as_of: date
    earliest: date = DEFAULT_EARLIEST
    latest: date | None = None

    def __post_init__(self) -> None:
        if self.latest is None:
            object.__setattr__(self, "latest", self.as_of + timedelta(days=DEFAULT_AHEAD_DAYS))
        if self.earliest > self.as_of:
            raise ValueError(f"ingest.earliest_date {self.earliest} is after the run's as-of day {self.as_of}")

    @property
    def last(self) -> date:
        assert self.latest is not None
        return self.latest

    def accepts(self, d: date) -> bool:
        return self.earliest <= d <= self.last


@dataclass(frozen=True, slots=True)
class Part:
    """A bounded batch of rows from one origin (a file, a slice of one, or one API response).

    ``rows`` has the columns of ``focus.lake_schema()`` plus :data:`REJECT` and :data:`LINE`.
    ``rows_read`` is how many rows the origin holds in this part, counted independently of the
    normalisation (the lake checks that every one of them was stored, rejected or skipped);
    None when the source cannot count them separately. ``days``: every day (UTC ChargePeriodStart)
    the part's rows can fall on, when the source knows it cheaply (e.g. from a first pass over the
    file); a part of one known day is written without partitioning. None: unknown.
    """

    rows: Any  # pl.LazyFrame (typed loosely so this module imports without polars)
    origin: str
    rows_read: int | None = None
    line_kind: Literal["line", "row"] = "row"
    size: int | None = None
    signature: str | None = None
    days: frozenset[date] | None = None


@dataclass(frozen=True, slots=True)
class ProviderStatus:
    """How a provider's last pull went: a state, a human detail and what it cost in requests.

    ``problems`` are partial failures the run still survived (one member account denied, one
    API throttled): a provider with problems ends ``partial``.
    """

    state: ConnectionStatus = ConnectionStatus.UNKNOWN
    detail: str | None = None
    api_requests: Mapping[str, int] = field(default_factory=dict)
    paid_requests: Mapping[str, int] = field(default_factory=dict)
    problems: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class Check:
    """One line of ``costguard doctor``: what was checked, pass/fail, and the fix for a failure.
    ``ok=None`` means the check was skipped (it depends on one that failed)."""

    name: str
    ok: bool | None
    detail: str = ""
    fix: str = ""
    paid: bool = False


@runtime_checkable
class Provider(Protocol):
    """What every source implements. AWS, Azure and GCP adapters plug in here."""

    name: str

    def available_days(self, horizon: Horizon) -> dict[date, str | None]:
        """Days (<= ``horizon.as_of``) this source can deliver, each with a signature of its
        source data (equal signature = unchanged data) or None when the source cannot tell."""

    def costs(self, windows: Sequence[Window], horizon: Horizon) -> Iterable[Part]:
        """The rows of the planned ``windows`` as :class:`Part` objects small enough to
        stream one at a time. A part may hold rows of other days (they are counted as skipped)
        and rows that cannot be stored (``x_Reject`` says why; they are counted as rejected)."""

    def inventory(self) -> Any:
        """A resource snapshot (``inventory.INVENTORY_SCHEMA``) or None when the source has none."""

    def budgets(self) -> list[NativeBudget]:
        """Budgets defined in the cloud itself (empty for sources that have none)."""

    def status(self) -> ProviderStatus:
        """The state of the last pull, its request counts and partial problems."""

    def checks(self) -> Iterable[Check]:
        """Set-up checks for ``costguard doctor`` (credentials, access, export freshness)."""


class ProviderConfig(BaseModel):
    """Base of every provider type's config model: frozen, unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    type_name: ClassVar[str]  # set by PROVIDERS.register

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$", description="unique name of this source")

    def build(self, ctx: BuildContext) -> Provider:  # pragma: no cover - every type overrides it
        raise NotImplementedError

    def data_paths(self) -> Sequence[str]:
        """Local file patterns this provider reads (for ``validate`` warnings); none by default."""
        return ()


PROVIDERS: Registry[type[ProviderConfig]] = Registry("provider type", name_attr="type_name")
