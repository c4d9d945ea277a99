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

import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl

from costguard import focus
from costguard.errors import ConfigError, CycleCancelled, DataError
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

    def __init__(self, root: str | os.PathLike[str]) -> None:
        r = str(root)
        if "://" in r:
            raise ConfigError.single(
                "<config>", None, "state.lake",
                f"object-storage lakes ({r.split('://')[0]}://) are not supported by this version; use a local or mounted path",
            )
        self.root = Path(r)
        self.root.mkdir(parents=True, exist_ok=True)
        self.recover()

    # ---- layout -------------------------------------------------------------------------------
    def _source_dir(self, area: str, source: str) -> Path:
        return self.root / area / f"source={source}"

    def sources(self) -> list[str]:
        d = self.root / "costs"
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
        is streamed to staging on its own, so memory is bounded by the part, not the window.
        Raises DataError (and changes nothing) if the rows are unusable.
        """
        staging = self.root / ".staging" / uuid.uuid4().hex
        try:
            for i, part in enumerate(parts):
                check_cancel()
                rows = part.filter((pl.col("x_ChargeDate") >= window.start) & (pl.col("x_ChargeDate") < window.end))
                try:
                    rows.sink_parquet(
                        pl.PartitionBy(
                            str(staging / "parts" / f"{i:05d}"),
                            key=[pl.col("x_ChargeDate").dt.to_string("%Y-%m-%d").alias("day"),
                                 pl.col("BillingAccountId").alias("billing_account")],
                            include_key=False,
                        ),
                        mkdir=True,
                        engine="streaming",
                        compression="lz4",
                        statistics=False,
                    )
                except pl.exceptions.PolarsError as e:
                    raise DataError(f"cannot read the rows for {window}: {_first_line(e)}") from None
            costs_dir = staging / "costs"
            for f in sorted((staging / "parts").glob("*/day=*/billing_account=*/*.parquet")):
                part_no, day_dir, acct_dir = f.parts[-4], f.parts[-3], f.parts[-2]
                dest = costs_dir / day_dir / acct_dir / f"part-{part_no}-{f.stem}.parquet"
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(f, dest)
            check_cancel()
            files = sorted(str(p) for p in costs_dir.glob("day=*/**/*.parquet"))
            staged = pl.scan_parquet(files, hive_partitioning=False, schema=focus.lake_schema()) \
                if files else pl.LazyFrame(schema=focus.lake_schema())
            report = focus.conformance(staged)
            fatal = report.fatal()
            if fatal:
                detail = "; ".join(f"{c}: {report.checks[c].count} rows" for c in fatal)
                raise DataError(f"unusable rows in {window} ({detail}); nothing was written for this window")
            result = WindowWrite(window, report=report)
            for day_dir in sorted(costs_dir.glob("day=*")) if costs_dir.exists() else []:
                check_cancel()
                d = date.fromisoformat(day_dir.name[4:])
                roll = self._rollup_day(source, [str(p) for p in sorted(day_dir.glob("**/*.parquet"))])
                out = staging / "rollup" / day_dir.name
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

    @staticmethod
    def _rollup_day(source: str, files: list[str]) -> pl.DataFrame:
        agg = [pl.col(m).sum().alias(m) for m in COST_METRICS]
        # ContractedCost may be null on some rows; keep null only when every row is null
        agg[COST_METRICS.index("ContractedCost")] = (
            pl.when(pl.col("ContractedCost").is_not_null().any()).then(pl.col("ContractedCost").sum()).alias("ContractedCost")
        )
        return (
            pl.scan_parquet(files, hive_partitioning=False, schema=focus.lake_schema())
            .group_by(list(ROLLUP_KEYS))
            .agg(*agg, pl.len().cast(pl.Int64).alias("x_RowCount"))
            .with_columns(pl.lit(source).alias("x_Source"))
            .select(list(ROLLUP_COLUMNS))
            .cast(rollup_schema())
            .collect(engine="streaming")
        )

    def _swap(self, source: str, window: Window, staging: Path) -> None:
        trash = self.root / ".trash" / staging.name
        for area in ("costs", "rollup"):
            dest_root = self._source_dir(area, source)
            dest_root.mkdir(parents=True, exist_ok=True)
            for d in window.days():
                name = _day_dir(d)
                new = staging / area / name
                dest = dest_root / name
                if dest.exists():
                    old = trash / area / f"source={source}" / name
                    old.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(dest, old)
                if new.exists():
                    os.replace(new, dest)
        shutil.rmtree(trash, ignore_errors=True)

    def write_inventory(self, source: str, frame: pl.DataFrame) -> int:
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


def _first_line(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return s[0] if s else type(e).__name__


def raise_if_cancelled(flag: Callable[[], bool]) -> Callable[[], None]:
    def check() -> None:
        if flag():
            raise CycleCancelled("stop requested")

    return check
