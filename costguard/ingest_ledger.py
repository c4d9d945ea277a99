"""The ingest ledger: what one source's ingest read, stored, rejected and skipped, and the checks
that nothing was lost or counted twice on the way.

Every row a source delivers ends in exactly one bucket:

- **stored**: in the lake (flagged in ``x_Conformance`` where it breaks the FOCUS spec);
- **rejected**: cannot be stored (no readable ChargePeriodStart, an unreadable amount, a date
  outside the accepted range); kept in ``lake/rejected/`` with the reason, counted by reason with
  sample origins and line numbers, and the source ends ``partial``;
- **skipped**: not for this run (its day is stored and unchanged, or lies after the as-of day).

Checks (a failed one fails the source and nothing it read is committed):

1. per origin whose rows were counted independently: read = stored + rejected + skipped;
2. what the staged rollup holds (rows and BilledCost per currency) = what the ledger says was stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

STORED, REJECTED, SKIPPED = "stored", "rejected", "skipped"
NO_CURRENCY = "(none)"
SAMPLES = 3


@dataclass
class Money:
    """BilledCost of one currency, by bucket. ``unreadable`` counts rows whose amount could not be read."""

    read: Decimal = Decimal(0)
    stored: Decimal = Decimal(0)
    rejected: Decimal = Decimal(0)
    skipped: Decimal = Decimal(0)
    unreadable: int = 0

    def add(self, bucket: str, amount: Decimal | None, rows: int, readable: int) -> None:
        amount = amount or Decimal(0)
        self.read += amount
        setattr(self, bucket, getattr(self, bucket) + amount)
        self.unreadable += rows - readable

    def to_dict(self) -> dict[str, Any]:
        return {"read": self.read, "stored": self.stored, "rejected": self.rejected,
                "skipped": self.skipped, "unreadable_rows": self.unreadable}


@dataclass
class Origin:
    """One file (or API response) as read: its counts per bucket."""

    origin: str
    line_kind: str = "row"
    size: int | None = None
    signature: str | None = None
    rows_read: int | None = None
    stored: int = 0
    rejected: int = 0
    skipped: int = 0

    @property
    def counted(self) -> int:
        return self.stored + self.rejected + self.skipped

    def to_dict(self) -> dict[str, Any]:
        return {"origin": self.origin, "size": self.size, "signature": self.signature,
                "rows_read": self.rows_read if self.rows_read is not None else self.counted,
                "stored": self.stored, "rejected": self.rejected, "skipped": self.skipped}


@dataclass
class Rejection:
    count: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class IngestLedger:
    """The ledger of one source in one run (stored in the run record, printed in the summary)."""

    source: str
    origins: dict[str, Origin] = field(default_factory=dict)
    rejected: dict[str, Rejection] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    money: dict[str, Money] = field(default_factory=dict)
    aliases: dict[str, list[str]] = field(default_factory=dict)  # a file reached through other paths too
    problems: list[str] = field(default_factory=list)

    # ---- filling -------------------------------------------------------------------------------
    def origin(self, name: str, **kw: Any) -> Origin:
        o = self.origins.get(name)
        if o is None:
            o = self.origins[name] = Origin(name, **kw)
        elif kw.get("rows_read") is not None:
            o.rows_read = (o.rows_read or 0) + kw["rows_read"]
        return o

    def add_group(self, origin: Origin, *, bucket: str, reason: str | None, currency: str | None,
                  rows: int, billed: Decimal | None, billed_rows: int,
                  lines: Sequence[int | None] = (), values: Sequence[str | None] = ()) -> None:
        """One aggregated group of rows (same bucket, reason and currency) of one origin, with the
        positions and offending values of its first few rows (for rejected rows)."""
        setattr(origin, bucket, getattr(origin, bucket) + rows)
        self.money.setdefault(currency or NO_CURRENCY, Money()).add(bucket, billed, rows, billed_rows)
        if bucket == REJECTED:
            r = self.rejected.setdefault(reason or "rejected", Rejection())
            r.count += rows
            for line, value in zip(list(lines) or [None], list(values) or [None]):
                if len(r.samples) >= SAMPLES:
                    break
                r.samples.append({"origin": origin.origin, origin.line_kind: line, "value": value})
        elif bucket == SKIPPED:
            self.skipped[reason or "skipped"] = self.skipped.get(reason or "skipped", 0) + rows

    # ---- totals --------------------------------------------------------------------------------
    @property
    def rows_read(self) -> int:
        return sum(o.rows_read if o.rows_read is not None else o.counted for o in self.origins.values())

    @property
    def rows_stored(self) -> int:
        return sum(o.stored for o in self.origins.values())

    @property
    def rows_rejected(self) -> int:
        return sum(o.rejected for o in self.origins.values())

    @property
    def rows_skipped(self) -> int:
        return sum(o.skipped for o in self.origins.values())

    # ---- checks --------------------------------------------------------------------------------
    def check(self, staged_rows: int, staged_billed: dict[str, Decimal]) -> list[str]:
        """Every way the numbers could disagree, as sentences (empty: the ledger balances)."""
        out = []
        for o in self.origins.values():
            if o.rows_read is not None and o.rows_read != o.counted:
                out.append(f"{o.origin}: {o.rows_read:,} rows read but {o.counted:,} accounted for "
                           f"({o.stored:,} stored, {o.rejected:,} rejected, {o.skipped:,} skipped)")
        if staged_rows != self.rows_stored:
            out.append(f"the lake would hold {staged_rows:,} rows but {self.rows_stored:,} were read for it")
        for cur in sorted(set(staged_billed) | {c for c, m in self.money.items() if m.stored}):
            want = self.money.get(cur, Money()).stored
            got = staged_billed.get(cur, Decimal(0))
            if got != want:
                out.append(f"BilledCost {cur}: the lake would hold {got} but {want} was read for it")
        self.problems = out
        return out

    # ---- output --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read,
            "rows_stored": self.rows_stored,
            "rows_rejected": self.rows_rejected,
            "rows_skipped": self.rows_skipped,
            "rejected": {k: {"count": v.count, "samples": v.samples} for k, v in sorted(self.rejected.items())},
            "skipped": dict(sorted(self.skipped.items())),
            "billed_cost": {c: m.to_dict() for c, m in sorted(self.money.items())},
            "files": [o.to_dict() for o in self.origins.values()],
            "aliases": self.aliases,
            "problems": self.problems,
        }

    def summary_lines(self, *, landed: bool = True) -> list[str]:
        """What the cycle summary prints under the source (``landed=False``: a dry run or a
        backtest, whose rows were checked but not stored)."""
        stored = "stored" if landed else "would be stored"
        out = [f"read {self.rows_read:,} rows from {len(self.origins)} file(s): {self.rows_stored:,} {stored}, "
               f"{self.rows_rejected:,} rejected, {self.rows_skipped:,} skipped"]
        for cur, m in sorted(self.money.items()):
            line = f"BilledCost {cur}: read {_amt(m.read)}, {stored} {_amt(m.stored)}"
            if m.rejected:
                line += f", rejected {_amt(m.rejected)}"
            if m.skipped:
                line += f", skipped {_amt(m.skipped)}"
            if m.unreadable:
                line += f" ({m.unreadable:,} row(s) with an unreadable amount)"
            out.append(line)
        for reason, r in sorted(self.rejected.items(), key=lambda kv: -kv[1].count):
            where = "; ".join(_where(s) for s in r.samples)
            out.append(f"REJECTED {r.count:,} row(s): {reason} (e.g. {where})")
        for reason, n in sorted(self.skipped.items()):
            out.append(f"skipped {n:,} row(s): {reason}")
        for first, others in sorted(self.aliases.items()):
            out.append(f"read once: {first} (also matched as {', '.join(others)})")
        return out


def _amt(d: Decimal) -> str:
    return f"{d.quantize(Decimal('0.01')):,}"


def _where(sample: dict[str, Any]) -> str:
    pos = next(((k, v) for k, v in sample.items() if k in ("line", "row") and v is not None), None)
    at = f"{sample['origin']}{f' {pos[0]} {pos[1]}' if pos else ''}"
    return f"{at}: {sample['value']!r}" if sample.get("value") is not None else at
