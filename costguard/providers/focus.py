"""The ``focus`` provider: any FOCUS export (CSV, CSV.gz, parquet; local paths, globs, s3://)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from costguard.errors import DataError, ProviderError, first_line
from costguard.model import ConnectionStatus, NativeBudget, Window
from costguard.build import BuildContext
from costguard.providers.base import PROVIDERS, Check, Horizon, Part, ProviderConfig, ProviderStatus

if TYPE_CHECKING:  # polars and the FOCUS reader load when a provider works, not with the config model
    import polars as pl

    from costguard import focus

CHUNK_ROWS = 500_000  # rows normalised and written per step: bounds memory whatever the file size


@PROVIDERS.register("focus")
class FocusConfig(ProviderConfig):
    """Any FOCUS 1.0–1.4 export: CSV, CSV.gz or parquet files, local or on S3.

    ```yaml
    - name: exports
      type: focus
      paths: ["exports/**/*.parquet"]
      inventory: inventory.parquet
    ```
    """

    type: Literal["focus"] = "focus"
    paths: list[str] = Field(min_length=1, description="files or globs (** = any depth), local or s3://")
    inventory: str | None = Field(None, description="resource snapshot (CSV or parquet)")
    storage_options: dict[str, str] = Field(default_factory=dict, description="passed to polars for s3:// (region, endpoint, …)")
    endpoint_url: str | None = Field(None, description="S3-compatible endpoint (emulators, VPC endpoints)")
    timestamp_format: list[str] = Field(
        default_factory=list,
        description="strftime formats tried for date/time columns after ISO 8601, for exports that write e.g. "
                    "'%m/%d/%Y' or '%m/%d/%y %H:%M' (ambiguous day/month orders are never guessed)",
    )

    @field_validator("timestamp_format", mode="before")
    @classmethod
    def _one_or_many(cls, v: object) -> object:
        return [v] if isinstance(v, str) else v

    @field_validator("timestamp_format")
    @classmethod
    def _formats(cls, v: list[str]) -> list[str]:
        for f in v:
            if "%" not in f or not any(x in f for x in ("%d", "%j")):
                raise ValueError(f"{f!r} is not a strftime date format (e.g. '%m/%d/%Y')")
        return v

    def build(self, ctx: BuildContext) -> "FocusProvider":
        opts = dict(self.storage_options)
        if self.endpoint_url:
            opts.setdefault("aws_endpoint_url", self.endpoint_url)
        return FocusProvider(self.name, self.paths, base_dir=ctx.base_dir, inventory=self.inventory, storage_options=opts,
                             timestamp_formats=self.timestamp_format)

    def data_paths(self) -> Sequence[str]:
        return [p for p in self.paths if "://" not in p]


class FocusProvider:
    """Reads FOCUS export files. Every file is checked on its own so errors name the file.

    Each run, a file is read when it holds a planned day, or when it holds rows that can never
    be stored (no readable ChargePeriodStart, or a date outside the accepted range): those are
    rejected again, so the source stays ``partial`` until the export is fixed.
    """

    def __init__(
        self,
        name: str,
        paths: Sequence[str],
        *,
        base_dir: Path,
        inventory: str | None = None,
        storage_options: dict[str, str] | None = None,
        chunk_rows: int = CHUNK_ROWS,
        timestamp_formats: Sequence[str] = (),
    ) -> None:
        self.name = name
        self._patterns = list(paths)
        self._base_dir = base_dir
        self._inventory = inventory
        self._storage_options = storage_options or None
        self._chunk_rows = chunk_rows
        self._formats = tuple(timestamp_formats)
        self._found: focus.Discovered | None = None
        self._days_of: dict[str, set[date | None]] = {}
        self._status = ProviderStatus()

    # ---- protocol -----------------------------------------------------------------------------
    def available_days(self, horizon: Horizon) -> dict[date, str | None]:
        """Each day with rows (<= as_of) → a signature of the files holding it (size + mtime).

        A stored day whose signature is unchanged holds exactly what the files hold, so it need
        not be re-read; a restated export changes the signature. s3:// files give no signature.
        """
        import polars as pl

        from costguard import focus

        files_of: dict[date, list[str]] = {}
        errors: list[str] = []
        for f in self._discover().files:
            try:
                days = focus.file_days(focus.scan(f, self._storage_options), file=f, timestamp_formats=self._formats)
            except DataError as e:
                errors.append(str(e))
                continue
            except pl.exceptions.PolarsError as e:
                errors.append(f"{f}: cannot read: {first_line(e)}")
                continue
            self._days_of[f] = days
            for d in days:
                if d is not None and d <= horizon.as_of and horizon.accepts(d):
                    files_of.setdefault(d, []).append(f)
        if errors:  # every unusable file at once, so one fix-and-rerun covers them all
            more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
            raise self._fail(ConnectionStatus.PARSE_ERROR, "; ".join(errors[:5]) + more + "; nothing of this source was stored")
        self._status = ProviderStatus(ConnectionStatus.OK, None if files_of else f"files found, but no rows on or before {horizon.as_of}")
        return {d: _signature(fs) for d, fs in files_of.items()}

    def costs(self, windows: Sequence[Window], horizon: Horizon) -> Iterator[Part]:
        """Each file holding a planned day or unstorable rows, in bounded parts (a file, or a
        slice of a big one), every row numbered so a rejection can name its line."""
        import polars as pl

        from costguard import focus

        for f in self._discover().files:
            days = self._days_of.get(f)
            if days is not None and not any(
                d is None or not horizon.accepts(d) or any(w.start <= d < w.end for w in windows) for d in days
            ):
                continue
            scanned = self._scan(f)
            try:
                n = scanned.frame.select(pl.len()).collect().item()
            except pl.exceptions.PolarsError as e:
                raise self._fail(ConnectionStatus.PARSE_ERROR, f"{f}: cannot read: {first_line(e)}") from None
            size, sig = _stat(f)
            numbered = scanned.frame.with_row_index(focus.LINE, offset=scanned.first_line)
            for offset in range(0, max(n, 1), self._chunk_rows):
                part = numbered.slice(offset, self._chunk_rows) if n > self._chunk_rows else numbered
                try:
                    lf = focus.normalize(part, file=f, timestamp_formats=self._formats)
                except DataError as e:
                    raise self._fail(ConnectionStatus.PARSE_ERROR, str(e)) from None
                yield Part(lf, origin=self._shown(f), rows_read=min(self._chunk_rows, n - offset) if n else 0,
                           line_kind=scanned.line_kind, size=size, signature=sig,
                           days=frozenset(d for d in days if d is not None) if days is not None else None)

    def inventory(self) -> pl.DataFrame | None:
        from costguard.inventory import read_inventory

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

    def status(self) -> ProviderStatus:
        return self._status

    def checks(self) -> Iterator[Check]:
        """Paths match and are readable, each file is FOCUS (which version), the inventory reads."""
        import polars as pl

        from costguard import focus
        from costguard.inventory import read_inventory

        try:
            found = focus.discover_files(self._patterns, self._base_dir, self._storage_options)
        except DataError as e:
            yield Check(f"{self.name}: export files", False, str(e), "fix the paths: patterns are relative to the config file")
            return
        yield Check(f"{self.name}: export files", True, f"{len(found.files)} file(s)"
                    + (f", {sum(len(v) for v in found.aliases.values())} duplicate path(s) read once" if found.aliases else ""))
        newest: date | None = None
        for f in found.files:
            try:
                raw = focus.scan(f, self._storage_options)
                cols = raw.collect_schema().names()
                version, why = focus.detect_version(cols)
                days = {d for d in focus.file_days(raw, file=f, timestamp_formats=self._formats) if d is not None}
                if days:
                    newest = max(newest or max(days), max(days))
                yield Check(f"{self.name}: {f}", True, f"FOCUS {version} ({why})")
            except (DataError, pl.exceptions.PolarsError) as e:
                yield Check(f"{self.name}: {f}", False, first_line(e), "re-export the file, or remove it from the paths")
        if newest is not None:
            yield Check(f"{self.name}: newest day", True, newest.isoformat())
        if self._inventory:
            path = self._inventory if "://" in self._inventory else str(self._base_dir / self._inventory)
            try:
                n = read_inventory(path, storage_options=self._storage_options).height
                yield Check(f"{self.name}: inventory", True, f"{n} resource(s)")
            except DataError as e:
                yield Check(f"{self.name}: inventory", False, str(e), "fix or remove the inventory file")

    # ---- internals ----------------------------------------------------------------------------
    def _discover(self) -> focus.Discovered:
        from costguard import focus

        if self._found is None:
            try:
                self._found = focus.discover_files(self._patterns, self._base_dir, self._storage_options)
            except DataError as e:
                raise self._fail(ConnectionStatus.MISSING_DATA, str(e)) from None
        return self._found

    def aliases(self) -> dict[str, list[str]]:
        """Files (and folders) reached through more than one path: read once."""
        return {self._shown(k): [self._shown(x) for x in v] for k, v in self._discover().aliases.items()}

    def _shown(self, f: str) -> str:
        """A path as the user wrote it: relative to the config file's folder when inside it."""
        if "://" in f:
            return f
        try:
            return str(Path(f).relative_to(self._base_dir)) + ("/" if f.endswith("/") else "")
        except ValueError:
            return f

    def _scan(self, f: str) -> focus.Scanned:
        from costguard import focus

        try:
            return focus.scan_file(f, self._storage_options)
        except DataError as e:
            raise self._fail(ConnectionStatus.PARSE_ERROR, str(e)) from None

    def _fail(self, status: ConnectionStatus, message: str) -> ProviderError:
        self._status = ProviderStatus(status, message)
        return ProviderError(self.name, message, status=str(status))


def _stat(f: str) -> tuple[int | None, str | None]:
    if "://" in f:
        return None, None
    try:
        st = os.stat(f)
    except OSError:
        return None, None
    return st.st_size, f"{st.st_size}:{st.st_mtime_ns}"


def _signature(files: list[str]) -> str | None:
    h = hashlib.sha256()
    for f in sorted(files):
        size, sig = _stat(f)
        if sig is None:
            return None
        h.update(f"{f}\x1f{sig}\n".encode())
    return h.hexdigest()[:32]
