"""The parquet lake: exact window replacement, crash recovery, readers never disturb a writer."""

from __future__ import annotations

import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from costguard import focus, staging
from costguard.errors import ConfigError, DataError
from costguard.lake import Lake
from costguard.model import Window
from costguard.providers import Horizon, Part
from costguard.queries import query_costs

from focus_rows import days, row, write

H = Horizon(date(2026, 3, 31))


def _parts(tmp_path: Path, name: str, rows: list[dict]) -> list[Part]:
    f = write(tmp_path / f"{name}.csv", rows)
    scanned = focus.scan_file(str(f))
    lf = focus.normalize(scanned.frame.with_row_index("x_Line", offset=scanned.first_line), file=str(f))
    return [Part(lf, origin=str(f), rows_read=len(rows), line_kind=scanned.line_kind)]


def _write(lake: Lake, window: Window, parts: list[Part]):
    return lake.write("s", [window], parts, horizon=H)


def _totals(lake: Lake) -> dict[date, Decimal]:
    df = lake.rollup().group_by("x_ChargeDate").agg(pl.col("BilledCost").sum()).collect()
    return {d: c for d, c in df.iter_rows()}


def test_rewriting_a_window_replaces_exactly_its_days(tmp_path):
    lake = Lake(tmp_path / "lake", writer=True)
    first = [row(d, "1.00") for d in days(date(2026, 3, 1), 5)]
    _write(lake, Window(date(2026, 3, 1), date(2026, 3, 6)), _parts(tmp_path, "a", first))
    restated = [row(date(2026, 3, 3), "7.50"), row(date(2026, 3, 3), "0.25", resource="i-2")]
    ledger = _write(lake, Window(date(2026, 3, 3), date(2026, 3, 5)), _parts(tmp_path, "b", restated))
    assert (ledger.rows_read, ledger.rows_stored, ledger.rows_rejected) == (2, 2, 0)
    got = _totals(lake)
    # the 3rd is replaced, the 4th (in the window, no rows any more) is gone, the rest untouched
    assert got == {date(2026, 3, 1): Decimal("1"), date(2026, 3, 2): Decimal("1"),
                   date(2026, 3, 3): Decimal("7.75"), date(2026, 3, 5): Decimal("1")}
    assert sorted(lake.stored_days("s")) == [date(2026, 3, d) for d in (1, 2, 3, 5)]
    rows = lake.costs().filter(pl.col("x_ChargeDate") == date(2026, 3, 3)).collect()
    assert rows.height == 2


def test_unusable_rows_are_rejected_with_reason_and_kept_aside(tmp_path):
    lake = Lake(tmp_path / "lake", writer=True)
    bad = [row(date(2026, 3, 1), "not-a-number"), row(date(2026, 3, 2), "3.00"), row(date(1900, 1, 1), "5.00")]
    with lake.begin("s", planned=list(Window(date(2026, 3, 1), date(2026, 3, 3)).days()), horizon=H, run_id="r1") as b:
        b.add_all(_parts(tmp_path, "b", bad))
        ledger = b.finish()
        b.commit()
    assert (ledger.rows_read, ledger.rows_stored, ledger.rows_rejected, ledger.rows_skipped) == (3, 1, 2, 0)
    why = {k: v.samples[0] for k, v in ledger.rejected.items()}
    assert why["BilledCost is not a decimal number"]["line"] == 2 and why["BilledCost is not a decimal number"]["value"] == "not-a-number"
    out_of_range = next(v for k, v in why.items() if k.startswith("ChargePeriodStart outside"))
    assert out_of_range["line"] == 4 and out_of_range["value"] == "1900-01-01"
    money = ledger.money["USD"]
    assert (money.read, money.stored, money.rejected, money.unreadable) == (Decimal(8), Decimal(3), Decimal(5), 1)
    assert _totals(lake) == {date(2026, 3, 2): Decimal("3")}
    kept = pl.read_parquet(tmp_path / "lake" / "rejected" / "source=s" / "r1")
    assert sorted(kept["x_Line"].to_list()) == [2, 4] and set(kept["x_Reject"].str.slice(0, 10)) == {"BilledCost", "ChargePeri"}
    assert not any((tmp_path / "lake" / ".staging").glob("*"))


def test_a_failed_source_changes_nothing(tmp_path):
    lake = Lake(tmp_path / "lake", writer=True)
    _write(lake, Window(date(2026, 3, 1), date(2026, 3, 3)), _parts(tmp_path, "a", [row(date(2026, 3, 1), "1.00"), row(date(2026, 3, 2), "2.00")]))
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "lake").rglob("*.parquet"))

    def parts():
        yield from _parts(tmp_path, "b", [row(date(2026, 3, 1), "9.00")])
        raise DataError("the second file is truncated")

    with pytest.raises(DataError, match="truncated"):
        _write(lake, Window(date(2026, 3, 1), date(2026, 3, 3)), parts())
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "lake").rglob("*.parquet")) == before
    assert _totals(lake) == {date(2026, 3, 1): Decimal("1"), date(2026, 3, 2): Decimal("2")}
    assert not any((tmp_path / "lake" / ".staging").glob("*"))


def test_ledger_that_does_not_balance_fails_and_stores_nothing(tmp_path):
    lake = Lake(tmp_path / "lake", writer=True)
    (part,) = _parts(tmp_path, "a", [row(date(2026, 3, 1), "1.00"), row(date(2026, 3, 2), "2.00")])
    short = Part(part.rows, origin=part.origin, rows_read=3)  # the file held 3 rows, 2 came through
    with pytest.raises(DataError, match="3 rows read but 2 accounted for"):
        _write(lake, Window(date(2026, 3, 1), date(2026, 3, 3)), [short])
    assert _totals(lake) == {}


def test_recover_puts_back_a_day_whose_swap_was_interrupted(tmp_path):
    root = tmp_path / "lake"
    lake = Lake(root, writer=True)
    _write(lake, Window(date(2026, 3, 1), date(2026, 3, 2)), _parts(tmp_path, "a", [row(date(2026, 3, 1), "4.00")]))
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
    _write(lake, Window(date(2026, 3, 1), date(2026, 3, 2)), _parts(tmp_path, "a", [row(date(2026, 3, 1), "4.00")]))
    assert not (tmp_path / "lake" / "costs").exists()
    by_service = query_costs(lake, ["ServiceName"], start=None, end=None, metric="BilledCost")
    assert by_service.to_dicts() == [{"ServiceName": "Amazon EC2", "BillingCurrency": "USD", "BilledCost": Decimal("4")}]
    with pytest.raises(ConfigError, match="keep_rows"):
        query_costs(lake, ["ChargeDescription"], start=None, end=None, metric="BilledCost")


def _staged_commit(tmp_path: Path, lake: Lake, rows: list[dict], planned: list[date]) -> staging.Batch:
    b = lake.begin("s", planned=planned, horizon=H, run_id="r2")
    b.add_all(_parts(tmp_path, "n", rows))
    b.finish()
    return b


def test_a_commit_interrupted_half_way_is_rolled_forward(tmp_path):
    """SIGKILL after the COMMITTED marker, with one of two days swapped: the next writer finishes it."""
    root = tmp_path / "lake"
    lake = Lake(root, writer=True)
    _write(lake, Window(date(2026, 3, 1), date(2026, 3, 3)), _parts(tmp_path, "a", [row(date(2026, 3, 1), "1.00"), row(date(2026, 3, 2), "2.00")]))
    b = _staged_commit(tmp_path, lake, [row(date(2026, 3, 1), "10.00"), row(date(2026, 3, 2), "20.00")],
                       [date(2026, 3, 1), date(2026, 3, 2)])
    # what commit() does, stopped after the first day's swap
    import json, os
    data = {area: sorted(p.name for p in (b.dir / area).glob("day=*")) for area in ("costs", "rollup")}
    (b.dir / "days.json").write_text(json.dumps(data))
    (b.dir / staging.COMMITTED).write_text("r2")
    for area in ("costs", "rollup"):
        dest = root / area / "source=s" / "day=2026-03-01"
        trash = root / ".trash" / b.dir.name / area / "source=s"
        trash.mkdir(parents=True)
        os.replace(dest, trash / dest.name)
        os.replace(b.dir / area / "day=2026-03-01", dest)
    b._release()  # the writer process "dies": its lock goes with it
    assert _totals(Lake(root)) == {date(2026, 3, 1): Decimal("10"), date(2026, 3, 2): Decimal("2")}  # half new
    reopened = Lake(root, writer=True)
    assert _totals(reopened) == {date(2026, 3, 1): Decimal("10"), date(2026, 3, 2): Decimal("20")}
    assert not any((root / ".staging").glob("*")) and not any((root / ".trash").glob("*"))


def test_an_uncommitted_batch_of_a_live_writer_is_left_alone(tmp_path):
    root = tmp_path / "lake"
    lake = Lake(root, writer=True)
    b = _staged_commit(tmp_path, lake, [row(date(2026, 3, 1), "10.00")], [date(2026, 3, 1)])
    Lake(root, writer=True)  # another writer opens the lake (recovery) while b is staged
    assert b.dir.exists()
    b.commit()
    assert _totals(Lake(root)) == {date(2026, 3, 1): Decimal("10")}


def test_lake_written_by_the_previous_format_is_upgraded(tmp_path):
    root = tmp_path / "lake"
    lake = Lake(root, writer=True)
    _write(lake, Window(date(2026, 3, 1), date(2026, 3, 2)), _parts(tmp_path, "a", [row(date(2026, 3, 1), "4.00")]))
    # make it look like format 1: no FORMAT file, a rollup without the new keys
    (root / "FORMAT").unlink()
    f = next((root / "rollup" / "source=s").glob("day=*/*.parquet"))
    pl.read_parquet(f).drop("SkuId", "PricingQuantity").write_parquet(f)
    assert "SkuId" not in pl.read_parquet(f).columns
    assert Lake(root).rollup().collect()["SkuId"].to_list() == [None]  # readable as it is
    upgraded = Lake(root, writer=True)
    assert (root / "FORMAT").read_text().strip() == "2"
    assert "SkuId" in pl.read_parquet(next((root / "rollup" / "source=s").glob("day=*/*.parquet"))).columns
    assert _totals(upgraded) == {date(2026, 3, 1): Decimal("4")}


def test_read_only_lake_is_not_created(tmp_path):
    lake = Lake(tmp_path / "nothing-here")
    assert lake.rollup().collect().height == 0 and lake.sources() == []
    assert not (tmp_path / "nothing-here").exists()


def _part_of(tmp_path: Path, name: str, rows: list[dict], *, days_hint: set[date] | None) -> Part:
    (p,) = _parts(tmp_path, name, rows)
    return Part(p.rows, origin=p.origin, rows_read=p.rows_read, line_kind=p.line_kind,
                days=frozenset(days_hint) if days_hint is not None else None)


def _row_files(root: Path, day: date) -> list[Path]:
    return sorted((root / "costs" / "source=s" / f"day={day}").rglob("*.parquet"))


def test_a_part_of_one_known_day_is_one_file_and_parts_sharing_a_day_add_up(tmp_path):
    """Daily files: each part's rows go to its day as they are; two parts holding the same day
    (a day split over two files, or a big file read in slices) are rolled up together."""
    root = tmp_path / "lake"
    lake = Lake(root, writer=True)
    d1, d2 = date(2026, 3, 1), date(2026, 3, 2)
    parts = [
        _part_of(tmp_path, "a", [row(d1, "1.00"), row(d1, "2.00", resource="i-2")], days_hint={d1}),
        _part_of(tmp_path, "b", [row(d2, "4.00")], days_hint={d2}),
        _part_of(tmp_path, "c", [row(d2, "8.00"), row(d2, "0.50", resource="i-2")], days_hint={d2}),
    ]
    ledger = _write(lake, Window(d1, date(2026, 3, 3)), parts)
    assert (ledger.rows_read, ledger.rows_stored) == (5, 5)
    assert _totals(lake) == {d1: Decimal("3"), d2: Decimal("12.5")}
    assert len(_row_files(root, d1)) == 1 and len(_row_files(root, d2)) == 2
    by_resource = lake.rollup().filter(pl.col("x_ChargeDate") == d2).select("ResourceId", "BilledCost", "x_RowCount").sort("ResourceId").collect()
    assert by_resource.rows() == [("i-1", Decimal("12"), 2), ("i-2", Decimal("0.5"), 1)]  # one rollup row per key, both parts summed
    assert lake.costs().select(pl.len()).collect().item() == 5


def test_parts_of_several_days_some_shared_roll_up_each_day_once(tmp_path):
    """A monthly file next to a daily one: the day both hold is combined, the others are not."""
    lake = Lake(tmp_path / "lake", keep_rows=False, writer=True)
    d1, d2, d3 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)
    parts = [
        _part_of(tmp_path, "month", [row(d1, "1.00"), row(d2, "2.00"), row(d3, "3.00")], days_hint=None),
        _part_of(tmp_path, "day", [row(d2, "0.25"), row(d2, "0.50", resource="i-9")], days_hint={d2}),
    ]
    _write(lake, Window(d1, date(2026, 3, 4)), parts)
    got = lake.rollup().select("x_ChargeDate", "ResourceId", "BilledCost", "x_RowCount").sort("x_ChargeDate", "ResourceId").collect()
    assert got.rows() == [(d1, "i-1", Decimal("1"), 1), (d2, "i-1", Decimal("2.25"), 2),
                          (d2, "i-9", Decimal("0.5"), 1), (d3, "i-1", Decimal("3"), 1)]


def test_a_wrong_day_hint_still_stores_every_row_under_its_own_day(tmp_path):
    """The source said the part holds one day (the file changed since it looked): the rows of the
    other day are not filed under the hinted one."""
    root = tmp_path / "lake"
    lake = Lake(root, writer=True)
    d1, d2 = date(2026, 3, 1), date(2026, 3, 2)
    part = _part_of(tmp_path, "a", [row(d1, "1.00"), row(d2, "2.00"), row(d2, "3.00")], days_hint={d1})
    _write(lake, Window(d1, date(2026, 3, 3)), [part])
    assert _totals(lake) == {d1: Decimal("1"), d2: Decimal("5")}
    per_day = lake.costs().group_by("x_ChargeDate").agg(pl.len(), pl.col("BilledCost").sum()).sort("x_ChargeDate").collect()
    assert per_day.rows() == [(d1, 1, Decimal("1")), (d2, 2, Decimal("5"))]
    for d in (d1, d2):  # each file holds only its own day's rows
        for f in _row_files(root, d):
            assert set(pl.read_parquet(f)["x_ChargeDate"].to_list()) == {d}


def test_a_one_day_part_with_nothing_to_store_leaves_no_empty_file(tmp_path):
    root = tmp_path / "lake"
    lake = Lake(root, writer=True)
    d1 = date(2026, 3, 1)
    _write(lake, Window(d1, date(2026, 3, 2)), [_part_of(tmp_path, "a", [row(d1, "1.00")], days_hint={d1})])
    part = _part_of(tmp_path, "b", [row(d1, "not-a-number")], days_hint={d1})
    with lake.begin("s", planned=[d1], horizon=H, run_id="r3") as b:
        b.add_all([part])
        ledger = b.finish()
        b.commit()
    assert (ledger.rows_stored, ledger.rows_rejected) == (0, 1)
    assert _row_files(root, d1) == [] and _totals(lake) == {}  # the day was re-read: it holds nothing now
    assert pl.read_parquet(root / "rejected" / "source=s" / "r3")["x_Reject"].to_list() == ["BilledCost is not a decimal number"]
