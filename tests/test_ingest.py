"""Which days a cycle re-reads: new, trailing restated, and changed month-to-date days."""

from __future__ import annotations

from datetime import date, timedelta

from costguard.ingest import plan_days

from conftest import write_config
from focus_rows import row, write

AS_OF = date(2026, 3, 20)


def _days(a: date, b: date) -> list[date]:
    return [a + timedelta(days=i) for i in range((b - a).days + 1)]


def test_new_days_are_pulled_and_stored_unchanged_days_skipped():
    avail = {d: f"sig-{d}" for d in _days(date(2026, 2, 1), AS_OF)}
    stored = {d: f"sig-{d}" for d in _days(date(2026, 2, 1), date(2026, 3, 18))}
    got = plan_days(avail, stored, AS_OF, restate_days=3, month_to_date=True)
    # 19 and 20 are new; 18 is in the trailing three days; unchanged March days are skipped
    assert got == [date(2026, 3, 18), date(2026, 3, 19), date(2026, 3, 20)]


def test_a_changed_day_is_re_read_even_in_a_closed_month():
    avail = {d: f"sig-{d}" for d in _days(date(2026, 2, 1), AS_OF)}
    stored = dict(avail)
    avail[date(2026, 3, 5)] = "restated"
    avail[date(2026, 2, 5)] = "restated"  # last month's bill restated after it closed (AWS does this)
    got = plan_days(avail, stored, AS_OF, restate_days=1, month_to_date=True)
    assert got == [date(2026, 2, 5), date(2026, 3, 5), AS_OF]
    assert plan_days(avail, stored, AS_OF, restate_days=1, month_to_date=False) == got


def test_sources_that_cannot_tell_re_read_the_whole_month_and_future_days_wait():
    avail = {d: None for d in _days(date(2026, 2, 25), AS_OF + timedelta(days=2))}
    stored = {d: None for d in _days(date(2026, 2, 25), AS_OF)}
    got = plan_days(avail, stored, AS_OF, restate_days=2, month_to_date=True)
    assert got == _days(date(2026, 3, 1), AS_OF)


def test_touching_one_export_file_re_reads_only_that_day(cli, tmp_path):
    for d in _days(date(2026, 3, 1), date(2026, 3, 10)):
        write(tmp_path / "exports" / f"{d}.csv", [row(d, "1.00")])
    cfg = write_config(tmp_path, """
        state: {url: "sqlite:///state.db", lake: lake}
        ingest: {restate_days: 1, month_to_date: true}
        providers: [{name: aws, type: focus, paths: ["exports/*.csv"]}]
        rules: []
        """)
    first = cli("run", "--once", "-c", cfg, "--as-of", "2026-03-10")
    assert "10 day(s) pulled, 0 day(s) already stored" in first.stdout
    write(tmp_path / "exports" / "2026-03-04.csv", [row(date(2026, 3, 4), "2.50")])
    second = cli("run", "--once", "-c", cfg, "--as-of", "2026-03-10")
    assert "2 day(s) pulled, 8 day(s) already stored" in second.stdout  # the 4th and the trailing 10th
    rows = cli.json("costs", "-c", cfg, "--by", "ProviderName")
    assert rows == [{"ProviderName": "AWS", "BillingCurrency": "USD", "BilledCost": 11.5}]
