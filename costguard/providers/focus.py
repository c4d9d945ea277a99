"""The ``focus`` provider: any FOCUS export (CSV, CSV.gz, parquet; local paths, globs, s3://)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path

import polars as pl

from costguard import focus
from costguard.errors import DataError, ProviderError, first_line
from costguard.inventory import read_inventory
from costguard.model import ConnectionStatus, NativeBudget, Window

CHUNK_ROWS = 500_000  # rows normalised and written per step: bounds memory whatever the file size


class FocusProvider:
    """Reads FOCUS export files. Every file is checked on its own so errors name the file."""

    def __init__(
        self,
        name: str,
        paths: Sequence[str],
        *,
        base_dir: Path,
        inventory: str | None = None,
        storage_options: dict[str, str] | None = None,
        chunk_rows: int = CHUNK_ROWS,
    ) -> None:
        self.name = name
        self._patterns = list(paths)
        self._base_dir = base_dir
        self._inventory = inventory
        self._storage_options = storage_options or None
        self._chunk_rows = chunk_rows
        self._files: list[str] | None = None
        self._days_of: dict[str, set[date]] = {}
        self._status: tuple[ConnectionStatus, str | None] = (ConnectionStatus.UNKNOWN, None)

    # ---- protocol -----------------------------------------------------------------------------
    def available_days(self, as_of: date) -> dict[date, str | None]:
        """Each day with rows (<= as_of) → a signature of the files holding it (size + mtime).

        A stored day whose signature is unchanged holds exactly what the files hold, so it need
        not be re-read; a restated export changes the signature. s3:// files give no signature.
        """
        files_of: dict[date, list[str]] = {}
        for f in self._discover():
            try:
                got = focus.charge_days(self._raw(f), file=f).collect(engine="streaming")
            except DataError as e:
                raise self._fail(ConnectionStatus.PARSE_ERROR, str(e)) from None
            except pl.exceptions.PolarsError as e:
                raise self._fail(ConnectionStatus.PARSE_ERROR, f"{f}: cannot read: {first_line(e)}") from None
            days = {d for d in got["x_ChargeDate"].to_list() if d is not None}
            self._days_of[f] = days
            for d in days:
                if d <= as_of:
                    files_of.setdefault(d, []).append(f)
        self._status = (ConnectionStatus.OK, None if files_of else f"files found, but no rows on or before {as_of}")
        return {d: _signature(fs) for d, fs in files_of.items()}

    def costs(self, window: Window) -> Iterator[pl.LazyFrame]:
        """Normalised rows in ``window``, in bounded parts (one file, or a slice of a big one)."""
        for f in self._discover():
            days = self._days_of.get(f)
            if days is not None and not any(window.start <= d < window.end for d in days):
                continue
            raw = self._raw(f)
            try:
                n = raw.select(pl.len()).collect().item()
            except pl.exceptions.PolarsError as e:
                raise self._fail(ConnectionStatus.PARSE_ERROR, f"{f}: cannot read: {first_line(e)}") from None
            for offset in range(0, max(n, 1), self._chunk_rows):
                part = raw.slice(offset, self._chunk_rows) if n > self._chunk_rows else raw
                try:
                    lf = focus.normalize(part, file=f)
                except DataError as e:
                    raise self._fail(ConnectionStatus.PARSE_ERROR, str(e)) from None
                yield lf.filter((pl.col("x_ChargeDate") >= window.start) & (pl.col("x_ChargeDate") < window.end))

    def inventory(self) -> pl.DataFrame | None:
        if not self._inventory:
            return None
        path = self._inventory if "://" in self._inventory else str(self._base_dir / self._inventory)
        try:
            return read_inventory(path, storage_options=self._storage_options)
        except DataError as e:
            raise self._fail(ConnectionStatus.PARSE_ERROR, str(e)) from None

    def budgets(self) -> list[NativeBudget]:
        """FOCUS exports carry no budgets; budgets for this source are costguard `budget` rules."""
        return []

    def status(self) -> tuple[ConnectionStatus, str | None]:
        return self._status

    # ---- internals ----------------------------------------------------------------------------
    def _discover(self) -> list[str]:
        if self._files is None:
            try:
                self._files = focus.discover(self._patterns, self._base_dir, self._storage_options)
            except DataError as e:
                raise self._fail(ConnectionStatus.MISSING_DATA, str(e)) from None
        return self._files

    def _raw(self, f: str) -> pl.LazyFrame:
        try:
            return focus.scan(f, self._storage_options)
        except DataError as e:
            raise self._fail(ConnectionStatus.PARSE_ERROR, str(e)) from None

    def _fail(self, status: ConnectionStatus, message: str) -> ProviderError:
        self._status = (status, message)
        return ProviderError(self.name, message, status=str(status))


def _signature(files: list[str]) -> str | None:
    h = hashlib.sha256()
    for f in sorted(files):
        if "://" in f:
            return None
        try:
            st = os.stat(f)
        except OSError:
            return None
        h.update(f"{f}\x1f{st.st_size}\x1f{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


