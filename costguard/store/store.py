"""``Store``: the repository over the state database (runs, windows, findings, ledger).

Every public method is one transaction. Database failures surface as ``StoreError`` naming the
(password-redacted) URL.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Text, cast, delete, func, insert, inspect, select, text, update
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.exc import NoSuchModuleError

from ..errors import CostguardError, StoreError
from ..model import SEVERITY_RANK, Finding
from .engine import WRITE_OPTION, make_engine, redact_url, sqlite_file
from .bulk import Encoded, insert_rows, select_rows, update_rows
from .lifecycle import ROW_KEYS, Plan, ReconcileResult, plan_reconcile, to_finding_dict
from .schema import FINDING_STATUSES, RUN_STATUSES, TRIGGERS, finding_events, findings, outbox
from .schema import runs, windows
from .types import dumps, ensure_utc, loads, round_trips
from ..procs import ProcessId, owner_gone
from .types import UTC

ABANDONED = "abandoned (process ended without finishing)"
MIN_PREFIX = 6
_CHUNK = 500  # bound parameters per IN (...)


class FindingLookupError(CostguardError, KeyError):
    """No finding (or more than one) matches a fingerprint or prefix."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "finding not found"


#: the newest migration's revision (``store/migrations/versions``); ``tests/test_store.py`` checks
#: it against Alembic's head, so a new migration must move it
SCHEMA_HEAD = "0003"


class Store:
    """The state database. ``Store.open(url)`` to use it; ``Store(url)`` does not migrate."""

    def __init__(self, url: str) -> None:
        self.url = redact_url(url)
        try:
            self._engine = make_engine(url)
        except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
            raise StoreError(f"cannot open state store {self.url}: {exc}") from exc
        # outbox id -> (finding, detail) this object wrote and committed, for the delivery that
        # follows in the same process (see ``written_notifications``)
        self._written: dict[int, tuple[dict[str, Any], Any]] = {}

    @classmethod
    def open(cls, url: str) -> "Store":
        """Open (creating the file and its folder if needed) and migrate to the latest schema."""
        store = cls(url)
        try:
            store.upgrade()
        except BaseException:
            store.close()
            raise
        return store

    def upgrade(self, revision: str = "head") -> None:
        """``alembic upgrade`` in one transaction; existing data is kept. Creates the folder of
        a SQLite file."""
        path = sqlite_file(self._engine.url)
        try:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot open state store {self.url}: {exc}") from exc
        try:
            if revision == "head" and self._at_head():
                return  # the usual case: no Alembic to import (0.18 s of every run's start-up)
            from . import migrate

            with self._engine.connect() as conn:
                conn.execution_options(**{WRITE_OPTION: True})
                with conn.begin():
                    migrate.upgrade(conn, revision)
        except Exception as exc:
            raise StoreError(f"cannot migrate state store {self.url}: {exc}") from exc

    def _at_head(self) -> bool:
        """The database's Alembic revision is :data:`SCHEMA_HEAD` (read with plain SQL)."""
        with self._engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return False
            return list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars()) == [SCHEMA_HEAD]

    def schema_revision(self) -> str | None:
        from . import migrate

        with self._tx() as conn:
            return migrate.current_revision(conn)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    @contextmanager
    def _tx(self, *, write: bool = False) -> Iterator[Connection]:
        try:
            with self._engine.connect() as conn:
                if write:
                    conn.execution_options(**{WRITE_OPTION: True})
                with conn.begin():
                    yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"state store {self.url}: {exc}") from exc

    # ---- runs --------------------------------------------------------------------------------

    def start_run(
        self, run_id: str, *, as_of: date, started_at: datetime, trigger: str, dry_run: bool,
        backtest: bool = False, owner: ProcessId | None = None,
    ) -> None:
        if trigger not in TRIGGERS:
            raise ValueError(f"trigger must be one of {TRIGGERS}, got {trigger!r}")
        started_at = ensure_utc(started_at, "started_at")
        row = {
            "run_id": run_id, "started_at": started_at, "as_of": as_of,
            "trigger": trigger, "dry_run": bool(dry_run), "backtest": bool(backtest), "status": "running",
            "owner_host": owner.host if owner else None, "owner_pid": owner.pid if owner else None,
            "owner_start": owner.start if owner else None, "heartbeat_at": started_at,
        }  # fmt: skip
        try:
            with self._tx(write=True) as conn:
                conn.execute(insert(runs).values(**row))
        except StoreError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise StoreError(f"state store {self.url}: run {run_id} already exists") from exc
            raise

    def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        finished_at: datetime,
        providers: dict,
        conformance: dict,
        stats: dict,
        error: str | None = None,
    ) -> None:
        if status not in RUN_STATUSES or status == "running":
            raise ValueError(f"finished status must be one of {RUN_STATUSES[1:]}, got {status!r}")
        values = {
            "status": status, "finished_at": ensure_utc(finished_at, "finished_at"),
            "providers": providers, "conformance": conformance, "stats": stats, "error": error,
        }  # fmt: skip
        with self._tx(write=True) as conn:
            done = conn.execute(update(runs).where(runs.c.run_id == run_id).values(**values))
            if done.rowcount != 1:
                raise StoreError(f"state store {self.url}: no run {run_id} to finish")

    def get_run(self, run_id: str) -> dict | None:
        with self._tx() as conn:
            row = conn.execute(select(runs).where(runs.c.run_id == run_id)).mappings().first()
        return dict(row) if row else None

    def last_run(
        self, *, statuses: Collection[str] | None = None, include_dry_run: bool = False
    ) -> dict | None:
        q = select(runs).order_by(runs.c.started_at.desc(), runs.c.run_id.desc()).limit(1)
        if statuses is not None:
            q = q.where(runs.c.status.in_(list(statuses)))
        if not include_dry_run:
            q = q.where(runs.c.dry_run.is_(False))
        with self._tx() as conn:
            row = conn.execute(q).mappings().first()
        return dict(row) if row else None

    def heartbeat(self, run_id: str, at: datetime) -> None:
        """The run's owner is alive (written every few seconds while a cycle runs)."""
        with self._tx(write=True) as conn:
            conn.execute(update(runs).where(runs.c.run_id == run_id).values(heartbeat_at=ensure_utc(at, "at")))

    def running_runs(self) -> list[dict]:
        with self._tx() as conn:
            return [dict(r) for r in conn.execute(select(runs).where(runs.c.status == "running")).mappings()]

    def mark_abandoned_runs(self, now: datetime) -> list[str]:
        """Runs still 'running' whose owning process has ended -> 'failed' (abandoned). A run
        whose owner is alive (a cycle worker that outlived its daemon, a `run --once` in another
        terminal) is left alone. Returns the run ids marked."""
        now = ensure_utc(now, "now")
        gone = [r["run_id"] for r in self.running_runs()
                if owner_gone(r["owner_host"], r["owner_pid"], r["owner_start"], r["heartbeat_at"], now)]
        if gone:
            values = {"status": "failed", "finished_at": now, "error": ABANDONED}
            with self._tx(write=True) as conn:
                conn.execute(update(runs).where(runs.c.run_id.in_(gone) & (runs.c.status == "running")).values(**values))
        return gone

    def last_source_status(self, sources: Collection[str], *, lookback: int = 200) -> dict[str, dict]:
        """For each source, how its newest recorded ingest ended: ``{status, detail, run_id}``
        (runs that changed the lake: not dry runs, not unrecorded backtests)."""
        want = set(sources)
        out: dict[str, dict] = {}
        q = (select(runs.c.run_id, runs.c.providers).where(runs.c.dry_run.is_(False) & runs.c.backtest.is_(False)
             & (runs.c.status != "running")).order_by(runs.c.started_at.desc()).limit(lookback))
        with self._tx() as conn:
            for run_id, providers in conn.execute(q):
                for name, p in (providers or {}).items():
                    if name in want and name not in out:
                        out[name] = {"status": p.get("status"), "detail": p.get("detail"), "run_id": run_id}
                if len(out) == len(want):
                    break
        return out

    def live_as_of(self) -> date | None:
        """The as-of day of the newest run that updated the findings store (not a dry run, not an
        unrecorded backtest, not failed): a run with an earlier as-of day is a backtest."""
        q = select(func.max(runs.c.as_of)).where(
            runs.c.dry_run.is_(False) & runs.c.backtest.is_(False) & runs.c.status.in_(("ok", "partial"))
        )
        with self._tx() as conn:
            return conn.execute(q).scalar()

    # ---- windows -----------------------------------------------------------------------------

    def record_window(
        self,
        source: str,
        day: date,
        *,
        rows: int,
        billing_accounts: list[str],
        run_id: str,
        ingested_at: datetime,
    ) -> None:
        row = {
            "source": source, "day": day, "rows": int(rows),
            "billing_accounts": sorted(set(billing_accounts)), "run_id": run_id,
            "ingested_at": ensure_utc(ingested_at, "ingested_at"),
        }  # fmt: skip
        key = (windows.c.source == source) & (windows.c.day == day)
        with self._tx(write=True) as conn:
            conn.execute(delete(windows).where(key))
            if rows:  # a re-pulled day that has no rows any more is gone from the lake
                conn.execute(insert(windows).values(**row))

    def stored_days(self, source: str) -> set[date]:
        with self._tx() as conn:
            days = conn.execute(select(windows.c.day).where(windows.c.source == source))
            return set(days.scalars())

    def ingest_times(self) -> dict[str, dict[date, datetime]]:
        """When each stored day of each source was last read: ``{source: {day: ingested_at}}``."""
        with self._tx() as conn:
            rows = conn.execute(select(windows.c.source, windows.c.day, windows.c.ingested_at))
            out: dict[str, dict[date, datetime]] = {}
            for source, day, at in rows:
                out.setdefault(source, {})[day] = at
            return out

    # ---- findings ----------------------------------------------------------------------------

    def reconcile(
        self,
        findings_: Sequence[Finding],
        *,
        run_id: str,
        now: datetime,
        evaluated_rules: Collection[str],
        skip_sources: Collection[str] = (),
        persist: bool = True,
        repeat_after: timedelta | None = None,
    ) -> ReconcileResult:
        """Apply one run's findings to the lifecycle (see ``lifecycle.py``) in one transaction,
        together with their pending notifications (the outbox). ``persist=False`` (dry run)
        computes the same result and writes nothing. ``repeat_after``: see ``plan_reconcile``."""
        now = ensure_utc(now, "now")
        fps = [f.fingerprint for f in findings_]
        with self._tx(write=persist) as conn:
            existing, stored = self._existing(conn, fps)
            last = self._last_notified(conn, [fp for fp, r in existing.items() if r["status"] == "open"]) \
                if repeat_after is not None else {}
            plan = plan_reconcile(
                findings_, existing, run_id=run_id, now=now,
                evaluated_rules=evaluated_rules, skip_sources=skip_sources,
                last_notified=last, repeat_after=repeat_after,
            )  # fmt: skip
            written = _write_plan(conn, plan, existing, stored, now=now, run_id=run_id) if persist else None
        if written is not None:  # committed
            self._written = written
        return plan.result

    def written_notifications(self, ids: Collection[int]) -> dict[int, tuple[dict[str, Any], Any]]:
        """``(finding, detail)`` of the outbox rows among ``ids`` that the last ``reconcile`` of
        this object wrote, as the values it encoded (only those whose JSON decodes to an equal
        value of the same types: ``types.round_trips``), so the delivery that follows in the same
        process does not decode 10,000 payloads it already has. Outbox payloads never change."""
        have = self._written
        return {i: have[i] for i in ids if i in have}

    def forget_notifications(self, ids: Collection[int]) -> None:
        """Settled outbox rows: no need to keep their payloads in memory."""
        for i in ids:
            self._written.pop(i, None)

    @staticmethod
    def _existing(conn: Connection, fps: Sequence[str]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """The stored rows ``plan_reconcile`` needs: every non-resolved finding and every one this
        run found. The evidence of a finding this run found is not decoded (this run's replaces
        it): it comes back as its stored JSON text, in the second dict, to compare with the new."""
        cols = [*(findings.c[k] for k in ROW_KEYS if k != "evidence"), cast(findings.c.evidence, Text).label("evidence")]

        def rows(where: Any) -> list[dict[str, Any]]:
            return select_rows(conn, cols, where)

        existing = {r["fingerprint"]: r for r in rows(findings.c.status != "resolved")}
        for i in range(0, len(fps), _CHUNK):
            chunk = [fp for fp in fps[i : i + _CHUNK] if fp not in existing]
            if chunk:
                existing.update((r["fingerprint"], r) for r in rows(findings.c.fingerprint.in_(chunk)))
        present = set(fps)
        stored: dict[str, str] = {}
        for fp, r in existing.items():
            text_ = r.pop("evidence")
            if fp in present:
                stored[fp] = text_
            else:  # resolved by this run (or left alone): its stored evidence is carried on
                r["evidence"] = loads(text_) if text_ is not None else None
        return existing, stored

    @staticmethod
    def _last_notified(conn: Connection, fps: Sequence[str]) -> dict[str, datetime]:
        out: dict[str, datetime] = {}
        for i in range(0, len(fps), _CHUNK):
            q = (select(outbox.c.fingerprint, func.max(outbox.c.created_at))
                 .where(outbox.c.fingerprint.in_(fps[i : i + _CHUNK])).group_by(outbox.c.fingerprint))
            for fp, at in conn.execute(q):
                # max() of a custom type comes back raw on SQLite: re-read it as UTC
                out[fp] = at if isinstance(at, datetime) else datetime.fromisoformat(str(at))
        return {fp: (at if at.tzinfo else at.replace(tzinfo=UTC)) for fp, at in out.items()}

    def list_findings(self, *, status: str = "open", kind: str | None = None, owner: str | None = None,
                      min_severity: str | None = None, rule: str | None = None) -> list[dict]:
        """Findings by status (open|snoozed|resolved|all), most severe then most costly first.
        ``owner="-"`` selects unowned findings; ``min_severity`` keeps that severity and worse."""
        if status != "all" and status not in FINDING_STATUSES:
            allowed = (*FINDING_STATUSES, "all")
            raise ValueError(f"status must be one of {allowed}, got {status!r}")
        q = select(findings)
        if status != "all":
            q = q.where(findings.c.status == status)
        if kind is not None:
            q = q.where(findings.c.kind == kind)
        if owner is not None:
            q = q.where(findings.c.owner.is_(None) if owner == "-" else findings.c.owner == owner)
        if min_severity is not None:
            q = q.where(findings.c.severity.in_([s for s, r in SEVERITY_RANK.items() if r >= SEVERITY_RANK[min_severity]]))
        if rule is not None:
            q = q.where(findings.c.rule == rule)
        with self._tx() as conn:
            rows = [to_finding_dict(r) for r in conn.execute(q).mappings()]
        # sorted here: exact Decimal order (SQLite stores amounts as text)
        rows.sort(key=_severity_then_cost)
        return rows

    #: what the cycle footer adds up (``cycle.footer_lines``): no texts, no evidence to decode
    MONEY_KEYS = ("fingerprint", "kind", "severity", "provider", "account_id", "resource_id",
                  "monthly_cost", "monthly_savings", "currency")

    def open_money(self) -> list[dict]:
        """The open findings' :attr:`MONEY_KEYS` only (the footer of a cycle with 10,000 findings
        read whole rows, evidence decoded, for 0.6 s)."""
        q = select(*(findings.c[k] for k in self.MONEY_KEYS)).where(findings.c.status == "open")
        with self._tx() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def get_finding(self, fingerprint: str) -> dict | None:
        """By fingerprint or by a unique prefix of at least 6 characters; an ambiguous prefix
        raises ``FindingLookupError``."""
        with self._tx() as conn:
            row = self._lookup(conn, fingerprint)
        return to_finding_dict(row) if row else None

    def _lookup(self, conn: Connection, fingerprint: str) -> dict[str, Any] | None:
        fingerprint = fingerprint.strip()
        fp = findings.c.fingerprint
        row = conn.execute(select(findings).where(fp == fingerprint)).mappings().first()
        if row is not None or len(fingerprint) < MIN_PREFIX:
            return dict(row) if row else None
        q = select(findings).where(fp.startswith(fingerprint, autoescape=True)).limit(3)
        rows = conn.execute(q).mappings().all()
        if len(rows) > 1:
            some = ", ".join(r["fingerprint"] for r in rows[:2]) + (", …" if len(rows) > 2 else "")
            raise FindingLookupError(
                f"fingerprint prefix {fingerprint!r} is ambiguous (matches {some}); "
                "give more characters"
            )
        return dict(rows[0]) if rows else None

    def snooze(self, fingerprint: str, *, until: date, reason: str, now: datetime) -> dict:
        """Silence a finding until ``until`` (inclusive). A resolved finding stays resolved but
        keeps the snooze, so it comes back silently if it regresses before that date."""
        now = ensure_utc(now, "now")
        if until < now.date():
            raise ValueError(f"snooze date {until.isoformat()} is in the past")
        with self._tx(write=True) as conn:
            row = self._lookup(conn, fingerprint)
            if row is None:
                short = len(fingerprint.strip()) < MIN_PREFIX
                hint = f" (a prefix needs at least {MIN_PREFIX} characters)" if short else ""
                raise FindingLookupError(
                    f"no finding with fingerprint {fingerprint!r}{hint}; "
                    "see `costguard findings --status all`"
                )
            values = {"snoozed_until": until, "snooze_reason": reason}
            if row["status"] != "resolved":
                values["status"] = "snoozed"
            key = findings.c.fingerprint == row["fingerprint"]
            conn.execute(update(findings).where(key).values(**values))
            event = {
                "fingerprint": row["fingerprint"], "run_id": None, "event": "snoozed", "at": now,
                "detail": {"until": until, "reason": reason},
            }  # fmt: skip
            conn.execute(insert(finding_events).values(**event))
            row.update(values)
        return to_finding_dict(row)

    def finding_events(self, fingerprint: str) -> list[dict]:
        """The recorded history of one finding, oldest first."""
        q = select(finding_events).where(finding_events.c.fingerprint == fingerprint)
        with self._tx() as conn:
            return [dict(r) for r in conn.execute(q.order_by(finding_events.c.id)).mappings()]

    def finding_events_between(self, start: datetime, end: datetime) -> list[dict]:
        """Every finding's history events with ``start <= at < end`` (aware datetimes), oldest first
        (the weekly digest's "new this week" and "fixed this week")."""
        at = finding_events.c.at
        q = select(finding_events).where((at >= ensure_utc(start, "start")) & (at < ensure_utc(end, "end")))
        with self._tx() as conn:
            return [dict(r) for r in conn.execute(q.order_by(at, finding_events.c.id)).mappings()]

    def open_findings_count(self) -> dict[tuple[str, str], int]:
        q = (
            select(findings.c.kind, findings.c.severity, func.count())
            .where(findings.c.status == "open")
            .group_by(findings.c.kind, findings.c.severity)
        )
        with self._tx() as conn:
            return {(k, s): n for k, s, n in conn.execute(q)}

    def transaction(self, *, write: bool = False):  # noqa: ANN201 - a context manager of a Connection
        """One transaction on the state database (``write=True`` takes the write lock up front)."""
        return self._tx(write=write)


def _severity_then_cost(row: dict[str, Any]) -> tuple[int, Any, str]:
    return (-SEVERITY_RANK.get(row["severity"], -1), -row["monthly_cost"], row["fingerprint"])


__all__ = ["ABANDONED", "FindingLookupError", "ReconcileResult", "Store"]


_ABSENT = object()


def _write_plan(conn: Connection, plan: Plan, existing: Mapping[str, Mapping[str, Any]], stored: Mapping[str, str],
                *, now: datetime, run_id: str) -> dict[int, tuple[dict[str, Any], Any]]:
    """Write a reconcile plan: new rows, the changed columns of stored rows, history events and
    the outbox. Each finding's evidence is JSON-encoded once: the same text is compared with the
    stored one, written to the findings row and spliced into its outbox payload. Returns the
    outbox rows written, by id, as ``(finding, detail)`` where their JSON round-trips."""
    evidence: dict[str, tuple[Any, Encoded]] = {}

    def evidence_text(fp: str, value: Any) -> Encoded:
        have = evidence.get(fp)
        if have is not None and have[0] is value:
            return have[1]
        text_ = Encoded(dumps(value))
        evidence[fp] = (value, text_)
        return text_

    insert_rows(conn, findings, plan.inserts,
                replace={"evidence": [evidence_text(r["fingerprint"], r["evidence"]) for r in plan.inserts]})
    touched: list[str] = []  # found again, with nothing to write but last_seen and last_run_id
    changed: list[dict[str, Any]] = []
    for row in plan.updates:
        fp = row["fingerprint"]
        old = existing[fp]
        diff = {k: v for k, v in row.items() if k != "evidence" and k != "fingerprint" and old.get(k, _ABSENT) != v}
        if fp in stored:
            text_ = evidence_text(fp, row["evidence"])
            if text_ != stored[fp]:
                diff["evidence"] = text_
        elif old.get("evidence", _ABSENT) != row["evidence"]:
            diff["evidence"] = evidence_text(fp, row["evidence"])
        if diff.get("last_seen", _ABSENT) == now and diff.get("last_run_id", _ABSENT) == run_id:
            del diff["last_seen"], diff["last_run_id"]
            touched.append(fp)
        if diff:
            changed.append({"fingerprint": fp, **diff})
    for i in range(0, len(touched), _CHUNK):
        conn.execute(update(findings).where(findings.c.fingerprint.in_(touched[i : i + _CHUNK]))
                     .values(last_seen=now, last_run_id=run_id))
    update_rows(conn, findings, "fingerprint", changed)
    details: dict[int, tuple[Any, Encoded]] = {}  # an event and its notification share one detail

    def detail_text(value: Any) -> Encoded | None:
        if value is None:
            return None
        have = details.get(id(value))
        if have is None:
            have = details[id(value)] = (value, Encoded(dumps(value)))  # the value kept: its id stays unique
        return have[1]

    insert_rows(conn, finding_events, plan.events, replace={"detail": [detail_text(e["detail"]) for e in plan.events]})
    before = conn.execute(select(func.max(outbox.c.id))).scalar() or 0
    insert_rows(conn, outbox, plan.outbox, replace={
        "finding": [encode_finding(o["finding"], evidence_text(o["fingerprint"], o["finding"]["evidence"]))
                    for o in plan.outbox],
        "detail": [detail_text(o["detail"]) for o in plan.outbox],
    })
    if not plan.outbox:
        return {}
    mine = {(o["fingerprint"], o["event"]): o for o in plan.outbox}
    q = select(outbox.c.id, outbox.c.fingerprint, outbox.c.event).where((outbox.c.id > before) & (outbox.c.run_id == run_id))
    written: dict[int, tuple[dict[str, Any], Any]] = {}
    for id_, fp, event in conn.execute(q):
        o = mine.get((fp, event))
        if o is not None and round_trips(o["finding"]) and round_trips(o["detail"]):
            written[id_] = (o["finding"], o["detail"])
    return written


def encode_finding(finding: Mapping[str, Any], evidence: str) -> Encoded:
    """``dumps(finding)`` of a finding dict whose evidence is already encoded as ``evidence``:
    the same text, without encoding the evidence again. The finding is encoded with a marker for
    its evidence, then the marker is replaced: the first ``"evidence":`` key outside a string is
    the finding's own (the keys before it hold no objects)."""
    text_ = dumps({**finding, "evidence": _MARK})
    return Encoded(text_.replace(_MARKED, '"evidence":' + evidence, 1))


_MARK = "\x00evidence\x00"
_MARKED = '"evidence":' + dumps(_MARK)
