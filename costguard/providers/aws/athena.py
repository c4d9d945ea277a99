"""The ``athena`` cost source: the daily rollup computed by Athena where the export lives.

For each planned window one query (``rollup_sql.rollup_query``, generated from ``rollup.py``'s
keys) runs over the FOCUS export table, pruned to the billing periods the window touches. The
query is started in the configured workgroup (with an output location unless the workgroup
enforces one), polled until it ends, and its result pages are read back; only the aggregated
rows cross the network. A failed or cancelled query, a timeout, or bytes scanned past
``max_scanned_gb`` fail the pull (nothing of it is stored; the lake keeps what it had). Bytes
scanned are reported in each part's origin and in the run's problems when capped.

Which billing periods changed is read from the export's manifests in S3, exactly like the
export reader (so unchanged periods cost no query at all).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from typing import Any

import polars as pl

from costguard import focus, rollup_sql
from costguard.model import Window
from costguard.providers.aws.clients import PullFailed
from costguard.providers.aws.config import AthenaCosts
from costguard.providers.aws.exports import ExportReader
from costguard.providers.base import Horizon, Part

GB = 1024 ** 3
DONE = ("SUCCEEDED", "FAILED", "CANCELLED")
#: Marks the stored rows as Athena aggregates (one row per rollup group and day).
ROLLUP_DESCRIPTION = "costguard daily rollup computed by Athena over the export"


class AthenaSource:
    def __init__(self, cfg: AthenaCosts, athena: Callable[[], Any], glue: Callable[[], Any], exports: ExportReader, *,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self._athena = athena
        self._glue = glue
        self.exports = exports
        self._sleep = sleep
        self._clock = clock
        self.scanned_bytes = 0
        self.queries: list[dict[str, Any]] = []
        self._columns: dict[str, str] | None = None

    def available_days(self, horizon: Horizon) -> dict[date, str | None]:
        return self.exports.available_days(horizon)

    def columns(self) -> dict[str, str]:
        """The table's columns and types from the Glue Data Catalog (one glue:GetTable)."""
        if self._columns is None:
            db, _, table = self.cfg.table.partition(".")
            t = self._glue().get_table(DatabaseName=db, Name=table)["Table"]
            cols = list((t.get("StorageDescriptor") or {}).get("Columns") or []) + list(t.get("PartitionKeys") or [])
            self._columns = {c["Name"]: str(c.get("Type", "")).lower() for c in cols}
        return self._columns

    def query_for(self, w: Window, horizon: Horizon, dialect: str = "athena") -> str:
        cols = self.columns()
        lower = {c.lower(): t for c, t in cols.items()}
        periods = [p.key for p in self.exports.in_range(horizon) if p.start < w.end and w.start < p.end]
        tags_type = lower.get("tags", "string")
        return rollup_sql.rollup_query(
            self.cfg.table, cols, start=w.start, end=w.end, dialect=dialect,
            partition_column=self.cfg.partition_column if self.cfg.partition_column.lower() in lower else None,
            partitions=periods, tags_is_text=tags_type.startswith(("string", "varchar")),
        )

    def costs(self, windows: Sequence[Window], horizon: Horizon) -> Iterator[Part]:
        for w in windows:
            cap = self.cfg.max_scanned_gb * GB
            if self.scanned_bytes >= cap:
                raise PullFailed(f"Athena scanned {self.scanned_bytes / GB:.2f} GB this run, over costs.max_scanned_gb "
                                 f"({self.cfg.max_scanned_gb}); windows from {w} on were not queried and nothing of this pull "
                                 "is stored; raise the cap or lower ingest.backfill_days")
            sql = self.query_for(w, horizon)
            qid, scanned = self._run(sql)
            header, rows = self._results(qid)
            frame = results_frame(header, rows)
            source_rows = int(frame[rollup_sql.SOURCE_ROWS].cast(pl.Int64).sum() or 0) if frame.height else 0
            origin = (f"athena:{qid} {self.cfg.table} {w.start}..{w.end} "
                      f"({len(rows)} rollup rows of {source_rows} export rows, {scanned} bytes scanned)")
            yield Part(focus.normalize(to_focus_rows(frame).lazy(), file=origin), origin=origin, rows_read=len(rows))

    # ---- the call flow ------------------------------------------------------------------------
    def _run(self, sql: str) -> tuple[str, int]:
        athena = self._athena()
        params: dict[str, Any] = {"QueryString": sql, "WorkGroup": self.cfg.workgroup,
                                  "QueryExecutionContext": {"Catalog": self.cfg.catalog,
                                                            "Database": self.cfg.table.partition(".")[0]}}
        if self.cfg.output_location:
            params["ResultConfiguration"] = {"OutputLocation": self.cfg.output_location}
        qid = athena.start_query_execution(**params)["QueryExecutionId"]
        deadline = self._clock() + self.cfg.timeout_seconds
        while True:
            ex = athena.get_query_execution(QueryExecutionId=qid)["QueryExecution"]
            state = ex["Status"]["State"]
            if state in DONE:
                break
            if self._clock() > deadline:
                athena.stop_query_execution(QueryExecutionId=qid)
                raise PullFailed(f"Athena query {qid} still {state} after {self.cfg.timeout_seconds:.0f} s; stopped it "
                                 "(raise costs.timeout_seconds, or check the workgroup's capacity)")
            self._sleep(self.cfg.poll_seconds)
        scanned = int((ex.get("Statistics") or {}).get("DataScannedInBytes") or 0)
        self.scanned_bytes += scanned
        self.queries.append({"id": qid, "state": state, "scanned_bytes": scanned})
        if state != "SUCCEEDED":
            reason = ex["Status"].get("StateChangeReason") or (ex["Status"].get("AthenaError") or {}).get("ErrorMessage") or "no reason given"
            raise PullFailed(f"Athena query {qid} {state}: {reason}")
        return qid, scanned

    def _results(self, qid: str) -> tuple[list[str], list[list[str | None]]]:
        athena = self._athena()
        params: dict[str, Any] = {"QueryExecutionId": qid, "MaxResults": 1000}
        header: list[str] | None = None
        rows: list[list[str | None]] = []
        while True:
            page = athena.get_query_results(**params)
            rs = page["ResultSet"]
            if header is None:
                info = (rs.get("ResultSetMetadata") or {}).get("ColumnInfo") or []
                header = [c["Name"] for c in info]
                data = rs.get("Rows") or []
                if data and [d.get("VarCharValue") for d in data[0].get("Data", [])] == header:
                    data = data[1:]  # the first page starts with the header row
            else:
                data = rs.get("Rows") or []
            rows.extend([d.get("VarCharValue") for d in r.get("Data", [])] for r in data)
            token = page.get("NextToken")
            if not token:
                break
            params["NextToken"] = token
        return header or [], rows


def results_frame(header: list[str], rows: list[list[str | None]]) -> pl.DataFrame:
    """Athena's text result rows as a frame of strings (one column per header name)."""
    if not header:
        return pl.DataFrame()
    for i, r in enumerate(rows):
        if len(r) != len(header):
            raise PullFailed(f"Athena result row {i + 1} has {len(r)} values for {len(header)} columns")
    return pl.DataFrame(rows, schema={h: pl.String for h in header}, orient="row")


def to_focus_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """Rollup rows → FOCUS rows: the day becomes a one-day charge period, numbered for the ledger."""
    if frame.is_empty() and rollup_sql.DAY not in frame.columns:
        return pl.DataFrame(schema={"ChargePeriodStart": pl.String, **{c: pl.String for c in focus.mandatory("1.0")}})
    day = pl.col(rollup_sql.DAY).str.slice(0, 10)
    out = frame.with_columns(
        (day + pl.lit("T00:00:00Z")).alias("ChargePeriodStart"),
        (day.str.to_date("%Y-%m-%d", strict=False) + pl.duration(days=1)).cast(pl.String).alias("__end"),
    ).with_columns((pl.col("__end") + pl.lit("T00:00:00Z")).alias("ChargePeriodEnd"))
    out = out.drop(rollup_sql.DAY, "__end", rollup_sql.SOURCE_ROWS)
    out = out.with_columns(pl.lit(ROLLUP_DESCRIPTION).alias("ChargeDescription"),
                           *(pl.lit(None, pl.String).alias(c) for c in focus.mandatory("1.0")
                             if c not in out.columns and c != "ChargeDescription"))
    return out.with_row_index(focus.LINE, offset=1)

