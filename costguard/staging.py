"""A staged write of one source for one run: every part is classified (stored / rejected /
skipped), streamed to ``.staging``, rolled up and counted in the ingest ledger; then the whole
source lands at once (``commit``) or not at all (``discard``).

Crash safety: ``commit`` first writes a ``COMMITTED`` marker, then swaps the days in. A writer that
opens the lake after a crash rolls a committed batch forward (finishing its swaps) and deletes an
uncommitted one, so a source is never left half old, half new.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from costguard import focus, rollup
from costguard.errors import DataError, first_line
from costguard.ingest_ledger import REJECTED, SKIPPED, STORED, IngestLedger
from costguard.providers.base import Horizon, Part

if TYPE_CHECKING:
    from costguard.lake import Lake

MANIFEST = "manifest.json"
BUSY = ".busy"
COMMITTED = "COMMITTED"
SIGNATURE = "_source_signature"
PARALLEL_PARTS = 2
KEEP_REJECTED_RUNS = 10
_WHY = "__why"  # UInt8: why a row is in its bucket (one of the codes below)
# codes of _WHY: stored; rejected (the provider's reason, or a day outside the accepted range);
# skipped (after the as-of day, or a stored day whose source is unchanged)
_STORE, _BAD, _OUT_OF_RANGE, _LATER, _UNCHANGED = range(5)
_BUCKET = {_STORE: STORED, _BAD: REJECTED, _OUT_OF_RANGE: REJECTED, _LATER: SKIPPED, _UNCHANGED: SKIPPED}
_SKIP_REASON = {_LATER: "after the as-of day (a later run ingests it)",
                _UNCHANGED: "day already stored and the source has not changed"}


def day_dir(d: date) -> str:
    return f"day={d.isoformat()}"


class Batch:
    """Use as a context manager: anything not committed is discarded on exit."""

    def __init__(
        self,
        lake: "Lake",
        source: str,
        *,
        planned: Collection[date],
        horizon: Horizon,
        signatures: Mapping[date, str | None] | None = None,
        run_id: str = "run",
        check_cancel: Callable[[], None] = lambda: None,
    ) -> None:
        self.lake = lake
        self.source = source
        self.planned = sorted(set(planned))
        self.horizon = horizon
        self.signatures = dict(signatures or {})
        self.run_id = run_id
        self.check_cancel = check_cancel
        self.dir = lake.root / ".staging" / uuid.uuid4().hex
        self.dir.mkdir(parents=True)
        # held while the batch lives: a writer that opens the lake meanwhile sees it is in use
        # (and does not recover it away); a crashed process releases it
        self._held = open(self.dir / BUSY, "w")
        fcntl.flock(self._held, fcntl.LOCK_EX)
        (self.dir / MANIFEST).write_text(json.dumps(
            {"source": source, "run_id": run_id, "planned": [d.isoformat() for d in self.planned]}))
        self.ledger = IngestLedger(source)
        self.report: focus.ConformanceReport | None = None
        self.days: dict[date, tuple[int, list[str]]] = {}  # staged day -> (rows, billing accounts)
        self._conf: list[pl.DataFrame] = []
        self._planned = set(self.planned)
        self._partial_days: dict[int, set[date]] = {}  # part -> days its partial rollup holds
        self._n = 0
        self._lock = threading.Lock()  # parts of a rollup-only lake are counted from two threads
        self._finished = False
        self._committed = False

    def __enter__(self) -> "Batch":
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._committed:
            self.discard()

    # ---- staging --------------------------------------------------------------------------------
    def add_all(self, parts: Iterable[Part]) -> None:
        """Stage every part. Rows-keeping lakes stage one part at a time (writing keeps both cores
        busy); rollup-only lakes overlap two parts."""
        workers = 1 if self.lake.keep_rows else PARALLEL_PARTS
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lake") as pool:
            pending: list[Future[None]] = []
            for part in parts:
                self.check_cancel()
                pending.append(pool.submit(self.add, part, self._next()))
                while len(pending) >= workers:
                    pending.pop(0).result()
            for fut in pending:
                fut.result()

    def _next(self) -> int:
        with self._lock:
            self._n += 1
            return self._n - 1

    def add(self, part: Part, i: int | None = None) -> None:
        """Classify, stage and count one part (thread-safe for distinct ``i``).

        One streaming query reads and normalises the part once and feeds every output: its
        rollup, its flagged rows grouped by conformance mask (for the report's counts and
        samples), the ledger's counts and, in a rows-keeping lake, the rows themselves (one file
        per day). Rejected rows are rare: a second pass over the part writes them, only when the
        counts say there are some."""
        self.check_cancel()
        i = self._next() if i is None else i
        rows = self._classify(part.rows)
        stored = rows.filter(pl.col(_WHY) == _STORE).select(list(focus.lake_schema()))
        queries: list[pl.LazyFrame] = [
            rollup.rollup(stored, self.source),
            focus.flagged_groups(stored, rollup.ROLLUP_KEYS),
            rows.group_by(_WHY, focus.REJECT, "BillingCurrency").agg(
                pl.len().alias("n"),
                pl.col("BilledCost").sum().alias("billed"),
                pl.col("BilledCost").count().alias("billed_n"),
                pl.col(focus.LINE).head(3).alias("lines"),
                pl.col(focus.REJECT_VALUE).head(3).alias("values"),
                pl.col("x_ChargeDate").head(3).alias("dates"),
            ),
        ]
        one_day = self._one_day(part)
        if self.lake.keep_rows:
            queries.append(self._sink_rows(stored, i, one_day))
        try:
            partial, flagged, counts, *_ = pl.collect_all(queries, engine="streaming")
        except pl.exceptions.PolarsError as e:
            raise DataError(f"{part.origin}: cannot read the rows: {first_line(e)}") from None
        days = set(partial["x_ChargeDate"].unique().to_list())
        if self.lake.keep_rows and one_day is not None and not days <= {one_day}:
            # the source said the part holds one day, but it does not (the file changed since):
            # write its rows again, split by day
            shutil.rmtree(self.dir / "parts" / f"{i:05d}", ignore_errors=True)
            self._collect(part.origin, [self._sink_rows(stored, i, None)])
        if counts.filter(pl.col(_WHY).is_in([_BAD, _OUT_OF_RANGE])).height:
            self._keep_rejected_rows(rows, part.origin, i)
        n_stored = int(counts.filter(pl.col(_WHY) == _STORE)["n"].sum())
        if not n_stored:  # a plain sink wrote an empty file
            shutil.rmtree(self.dir / "parts" / f"{i:05d}", ignore_errors=True)
        if partial.height:
            (self.dir / "partials").mkdir(exist_ok=True)
            partial.write_parquet(self.dir / "partials" / f"{i:05d}.parquet")
        with self._lock:
            self._partial_days[i] = days
            self._conf.append(focus.groups_from_partial(flagged, "x_RowCount", clean_rows=n_stored - int(flagged["x_RowCount"].sum())))
            origin = self.ledger.origin(part.origin, line_kind=part.line_kind, size=part.size,
                                        signature=part.signature, rows_read=part.rows_read)
            for g in counts.iter_rows(named=True):
                reason, values = self._why(g)
                self.ledger.add_group(origin, bucket=_BUCKET[g[_WHY]], reason=reason, currency=g["BillingCurrency"],
                                      rows=g["n"], billed=g["billed"], billed_rows=g["billed_n"],
                                      lines=g["lines"], values=values)

    def _why(self, group: dict) -> tuple[str | None, list[str | None]]:
        """A counted group's reason and the offending values of its first rows."""
        code = group[_WHY]
        if code == _BAD:
            return group[focus.REJECT], group["values"]
        if code == _OUT_OF_RANGE:
            return self._out_of_range, [d.isoformat() if d is not None else None for d in group["dates"]]
        return _SKIP_REASON.get(code), []

    def _one_day(self, part: Part) -> date | None:
        """The one planned day a part's stored rows can fall on, when its source knows it."""
        if part.days is None:
            return None
        planned = [d for d in part.days if d in self._planned]
        return planned[0] if len(planned) == 1 else None

    def _sink_rows(self, stored: pl.LazyFrame, i: int, one_day: date | None) -> pl.LazyFrame:
        """The stored rows of part ``i`` as lz4 parquet under ``parts/<i>/day=D/``: one plain file
        when the part holds one known day (partitioning costs a quarter more), else split by day."""
        opts = {"compression": "lz4", "statistics": False, "engine": "streaming", "lazy": True}
        if one_day is not None:
            out = self.dir / "parts" / f"{i:05d}" / day_dir(one_day)
            out.mkdir(parents=True)
            return stored.sink_parquet(out / "0.parquet", **opts)
        return stored.sink_parquet(
            pl.PartitionBy(str(self.dir / "parts" / f"{i:05d}"),
                           key=[pl.col("x_ChargeDate").dt.to_string("%Y-%m-%d").alias("day")], include_key=False),
            mkdir=True, **opts)

    @staticmethod
    def _collect(origin: str, queries: list[pl.LazyFrame]) -> list[pl.DataFrame]:
        try:
            return pl.collect_all(queries, engine="streaming")
        except pl.exceptions.PolarsError as e:
            raise DataError(f"{origin}: cannot read the rows: {first_line(e)}") from None

    def _keep_rejected_rows(self, rows: pl.LazyFrame, origin: str, i: int) -> None:
        """The part's rejected rows, with why, to ``rejected/`` (kept with the run once committed)."""
        out = self.dir / "rejected" / f"part-{i:05d}.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        bad = pl.col(_WHY) == _BAD
        try:
            (rows.filter(pl.col(_WHY).is_in([_BAD, _OUT_OF_RANGE]))
             .select(pl.lit(origin).alias("x_Origin"), pl.col(focus.LINE),
                     pl.when(bad).then(pl.col(focus.REJECT)).otherwise(pl.lit(self._out_of_range)).alias("x_Reject"),
                     pl.when(bad).then(pl.col(focus.REJECT_VALUE)).otherwise(pl.col("x_ChargeDate").cast(pl.String))
                     .alias("x_RejectValue"),
                     *focus.lake_schema())
             .sink_parquet(out, engine="streaming"))
        except pl.exceptions.PolarsError as e:
            raise DataError(f"{origin}: cannot read the rows: {first_line(e)}") from None

    def _classify(self, rows: pl.LazyFrame) -> pl.LazyFrame:
        """Every row's bucket and reason as one small code (``_WHY``): text per row would cost a
        string column per row; the reasons are written out once per counted group."""
        h = self.horizon
        d = pl.col("x_ChargeDate")
        out_of_range = d.is_not_null() & ((d < h.earliest) | (d > h.last))
        planned = d.is_in(self.planned) if self.planned else pl.lit(False)
        code = (pl.when(pl.col(focus.REJECT).is_not_null()).then(pl.lit(_BAD, pl.UInt8))
                .when(out_of_range).then(pl.lit(_OUT_OF_RANGE, pl.UInt8))
                .when(planned).then(pl.lit(_STORE, pl.UInt8))
                .when(d > h.as_of).then(pl.lit(_LATER, pl.UInt8))
                .otherwise(pl.lit(_UNCHANGED, pl.UInt8)))
        return rows.with_columns(code.alias(_WHY))

    @property
    def _out_of_range(self) -> str:
        h = self.horizon
        return (f"ChargePeriodStart outside the accepted range {h.earliest} .. {h.last} "
                "(ingest.earliest_date .. as-of + 1 year)")

    # ---- finishing ------------------------------------------------------------------------------
    def finish(self) -> IngestLedger:
        """Roll the staged parts up day by day and check the ledger balances. Raises DataError
        (nothing will be committed) when it does not."""
        if self._finished:
            return self.ledger
        self.check_cancel()
        self.report = focus.report_from_groups(pl.concat(self._conf, how="vertical_relaxed")) if self._conf \
            else focus.conformance(pl.LazyFrame(schema=focus.lake_schema()))
        self._arrange_rows()
        staged_rows, staged_billed = 0, {}
        for d, day in self._daily_rollups():
            self.check_cancel()
            out = self.dir / "rollup" / day_dir(d)
            out.mkdir(parents=True)
            day.write_parquet(out / "00000000.parquet")
            if self.signatures.get(d):
                (out / SIGNATURE).write_text(str(self.signatures[d]))
            self.days[d] = (int(day["x_RowCount"].sum()),
                            sorted(a for a in day["BillingAccountId"].unique().to_list() if a is not None))
            staged_rows += self.days[d][0]
            for cur, amt in day.group_by("BillingCurrency").agg(pl.col("BilledCost").sum()).iter_rows():
                key = cur or "(none)"
                staged_billed[key] = staged_billed.get(key, Decimal(0)) + (amt or Decimal(0))
        problems = self.ledger.check(staged_rows, staged_billed)
        if problems:
            raise DataError("the ingest ledger does not balance, nothing was stored: " + "; ".join(problems))
        self._finished = True
        return self.ledger

    def _daily_rollups(self) -> Iterator[tuple[date, pl.DataFrame]]:
        """Each staged day's rollup. A part's partial rollup is complete for a day no other part
        holds (daily export files), so it is only split by day; a day several parts hold (the
        slices of a big file, a day spread over files) is combined from those parts alone, one
        day at a time, so memory stays that of one day's rollup."""
        files = {i: self.dir / "partials" / f"{i:05d}.parquet" for i in sorted(self._partial_days)}
        files = {i: f for i, f in files.items() if f.exists()}
        holders: dict[date, list[int]] = {}
        for i in files:
            for d in self._partial_days[i]:
                holders.setdefault(d, []).append(i)
        for i, f in files.items():
            own = {d for d in self._partial_days[i] if len(holders[d]) == 1}
            if not own:
                continue
            df = pl.read_parquet(f)
            if len(own) < len(self._partial_days[i]):
                df = df.filter(pl.col("x_ChargeDate").is_in(sorted(own)))
            for (d,), day in df.partition_by("x_ChargeDate", as_dict=True).items():
                yield d, day
        for d in sorted(d for d, held in holders.items() if len(held) > 1):
            parts = pl.scan_parquet([str(files[i]) for i in holders[d]])
            yield d, rollup.combine(parts.filter(pl.col("x_ChargeDate") == d))

    def _arrange_rows(self) -> None:
        """parts/<i>/day=D/x.parquet → costs/day=D/part-<i>-x.parquet"""
        for f in sorted((self.dir / "parts").glob("*/day=*/*.parquet")):
            part_no, d = f.parts[-3], f.parts[-2]
            dest = self.dir / "costs" / d / f"part-{part_no}-{f.stem}.parquet"
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(f, dest)

    def staged_rollup_files(self) -> list[str]:
        return sorted(str(p) for p in (self.dir / "rollup").glob("day=*/*.parquet"))

    # ---- landing --------------------------------------------------------------------------------
    def commit(self) -> None:
        """Swap every planned day in (a day without rows any more is removed), then keep the
        rejected rows under ``rejected/source=S/<run_id>/``."""
        self.finish()
        self.check_cancel()
        with self.lake.write_lock():
            data = {area: sorted(p.name for p in (self.dir / area).glob("day=*")) for area in ("costs", "rollup")}
            (self.dir / "days.json").write_text(json.dumps(data))
            marker = self.dir / COMMITTED
            with open(marker, "w") as fh:
                fh.write(self.run_id)
                fh.flush()
                os.fsync(fh.fileno())
            self._committed = True
            apply_committed(self.lake.root, self.dir)
        self._keep_rejected()

    def _keep_rejected(self) -> None:
        files = sorted((self.dir / "rejected").glob("*.parquet")) if (self.dir / "rejected").exists() else []
        root = self.lake.root / "rejected" / f"source={self.source}"
        if files:
            dest = root / self.run_id
            dest.mkdir(parents=True, exist_ok=True)
            for f in files:
                os.replace(f, dest / f.name)
        if root.exists():  # bound the quarantine: the newest runs only
            runs = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name)
            for old in runs[:-KEEP_REJECTED_RUNS]:
                shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(self.dir, ignore_errors=True)
        self._release()

    def discard(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        self._release()

    def _release(self) -> None:
        if not self._held.closed:
            self._held.close()


def apply_committed(root: Path, staging: Path) -> None:
    """Finish the swaps of a committed staging folder (idempotent: safe to run again after a
    crash half-way). Must run under the lake's write lock."""
    man = json.loads((staging / MANIFEST).read_text())
    data = json.loads((staging / "days.json").read_text())
    source = man["source"]
    trash = root / ".trash" / staging.name
    for area in ("costs", "rollup"):
        dest_root = root / area / f"source={source}"
        have = set(data[area])
        for d in man["planned"]:
            name = f"day={d}"
            new, dest = staging / area / name, dest_root / name
            if name in have and not new.exists():
                continue  # swapped in before the crash
            if dest.exists():
                old = trash / area / f"source={source}" / name
                if old.exists():
                    shutil.rmtree(old)
                old.parent.mkdir(parents=True, exist_ok=True)
                os.replace(dest, old)
            if name in have:
                dest_root.mkdir(parents=True, exist_ok=True)
                os.replace(new, dest)
    shutil.rmtree(trash, ignore_errors=True)


def recover(root: Path) -> list[str]:
    """After a crash: roll committed batches forward, drop uncommitted ones, and put back days
    a pre-journal writer left in the trash. Returns what was done, for the log."""
    done: list[str] = []
    staging_root = root / ".staging"
    if staging_root.exists():
        for st in sorted(p for p in staging_root.iterdir() if p.is_dir()):
            if _in_use(st):
                continue
            if (st / COMMITTED).exists() and (st / MANIFEST).exists() and (st / "days.json").exists():
                apply_committed(root, st)
                man = json.loads((st / MANIFEST).read_text())
                done.append(f"finished the interrupted commit of source {man['source']} (run {man.get('run_id')})")
                rej = st / "rejected"
                if rej.exists() and any(rej.iterdir()):
                    dest = root / "rejected" / f"source={man['source']}" / str(man.get("run_id"))
                    dest.mkdir(parents=True, exist_ok=True)
                    for f in rej.glob("*.parquet"):
                        os.replace(f, dest / f.name)
            shutil.rmtree(st, ignore_errors=True)
    trash_root = root / ".trash"
    if trash_root.exists():  # left by a writer from before the journal: restore what has no replacement
        for batch in trash_root.iterdir():
            for old in batch.glob("*/source=*/day=*"):
                area, src = old.parent.parent.name, old.parent.name
                dest = root / area / src / old.name
                if not dest.exists():
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(old, dest)
                    done.append(f"restored {dest.relative_to(root)}")
            shutil.rmtree(batch, ignore_errors=True)
    return done


def _in_use(st: Path) -> bool:
    """True when a live process holds the staging folder's lock (its batch is still running)."""
    try:
        fh = open(st / BUSY, "a")
    except OSError:
        return False
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        fh.close()
    return False


def staged_days(batches: Iterable[Batch]) -> dict[str, tuple[set[date], list[str]]]:
    """source -> (planned days, staged rollup files): the overlay a dry run evaluates."""
    out: dict[str, tuple[set[date], list[str]]] = {}
    for b in batches:
        out[b.source] = (set(b.planned), b.staged_rollup_files())
    return out


