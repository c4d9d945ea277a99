"""The ``focus`` provider: any FOCUS export (CSV, CSV.gz, parquet; local paths, globs, s3://)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import polars as pl

from costguard import focus
from costguard.errors import DataError, ProviderError
from costguard.inventory import read_inventory
from costguard.model import ConnectionStatus, NativeBudget, Window


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
    ) -> None:
        self.name = name
        self._patterns = list(paths)
        self._base_dir = base_dir
        self._inventory = inventory
        self._storage_options = storage_options or None
        self._files: list[str] | None = None
        self._frames: dict[str, pl.LazyFrame] = {}
        self._status: tuple[ConnectionStatus, str | None] = (ConnectionStatus.UNKNOWN, None)

    # ---- protocol -----------------------------------------------------------------------------
    def available_days(self, as_of: date) -> set[date]:
        days: set[date] = set()
        for f in self._discover():
            try:
                got = self._frame(f).select(pl.col("x_ChargeDate").unique()).collect(engine="streaming")
            except pl.exceptions.PolarsError as e:
                raise self._fail(ConnectionStatus.PARSE_ERROR, f"{f}: cannot read: {_first_line(e)}") from None
            days.update(d for d in got["x_ChargeDate"].to_list() if d is not None and d <= as_of)
        self._status = (ConnectionStatus.OK, None if days else f"files found, but no rows on or before {as_of}")
        return days

    def costs(self, window: Window) -> pl.LazyFrame:
        frames = [self._frame(f) for f in self._discover()]
        lf = pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]
        return lf.filter((pl.col("x_ChargeDate") >= window.start) & (pl.col("x_ChargeDate") < window.end))

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

    def mark_ok(self, detail: str | None = None) -> None:
        self._status = (ConnectionStatus.OK, detail)

    # ---- internals ----------------------------------------------------------------------------
    def _discover(self) -> list[str]:
        if self._files is None:
            try:
                self._files = focus.discover(self._patterns, self._base_dir, self._storage_options)
            except DataError as e:
                raise self._fail(ConnectionStatus.MISSING_DATA, str(e)) from None
        return self._files

    def _frame(self, f: str) -> pl.LazyFrame:
        if f not in self._frames:
            try:
                self._frames[f] = focus.normalize(focus.scan(f, self._storage_options), file=f)
            except DataError as e:
                raise self._fail(ConnectionStatus.PARSE_ERROR, str(e)) from None
        return self._frames[f]

    def _fail(self, status: ConnectionStatus, message: str) -> ProviderError:
        self._status = (status, message)
        return ProviderError(self.name, message, status=str(status))


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__
