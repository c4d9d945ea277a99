"""Spend: week totals, breakdowns, movers with their root cause, daily series, and which days
have data. Pure polars over the lake's daily rollup (no I/O here).

Definitions (docs/digest.md repeats them for readers):

- **this week / last week**: the sum of the metric over the week's charge days, exactly what
  ``costguard costs --from MON --to NEXT_MON`` returns, per currency.
- **change**: like for like. For each source, only weekdays with settled data in *both* weeks
  take part, so a day that has not arrived yet, a day still arriving (read less than
  ``settle_hours`` after it ended), or a source connected mid-week is not shown as a drop.
- **four-week average**: the mean of the *full* weeks among the four before this one (every source
  that has data in the digest's eight weeks has all seven days, settled); null when none is full.
- **movers**: services whose like-for-like change is largest (at least 1 % of the currency's
  comparable last-week total); each with its **root cause**: the resource, else the account, that
  carries at least half of the change in the same direction, else the service as a whole ("spread").
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

import polars as pl

from costguard.digest.model import Amounts, DataNotes, DayCost, Driver, Mover, Spend, WeekData
from costguard.digest.weeks import IsoWeek
from costguard.rules.base import DATE, MONEY_PLACES, RATIO_PLACES

CURRENCY = "BillingCurrency"
SOURCE = "x_Source"
TEAM = "_team"
TRACKED_WEEKS = 8           # the trend charts: this week and the seven before
AVERAGE_WEEKS = 4
MOVER_FLOOR = Decimal("0.01")   # a mover moves at least 1 % of the currency's comparable last week
ROOT_CAUSE_SHARE = Decimal("0.5")
TOP_DRIVERS = 3


def _ratio(num: Decimal, den: Decimal | None) -> Decimal | None:
    if den is None or den == 0:
        return None
    return (num / den).quantize(RATIO_PLACES)


def _money(d: Decimal | None) -> Decimal:
    return Decimal(0) if d is None else d


# ---- which days have data ----------------------------------------------------------------------


def tracked_sources(days_by_source: Mapping[str, Collection[date]], week: IsoWeek) -> list[str]:
    """Sources with at least one day of data in the digest's eight weeks."""
    lo, hi = week.shift(1 - TRACKED_WEEKS).start, week.end
    return sorted(s for s, days in days_by_source.items() if any(lo <= d < hi for d in days))


def _day_end(d: date) -> datetime:
    return datetime.combine(d + timedelta(days=1), time(0), timezone.utc)


@dataclass(frozen=True)
class Presence:
    """Which days each source has, and when the source was last read (for ``unsettled``).

    A day is *settled* once its source has been read at least ``settle`` after the day ended: that
    read either re-pulled the day or left it alone because it had not changed (or was outside the
    trailing ``restate_days``), so its rows are no longer arriving. Without read times (a lake with
    no state store) every stored day counts as settled."""

    days: Mapping[str, Collection[date]]
    ingested: Mapping[str, Mapping[date, datetime]]
    settle: timedelta
    today: date

    def last_read(self, s: str) -> datetime | None:
        times = self.ingested.get(s)
        return max(times.values()) if times else None

    def settled(self, s: str, d: date) -> bool:
        last = self.last_read(s)
        return last is None or last >= _day_end(d) + self.settle

    def has(self, s: str, d: date) -> bool:
        return d in self.days.get(s, ()) and d < self.today and self.settled(s, d)


def week_data(week: IsoWeek, p: Presence, sources: Sequence[str]) -> WeekData:
    """Missing days per source: over (before today), on or after the source's first day, no data;
    unsettled: present but read too soon after the day ended."""
    not_yet = [d for d in week.days() if d >= p.today]
    missing: dict[str, list[date]] = {}
    unsettled: dict[str, list[date]] = {}
    for s in sources:
        have = set(p.days.get(s, ()))
        if not have:
            continue
        first = min(have)
        gone = [d for d in week.days() if first <= d < p.today and d not in have]
        early = [d for d in week.days() if d in have and d < p.today and not p.settled(s, d)]
        if gone:
            missing[s] = gone
        if early:
            unsettled[s] = early
    return WeekData(str(week), week.start, week.end, not missing and not unsettled and not not_yet, missing, unsettled, not_yet)


def full_week(week: IsoWeek, p: Presence, sources: Sequence[str]) -> bool:
    """Every tracked source has settled data on all seven days (what the four-week average may use)."""
    return bool(sources) and all(p.has(s, d) for s in sources for d in week.days())


def comparable_pairs(week: IsoWeek, p: Presence, sources: Sequence[str]) -> tuple[pl.DataFrame, bool, list[date]]:
    """(source, day) pairs of this week and last week that take part in the change: per source,
    the weekdays with settled data, over before today, in both weeks (a day still running or
    still arriving is partial). Also: whether that is fewer than all days with data, and this
    week's compared days."""
    last = week.shift(-1)
    rows: list[tuple[str, date]] = []
    fewer = False
    compared: set[date] = set()
    for s in sources:
        have = set(p.days.get(s, ()))
        now = {d.weekday() for d in week.days() if p.has(s, d)}
        before = {d.weekday() for d in last.days() if p.has(s, d)}
        both = now & before
        fewer = fewer or any(d in have for d in (*week.days(), *last.days()) if d.weekday() not in both)
        for wd in sorted(both):
            rows += [(s, week.start + timedelta(days=wd)), (s, last.start + timedelta(days=wd))]
            compared.add(week.start + timedelta(days=wd))
    frame = pl.DataFrame(rows, schema={SOURCE: pl.String, DATE: pl.Date}, orient="row").with_columns(pl.lit(True).alias("_cmp"))
    return frame, fewer, sorted(compared)


def data_notes(week: IsoWeek, presence: Presence, warnings: Sequence[str] = ()) -> tuple[DataNotes, pl.DataFrame]:
    sources = tracked_sources(presence.days, week)
    pairs, fewer, compared = comparable_pairs(week, presence, sources)
    gaps: dict[str, list[date]] = {}
    for k in range(1 - TRACKED_WEEKS, 1):
        w = week_data(week.shift(k), presence, sources)
        for s in sources:
            days = sorted({*w.missing.get(s, []), *w.unsettled.get(s, [])})
            if days:
                gaps.setdefault(s, []).extend(days)
    notes = DataNotes(
        this_week=week_data(week, presence, sources),
        last_week=week_data(week.shift(-1), presence, sources),
        like_for_like=fewer, compared_days=compared, sources=sources, gaps=gaps,
        settle_hours=int(presence.settle.total_seconds() // 3600), warnings=list(warnings),
    )
    return notes, pairs


# ---- amounts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpendReport:
    totals: list[Amounts]
    by_provider: list[Spend]
    by_account: list[Spend]
    by_service: list[Spend]
    by_team: list[Spend]
    movers: list[Mover]
    daily: list[DayCost]


def spend_report(costs: pl.LazyFrame, *, week: IsoWeek, metric: str, pairs: pl.DataFrame,
                 full_weeks: Collection[int], this_week_complete: bool, top: int = 5) -> SpendReport:
    """``costs``: the rollup, already narrowed to the digest's scope, with a ``_team`` column.
    ``full_weeks``: which of 1..4 weeks back are full (see :func:`full_week`)."""
    first = week.shift(1 - TRACKED_WEEKS).start
    base = costs.filter((pl.col(DATE) >= first) & (pl.col(DATE) < week.end))
    wk = ((pl.col(DATE) - pl.lit(week.start)).dt.total_days() // 7).alias("_wk")
    recent = (
        base.filter(pl.col(DATE) >= week.shift(-AVERAGE_WEEKS).start)
        .with_columns(wk)
        .join(pairs.lazy(), on=[SOURCE, DATE], how="left")
        .with_columns(pl.col("_cmp").fill_null(False))
    )
    m = pl.col(metric)
    sums = [
        m.filter(pl.col("_wk") == 0).sum().alias("t0"),
        *(m.filter(pl.col("_wk") == -k).sum().alias(f"t{k}") for k in range(1, AVERAGE_WEEKS + 1)),
        m.filter((pl.col("_wk") == 0) & pl.col("_cmp")).sum().alias("c0"),
        m.filter((pl.col("_wk") == -1) & pl.col("_cmp")).sum().alias("c1"),
    ]
    dims = {
        "totals": [CURRENCY],
        "provider": ["ProviderName", CURRENCY],
        "account": ["SubAccountId", CURRENCY],
        "service": ["ProviderName", "ServiceName", CURRENCY],
        "team": [TEAM, CURRENCY],
    }
    queries = [recent.group_by(keys).agg(*sums, *([pl.col("SubAccountName").max()] if name == "account" else [])) for name, keys in dims.items()]
    queries.append(base.group_by(DATE, CURRENCY).agg(m.sum().alias("cost")).sort(DATE, CURRENCY))
    *frames, daily = pl.collect_all(queries, engine="streaming")
    got = dict(zip(dims, frames, strict=True))
    avg_weeks = sorted(k for k in full_weeks if 1 <= k <= AVERAGE_WEEKS)

    def amounts(r: dict) -> Amounts:
        t0, t1, c0, c1 = (_money(r[k]) for k in ("t0", "t1", "c0", "c1"))
        avg = (sum((_money(r[f"t{k}"]) for k in avg_weeks), Decimal(0)) / len(avg_weeks)).quantize(MONEY_PLACES) if avg_weeks else None
        vs = t0 - avg if avg is not None and this_week_complete else None
        return Amounts(r[CURRENCY], t0, t1, avg, len(avg_weeks), c0, c1, c0 - c1, _ratio(c0 - c1, c1),
                       vs, _ratio(vs, avg) if vs is not None else None)

    def rows(name: str, labels: dict[str, str]) -> list[Spend]:
        out = [Spend({label: r[col] for label, col in labels.items()}, amounts(r)) for r in got[name].iter_rows(named=True)]
        out = [s for s in out if s.amounts.this_week or s.amounts.last_week or s.amounts.four_week_average]
        out.sort(key=lambda s: (-s.amounts.this_week, -s.amounts.last_week, tuple(str(v) for v in s.labels.values()), str(s.amounts.currency)))
        return out

    totals = sorted((amounts(r) for r in got["totals"].iter_rows(named=True)), key=lambda a: (-a.this_week, str(a.currency)))
    by_service = rows("service", {"provider": "ProviderName", "service": "ServiceName"})
    return SpendReport(
        totals=totals,
        by_provider=rows("provider", {"provider": "ProviderName"}),
        by_account=rows("account", {"account_id": "SubAccountId", "account_name": "SubAccountName"}),
        by_service=by_service,
        by_team=rows("team", {"team": TEAM}),
        movers=_movers(recent, metric, by_service, totals, top),
        daily=[DayCost(d, c, v) for d, c, v in daily.iter_rows()],
    )


# ---- movers ------------------------------------------------------------------------------------


def _movers(recent: pl.LazyFrame, metric: str, services: Sequence[Spend], totals: Sequence[Amounts], top: int) -> list[Mover]:
    floor = {t.currency: abs(t.compared_last_week or t.compared_this_week) * MOVER_FLOOR for t in totals}
    picked = [s for s in services if s.amounts.change != 0 and abs(s.amounts.change) >= floor.get(s.amounts.currency, 0)]
    picked.sort(key=lambda s: (-abs(s.amounts.change), str(s.labels["provider"]), str(s.labels["service"])))
    picked = picked[:top]
    if not picked:
        return []
    key = ["ProviderName", "ServiceName", CURRENCY]
    chosen = pl.DataFrame(
        [(s.labels["provider"], s.labels["service"], s.amounts.currency, 1 if s.amounts.change > 0 else -1) for s in picked],
        schema={"ProviderName": pl.String, "ServiceName": pl.String, CURRENCY: pl.String, "_sign": pl.Int64}, orient="row",
    )
    m = pl.col(metric)
    cmp = recent.filter(pl.col("_cmp")).join(chosen.lazy(), on=key, how="inner", nulls_equal=True)
    w0, w1 = m.filter(pl.col("_wk") == 0).sum().alias("w0"), m.filter(pl.col("_wk") == -1).sum().alias("w1")

    def top_of(by: list[str], extra: list[pl.Expr]) -> pl.LazyFrame:
        return (
            cmp.group_by([*key, "_sign", *by]).agg(w0, w1, *extra)
            .with_columns((pl.col("w0") - pl.col("w1")).alias("d"))
            .filter(pl.col("d") != 0)
            .sort([pl.col("d") * pl.col("_sign"), *by], descending=[True] + [False] * len(by), nulls_last=True)
            .group_by(key, maintain_order=True).head(TOP_DRIVERS)
        )

    accounts, resources, counts = pl.collect_all([
        top_of(["SubAccountId"], [pl.col("SubAccountName").max()]),
        top_of(["ResourceId", "SubAccountId"], [pl.col("ResourceName").max()]),
        cmp.group_by(key).agg(pl.col("SubAccountId").n_unique().alias("accounts")),
    ], engine="streaming")

    def mine(frame: pl.DataFrame, s: Spend) -> list[dict]:
        want = (s.labels["provider"], s.labels["service"], s.amounts.currency)
        return [r for r in frame.iter_rows(named=True) if (r["ProviderName"], r["ServiceName"], r[CURRENCY]) == want]

    def drivers(frame: pl.DataFrame, level: str, s: Spend) -> list[Driver]:
        ident, name = ("ResourceId", "ResourceName") if level == "resource" else ("SubAccountId", "SubAccountName")
        return [Driver(level, r[ident], r[name], r["SubAccountId"], r["w0"], r["w1"], r["d"],
                       _ratio(r["d"], s.amounts.change), _status(r["w0"], r["w1"])) for r in mine(frame, s)]

    movers = []
    for s in picked:
        a = s.amounts
        accts, res = drivers(accounts, "account", s), drivers(resources, "resource", s)
        candidates = [d for d in (res[:1] + accts[:1]) if d.id is not None and d.share is not None and d.share >= ROOT_CAUSE_SHARE]
        if candidates:
            root = candidates[0]
        else:
            n = sum(r["accounts"] for r in mine(counts, s))
            root = Driver("service", s.labels["service"], f"spread across {n} account(s)", None, a.compared_this_week,
                          a.compared_last_week, a.change, Decimal(1), _status(a.compared_this_week, a.compared_last_week))
        movers.append(Mover(s.labels["provider"], s.labels["service"], a.currency, a.compared_this_week, a.compared_last_week,
                            a.change, a.change_ratio, root, accts, res))
    return movers


def _status(this: Decimal, last: Decimal) -> str:
    if last == 0 and this != 0:
        return "new"
    if this == 0 and last != 0:
        return "gone"
    return "changed"
