"""The cost lake: FOCUS rows as parquet, one partition per source / day / billing account.

Layout under the lake root::

    costs/source=<S>/day=<YYYY-MM-DD>/billing_account=<B>/00000000.parquet   normalised FOCUS rows
    rollup/source=<S>/day=<YYYY-MM-DD>/00000000.parquet                      daily rollup (what rules read)
    inventory/source=<S>/snapshot.parquet                                    latest resource snapshot
    .staging/<id>/ , .trash/<id>/                                            in-flight writes

A window is written to ``.staging`` first (streaming, so memory stays flat), checked, then each
day directory is swapped in with two renames. A crash never leaves a half-written file in place:
``recover()`` (run when the lake opens) puts back any day whose swap was interrupted.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl

from costguard import focus
from costguard.errors import ConfigError, DataError, first_line
from costguard.model import COST_METRICS, Window

ROLLUP_KEYS = (
    "x_ChargeDate",
    "ProviderName",
    "BillingAccountId",
    "BillingAccountName",
    "SubAccountId",
    "SubAccountName",
    "ServiceName",
    "ServiceCategory",
    "RegionId",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ChargeCategory",
    "BillingCurrency",
    "x_Tags",
)
ROLLUP_COLUMNS = ("x_Source", *ROLLUP_KEYS, *COST_METRICS, "x_RowCount")
SIGNATURE = "_source_signature"
PARALLEL_PARTS = 2


def rollup_schema() -> dict[str, pl.DataType]:
    lake = focus.lake_schema()
    out: dict[str, pl.DataType] = {"x_Source": pl.String()}
    for k in ROLLUP_KEYS:
        out[k] = lake[k]
    for m in COST_METRICS:
        out[m] = lake[m]
    out["x_RowCount"] = pl.Int64()
    return out


@dataclass
class WindowWrite:
    """What one window write stored: rows per day, billing accounts, and the conformance report."""

    window: Window
    rows_by_day: dict[date, int] = field(default_factory=dict)
    billing_accounts: dict[date, list[str]] = field(default_factory=dict)
    report: focus.ConformanceReport | None = None

    @property
    def rows(self) -> int:
        return sum(self.rows_by_day.values())


def _day_dir(d: date) -> str:
    return f"day={d.isoformat()}"


class Lake:
    """Parquet cost lake on a local (or mounted) filesystem."""

    def __init__(self, root: str | os.PathLike[str], *, keep_rows: bool = True, writer: bool = False) -> None:
        r = str(root)
        if "://" in r:
            raise ConfigError.single(
                "<config>", None, "state.lake",
                f"object-storage lakes ({r.split('://')[0]}://) are not supported by this version; use a local or mounted path",
            )
        self.root = Path(r)
        self.keep_rows = keep_rows
        self.root.mkdir(parents=True, exist_ok=True)
        if writer:  # readers never touch staging: a writer in another process may be using it
            with self.write_lock():
                self.recover()

    @contextmanager
    def write_lock(self) -> Iterator[None]:
        """Exclusive across processes (the daemon's cycle worker, a manual `run --once`): one
        writer swaps days or recovers at a time; readers need no lock."""
        with open(self.root / ".lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # ---- layout -------------------------------------------------------------------------------
    def _source_dir(self, area: str, source: str) -> Path:
        return self.root / area / f"source={source}"

    def sources(self) -> list[str]:
        d = self.root / "rollup"
        if not d.exists():
            return []
        return sorted(p.name.split("=", 1)[1] for p in d.iterdir() if p.is_dir() and p.name.startswith("source="))

    def stored_days(self, source: str) -> dict[date, str | None]:
        """Stored days of a source → the signature of the source files they were read from."""
        d = self._source_dir("rollup", source)
        if not d.exists():
            return {}
        out: dict[date, str | None] = {}
        for p in d.iterdir():
            if p.is_dir() and p.name.startswith("day="):
                try:
                    day = date.fromisoformat(p.name[4:])
                except ValueError:
                    continue
                sig = p / SIGNATURE
                out[day] = sig.read_text().strip() if sig.exists() else None
        return out

    # ---- reading ------------------------------------------------------------------------------
    def _scan(self, area: str, schema: dict[str, pl.DataType], sources: Sequence[str] | None) -> pl.LazyFrame:
        files: list[str] = []
        for s in sources if sources is not None else self.sources():
            d = self._source_dir(area, s)
            if d.exists():
                files.extend(str(p) for p in sorted(d.glob("day=*/**/*.parquet")))
        if not files:
            return pl.LazyFrame(schema=schema)
        return pl.scan_parquet(files, hive_partitioning=False, schema=schema)

    def rollup(self, sources: Sequence[str] | None = None) -> pl.LazyFrame:
        """Daily rollup over all (or some) sources: what rules and reports read."""
        return self._scan("rollup", rollup_schema(), sources)

    def costs(self, sources: Sequence[str] | None = None) -> pl.LazyFrame:
        """Every normalised FOCUS row, with ``x_Source`` added from the partition path."""
        frames = []
        for s in sources if sources is not None else self.sources():
            lf = self._scan("costs", focus.lake_schema(), [s])
            frames.append(lf.with_columns(pl.lit(s).alias("x_Source")))
        if not frames:
            return pl.LazyFrame(schema={**focus.lake_schema(), "x_Source": pl.String()})
        return pl.concat(frames, how="vertical")

    def inventory(self) -> pl.LazyFrame | None:
        files = sorted((self.root / "inventory").glob("source=*/snapshot.parquet"))
        if not files:
            return None
        return pl.concat([pl.scan_parquet(f) for f in files], how="diagonal_relaxed")

    # ---- writing ------------------------------------------------------------------------------
    def write_window(
        self,
        source: str,
        window: Window,
        parts: Iterable[pl.LazyFrame],
        *,
        signatures: Mapping[date, str | None] | None = None,
        check_cancel: Callable[[], None] = lambda: None,
    ) -> WindowWrite:
        """Replace exactly the days of ``window`` for ``source`` with the rows of ``parts``.

        Each part (a file, or a slice of a big one, with the columns of ``focus.lake_schema()``)
        is processed on its own, so memory is bounded by the part, not by the window: its rows
        are streamed to staging (when the lake keeps rows), and its partial daily rollup and
        conformance counts are computed. Partial rollups are then combined day by day.
        Raises DataError (and changes nothing) if the rows are unusable.
        """
        with self.write_lock():
            return self._write_window(source, window, parts, signatures=signatures, check_cancel=check_cancel)

    def _write_window(
        self,
        source: str,
        window: Window,
        parts: Iterable[pl.LazyFrame],
        *,
        signatures: Mapping[date, str | None] | None,
        check_cancel: Callable[[], None],
    ) -> WindowWrite:
        staging = self.root / ".staging" / uuid.uuid4().hex
        conf_groups: list[pl.DataFrame] = []
        try:
            def process(i: int, part: pl.LazyFrame) -> pl.DataFrame:
                check_cancel()
                try:
                    return self._stage_part(source, window, staging, i, part)
                except pl.exceptions.PolarsError as e:
                    raise DataError(f"cannot read the rows for {window}: {first_line(e)}") from None

            # rollup-only parts barely keep two cores busy, so two run at once; writing rows does,
            # and a second part in flight would only add its memory
            workers = 1 if self.keep_rows else PARALLEL_PARTS
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lake") as pool:
                pending: list[Future[pl.DataFrame]] = []
                for i, part in enumerate(parts):
                    pending.append(pool.submit(process, i, part))
                    while len(pending) >= workers:
                        conf_groups.append(pending.pop(0).result())
                for fut in pending:
                    conf_groups.append(fut.result())
            report = focus.report_from_groups(pl.concat(conf_groups, how="vertical_relaxed")) if conf_groups \
                else focus.conformance(pl.LazyFrame(schema=focus.lake_schema()))
            fatal = report.fatal()
            if fatal:
                detail = "; ".join(f"{c}: {report.checks[c].count} rows" for c in fatal)
                raise DataError(f"unusable rows in {window} ({detail}); nothing was written for this window")
            self._arrange_rows(staging)
            result = WindowWrite(window, report=report)
            partials = sorted(str(p) for p in (staging / "partials").glob("*.parquet"))
            if partials:
                days = pl.scan_parquet(partials).select(pl.col("x_ChargeDate").unique()).collect()["x_ChargeDate"].to_list()
                for d in sorted(days):
                    check_cancel()
                    roll = _combine(pl.scan_parquet(partials).filter(pl.col("x_ChargeDate") == d))
                    out = staging / "rollup" / _day_dir(d)
                    out.mkdir(parents=True)
                    roll.write_parquet(out / "00000000.parquet")
                    sig = (signatures or {}).get(d)
                    if sig:
                        (out / SIGNATURE).write_text(sig)
                    result.rows_by_day[d] = int(roll["x_RowCount"].sum())
                    result.billing_accounts[d] = sorted(a for a in roll["BillingAccountId"].unique().to_list() if a is not None)
            check_cancel()
            self._swap(source, window, staging)
            return result
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _stage_part(self, source: str, window: Window, staging: Path, i: int, part: pl.LazyFrame) -> pl.DataFrame:
        """One part: rows to staging (if kept), partial rollup to staging; returns its conformance groups."""
        rows = part.filter((pl.col("x_ChargeDate") >= window.start) & (pl.col("x_ChargeDate") < window.end))
        if self.keep_rows:
            out = staging / "parts" / f"{i:05d}"
            rows.sink_parquet(
                pl.PartitionBy(
                    str(out),
                    key=[pl.col("x_ChargeDate").dt.to_string("%Y-%m-%d").alias("day"),
                         pl.col("BillingAccountId").alias("billing_account")],
                    include_key=False,
                ),
                mkdir=True, engine="streaming", compression="lz4", statistics=False,
            )
            written = sorted(str(p) for p in out.glob("**/*.parquet"))
            rows = pl.scan_parquet(written, hive_partitioning=False, schema=focus.lake_schema()) \
                if written else pl.LazyFrame(schema=focus.lake_schema())
        flagged = _rollup(rows, source, by_mask=True).collect(engine="streaming")
        partial = _combine(flagged.select(list(ROLLUP_COLUMNS)).lazy())
        if partial.height:
            (staging / "partials").mkdir(parents=True, exist_ok=True)
            partial.write_parquet(staging / "partials" / f"{i:05d}.parquet")
        return focus.groups_from_partial(flagged, "x_RowCount")

    @staticmethod
    def _arrange_rows(staging: Path) -> None:
        """parts/<i>/day=D/billing_account=B/x.parquet → costs/day=D/billing_account=B/part-<i>-x.parquet"""
        for f in sorted((staging / "parts").glob("*/day=*/billing_account=*/*.parquet")):
            part_no, day_dir, acct_dir = f.parts[-4], f.parts[-3], f.parts[-2]
            dest = staging / "costs" / day_dir / acct_dir / f"part-{part_no}-{f.stem}.parquet"
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(f, dest)

    def _swap(self, source: str, window: Window, staging: Path) -> None:
        trash = self.root / ".trash" / staging.name
        for area in ("costs", "rollup"):
            dest_root = self._source_dir(area, source)
            for d in window.days():
                name = _day_dir(d)
                new = staging / area / name
                dest = dest_root / name
                if dest.exists():
                    old = trash / area / f"source={source}" / name
                    old.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(dest, old)
                if new.exists():
                    dest_root.mkdir(parents=True, exist_ok=True)
                    os.replace(new, dest)
        shutil.rmtree(trash, ignore_errors=True)

    def write_inventory(self, source: str, frame: pl.DataFrame) -> int:
        """Replace the source's inventory snapshot (write to a temp file, then rename)."""
        d = self.root / "inventory" / f"source={source}"
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".snapshot.{uuid.uuid4().hex}.tmp"
        frame.write_parquet(tmp)
        os.replace(tmp, d / "snapshot.parquet")
        return frame.height

    def recover(self) -> list[str]:
        """Finish or undo interrupted writes: restore trashed days whose replacement is missing."""
        restored: list[str] = []
        trash_root = self.root / ".trash"
        if trash_root.exists():
            for batch in trash_root.iterdir():
                for old in batch.glob("*/source=*/day=*"):
                    area, src = old.parent.parent.name, old.parent.name
                    dest = self.root / area / src / old.name
                    if not dest.exists():
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        os.replace(old, dest)
                        restored.append(str(dest.relative_to(self.root)))
                shutil.rmtree(batch, ignore_errors=True)
        shutil.rmtree(self.root / ".staging", ignore_errors=True)
        for d in (self.root / "inventory").glob("source=*/.snapshot.*.tmp"):
            d.unlink(missing_ok=True)
        return restored


def _sums(count: pl.Expr) -> list[pl.Expr]:
    agg = [pl.col(m).sum().alias(m) for m in COST_METRICS]
    # ContractedCost may be null on some rows; keep null only when every row is null
    agg[COST_METRICS.index("ContractedCost")] = (
        pl.when(pl.col("ContractedCost").is_not_null().any()).then(pl.col("ContractedCost").sum()).alias("ContractedCost")
    )
    return [*agg, count.alias("x_RowCount")]


def _rollup(rows: pl.LazyFrame, source: str, *, by_mask: bool = False) -> pl.LazyFrame:
    """Rows → daily rollup (one part's partial); ``by_mask`` also splits by ``x_Conformance`` so the
    same pass yields the conformance counts."""
    keys = [*ROLLUP_KEYS, "x_Conformance"] if by_mask else list(ROLLUP_KEYS)
    samples = focus.sample_aggs(keys) if by_mask else []
    return (
        rows.group_by(keys)
        .agg(*_sums(pl.len().cast(pl.Int64)), *samples)
        .with_columns(pl.lit(source).alias("x_Source"))
        .cast(rollup_schema())
    )


def _combine(partials: pl.LazyFrame) -> pl.DataFrame:
    """Partial rollups of one day (from several parts) → the day's rollup."""
    return (
        partials.group_by(["x_Source", *ROLLUP_KEYS])
        .agg(*_sums(pl.col("x_RowCount").sum()))
        .select(list(ROLLUP_COLUMNS))
        .cast(rollup_schema())
        .collect(engine="streaming")
    )



