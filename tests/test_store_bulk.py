"""The reconcile and delivery fast paths against real SQLite files: bulk writes store exactly what
SQLAlchemy's per-row path stores, evidence compared as stored text, outbox payloads handed to the
delivery that follows without decoding them (only where their JSON gives back the same values),
and outbox ids selected by range and by list."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import insert, update

from costguard.model import Finding, fingerprint
from costguard.store import Store
from costguard.store.bulk import Encoded, insert_rows, update_rows
from costguard.store.delivery import DeliveryStore
from costguard.store.schema import finding_events, findings
from costguard.store.store import encode_finding
from costguard.store.types import dumps, loads, round_trips

UTC = timezone.utc
T1 = datetime(2024, 3, 1, 6, 0, tzinfo=UTC)
T2 = T1 + timedelta(days=1)


def make(scope: str, cost: str = "100", **kw) -> Finding:
    fields = dict(
        fingerprint=fingerprint("r-tag", "AWS", "111", scope), rule="r-tag", kind="tag", severity="warning",
        title=f"{scope} untagged", summary="missing team tag", monthly_cost=Decimal(cost), monthly_savings=None,
        currency="USD", provider="AWS", account_id="111", resource_id=scope, source="aws-org",
        evidence={"coverage": 0.5, "cost": Decimal("1.50"), "day": date(2024, 2, 29)},
    )  # fmt: skip
    fields.update(kw)
    return Finding(**fields)


def rows_of(path, table: str) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return con.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
    finally:
        con.close()


def finding_row(i: int, now: datetime) -> dict:
    return {
        "fingerprint": f"fp{i:04d}", "rule": "r", "kind": "tag", "severity": "warning", "status": "open",
        "source": "s", "provider": "AWS", "billing_account_id": None, "account_id": "111", "region": None,
        "service": None, "resource_id": f"i-{i}", "resource_type": None, "owner": None, "owner_reason": "x",
        "title": "t ü", "summary": "s", "monthly_cost": Decimal("12.345678901234"), "monthly_savings": None,
        "currency": "USD", "evidence": {"n": i, "d": Decimal("0.1"), "when": now, "day": date(2024, 1, i % 28 + 1)},
        "first_seen": now, "last_seen": now + timedelta(hours=i), "resolved_at": None, "last_run_id": "r1",
        "times_regressed": 0, "snoozed_until": date(2024, 5, 1) if i % 2 else None, "snooze_reason": None,
    }  # fmt: skip


def test_bulk_insert_and_update_store_what_sqlalchemy_stores(tmp_path):
    """Same rows through SQLAlchemy's executemany and through bulk.py: byte-identical tables."""
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    rows = [finding_row(i, T1) for i in range(40)]
    with Store.open(f"sqlite:///{a}") as sa, Store.open(f"sqlite:///{b}") as sb:
        with sa.transaction(write=True) as conn:
            conn.execute(insert(findings), rows)
            conn.execute(insert(finding_events), [{"fingerprint": r["fingerprint"], "run_id": "r1", "event": "new",
                                                  "at": T1, "detail": {"x": [1, 2]} if i % 3 else None}
                                                 for i, r in enumerate(rows)])
        with sb.transaction(write=True) as conn:
            # an already-encoded JSON value is written as it is, not encoded twice
            insert_rows(conn, findings, [{**r, "evidence": Encoded(dumps(r["evidence"])) if i % 2 else r["evidence"]}
                                         for i, r in enumerate(rows)])
            insert_rows(conn, finding_events, [{"fingerprint": r["fingerprint"], "run_id": "r1", "event": "new",
                                                "at": T1, "detail": {"x": [1, 2]} if i % 3 else None}
                                               for i, r in enumerate(rows)])
        for t in ("findings", "finding_events"):
            assert rows_of(a, t) == rows_of(b, t)
        # updates grouped by the columns they set; untouched columns and rows stay as they were
        changes = [{"fingerprint": "fp0001", "monthly_cost": Decimal("3"), "last_seen": T2},
                   {"fingerprint": "fp0002", "monthly_cost": Decimal("4.5"), "last_seen": T2},
                   {"fingerprint": "fp0003", "evidence": {"n": -1}, "snoozed_until": None}]
        with sa.transaction(write=True) as conn:
            for c in changes:
                conn.execute(update(findings).where(findings.c.fingerprint == c["fingerprint"])
                             .values({k: v for k, v in c.items() if k != "fingerprint"}))
        with sb.transaction(write=True) as conn:
            update_rows(conn, findings, "fingerprint", changes)
        assert rows_of(a, "findings") == rows_of(b, "findings")
        assert sb.get_finding("fp0003")["evidence"] == {"n": -1}
        assert sb.get_finding("fp0001")["monthly_cost"] == Decimal("3")


def test_bulk_insert_refuses_rows_with_different_keys(store_url):
    with Store.open(store_url) as s, s.transaction(write=True) as conn:
        good = finding_row(1, T1)
        bad = {k: v for k, v in finding_row(2, T1).items() if k != "title"}
        with pytest.raises(ValueError, match="row 1 has keys"):
            insert_rows(conn, findings, [good, bad])


@pytest.fixture
def store_url(tmp_path):
    return f"sqlite:///{tmp_path}/state.db"


def test_encode_finding_is_dumps(store_url):
    with Store.open(store_url) as s:
        result = s.reconcile([make("i-1"), make("i-2", evidence={"k": ["ü", None, 1.5]})], run_id="r1", now=T1,
                             evaluated_rules={"r-tag"})
    for _, f in result.changes:
        assert encode_finding(f, dumps(f["evidence"])) == dumps(f)


def test_round_trips_says_when_decoding_gives_back_the_same_values():
    same = {"a": [1, "x", None, True, 1.5, Decimal("1.50"), date(2024, 1, 1), T1, datetime(2024, 1, 1)], "b": {}}
    assert round_trips(same) and loads(dumps(same)) == same
    for other in ({"t": (1, 2)}, {"s": {"a"}}, {1: "int key"}, {"$decimal": "1"}, float("nan"), Decimal("Infinity"),
                  datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=2))), {"nested": [{"x": (1,)}]}):
        assert not round_trips(other), other


def test_evidence_compared_as_stored_text_updates_the_row_without_an_event(store_url):
    with Store.open(store_url) as s:
        s.reconcile([make("i-1")], run_id="r1", now=T1, evaluated_rules={"r-tag"})
        res = s.reconcile([make("i-1", evidence={"coverage": 0.25})], run_id="r2", now=T2, evaluated_rules={"r-tag"})
        assert res.counts()["unchanged"] == 1 and not res.changes  # evidence is not a watched field
        f = s.get_finding(make("i-1").fingerprint)
        assert f["evidence"] == {"coverage": 0.25} and f["last_seen"] == T2
        assert [e["event"] for e in s.finding_events(f["fingerprint"])] == ["new"]
        # found again unchanged: only last_seen and the run move
        s.reconcile([make("i-1", evidence={"coverage": 0.25})], run_id="r3", now=T2 + timedelta(days=1),
                    evaluated_rules={"r-tag"})
        g = s.get_finding(f["fingerprint"])
        assert g == {**f, "last_seen": T2 + timedelta(days=1)}


def test_pending_payloads_from_the_reconcile_equal_the_stored_ones(store_url):
    """The delivery after a reconcile gets the payloads it wrote; a fresh store object reads and
    decodes them: the same notifications. A payload whose JSON would not give back the same
    values (a tuple, a set) is read back like any other."""
    odd = make("i-odd", evidence={"ids": ("b", "a"), "tags": {"y", "x"}})
    with Store.open(store_url) as s:
        s.reconcile([make("i-1"), make("i-2", cost="7.25"), odd], run_id="r1", now=T1, evaluated_rules={"r-tag"})
        s.reconcile([make("i-1", cost="150"), make("i-2", cost="7.25"), odd], run_id="r2", now=T2,
                    evaluated_rules={"r-tag"})
        handed = DeliveryStore(s).pending()
        kept = s.written_notifications([n.id for n in handed])
        with Store(store_url) as fresh:
            read = DeliveryStore(fresh).pending()
    assert [n.event for n in handed] == ["new", "new", "new", "updated"]
    assert handed == read
    # the last reconcile's payloads were handed over (the tuple/set one was not: it was read back)
    assert {handed[i].id for i in (3,)} == set(kept)
    assert all(kept[n.id][0] is n.finding for n in handed if n.id in kept)
    by_fp = {n.fingerprint: n for n in handed}
    assert by_fp[odd.fingerprint].finding["evidence"] == {"ids": ["b", "a"], "tags": ["x", "y"]}
    assert by_fp[make("i-1").fingerprint].finding["evidence"]["cost"] == Decimal("1.50")


def test_settled_and_mark_done_select_exactly_the_ids_given(store_url):
    """A long run of consecutive outbox ids (one BETWEEN) and scattered ones (an IN list)."""
    with Store.open(store_url) as s:
        s.reconcile([make(f"i-{i:03d}") for i in range(120)], run_id="r1", now=T1, evaluated_rules={"r-tag"})
        d = DeliveryStore(s)
        ids = sorted(n.id for n in d.pending())
        chosen = set(ids[5:80]) | {ids[0], ids[2], ids[90], ids[119]}
        d.settle([{"notification_id": n, "receiver": "console", "fingerprint": "x", "event": "new",
                   "outcome": "suppressed", "message_id": None, "reason": "test", "run_id": "r1", "at": T1}
                  for n in sorted(chosen)])
        assert d.settled(ids) == {(n, "console") for n in chosen}
        d.mark_done(chosen, T2)
        assert {n.id for n in d.pending()} == set(ids) - chosen
        # done rows are read from the database again, as any other
        assert {n.id for n in DeliveryStore(Store(store_url)).pending()} == set(ids) - chosen


def test_select_rows_reads_what_sqlalchemy_reads(store_url):
    from sqlalchemy import select

    from costguard.store.bulk import select_rows

    with Store.open(store_url) as s, s.transaction(write=True) as conn:
        insert_rows(conn, findings, [finding_row(i, T1) for i in range(30)])
        cols = list(findings.c)
        where = findings.c.status == "open"
        want = [dict(r) for r in conn.execute(select(*cols).where(where).order_by(findings.c.fingerprint)).mappings()]
        got = select_rows(conn, cols, where, findings.c.fingerprint)
    assert got == want
    assert [type(v) for v in got[1].values()] == [type(v) for v in want[1].values()]
    assert got[0]["last_seen"].tzinfo is UTC and isinstance(got[0]["monthly_cost"], Decimal)
