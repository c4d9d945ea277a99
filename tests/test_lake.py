"""The parquet lake: exact window replacement, crash recovery, readers never disturb a writer."""

from __future__ import annotations

import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from costguard import focus
from costguard.app import query_costs
from costguard.errors import ConfigError, DataError
from costguard.lake import Lake
from costguard.model import Window

from focus_rows import days, row, write


def _parts(tmp_path: Path, name: str, rows: list[dict]) -> list[pl.LazyFrame]:
    f = write(tmp_path / f"{name}.csv", rows)
    return [focus.normalize(focus.scan(str(f)), file=str(f))]


def _totals(lake: Lake) -> dict[date, Decimal]:
    df = lake.rollup().group_by("x_ChargeDate").agg(pl.col("BilledCost").sum()).collect()
    return {d: c for d, c in df.iter_rows()}


def test_rewriting_a_window_replaces_exactly_its_days(tmp_path):
    lake = Lake(tmp_path / "lake", writer=True)
    first = [row(d, "1.00") for d in days(date(2026, 3, 1), 5)]
    lake.write_window("s", Window(date(2026, 3, 1), date(2026, 3, 6)), _parts(tmp_path, "a", first))
    restated = [row(date(2026, 3, 3), "7.50"), row(date(2026, 3, 3), "0.25", resource="i-2")]
    w = lake.write_window("s", Window(date(2026, 3, 3), date(2026, 3, 5)), _parts(tmp_path, "b", restated))
    assert w.rows_by_day == {date(2026, 3, 3): 2}
    got = _totals(lake)
    # the 3rd is replaced, the 4th (in the window, no rows any more) is gone, the rest untouched
    assert got == {date(2026, 3, 1): Decimal("1"), date(2026, 3, 2): Decimal("1"),
                   date(2026, 3, 3): Decimal("7.75"), date(2026, 3, 5): Decimal("1")}
    assert sorted(lake.stored_days("s")) == [date(2026, 3, d) for d in (1, 2, 3, 5)]
    rows = lake.costs().filter(pl.col("x_ChargeDate") == date(2026, 3, 3)).collect()
    assert rows.height == 2


def test_unusable_rows_change_nothing(tmp_path):
    lake = Lake(tmp_path / "lake", writer=True)
    lake.write_window("s", Window(date(2026, 3, 1), date(2026, 3, 3)), _parts(tmp_path, "a", [row(date(2026, 3, 1), "1.00"), row(date(2026, 3, 2), "2.00")]))
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "lake").rglob("*.parquet"))
    bad = [row(date(2026, 3, 1), "not-a-number"), row(date(2026, 3, 2), "3.00")]
    with pytest.raises(DataError, match="BilledCost:type"):
        lake.write_window("s", Window(date(2026, 3, 1), date(2026, 3, 3)), _parts(tmp_path, "b", bad))
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "lake").rglob("*.parquet")) == before
    assert _totals(lake) == {date(2026, 3, 1): Decimal("1"), date(2026, 3, 2): Decimal("2")}
    assert not any((tmp_path / "lake" / ".staging").glob("*"))


def test_recover_puts_back_a_day_whose_swap_was_interrupted(tmp_path):
    root = tmp_path / "lake"
    lake = Lake(root, writer=True)
    lake.write_window("s", Window(date(2026, 3, 1), date(2026, 3, 2)), _parts(tmp_path, "a", [row(date(2026, 3, 1), "4.00")]))
    # a crash after the old day went to the trash and before the new one was renamed in
    day = root / "rollup" / "source=s" / "day=2026-03-01"
    trash = root / ".trash" / "deadbeef" / "rollup" / "source=s"
    trash.mkdir(parents=True)
    shutil.move(str(day), str(trash / day.name))
    (root / ".staging" / "deadbeef" / "rollup").mkdir(parents=True)
    assert Lake(root).stored_days("s") == {}  # a reader sees the gap and touches nothing
    assert (root / ".staging" / "deadbeef").exists()
    reopened = Lake(root, writer=True)
    assert list(reopened.stored_days("s")) == [date(2026, 3, 1)]
    assert _totals(reopened) == {date(2026, 3, 1): Decimal("4")}
    assert not (root / ".staging" / "deadbeef").exists() and not any((root / ".trash").glob("*"))


def test_rollup_only_lake_refuses_row_level_queries_with_a_reason(tmp_path):
    lake = Lake(tmp_path / "lake", keep_rows=False, writer=True)
    lake.write_window("s", Window(date(2026, 3, 1), date(2026, 3, 2)), _parts(tmp_path, "a", [row(date(2026, 3, 1), "4.00")]))
    assert not (tmp_path / "lake" / "costs").exists()
    by_service = query_costs(lake, ["ServiceName"], start=None, end=None, metric="BilledCost")
    assert by_service.to_dicts() == [{"ServiceName": "Amazon EC2", "BilledCost": Decimal("4")}]
    with pytest.raises(ConfigError, match="keep_rows"):
        query_costs(lake, ["ChargeFrequency"], start=None, end=None, metric="BilledCost")
