"""The state store against real SQLite files: schema/migrations, runs, windows, the finding
lifecycle, snoozes, dry runs, money, the ledger."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from costguard.errors import StoreError
from costguard.model import Finding, fingerprint
from costguard.store import FINDING_KEYS, FindingLookupError, ReconcileResult, Store
from costguard.store.store import SCHEMA_HEAD
from costguard.store.migrate import head_revision
from costguard.store.lifecycle import plan_reconcile
from costguard.store.schema import findings as findings_table
from costguard.store.schema import metadata
from sqlalchemy import insert

UTC = timezone.utc
T1 = datetime(2024, 3, 1, 6, 0, tzinfo=UTC)
T2 = T1 + timedelta(days=1)
T3 = T2 + timedelta(days=1)
TABLES = {"runs", "windows", "findings", "finding_events", "ledger", "alembic_version"}


def make(rule: str, scope: str, cost: str = "100", **kw) -> Finding:
    fields = dict(
        fingerprint=fingerprint(rule, "AWS", "111", scope), rule=rule, kind="tag",
        severity="warning", title=f"{scope} untagged", summary="missing team tag",
        monthly_cost=Decimal(cost), monthly_savings=None, currency="USD", provider="AWS",
        account_id="111", resource_id=scope, source="aws-org", evidence={"coverage": 0.5},
    )  # fmt: skip
    fields.update(kw)
    return Finding(**fields)


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path}/nested/dir/state.db"


@pytest.fixture
def store(url):
    s = Store.open(url)
    yield s
    s.close()


def reconcile(store: Store, findings, now, rules=("r-tag",), **kw) -> ReconcileResult:
    return store.reconcile(findings, run_id=f"run-{now:%d}", now=now, evaluated_rules=set(rules), **kw)


# ---- schema and migrations -------------------------------------------------------------------


def test_fresh_file_gets_schema_at_head(url, tmp_path):
    with Store.open(url) as s:
        assert s.schema_revision() == head_revision() == "0003" == SCHEMA_HEAD
    assert (tmp_path / "nested/dir/state.db").exists()
    engine = create_engine(url)
    assert TABLES <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_sqlite_pragmas(store, url):
    with store._engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000


def test_migrations_match_schema_module(store):
    with store._engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == []


def test_reopen_keeps_data(url):
    with Store.open(url) as s:
        s.start_run("r1", as_of=date(2024, 2, 29), started_at=T1, trigger="cli", dry_run=False)
        reconcile(s, [make("r-tag", "a")], T1)
    with Store.open(url) as s:
        assert s.get_run("r1")["status"] == "running"
        assert len(s.list_findings()) == 1


def test_store_at_0001_then_upgraded_keeps_rows(url):
    s = Store(url)  # no migration yet
    s.upgrade("0001")
    # a finding as the 0001 code wrote it (no outbox then): the plan's rows, inserted as they are
    plan = plan_reconcile([make("r-tag", "a", "12.34")], {}, run_id="r1", now=T1, evaluated_rules={"r-tag"})
    with s.transaction(write=True) as conn:
        conn.execute(insert(findings_table), plan.inserts)
    s.close()
    with Store.open(url) as s:
        assert s.schema_revision() == head_revision()
        [f] = s.list_findings()
        assert f["monthly_cost"] == Decimal("12.34")


def test_unknown_newer_revision_is_a_store_error(url):
    Store.open(url).close()
    con = sqlite3.connect(url.removeprefix("sqlite:///"))
    con.execute("UPDATE alembic_version SET version_num = '9999'")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="cannot migrate state store sqlite:///.*state.db"):
        Store.open(url)


def test_open_errors_name_url_without_password(tmp_path):
    with pytest.raises(StoreError) as info:
        Store.open("nosuchdriver://admin:s3cret@db.example/costguard")
    assert "s3cret" not in str(info.value)
    assert "admin:***@db.example" in str(info.value)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="cannot open state store"):
        Store.open(f"sqlite:///{blocker}/sub/state.db")  # parent is a file


def test_in_memory_store_works():
    with Store.open("sqlite://") as s:
        reconcile(s, [make("r-tag", "a")], T1)
        assert len(s.list_findings()) == 1


# ---- runs and windows ------------------------------------------------------------------------


def test_runs_and_last_run(store):
    store.start_run("r1", as_of=date(2024, 2, 29), started_at=T1, trigger="schedule", dry_run=False)
    store.start_run("r2", as_of=date(2024, 3, 1), started_at=T2, trigger="cli", dry_run=True)
    store.finish_run("r1", status="partial", finished_at=T1 + timedelta(minutes=3),
                     providers={"aws-org": {"status": "ok", "detail": None, "rows": 10, "windows": 2}},
                     conformance={"ok": True}, stats={"findings": 3, "cost": Decimal("1.10")},
                     error=None)  # fmt: skip
    run = store.get_run("r1")
    assert run["status"] == "partial" and run["as_of"] == date(2024, 2, 29)
    assert run["finished_at"] == T1 + timedelta(minutes=3) and run["finished_at"].tzinfo == UTC
    assert run["providers"]["aws-org"]["rows"] == 10
    assert run["stats"]["cost"] == Decimal("1.10")
    assert store.last_run()["run_id"] == "r1"
    assert store.last_run(include_dry_run=True)["run_id"] == "r2"
    assert store.last_run(statuses={"ok"}) is None
    assert store.get_run("nope") is None
    with pytest.raises(StoreError, match="already exists"):
        store.start_run("r1", as_of=date(2024, 2, 29), started_at=T1, trigger="cli", dry_run=False)
    with pytest.raises(ValueError):
        store.start_run("r3", as_of=date(2024, 2, 29), started_at=T1, trigger="cron", dry_run=False)


def test_mark_abandoned_runs(store):
    store.start_run("r1", as_of=date(2024, 2, 29), started_at=T1, trigger="cli", dry_run=False)
    store.start_run("r2", as_of=date(2024, 2, 29), started_at=T2, trigger="cli", dry_run=False)
    store.finish_run("r2", status="ok", finished_at=T2, providers={}, conformance={}, stats={})
    assert store.mark_abandoned_runs(T3) == ["r1"]
    run = store.get_run("r1")
    assert run["status"] == "failed" and run["finished_at"] == T3
    assert run["error"] == "abandoned (process ended without finishing)"
    assert store.get_run("r2")["status"] == "ok"
    assert store.mark_abandoned_runs(T3) == []


def test_a_run_whose_owner_is_alive_is_not_abandoned(store):
    import subprocess
    import sys

    from costguard.procs import ProcessId, start_time, this_process

    me = this_process()
    store.start_run("mine", as_of=date(2024, 2, 29), started_at=T1, trigger="cli", dry_run=False, owner=me)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a process that has ended: its pid is free (or reused by another start time)
    gone = ProcessId(me.host, child.pid, "1")
    store.start_run("orphan", as_of=date(2024, 2, 29), started_at=T1, trigger="cli", dry_run=False, owner=gone)
    store.start_run("elsewhere", as_of=date(2024, 2, 29), started_at=T3 - timedelta(minutes=1), trigger="cli",
                    dry_run=False, owner=ProcessId("another-host", 1, "1"))
    assert store.mark_abandoned_runs(T3) == ["orphan"]  # alive here; another host's heartbeat is fresh
    assert {r["run_id"] for r in store.running_runs()} == {"mine", "elsewhere"}
    store.heartbeat("elsewhere", T3 - timedelta(minutes=1))
    assert store.mark_abandoned_runs(T3 + timedelta(minutes=10)) == ["elsewhere"]  # its heartbeat went stale
    assert start_time(me.pid) == me.start


def test_live_as_of_ignores_dry_runs_and_backtests(store):
    store.start_run("a", as_of=date(2024, 3, 5), started_at=T1, trigger="cli", dry_run=False)
    store.finish_run("a", status="ok", finished_at=T1, providers={}, conformance={}, stats={})
    store.start_run("b", as_of=date(2024, 3, 9), started_at=T2, trigger="cli", dry_run=True)
    store.finish_run("b", status="ok", finished_at=T2, providers={}, conformance={}, stats={})
    store.start_run("c", as_of=date(2024, 3, 1), started_at=T3, trigger="cli", dry_run=False, backtest=True)
    store.finish_run("c", status="ok", finished_at=T3, providers={}, conformance={}, stats={})
    assert store.live_as_of() == date(2024, 3, 5)


def test_timestamps_are_aware_utc_and_naive_is_refused(store):
    plus2 = timezone(timedelta(hours=2))
    store.start_run("r1", as_of=date(2024, 3, 1), started_at=T1.astimezone(plus2), trigger="cli", dry_run=False)
    assert store.get_run("r1")["started_at"] == T1
    assert store.get_run("r1")["started_at"].tzinfo == UTC
    with pytest.raises(ValueError, match="timezone-aware"):
        store.start_run("r2", as_of=date(2024, 3, 1), started_at=datetime(2024, 3, 1), trigger="cli", dry_run=False)


def test_windows_record_and_replace(store):
    d1, d2 = date(2024, 3, 1), date(2024, 3, 2)
    store.record_window("aws-org", d1, rows=10, billing_accounts=["b"], run_id="r1", ingested_at=T1)
    store.record_window("aws-org", d2, rows=5, billing_accounts=["b"], run_id="r1", ingested_at=T1)
    store.record_window("aws-org", d1, rows=12, billing_accounts=["b", "a"], run_id="r2", ingested_at=T2)
    store.record_window("azure", d1, rows=1, billing_accounts=[], run_id="r2", ingested_at=T2)
    assert store.stored_days("aws-org") == {d1, d2}
    assert store.stored_days("gcp") == set()
    with store._engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT rows, run_id FROM windows WHERE source='aws-org' ORDER BY day").all()
    assert rows == [(12, "r2"), (5, "r1")]


# ---- finding lifecycle -----------------------------------------------------------------------


def test_lifecycle_new_resolved_regressed(store):
    a, b = make("r-tag", "a"), make("r-tag", "b")
    r1 = reconcile(store, [a, b], T1)
    assert {f["fingerprint"] for f in r1.new} == {a.fingerprint, b.fingerprint}
    assert [e for e, _ in r1.changes] == ["new", "new"]
    assert all(set(f) == set(FINDING_KEYS) for f in r1.new)

    r2 = reconcile(store, [a], T2)
    assert [f["fingerprint"] for f in r2.unchanged] == [a.fingerprint]
    assert [f["fingerprint"] for f in r2.resolved] == [b.fingerprint]
    assert r2.resolved[0]["status"] == "resolved" and r2.resolved[0]["resolved_at"] == T2
    assert [e for e, _ in r2.changes] == ["resolved"]
    assert store.get_finding(a.fingerprint)["last_seen"] == T2

    r3 = reconcile(store, [a, b], T3)
    [reg] = r3.regressed
    assert reg["fingerprint"] == b.fingerprint and reg["status"] == "open"
    assert reg["times_regressed"] == 1 and reg["first_seen"] == T1 and reg["last_seen"] == T3
    assert reg["resolved_at"] is None
    assert store.get_finding(b.fingerprint) == reg
    events = [e["event"] for e in store.finding_events(b.fingerprint)]
    assert events == ["new", "resolved", "regressed"]


def test_failed_source_and_unevaluated_rule_are_left_alone(store):
    a = make("r-tag", "a")
    other_source = make("r-tag", "z", source="azure-prod")
    other_rule = make("r-budget", "m", kind="budget")
    reconcile(store, [a, other_source, other_rule], T1, rules={"r-tag", "r-budget"})
    r2 = reconcile(store, [], T2, rules={"r-tag"}, skip_sources={"aws-org"})
    assert [f["fingerprint"] for f in r2.resolved] == [other_source.fingerprint]
    assert store.get_finding(a.fingerprint)["status"] == "open"
    assert store.get_finding(other_rule.fingerprint)["status"] == "open"


def test_updated_on_change_above_one_cent_only(store):
    a = make("r-tag", "a", "100.00")
    reconcile(store, [a], T1)
    r = reconcile(store, [replace(a, monthly_cost=Decimal("100.001"))], T2)
    assert len(r.unchanged) == 1 and not r.updated
    assert store.get_finding(a.fingerprint)["monthly_cost"] == Decimal("100.001")  # refreshed anyway
    r = reconcile(store, [replace(a, monthly_cost=Decimal("100.02"))], T3)
    assert len(r.updated) == 1 and r.changes[0][0] == "updated"
    r = reconcile(store, [replace(a, monthly_cost=Decimal("100.02"), severity="critical")], T3)
    assert r.updated[0]["severity"] == "critical"
    r = reconcile(store, [replace(a, monthly_cost=Decimal("100.02"), severity="critical",
                                  monthly_savings=Decimal("5"))], T3)  # fmt: skip
    assert len(r.updated) == 1
    [*_, last] = store.finding_events(a.fingerprint)
    assert last["detail"]["changed"]["monthly_savings"] == {"from": None, "to": Decimal("5")}


def test_duplicate_fingerprints_rejected(store):
    a = make("r-tag", "a")
    with pytest.raises(ValueError, match="share fingerprint"):
        reconcile(store, [a, a], T1)


def test_persist_false_writes_nothing(store):
    a, b = make("r-tag", "a"), make("r-tag", "b")
    reconcile(store, [a], T1)
    before = store.list_findings(status="all")
    dry = reconcile(store, [b], T2, persist=False)
    assert [f["fingerprint"] for f in dry.new] == [b.fingerprint]
    assert [f["fingerprint"] for f in dry.resolved] == [a.fingerprint]
    assert store.list_findings(status="all") == before
    assert [e["event"] for e in store.finding_events(a.fingerprint)] == ["new"]
    real = reconcile(store, [b], T2)
    assert real.counts() == dry.counts()


def test_money_round_trips_exactly(store):
    cost, savings = Decimal("123456789012345678.0123456789"), Decimal("0.0000000001")
    a = make("r-tag", "a", monthly_cost=cost, monthly_savings=savings,
             evidence={"actual": Decimal("15234.56"), "coverage": 0.93, "day": date(2024, 3, 1)})  # fmt: skip
    [new] = reconcile(store, [a], T1).new
    got = store.get_finding(a.fingerprint)
    assert got["monthly_cost"] == cost and isinstance(got["monthly_cost"], Decimal)
    assert got["monthly_savings"] == savings
    assert str(got["monthly_cost"]) == str(new["monthly_cost"]) == "123456789012345678.0123456789"
    assert got["evidence"] == {"actual": Decimal("15234.56"), "coverage": 0.93, "day": date(2024, 3, 1)}
    assert str(reconcile(store, [replace(a, monthly_cost=Decimal("0.10"))], T2).updated[0]["monthly_cost"]) == "0.1"


def test_list_findings_order_filters_and_counts(store):
    fs = [
        make("r-tag", "cheap-critical", "9.5", severity="critical"),
        make("r-tag", "dear-warning", "1000", severity="warning"),
        make("r-tag", "dearer-critical", "10.25", severity="critical"),
        make("r-budget", "budget", "50", kind="budget", severity="info"),
    ]
    reconcile(store, fs, T1, rules={"r-tag", "r-budget"})
    titles = [f["title"] for f in store.list_findings()]
    assert titles == ["dearer-critical untagged", "cheap-critical untagged", "dear-warning untagged", "budget untagged"]
    assert [f["kind"] for f in store.list_findings(kind="budget")] == ["budget"]
    assert store.list_findings(status="resolved") == []
    assert store.open_findings_count() == {("tag", "critical"): 2, ("tag", "warning"): 1, ("budget", "info"): 1}
    with pytest.raises(ValueError):
        store.list_findings(status="closed")


# ---- snoozes ---------------------------------------------------------------------------------


def test_snooze_by_prefix_until_date_then_open_again(store):
    a = make("r-tag", "a")
    reconcile(store, [a], T1)
    snoozed = store.snooze(a.fingerprint[:8], until=T2.date(), reason="migration next week", now=T1)
    assert snoozed["status"] == "snoozed" and snoozed["snoozed_until"] == T2.date()
    assert store.list_findings() == [] and len(store.list_findings(status="snoozed")) == 1
    assert store.open_findings_count() == {}

    during = reconcile(store, [replace(a, monthly_cost=Decimal("500"))], T2)  # until is inclusive
    assert [f["status"] for f in during.snoozed] == ["snoozed"] and during.changes == []
    assert store.get_finding(a.fingerprint)["monthly_cost"] == Decimal("500")

    after = reconcile(store, [a], T3)
    [f] = after.unsnoozed
    assert f["status"] == "open" and f["snoozed_until"] is None
    assert after.changes == [("unsnoozed", f)]
    events = [e["event"] for e in store.finding_events(a.fingerprint)]
    assert events == ["new", "snoozed", "updated", "unsnoozed"]


def test_snoozed_finding_can_resolve_silently(store):
    a = make("r-tag", "a")
    reconcile(store, [a], T1)
    store.snooze(a.fingerprint, until=T3.date(), reason="known", now=T1)
    r = reconcile(store, [], T2)
    assert [f["status"] for f in r.resolved] == ["resolved"] and r.changes == []
    back = reconcile(store, [a], T2 + timedelta(hours=1))  # snooze still running: silent
    assert back.regressed == [] and [f["status"] for f in back.snoozed] == ["snoozed"]
    assert back.changes == []


def test_snooze_errors(store):
    reconcile(store, [make("r-tag", "a")], T1)
    with pytest.raises(FindingLookupError, match="no finding with fingerprint 'ffffffff'") as info:
        store.snooze("ffffffff", until=T2.date(), reason="x", now=T1)
    assert isinstance(info.value, KeyError)
    with pytest.raises(FindingLookupError, match="at least 6"):
        store.snooze("abc", until=T2.date(), reason="x", now=T1)
    with pytest.raises(ValueError, match="in the past"):
        store.snooze(make("r-tag", "a").fingerprint, until=date(2024, 1, 1), reason="x", now=T1)


def test_ambiguous_prefix(store):
    f1 = make("r-tag", "a", fingerprint="abcdef0001")
    f2 = make("r-tag", "b", fingerprint="abcdef0002")
    reconcile(store, [f1, f2], T1)
    assert store.get_finding("abcdef0001")["resource_id"] == "a"
    assert store.get_finding("abcdef0002")["resource_id"] == "b"
    with pytest.raises(FindingLookupError, match="ambiguous"):
        store.get_finding("abcdef000")
    with pytest.raises(FindingLookupError, match="ambiguous"):
        store.snooze("abcdef0", until=T2.date(), reason="x", now=T1)
    assert store.get_finding("zzzzzz") is None
    assert store.get_finding("abc") is None  # too short for a prefix


# ---- ledger ----------------------------------------------------------------------------------


def test_reconcile_writes_the_outbox_in_the_same_transaction_and_the_ledger_settles_once(store):
    from costguard.notify.model import Item, Message
    from costguard.store.delivery import DeliveryStore

    d = DeliveryStore(store)
    reconcile(store, [make("r-tag", "a"), make("r-tag", "b")], T1)
    pending = d.pending()
    assert [(n.event, n.finding["resource_id"]) for n in pending] == [("new", "a"), ("new", "b")]
    assert pending[0].finding["monthly_cost"] == Decimal("100")  # the snapshot keeps exact money
    reconcile(store, [], T2, persist=False)
    assert len(d.pending()) == 2  # a dry run writes no outbox row either
    n = pending[0]
    m = Message("slack-payments", f"owner=-|fingerprint={n.fingerprint}", {"owner": "-"},
                (Item(n.fingerprint, "new", n.finding, (n.id,)),), "m1")
    d.plan(m, run_id="r1", at=T1)
    assert d.in_flight() == {(n.id, "slack-payments")}
    d.record_sent(m, state={"ts": "1712.55"}, run_id="r1", at=T1)
    d.record_sent(m, state={"ts": "1712.55"}, run_id="r1", at=T1)  # a second commit adds nothing
    assert [e["outcome"] for e in d.ledger_entries(fingerprint=n.fingerprint)] == ["sent"]
    assert d.state("slack-payments", m.group_key) == {"ts": "1712.55"}
    assert d.in_flight() == set()
    assert d.settled([n.id]) == {(n.id, "slack-payments")}
    d.mark_done([n.id], T1)
    assert [x.id for x in d.pending()] == [pending[1].id]


def test_a_seen_again_finding_keeps_what_did_not_change_and_stores_what_did(store):
    """Only the columns that differ are rewritten (an unchanged finding does not re-encode its
    evidence), but every change lands: evidence, texts, owner, money and last_seen."""
    reconcile(store, [make("r-tag", "a"), make("r-tag", "b")], T1)
    reconcile(store, [make("r-tag", "a", evidence={"coverage": 0.5, "window": "2024-03-02"}, title="a again"),
                      make("r-tag", "b")], T2)
    a, b = (store.get_finding(fingerprint("r-tag", "AWS", "111", s)) for s in ("a", "b"))
    assert a["evidence"] == {"coverage": 0.5, "window": "2024-03-02"} and a["title"] == "a again"
    assert b["evidence"] == {"coverage": 0.5} and b["title"] == "b untagged"
    assert a["last_seen"] == b["last_seen"] == T2 and a["first_seen"] == T1
    reconcile(store, [make("r-tag", "a", cost="250", owner="team-x"), make("r-tag", "b")], T3)
    a = store.get_finding(fingerprint("r-tag", "AWS", "111", "a"))
    assert (a["evidence"], a["monthly_cost"], a["owner"], a["last_seen"]) == ({"coverage": 0.5}, Decimal("250"), "team-x", T3)


def test_a_store_at_head_opens_without_alembic(url):
    """Every run opens the store: at the newest revision that costs one SELECT, not an Alembic
    import and an upgrade (0.18 s of start-up); an older store still migrates."""
    import subprocess
    import sys

    Store.open(url).close()
    code = ("import sys; from costguard.store import Store; s = Store.open(sys.argv[1]); s.close(); "
            "print('alembic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0002'")
    engine.dispose()
    with pytest.raises(StoreError):  # 0003's tables exist already: Alembic was asked to migrate
        Store.open(url).close()
