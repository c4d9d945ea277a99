"""AWS Data Exports in S3 (FOCUS 1.2 or CUR 2.0; parquet or gzip CSV) → lake parts.

An export's root holds ``data/BILLING_PERIOD=YYYY-MM/…`` and
``metadata/BILLING_PERIOD=YYYY-MM/<export>-Manifest.json``. One listing of the root (paged, 1,000
keys a request) gives every billing period with the ETags and sizes of its manifest and data
files; their hash is the **signature** of each of the period's days. A period whose manifest and
files did not change keeps its signature, so the planner skips its stored days and nothing of it
is downloaded again; a restated period (a new execution) changes it, so all its days are read
again and replace the stored ones.

Reading a period uses the manifest's ``dataFiles`` (with "create new report" deliveries older
executions stay in S3 and must not be counted twice). Each file is downloaded with one
GetObject to a local spool file, scanned lazily (parquet) and yielded in parts of at most
``chunk_rows`` rows, each numbered so a rejected row names its place in the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from costguard import focus
from costguard.errors import DataError, first_line
from costguard.model import Window
from costguard.providers.base import Horizon, Part
from costguard.providers.aws import cur2

CHUNK_ROWS = 500_000
PERIOD = re.compile(r"BILLING_PERIOD=(\d{4})-(\d{2})")
DATA_SUFFIXES = (".parquet", ".csv.gz", ".gz", ".csv")


@dataclass(frozen=True, slots=True)
class S3Object:
    key: str
    etag: str
    size: int


@dataclass
class Period:
    """One billing period of an export: its manifest and data files as listed."""

    key: str  # "2026-11"
    start: date
    end: date  # exclusive
    manifest: S3Object | None = None
    data: list[S3Object] = field(default_factory=list)

    @property
    def signature(self) -> str:
        h = hashlib.sha256()
        for o in ([self.manifest] if self.manifest else []) + sorted(self.data, key=lambda o: o.key):
            h.update(f"{o.key}\x1f{o.etag}\x1f{o.size}\n".encode())
        return h.hexdigest()[:32]

    def days(self) -> Iterator[date]:
        d = self.start
        while d < self.end:
            yield d
            d += timedelta(days=1)


class _Spooled:
    """A downloaded file, deleted once no part read from it is alive and no more will be made."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.live = 0
        self.finished = False
        self._lock = threading.Lock()

    def hold(self, frame: object) -> None:
        with self._lock:
            self.live += 1
        weakref.finalize(frame, self._release)

    def _release(self) -> None:
        with self._lock:
            self.live -= 1
        self._maybe_delete()

    def done(self) -> None:
        self.finished = True
        self._maybe_delete()

    def _maybe_delete(self) -> None:
        with self._lock:
            if not (self.finished and self.live <= 0):
                return
        self.path.unlink(missing_ok=True)
        _Spooled.tidy(self.path.parent)

    @staticmethod
    def tidy(folder: Path) -> None:
        """Remove the spool folder once it is empty (its last file's part was dropped)."""
        try:
            folder.rmdir()
        except OSError:
            pass


def split_uri(uri: str) -> tuple[str, str]:
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    return bucket, prefix


def _month_end(y: int, m: int) -> date:
    return date(y + (m == 12), m % 12 + 1, 1)


class ExportReader:
    """Reads one export (``fmt`` focus or cur2) through an S3 client from ``s3()``."""

    def __init__(self, uri: str, fmt: str, s3: Callable[[], Any], *, backfill_days: int,
                 chunk_rows: int = CHUNK_ROWS, spool: str | None = None) -> None:
        self.uri = uri
        self.bucket, self.prefix = split_uri(uri)
        self.fmt = fmt
        self._s3 = s3
        self.backfill_days = backfill_days
        self.chunk_rows = chunk_rows
        self.spool = spool
        self._periods: dict[str, Period] | None = None

    # ---- discovery ----------------------------------------------------------------------------
    def periods(self) -> dict[str, Period]:
        """Every billing period under the export root (one paged listing, cached for the run)."""
        if self._periods is not None:
            return self._periods
        out: dict[str, Period] = {}
        pages = self._s3().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        for page in pages:
            for o in page.get("Contents", []):
                key = o["Key"]
                m = PERIOD.search(key)
                if not m or key.endswith("/"):
                    continue
                y, mo = int(m.group(1)), int(m.group(2))
                p = out.setdefault(f"{y:04d}-{mo:02d}", Period(f"{y:04d}-{mo:02d}", date(y, mo, 1), _month_end(y, mo)))
                obj = S3Object(key, str(o.get("ETag", "")).strip('"'), int(o.get("Size", 0)))
                if key.lower().endswith("manifest.json"):
                    p.manifest = obj
                elif key.lower().endswith(DATA_SUFFIXES) and "/metadata/" not in f"/{key}":
                    p.data.append(obj)
        self._periods = dict(sorted(out.items()))
        return self._periods

    def in_range(self, horizon: Horizon) -> list[Period]:
        """Periods with days in ``[as_of - backfill_days + 1, as_of]`` and the accepted range."""
        first = max(horizon.as_of - timedelta(days=self.backfill_days - 1), horizon.earliest)
        return [p for p in self.periods().values() if p.end > first and p.start <= horizon.as_of and (p.data or p.manifest)]

    def available_days(self, horizon: Horizon) -> dict[date, str | None]:
        first = max(horizon.as_of - timedelta(days=self.backfill_days - 1), horizon.earliest)
        out: dict[date, str | None] = {}
        for p in self.in_range(horizon):
            sig = p.signature
            for d in p.days():
                if first <= d <= horizon.as_of and horizon.accepts(d):
                    out[d] = sig
        return out

    def data_files(self, p: Period) -> list[S3Object]:
        """The files of the period's latest delivery: the manifest's ``dataFiles`` when there is
        a manifest, else every data file (an error when several deliveries sit side by side)."""
        listed = {o.key: o for o in p.data}
        if p.manifest is None:
            folders = {o.key.rsplit("/", 1)[0] for o in p.data}
            if len(folders) > 1:
                raise DataError(f"s3://{self.bucket}/{self.prefix}: billing period {p.key} has data files in "
                                f"{len(folders)} folders and no manifest; cannot tell which delivery is current "
                                "(keep the export's metadata/ folder, or remove old deliveries)")
            return sorted(p.data, key=lambda o: o.key)
        body = self._s3().get_object(Bucket=self.bucket, Key=p.manifest.key)["Body"].read()
        try:
            man = json.loads(body)
            uris = man["dataFiles"]
        except (ValueError, KeyError, TypeError):
            raise DataError(f"s3://{self.bucket}/{p.manifest.key}: not a Data Exports manifest (no dataFiles list)") from None
        out = []
        for u in uris:
            b, k = split_uri(str(u))
            if b != self.bucket or k not in listed:
                raise DataError(f"s3://{self.bucket}/{p.manifest.key} lists {u}, which is not in the bucket listing; "
                                "the export is being delivered right now (the next run reads it) or was moved")
            out.append(listed[k])
        return out

    # ---- reading ------------------------------------------------------------------------------
    def costs(self, windows: Sequence[Window], horizon: Horizon) -> Iterator[Part]:
        """Every file of every period that overlaps a planned window, in bounded parts. A spool
        file lives as long as a part read from it does (the lake drops each part once stored, so
        at most the files of the parts in flight are on disk)."""
        wanted = [p for p in self.in_range(horizon) if any(p.start < w.end and w.start < p.end for w in windows)]
        if not wanted:
            return
        spool = Path(tempfile.mkdtemp(prefix="costguard-aws-", dir=self.spool))
        try:
            n = 0
            for p in wanted:
                for obj in self.data_files(p):
                    local = spool / f"{n:06d}-{Path(obj.key).name}"
                    n += 1
                    self._download(obj, local)
                    held = _Spooled(local)
                    try:
                        for part in self._parts(obj, local):
                            held.hold(part.rows)
                            yield part
                    finally:
                        held.done()
        finally:
            _Spooled.tidy(spool)

    def _download(self, obj: S3Object, local: Path) -> None:
        body = self._s3().get_object(Bucket=self.bucket, Key=obj.key)["Body"]
        with open(local, "wb") as fh:
            shutil.copyfileobj(body, fh, length=8 * 1024 * 1024)
        got = os.path.getsize(local)
        if got != obj.size:
            raise DataError(f"s3://{self.bucket}/{obj.key}: downloaded {got} bytes but the listing says {obj.size}; "
                            "the file changed during the run (the next run reads it again)")

    def _parts(self, obj: S3Object, local: Path) -> Iterator[Part]:
        origin = f"s3://{self.bucket}/{obj.key}"
        path = str(local)
        try:
            scanned = focus.scan_file(path, any_format=self.fmt == "cur2")
        except DataError as e:
            raise DataError(str(e).replace(path, origin)) from None
        try:
            n = scanned.frame.select(pl.len()).collect().item()
        except pl.exceptions.PolarsError as e:
            raise DataError(f"{origin}: cannot read: {first_line(e)}") from None
        numbered = scanned.frame.with_row_index(focus.LINE, offset=scanned.first_line)
        for offset in range(0, max(n, 1), self.chunk_rows):
            part = numbered.slice(offset, self.chunk_rows) if n > self.chunk_rows else numbered
            if self.fmt == "cur2":
                part = cur2.to_focus(part, file=origin)
            yield Part(focus.normalize(part, file=origin), origin=origin,
                       rows_read=min(self.chunk_rows, n - offset) if n else 0,
                       line_kind=scanned.line_kind, size=obj.size, signature=obj.etag)

    # ---- doctor -------------------------------------------------------------------------------
    def newest_day(self, p: Period, storage_options: dict[str, str] | None = None) -> date | None:
        """The newest ChargePeriodStart day in a period's files. Parquet files are read in place by
        polars (only that column's pages), gzip CSV files are downloaded."""
        col = "line_item_usage_start_date" if self.fmt == "cur2" else "ChargePeriodStart"
        newest: date | None = None
        with tempfile.TemporaryDirectory(prefix="costguard-aws-", dir=self.spool) as tmp:
            for i, obj in enumerate(self.data_files(p)):
                if obj.key.lower().endswith(".parquet") and storage_options is not None:
                    raw = pl.scan_parquet(f"s3://{self.bucket}/{obj.key}", storage_options=storage_options)
                else:
                    local = Path(tmp) / f"{i:06d}-{Path(obj.key).name}"
                    self._download(obj, local)
                    raw = focus.scan_file(str(local), any_format=self.fmt == "cur2").frame
                if col not in raw.collect_schema().names():
                    raise DataError(f"s3://{self.bucket}/{obj.key}: no {col} column (is costs.source right?)")
                got = raw.select(pl.col(col).cast(pl.String).str.slice(0, 10).max()).collect().item()
                if got:
                    d = date.fromisoformat(got)
                    newest = d if newest is None or d > newest else newest
        return newest
