"""HTML (email-safe: tables, inline styles, light and dark) and plain text from a :class:`Digest`.

Rounding happens here only: the data keeps exact decimals. The sentences that several formats
share (the headline, a mover's root cause, a budget's state, the data notice) are made once, in
this module, and used by the HTML and text templates and by ``chat.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from costguard.digest.charts import Chart
from costguard.digest.model import Amounts, BudgetStatus, Digest, Driver, Mover, Spend
from costguard.rules.base import fmt_money

TOP_ROWS = 10
WEEKDAY = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


# ---- shared wording ----------------------------------------------------------------------------


def money(amount: Decimal | None, currency: str | None, places: int = 2) -> str:
    return "–" if amount is None else fmt_money(amount, currency, places)


def signed(amount: Decimal | None, currency: str | None, places: int = 2) -> str:
    if amount is None:
        return "–"
    return ("+" if amount > 0 else "") + fmt_money(amount, currency, places)


def pct(ratio: Decimal | None, *, sign: bool = True, places: int = 1) -> str:
    if ratio is None:
        return "–"
    p = (ratio * 100).quantize(Decimal(1).scaleb(-places))
    return ("+" if sign and p > 0 else "") + f"{p:,}%"


def pts(change: Decimal | None) -> str:
    """A change of a share in percentage points: ``Decimal("-0.253")`` → ``-25.3 pts``."""
    if change is None:
        return "–"
    p = (change * 100).quantize(Decimal("0.1"))
    return ("+" if p > 0 else "") + f"{p} pts"


def day(d: date | None) -> str:
    return "–" if d is None else f"{WEEKDAY[d.weekday()]} {d.day} {d:%b}"


def days_text(ds: Sequence[date]) -> str:
    return ", ".join(day(d) for d in ds)


def week_span(d: Digest) -> str:
    last = d.end - timedelta(days=1)
    return f"{d.start.day} {d.start:%b} – {last.day} {last:%b %Y}"


def audience_name(d: Digest) -> str:
    return f"team {d.team}" if d.team else "the organisation"


def headline(d: Digest) -> str:
    """One line: the week's spend per currency and how it moved."""
    parts = []
    for a in sorted(d.totals, key=lambda a: (-a.this_week, str(a.currency))):
        parts.append(f"{money(a.this_week, a.currency, 0)} ({pct(a.change_ratio)} vs last week)" if a.change_ratio is not None
                     else money(a.this_week, a.currency, 0))
    return ", ".join(parts) or "no spend recorded"


def data_notice(d: Digest) -> list[str]:
    """Sentences about days without data and source problems; empty when the week is whole."""
    out = []
    for label, w in (("This week", d.data.this_week), ("Last week", d.data.last_week)):
        for source, ds in sorted(w.missing.items()):
            out.append(f"{label}: no data from source {source} for {days_text(ds)} (not arrived yet or not delivered); "
                       "those days are not counted as a drop.")
        for source, ds in sorted(w.unsettled.items()):
            out.append(f"{label}: {days_text(ds)} from source {source} may still be arriving (the source was last read "
                       f"less than {d.data.settle_hours} h after the day ended); counted in the total, not compared.")
        if w.not_yet:
            out.append(f"{label} is still running: {days_text(w.not_yet)} not over yet.")
    if d.data.like_for_like:
        out.append("Changes compare like for like: only weekdays with data in both weeks "
                   f"({days_text(d.data.compared_days) or 'none'} this week).")
    out += list(d.data.warnings)
    return out


def driver_text(m: Mover, r: Driver) -> str:
    cur = m.currency
    if r.level == "service":
        return f"{r.name or 'spread'}: no single account or resource carries half of the change"
    what = f"resource {r.id}" + (f" ({r.name})" if r.name and r.name != r.id else "") + (f" in account {r.account_id}" if r.account_id else "") \
        if r.level == "resource" else f"account {r.id}" + (f" ({r.name})" if r.name and r.name != r.id else "")
    status = {"new": ", new this week", "gone": ", gone this week"}.get(r.status, "")
    return f"{what}: {signed(r.change, cur)}{status} ({pct(r.share, sign=False, places=0)} of the change)"


def mover_text(m: Mover) -> str:
    return f"{m.service or '(no service)'} {signed(m.change, m.currency)} ({pct(m.change_ratio)}): {driver_text(m, m.root_cause)}"


def budget_text(b: BudgetStatus) -> str:
    cur = b.currency
    if b.status == "error":
        return f"{b.name}: {b.error}"
    head = f"{b.name}: {money(b.actual, cur, 0)} of {money(b.amount, cur, 0)} ({pct(b.actual_ratio, sign=False, places=0)}) " \
           f"{b.period} to date, forecast {money(b.forecast, cur, 0)} ({pct(b.forecast_ratio, sign=False, places=0)})"
    left_out = "".join(f"; leaves out {money(v, c)} spent in {c}" for c, v in sorted(b.excluded.items()))
    if b.status == "breached":
        return f"{head}; already over budget{left_out}"
    if b.status == "at_risk" and b.breach_date is not None:
        return f"{head}; on this pace it is exceeded on {day(b.breach_date)} (in {b.days_to_breach} day(s)){left_out}"
    if b.status == "at_risk":
        return f"{head}; the forecast is over the budget{left_out}"
    return f"{head}; on track{left_out}"


# ---- tables ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    label: str
    amounts: Amounts
    other: bool = False


def top_rows(spend: Sequence[Spend], label: Any, limit: int = TOP_ROWS) -> list[Row]:
    """The first ``limit`` rows, then one "N others" row per currency (never two currencies summed)."""
    rows = [Row(label(s), s.amounts) for s in spend[:limit]]
    rest: dict[str | None, list[Amounts]] = {}
    for s in spend[limit:]:
        rest.setdefault(s.amounts.currency, []).append(s.amounts)
    for cur, items in sorted(rest.items(), key=lambda kv: str(kv[0])):
        rows.append(Row(f"{len(items)} other(s)", _sum(cur, items), other=True))
    return rows


def _sum(cur: str | None, items: Sequence[Amounts]) -> Amounts:
    def add(name: str) -> Decimal:
        return sum((getattr(a, name) for a in items), Decimal(0))

    avgs = [a.four_week_average for a in items]
    avg = sum((a for a in avgs if a is not None), Decimal(0)) if all(a is not None for a in avgs) else None
    c0, c1 = add("compared_this_week"), add("compared_last_week")
    this = add("this_week")
    return Amounts(cur, this, add("last_week"), avg, items[0].four_week_average_weeks, c0, c1, c0 - c1,
                   ((c0 - c1) / c1).quantize(Decimal("1e-6")) if c1 else None,
                   this - avg if avg is not None and all(a.vs_average is not None for a in items) else None, None)


def _labels(d: Digest) -> dict[str, list[Row]]:
    return {
        "provider": top_rows(d.by_provider, lambda s: s.labels["provider"] or "(none)"),
        "team": top_rows(d.by_team, lambda s: s.labels["team"] or "(unowned)"),
        "service": top_rows(d.by_service, lambda s: s.labels["service"] or "(none)"),
        "account": top_rows(d.by_account, lambda s: " · ".join(x for x in (s.labels["account_id"], s.labels["account_name"]) if x) or "(none)"),
    }


# ---- templates ---------------------------------------------------------------------------------


def _env() -> Environment:
    env = Environment(loader=PackageLoader("costguard.digest", "templates"), autoescape=select_autoescape(["html", "j2"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(money=money, signed=signed, pct=pct, pts=pts, day=day, days=days_text)
    env.globals.update(mover_text=mover_text, driver_text=driver_text, budget_text=budget_text)
    return env


_ENV: Environment | None = None


def env() -> Environment:
    global _ENV
    if _ENV is None:
        _ENV = _env()
    return _ENV


def _context(d: Digest, charts: Sequence[Chart], images: Mapping[str, str]) -> dict[str, Any]:
    return {
        "d": d, "span": week_span(d), "audience": audience_name(d), "headline": headline(d), "notice": data_notice(d),
        "tables": _labels(d), "charts": {c.name: (c, images.get(c.name)) for c in charts},
        "currencies": d.currencies(), "reproduce": reproduce(d),
    }


def render_html(d: Digest, charts: Sequence[Chart], images: Mapping[str, str]) -> str:
    """``images``: chart name → ``src`` (``cid:…`` in an email, a file name next to an archived copy)."""
    return env().get_template("digest.html.j2").render(**_context(d, charts, images))


def render_text(d: Digest) -> str:
    return env().get_template("digest.txt").render(**_context(d, [], {}))


def reproduce(d: Digest) -> str:
    """The command that prints the organisation's totals of this week from the lake."""
    return f"costguard costs -c FILE --by ServiceName --from {d.start} --to {d.end} --metric {d.metric}"
