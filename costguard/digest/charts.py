"""PNG charts for the digest (matplotlib, Agg backend, no pyplot global state, so it is safe in a
thread): daily spend over eight weeks with the budget line, week-over-week change by service, and
the tag-coverage trend.

Readable in light and dark mail clients: every image has its own opaque light background (mail
clients do not invert images, so a transparent chart would put dark text on a dark page), text
and lines keep at least 3:1 contrast against it (text 4.5:1), and colour is never the only
cue: increases and decreases are also signed in the labels, missing days are hatched and named.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from costguard.digest.model import BudgetStatus, CoverageSeries, DayCost, Digest, Spend
from costguard.digest.weeks import IsoWeek
from costguard.rules.base import fmt_money

# Palette (GitHub Primer "light" tokens): every colour is checked against BACKGROUND in the tests.
BACKGROUND = "#ffffff"
TEXT = "#1f2328"
MUTED = "#59636e"
GRID = "#d1d9e0"
BAR = "#0969da"          # this week
BAR_EARLIER = "#54aeff"  # earlier weeks (a lighter tint of the same hue; graphics need 3:1 only against neighbours)
INCREASE = "#cf222e"
DECREASE = "#1a7f37"
BUDGET = "#9a6700"
MISSING = "#818b98"
SERIES = ("#0969da", "#8250df", "#bc4c00", "#1a7f37", "#cf222e", "#59636e")
WIDTH_PX, HEIGHT_PX = 640, 240


@dataclass(frozen=True)
class Chart:
    name: str        # file-name part and Content-ID part: "daily-USD"
    title: str
    alt: str         # what the chart shows, for clients that block images and for screen readers
    png: bytes


def _figure(scale: float, height: int = HEIGHT_PX, *, left: int = 56, bottom: int = 44, top: int = 40, right: int = 14):
    """A figure with fixed margins in pixels (cheaper than ``tight_layout``, which draws twice)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_PX / 100, height / 100), dpi=100 * scale, facecolor=BACKGROUND)
    fig.subplots_adjust(left=left / WIDTH_PX, right=1 - right / WIDTH_PX, bottom=bottom / height, top=1 - top / height)
    ax = fig.add_subplot()
    ax.set_facecolor(BACKGROUND)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(GRID)
    ax.tick_params(colors=MUTED, labelsize=8, labelcolor=TEXT)
    ax.grid(axis="y", color=GRID, linewidth=0.6)
    ax.set_axisbelow(True)
    return fig, ax


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor=BACKGROUND, transparent=False, metadata={"Software": None})
    return buf.getvalue()


def _short_money(v: float, currency: str) -> str:
    sym = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}.get(currency, "")
    a = abs(v)
    text = (f"{a / 1e6:.1f}M" if a >= 1e6 else f"{a / 1e3:.1f}k" if a >= 1e4 else f"{a:,.0f}" if a >= 100 or a == 0
            else f"{a:.2f}".rstrip("0").rstrip("."))
    sign = "-" if v < 0 else ""
    return f"{sign}{sym}{text}" if sym else f"{sign}{text} {currency}"


def daily_chart(week: IsoWeek, days: Sequence[DayCost], currency: str, budgets: Sequence[BudgetStatus],
                missing: Sequence[date], weeks: int, *, metric: str, scale: float = 2.0) -> Chart | None:
    """Daily spend bars over ``weeks`` weeks (this week darker), missing days hatched, and each
    budget's daily allowance (amount ÷ days in its period) as a dashed line."""
    from matplotlib.ticker import FuncFormatter

    mine = {d.day: d.cost for d in days if d.currency == currency}
    if not mine:
        return None
    first = max(week.shift(1 - weeks).start, min(mine))
    span = [first + timedelta(days=i) for i in range((week.end - first).days)]
    fig, ax = _figure(scale)
    xs = list(range(len(span)))
    values = [float(mine.get(d, 0)) for d in span]
    colours = [BAR if d >= week.start else BAR_EARLIER for d in span]
    ax.bar(xs, values, color=colours, width=0.8, label="spend (this week darker)")
    top = max(values + [0.0]) or 1.0
    gaps = [i for i, d in enumerate(span) if d in set(missing)]
    if gaps:  # a day some source has not delivered: its bar (or, if nothing came, the empty slot) hatched
        ax.bar(gaps, [values[i] if span[i] in mine else top for i in gaps], color="none", edgecolor=MISSING,
               hatch="///", linewidth=0, width=0.8, label="incomplete: a source's data missing or still arriving")
    for b in budgets:
        if b.currency != currency or b.status == "error" or not b.amount:
            continue
        allowance = float(b.amount) / (b.period_end - b.period_start).days
        ax.plot([xs[0] - 0.5, xs[-1] + 0.5], [allowance, allowance], linestyle="--", color=BUDGET, linewidth=1.4,
                label=f"budget {b.name}: {_short_money(allowance, currency)}/day" + (f" ({b.metric})" if b.metric != metric else ""))
        top = max(top, allowance)
    ax.set_ylim(0, top * 1.15)
    ticks = [i for i, d in enumerate(span) if d.weekday() == 0]
    ax.set_xticks(ticks, [f"W{IsoWeek.of(span[i]).week:02d}\n{span[i]:%d %b}" for i in ticks])
    ax.set_xlim(-0.7, len(span) - 0.3)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: _short_money(v, currency)))
    ax.set_title(f"Daily {metric} ({currency})", loc="left", fontsize=10, color=TEXT, pad=14)
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False, labelcolor=TEXT, ncols=3,
              borderaxespad=0.2)
    total = sum((mine.get(d, Decimal(0)) for d in week.days()), Decimal(0))
    alt = (f"Bar chart of daily {currency} spend from {span[0]} to {span[-1]}; this week {fmt_money(total, currency)}"
           + (f"; {len(gaps)} day(s) incomplete, a source's data missing or still arriving ({', '.join(f'{span[i]:%d %b}' for i in gaps)})" if gaps else "")
           + "".join(f"; budget {b.name} allows {fmt_money(b.amount / (b.period_end - b.period_start).days, currency)} a day"
                     for b in budgets if b.currency == currency and b.status != "error" and b.amount))
    return Chart(f"daily-{currency}", f"Daily spend ({currency})", alt, _png(fig))


def change_chart(services: Sequence[Spend], currency: str, *, limit: int = 8, scale: float = 2.0) -> Chart | None:
    """Horizontal bars: like-for-like change vs last week of the services that moved most."""
    mine = [s for s in services if s.amounts.currency == currency and s.amounts.change != 0]
    if not mine:
        return None
    mine.sort(key=lambda s: (-abs(s.amounts.change), str(s.labels.get("service"))))
    shown, rest = mine[:limit], mine[limit:]
    rows = [(str(s.labels.get("service") or "(no service)"), s.amounts.change) for s in shown]
    if rest:
        rows.append((f"{len(rest)} other service(s)", sum((s.amounts.change for s in rest), Decimal(0))))
    rows.reverse()
    longest = max(len(n if len(n) <= 38 else n[:37]) for n, _ in rows)
    fig, ax = _figure(scale, height=max(140, 34 * len(rows) + 70), left=min(300, 16 + 6 * longest), bottom=30, right=20)
    ys = list(range(len(rows)))
    vals = [float(v) for _, v in rows]
    ax.barh(ys, vals, color=[INCREASE if v > 0 else DECREASE for v in vals], height=0.6)
    ax.set_yticks(ys, [name if len(name) <= 38 else name[:36] + "…" for name, _ in rows])
    ax.axvline(0, color=MUTED, linewidth=0.8)
    ax.grid(axis="y", visible=False)
    ax.grid(axis="x", color=GRID, linewidth=0.6)
    span = max(abs(v) for v in vals) or 1.0
    ax.set_xlim(min(0.0, min(vals)) - span * 0.35, max(0.0, max(vals)) + span * 0.35)
    for y, v in zip(ys, vals, strict=True):
        ax.annotate(("+" if v > 0 else "") + _short_money(v, currency), (v, y), xytext=(4 if v >= 0 else -4, 0),
                    textcoords="offset points", ha="left" if v >= 0 else "right", va="center", fontsize=8, color=TEXT)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.xaxis.set_major_formatter(lambda v, _p: _short_money(v, currency))
    ax.set_title(f"Change vs last week by service ({currency}, like for like)", loc="left", fontsize=10, color=TEXT)
    alt = "Change vs last week by service: " + "; ".join(
        f"{name} {'+' if v > 0 else ''}{fmt_money(v, currency)}" for name, v in reversed(rows))
    return Chart(f"change-{currency}", f"Change vs last week by service ({currency})", alt, _png(fig))


def coverage_chart(series: Sequence[CoverageSeries], *, scale: float = 2.0) -> Chart | None:
    """Cost-weighted tag coverage per week, one line per rule (and currency), targets dashed."""
    if not series or not any(p.coverage is not None for s in series for p in s.weeks):
        return None
    fig, ax = _figure(scale)
    labels = [p.week[-3:] for p in series[0].weeks]
    xs = list(range(len(labels)))
    for i, s in enumerate(series[: len(SERIES)]):
        colour = SERIES[i % len(SERIES)]
        ys = [float(p.coverage) * 100 if p.coverage is not None else float("nan") for p in s.weeks]
        name = f"{s.rule} ({', '.join(s.keys)})" + (f" {s.currency}" if len({x.currency for x in series}) > 1 else "")
        ax.plot(xs, ys, marker="o", markersize=3.5, color=colour, linewidth=1.6, label=name)
        ax.plot([xs[0], xs[-1]], [float(s.target) * 100] * 2, linestyle="--", color=colour, linewidth=0.9, alpha=0.9)
    ax.set_xticks(xs, labels)
    ax.set_ylim(0, 105)
    ax.yaxis.set_major_formatter(lambda v, _p: f"{v:.0f}%")
    ax.set_title("Tag coverage (share of Usage cost; dashed: target)", loc="left", fontsize=10, color=TEXT, pad=14)
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False, labelcolor=TEXT, ncols=2,
              borderaxespad=0.2)
    alt = "Tag coverage by week: " + "; ".join(
        f"{s.rule} {', '.join(f'{p.week}: ' + (f'{p.coverage * 100:.1f}%' if p.coverage is not None else 'no data') for p in s.weeks[-3:])}"
        for s in series)
    return Chart("coverage", "Tag coverage trend", alt, _png(fig))


def digest_charts(d: Digest, *, scale: float = 2.0, weeks: int = 8) -> list[Chart]:
    """Every chart of a digest: per currency (largest first) the daily and change charts, then coverage."""
    week = IsoWeek.parse(d.week)
    missing = sorted({day for days in d.data.gaps.values() for day in days})
    out: list[Chart | None] = []
    for cur in d.currencies():
        out.append(daily_chart(week, d.daily, cur, _covering_budgets(d, cur), missing, weeks, metric=d.metric, scale=scale))
        out.append(change_chart(d.by_service, cur, scale=scale))
    out.append(coverage_chart(d.coverage, scale=scale))
    return [c for c in out if c is not None]


def _covering_budgets(d: Digest, currency: str) -> list[BudgetStatus]:
    """Budgets whose line belongs on the daily chart: their filter keeps every cost the bars show."""
    return [b for b in d.budgets if b.currency == currency and b.covers_digest and b.status != "error"]


__all__ = ["Chart", "change_chart", "coverage_chart", "daily_chart", "digest_charts"]
