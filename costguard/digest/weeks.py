"""ISO weeks: ``2026-W05`` ↔ the half-open day range ``[Monday, next Monday)``.

Costs are dated by charge day (the UTC day of ``ChargePeriodStart``, as providers bill), so a
week's costs are the charge days Monday..Sunday, exactly what ``costguard costs --from MON --to
NEXT_MON`` sums. The configured time zone decides which week is "last week" at the moment a
digest is made and the instants that bound finding events (``new`` / ``resolved`` this week).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

_PATTERN = re.compile(r"^(\d{4})-W(\d{2})$", re.IGNORECASE)


@dataclass(frozen=True, order=True, slots=True)
class IsoWeek:
    year: int
    week: int

    def __post_init__(self) -> None:
        date.fromisocalendar(self.year, self.week, 1)  # ValueError for week 53 of a 52-week year

    @classmethod
    def parse(cls, text: str) -> "IsoWeek":
        """``2026-W05`` (the ``W`` in either case). ValueError with an example otherwise."""
        m = _PATTERN.match(text.strip())
        if not m:
            raise ValueError(f"{text!r} is not an ISO week; write YYYY-Www, e.g. 2026-W05")
        year, week = int(m.group(1)), int(m.group(2))
        try:
            return cls(year, week)
        except ValueError:
            weeks = date(year, 12, 28).isocalendar().week
            raise ValueError(f"{text!r}: {year} has ISO weeks 01 to {weeks:02d}") from None

    @classmethod
    def of(cls, day: date) -> "IsoWeek":
        iso = day.isocalendar()
        return cls(iso.year, iso.week)

    @property
    def start(self) -> date:
        """Monday (inclusive)."""
        return date.fromisocalendar(self.year, self.week, 1)

    @property
    def end(self) -> date:
        """The next Monday (exclusive)."""
        return self.start + timedelta(days=7)

    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range(7)]

    def shift(self, weeks: int) -> "IsoWeek":
        return IsoWeek.of(self.start + timedelta(weeks=weeks))

    def instants(self, tz: str) -> tuple[datetime, datetime]:
        """[Monday 00:00, next Monday 00:00) in ``tz``, as UTC datetimes."""
        zone = ZoneInfo(tz)
        return tuple(datetime.combine(d, time(0), zone).astimezone(timezone.utc) for d in (self.start, self.end))  # type: ignore[return-value]

    def __str__(self) -> str:
        return f"{self.year}-W{self.week:02d}"


def local_today(now: datetime, tz: str) -> date:
    """The calendar day of ``now`` (aware) in ``tz``."""
    return now.astimezone(ZoneInfo(tz)).date()


def last_complete_week(now: datetime, tz: str) -> IsoWeek:
    """The latest ISO week that has fully ended at ``now`` in ``tz`` (on a Monday: last week)."""
    return IsoWeek.of(local_today(now, tz)).shift(-1)
