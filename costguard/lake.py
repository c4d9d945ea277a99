"""The cost lake: FOCUS rows as parquet, one partition per source / day.

Layout under the lake root::

    FORMAT                                                                   lake format version
    costs/source=<S>/day=<YYYY-MM-DD>/*.parquet                              normalised FOCUS rows
    rollup/source=<S>/day=<YYYY-MM-DD>/00000000.parquet                      daily rollup (what rules read)
    inventory/source=<S>/snapshot.parquet                                    latest resource snapshot
    rejected/source=<S>/<run id>/*.parquet                                   rows that could not be stored, with why
    .staging/<id>/ , .trash/<id>/                                            in-flight writes

Readers take every parquet file under a day's folder, at any depth (days written before the rows
were stored one file per day and part sit in ``billing_account=<B>/`` subfolders; they read the same).

A source's new data is staged first (``begin`` → :class:`costguard.staging.Batch`), checked,
then swapped in as a whole: see ``staging.py`` for how a crash is recovered. Readers take no
lock and never touch ``.staging``.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import polars as pl

from costguard import focus, rollup, staging
from costguard.errors import ConfigError, DataError
from costguard.ingest_ledger import IngestLedger
from costguard.logs import get_logger
from costguard.model import Window
from costguard.providers.base import Horizon, Part
from costguard.rollup import rollup_schema

log = get_logger("costguard.lake")

SIGNATURE = staging.SIGNATURE


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
        self.writer = writer
        if writer:  # readers never create the lake nor touch staging (a writer may be using it)
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                probe = self.root / f".write-test-{uuid.uuid4().hex}"
                probe.write_bytes(b"")
                probe.unlink()
            except OSError as e:
                raise DataError(f"cannot write to the cost lake folder {self.root} ({e.strerror}); "
                                "fix its permissions or point state.lake at a writable folder") from None
            with self.write_lock():
                for what in self.recover():
                    log.warning("lake_recovered", what=what)
                self.upgrade()

    def exists(self) -> bool:
        return (self.root / "rollup").exists()

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
    def _files(self, area: str, sources: Sequence[str] | None,
               overlay: Mapping[str, tuple[set[date], list[str]]] | None = None) -> list[str]:
        files: list[str] = []
        names = list(sources if sources is not None else self.sources())
        for s in overlay or {}:
            if s not in names and (sources is None or s in sources):
                names.append(s)
        for s in names:
            d = self._source_dir(area, s)
            replaced, staged = (overlay or {}).get(s, (set(), []))
            if d.exists():
                for p in sorted(d.glob("day=*/**/*.parquet")):
                    day = p.relative_to(d).parts[0][4:]
                    if not replaced or date.fromisoformat(day) not in replaced:
                        files.append(str(p))
            files.extend(staged if area == "rollup" else [])
        return files

    def rollup(self, sources: Sequence[str] | None = None, *,
               overlay: Mapping[str, tuple[set[date], list[str]]] | None = None) -> pl.LazyFrame:
        """Daily rollup over all (or some) sources: what rules and reports read. ``overlay``
        (``staging.staged_days``) shows staged, uncommitted days instead of stored ones (dry runs).
        Days written by an older lake format read the newer rollup columns as null."""
        files = self._files("rollup", sources, overlay)
        if not files:
            return pl.LazyFrame(schema=rollup_schema())
        return pl.scan_parquet(files, hive_partitioning=False, schema=rollup_schema(), missing_columns="insert")

    def costs(self, sources: Sequence[str] | None = None) -> pl.LazyFrame:
        """Every normalised FOCUS row, with ``x_Source`` added from the partition path."""
        frames = []
        for s in sources if sources is not None else self.sources():
            files = self._files("costs", [s])
            if files:
                lf = pl.scan_parquet(files, hive_partitioning=False, schema=focus.lake_schema(), missing_columns="insert")
                frames.append(lf.with_columns(pl.lit(s).alias("x_Source")))
        if not frames:
            return pl.LazyFrame(schema={**focus.lake_schema(), "x_Source": pl.String()})
        return pl.concat(frames, how="vertical")

    def inventory(self, overlay: Mapping[str, pl.DataFrame] | None = None) -> pl.LazyFrame | None:
        """The latest inventory snapshot of every source, with ``x_Source`` naming it (``overlay``:
        fresh snapshots not yet written, which replace the stored ones of their sources)."""
        stored = {f.parent.name.split("=", 1)[1]: f for f in sorted((self.root / "inventory").glob("source=*/snapshot.parquet"))}
        frames = [pl.scan_parquet(f).with_columns(pl.lit(s).alias("x_Source")) for s, f in stored.items() if s not in (overlay or {})]
        frames += [df.lazy().with_columns(pl.lit(s).alias("x_Source")) for s, df in (overlay or {}).items()]
        if not frames:
            return None
        return pl.concat(frames, how="diagonal_relaxed")

    # ---- writing ------------------------------------------------------------------------------
    def begin(self, source: str, *, planned: Collection[date], horizon: Horizon,
              signatures: Mapping[date, str | None] | None = None, run_id: str = "run",
              check_cancel: Callable[[], None] = lambda: None) -> staging.Batch:
        """Stage a new version of ``planned`` days of ``source`` (see :class:`staging.Batch`)."""
        if not self.writer:
            raise RuntimeError("this Lake was opened read-only")
        return staging.Batch(self, source, planned=planned, horizon=horizon, signatures=signatures,
                             run_id=run_id, check_cancel=check_cancel)

    def write(self, source: str, windows: Iterable[Window], parts: Iterable[Part], *,
              horizon: Horizon, signatures: Mapping[date, str | None] | None = None) -> IngestLedger:
        """Stage, check and commit in one call: exactly the days of ``windows`` are replaced."""
        with self.begin(source, planned=[d for w in windows for d in w.days()], horizon=horizon,
                        signatures=signatures) as batch:
            batch.add_all(parts)
            ledger = batch.finish()
            batch.commit()
        return ledger

    def write_inventory(self, source: str, frame: pl.DataFrame) -> int:
        """Replace the source's inventory snapshot (write to a temp file, then rename)."""
        d = self.root / "inventory" / f"source={source}"
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".snapshot.{uuid.uuid4().hex}.tmp"
        frame.write_parquet(tmp)
        os.replace(tmp, d / "snapshot.parquet")
        return frame.height

    def recover(self) -> list[str]:
        """Finish or undo interrupted writes (call under the write lock)."""
        done = staging.recover(self.root)
        for d in (self.root / "inventory").glob("source=*/.snapshot.*.tmp"):
            d.unlink(missing_ok=True)
        return done

    # ---- format -------------------------------------------------------------------------------
    def format_version(self) -> int:
        f = self.root / "FORMAT"
        if f.exists():
            return int(f.read_text().strip() or 0)
        return 1 if (self.root / "rollup").exists() else rollup.FORMAT_VERSION

    def upgrade(self) -> None:
        """Bring a lake written by an older release to the current format (under the write lock).

        Format 1 → 2 (the rollup gained SKU, pricing, commitment and allocation keys and the
        quantities): with stored rows, every day's rollup is rebuilt from them (each day swapped
        in like an ingest); a rollup-only lake keeps its days, which read the new columns as null
        until they are pulled again."""
        have = self.format_version()
        if have > rollup.FORMAT_VERSION:
            raise DataError(f"the cost lake {self.root} was written by a newer costguard (format {have}); upgrade costguard")
        if have < 2 and self.keep_rows and (self.root / "costs").exists():
            for source in self.sources():
                days = sorted(self.stored_days(source))
                if not days or not self._source_dir("costs", source).exists():
                    continue
                log.warning("lake_upgrade_rebuilding_rollup", source=source, days=len(days))
                self._rebuild_rollup(source, days)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "FORMAT").write_text(f"{rollup.FORMAT_VERSION}\n")

    def _rebuild_rollup(self, source: str, days: list[date]) -> None:
        sigs = self.stored_days(source)
        tmp = self.root / ".staging" / f"upgrade-{uuid.uuid4().hex}"
        trash = self.root / ".trash" / tmp.name
        try:
            for d in days:
                files = sorted(str(p) for p in (self._source_dir("costs", source) / staging.day_dir(d)).glob("**/*.parquet"))
                if not files:
                    continue
                rows = pl.scan_parquet(files, hive_partitioning=False, schema=focus.lake_schema(), missing_columns="insert")
                out = tmp / staging.day_dir(d)
                out.mkdir(parents=True)
                rollup.combine(rollup.rollup(rows, source)).write_parquet(out / "00000000.parquet")
                if sigs.get(d):
                    (out / SIGNATURE).write_text(str(sigs[d]))
                dest = self._source_dir("rollup", source) / staging.day_dir(d)
                old = trash / "rollup" / f"source={source}" / dest.name
                old.parent.mkdir(parents=True, exist_ok=True)
                os.replace(dest, old)  # a crash before the next rename: recover() puts it back
                os.replace(out, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(trash, ignore_errors=True)

