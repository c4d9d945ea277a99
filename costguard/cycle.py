"""One cycle: ingest every provider → evaluate rules → resolve owners → reconcile findings →
deliver to receivers → record the run. Every collaborator is passed in (``app.py`` builds them).

Three kinds of run:

- a **normal** run lands what it ingested and updates the findings store;
- a **dry run** (``--dry-run``) stages the ingest, evaluates over the staged days, prints what
  would change and be sent, then throws the staging away: neither the lake nor the findings
  store changes;
- a **backtest** (``--as-of`` earlier than the last recorded run's as-of day) behaves like a dry
  run, unless ``record=True`` (``--record``) says to land and reconcile it anyway.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import polars as pl
import structlog

from costguard.catalog import Catalog
from costguard.catalog import bundled as bundled_catalog
from costguard.config import IngestConfig
from costguard.errors import CycleCancelled
from costguard.ingest import SourceResult, Staged, ingest_source, land
from costguard.lake import Lake
from costguard.logs import get_logger
from costguard.model import SEVERITY_RANK, ConnectionStatus, Finding, NativeBudget, new_run_id
from costguard.owners import OwnerResolver
from costguard.procs import HEARTBEAT_SECONDS, this_process
from costguard.providers import Horizon, Provider
from costguard.rules import RuleContext, RuleInstance, evaluate
from costguard.rules.base import fmt_money
from costguard.staging import staged_days
from costguard.store import Store

log = get_logger("costguard.cycle")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3


@dataclass
class CycleOutcome:
    run_id: str
    status: str
    exit_code: int
    mode: str = "normal"  # normal | dry-run | backtest
    sources: dict[str, SourceResult] = field(default_factory=dict)
    rule_errors: dict[str, str] = field(default_factory=dict)
    changes: list[tuple[str, dict]] = field(default_factory=list)
    receiver_errors: dict[str, str] = field(default_factory=dict)


class Cycle:
    """A configured cycle over its collaborators."""

    def __init__(
        self,
        *,
        store: Store,
        lake: Lake,
        providers: Sequence[Provider],
        delivery: Any,  # costguard.notify.pipeline.Delivery
        rules: Sequence[RuleInstance],
        owners: OwnerResolver,
        ingest: IngestConfig,
        out: TextIO,
        clock: Callable[[], datetime],
        progress: Callable[[str], None] = lambda _m: None,
        stop: threading.Event | None = None,
        hint_config: Path | None = None,
        on_close: Sequence[Callable[[], None]] = (),
        catalog: Catalog | None = None,
        repeat_after: timedelta | None = None,
    ) -> None:
        self.store = store
        self.lake = lake
        self.providers = list(providers)
        self.delivery = delivery
        self.repeat_after = repeat_after
        self.rules = list(rules)
        self.owners = owners
        self.ingest = ingest
        self.out = out
        self.clock = clock
        self.progress = progress
        self.stop = stop or threading.Event()
        self.hint_config = hint_config
        self._on_close = list(on_close)
        self._lock = threading.Lock()
        self.catalog = catalog or bundled_catalog()

    def close(self) -> None:
        self.store.close()
        for c in self._on_close:
            c()

    def _check_cancel(self) -> None:
        if self.stop.is_set():
            raise CycleCancelled("stop requested")

    # ---- one cycle ----------------------------------------------------------------------------
    def run(self, *, as_of: date | None = None, dry_run: bool = False, record: bool = False,
            trigger: str = "cli", run_id: str | None = None) -> CycleOutcome:
        with self._lock, _gc_frozen():
            return self._run(as_of=as_of, dry_run=dry_run, record=record, trigger=trigger, run_id=run_id)

    def _run(self, *, as_of: date | None, dry_run: bool, record: bool, trigger: str, run_id: str | None) -> CycleOutcome:
        started = self.clock()
        t0 = time.monotonic()
        as_of = as_of or started.date()
        run_id = run_id or new_run_id(started)
        for gone in self.store.mark_abandoned_runs(started):
            log.warning("abandoned_run_marked_failed", run_id=gone)
        live = self.store.live_as_of()
        backtest = live is not None and as_of < live and not record and not dry_run
        mode = "dry-run" if dry_run else "backtest" if backtest else "normal"
        persist = mode == "normal"
        structlog.contextvars.bind_contextvars(run_id=run_id)
        self.store.start_run(run_id, as_of=as_of, started_at=started, trigger=trigger, dry_run=dry_run,
                             backtest=backtest, owner=this_process())
        beat = _Heartbeat(self.store, run_id, self.clock)
        log.info("cycle_started", as_of=as_of.isoformat(), mode=mode, trigger=trigger)
        outcome = CycleOutcome(run_id, "running", EXIT_OK, mode=mode)
        stats: dict[str, Any] = {"mode": mode}
        phases = _Phases(stats)
        staged: list[Staged] = []
        error: str | None = None
        try:
            horizon = Horizon(as_of, earliest=self.ingest.earliest_date)
            with phases("ingest"):
                staged = self._ingest_all(run_id, horizon, outcome.sources, persist=persist)
            self._check_cancel()
            budgets = [b for r in outcome.sources.values() for b in r.budgets]
            with phases("evaluate"):
                findings, outcome.rule_errors, evaluated = self._evaluate(as_of, staged if not persist else [], budgets)
            gc.freeze()  # the findings live to the end of the cycle: reconcile's collections skip them
            self._check_cancel()
            unusable = {s for s, r in outcome.sources.items() if not r.usable}
            with phases("reconcile"):
                result = self.store.reconcile(
                    findings, run_id=run_id, now=self.clock(), evaluated_rules=evaluated,
                    skip_sources=unusable, persist=persist, repeat_after=self.repeat_after,
                )
            outcome.changes = list(result.changes)
            stats.update({"findings": len(findings), **result.counts(), "rule_errors": outcome.rule_errors})
            self._print_header(run_id, as_of, outcome, live)
            with phases("deliver"):
                stats["delivery"] = self._deliver(run_id, outcome, dry=not persist)
            with phases("report"):
                self._print_footer(findings, persist, outcome)
            not_ok = {s for s, r in outcome.sources.items() if not r.ok}
            if outcome.rule_errors:
                outcome.status, outcome.exit_code = "partial", EXIT_FAILED
            elif not_ok or outcome.receiver_errors:
                outcome.status, outcome.exit_code = "partial", EXIT_PARTIAL
            else:
                outcome.status = "ok"
            problems = [f"rule {k}: {v}" for k, v in outcome.rule_errors.items()]
            problems += [f"receiver {k}: {v}" for k, v in outcome.receiver_errors.items()]
            error = "; ".join(problems) or None
        except CycleCancelled:
            outcome.status, outcome.exit_code = "cancelled", EXIT_FAILED
            error = "stopped by a signal before the cycle finished; sources already landed are complete and kept"
            log.warning("cycle_cancelled")
        except Exception as e:  # a bug or an unreadable lake: record it, then let the caller see it
            outcome.status, outcome.exit_code = "failed", EXIT_FAILED
            error = f"{type(e).__name__}: {e}"
            log.exception("cycle_failed")
            self._finish(run_id, outcome, stats, error, t0, beat, staged)
            raise
        self._finish(run_id, outcome, stats, error, t0, beat, staged)
        structlog.contextvars.unbind_contextvars("run_id")
        return outcome

    def _finish(self, run_id: str, outcome: CycleOutcome, stats: dict, error: str | None, t0: float,
                beat: "_Heartbeat", staged: list[Staged]) -> None:
        for s in staged:  # a run that did not land its staging throws it away
            if s.batch is not None:
                s.batch.discard()
        beat.stop()
        conformance = {s: (r.report.to_dict() if r.report else None) for s, r in outcome.sources.items()}
        self.store.finish_run(
            run_id, status=outcome.status, finished_at=self.clock(),
            providers={s: r.to_dict() for s, r in outcome.sources.items()},
            conformance=conformance, stats=stats, error=error,
        )
        log.info("cycle_finished", status=outcome.status, seconds=round(time.monotonic() - t0, 3),
                 phase_seconds=stats.get("phase_seconds", {}))

    def _ingest_all(self, run_id: str, horizon: Horizon, out: dict[str, SourceResult], *, persist: bool) -> list[Staged]:
        """Ingest every provider into ``out`` (filled as it goes, so a cancelled run records what
        finished). A normal run lands each source as soon as it is staged and checked."""
        def record(source: str, day: date, rows: int, accounts: list[str]) -> None:
            self.store.record_window(source, day, rows=rows, billing_accounts=accounts, run_id=run_id, ingested_at=self.clock())

        kept: list[Staged] = []
        for p in self.providers:
            self._check_cancel()
            structlog.contextvars.bind_contextvars(source=p.name)
            try:
                st = ingest_source(p, self.lake, horizon=horizon, restate_days=self.ingest.restate_days,
                                   month_to_date=self.ingest.month_to_date, run_id=run_id,
                                   check_cancel=self._check_cancel, progress=self.progress)
                if persist and st.result.usable:
                    land(st, self.lake, record)
                else:
                    kept.append(st)
            except CycleCancelled:
                raise
            except Exception as e:  # noqa: BLE001 - one source's bug must not stop the others
                log.exception("ingest_crashed", source=p.name)
                st = Staged(SourceResult(p.name, status=str(ConnectionStatus.FAILED_CONNECTION), detail=f"{type(e).__name__}: {e}"))
            finally:
                structlog.contextvars.unbind_contextvars("source")
            out[p.name] = st.result
        return kept

    def _evaluate(self, as_of: date, staged: Sequence[Staged], budgets: Sequence[NativeBudget]) -> tuple[list[Finding], dict[str, str], set[str]]:
        overlay = staged_days(s.batch for s in staged if s.batch is not None)
        fresh = {s.result.source: s.result.inventory for s in staged if s.result.inventory is not None}
        costs = self.lake.rollup(overlay=overlay)
        ctx = RuleContext(as_of=as_of, costs=costs, inventory=self.lake.inventory(overlay=fresh),
                          budgets=budgets, owners=self.owners.config, catalog=self.catalog)
        result = evaluate(self.rules, ctx)
        for rid, err in result.errors.items():
            log.error("rule_failed", rule=rid, error=err)
        tags_of = _resource_tags(costs, {f.resource_id for f in result.findings if f.resource_id}, as_of)
        findings = self.owners.apply(list(result.findings), tags_of)
        return findings, dict(result.errors), set(result.evaluated)

    def _deliver(self, run_id: str, outcome: CycleOutcome, *, dry: bool) -> dict[str, Any]:
        """The delivery stage (``notify/pipeline.py``): drains the outbox (what this run and any
        interrupted run left pending); a dry run or backtest also shows this run's in-memory
        changes, and sends and stores nothing. Returns per-receiver counts for the run record."""
        result = self.delivery.run(run_id, dry_run=dry, transient=outcome.changes if dry else ())
        outcome.receiver_errors.update(result.errors)
        return result.stats()

    # ---- output -------------------------------------------------------------------------------
    def _print_header(self, run_id: str, as_of: date, outcome: CycleOutcome, live: date | None) -> None:
        w = self.out.write
        w(f"costguard cycle {run_id} · as of end of {as_of.isoformat()}")
        if outcome.mode == "dry-run":
            w(" · DRY RUN (nothing is stored or sent)")
        elif outcome.mode == "backtest":
            w(f" · BACKTEST (the findings store is at {live}; nothing is stored or sent; --record to keep it)")
        w("\n")
        if not outcome.sources:
            w("  no providers configured\n")
        for name, r in outcome.sources.items():
            mark = {"ok": "ok", "partial": "PARTIAL"}.get(r.status, "FAILED")
            line = f"  source {name}: {mark}"
            if r.usable:
                line += f" · {r.rows:,} rows in {r.days} day(s) pulled, {r.skipped_days} day(s) already stored"
            w(line + "\n")
            if r.problems or (r.detail and not r.usable):  # rejected rows are itemised by the ledger below
                w(f"    {'; '.join(r.problems) if r.usable else r.detail}\n")
            if r.ledger is not None:
                for s in r.ledger.summary_lines(landed=outcome.mode == "normal"):
                    w(f"    {s}\n")
            if r.report and r.report.checks:
                w(f"    FOCUS conformance: {r.report.flagged_rows:,} of {r.report.rows:,} rows flagged (kept, not fixed)\n")
                for s in r.report.summary_lines():
                    w(f"      {s}\n")
        for rid, err in outcome.rule_errors.items():
            w(f"  rule {rid}: FAILED: {err}\n")

    def _print_footer(self, findings: Sequence[Finding], persist: bool, outcome: CycleOutcome) -> None:
        w = self.out.write
        w("\n")
        if not persist:
            w(f"{len(findings)} finding(s) this cycle (the findings store was not changed)\n")
        else:
            for line in footer_lines(self.store.open_money()):
                w(line + "\n")
        for name, err in outcome.receiver_errors.items():
            w(f"receiver {name} FAILED: {err}\n")
        if self.hint_config is not None:
            cfg = self.hint_config
            w(f"next: costguard findings -c {cfg}   ·   costguard costs -c {cfg} --by ServiceName\n")


@contextmanager
def _gc_frozen() -> Iterator[None]:
    """The cyclic garbage collector leaves alone what lives for the whole cycle (modules, config,
    collaborators, and after evaluation the findings): a full collection over the heap a 10M-row
    cycle builds takes ~0.2 s, and reconcile and delivery, which allocate a lot, triggered several
    (0.3-0.5 s). Reference counting still frees everything; the frozen objects go back to the
    collector when the cycle ends (a daemon or a test runs many cycles in one process)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class _Phases:
    """Wall seconds of each phase of a cycle, kept in the run record's ``stats.phase_seconds``
    (and so in ``/metrics`` and the ``cycle_finished`` log line): which phase grew when a cycle
    gets slower. A phase cut short by an error or a stop keeps the time it had run."""

    def __init__(self, stats: dict[str, Any]) -> None:
        self.seconds: dict[str, float] = stats.setdefault("phase_seconds", {})

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = round(time.monotonic() - t0, 3)


class _Heartbeat:
    """Touches the run record every few seconds while the cycle runs, so a restarted daemon can
    tell a live cycle from an abandoned one."""

    def __init__(self, store: Store, run_id: str, clock: Callable[[], datetime]) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(store, run_id, clock), name="heartbeat", daemon=True)
        self._thread.start()

    def _loop(self, store: Store, run_id: str, clock: Callable[[], datetime]) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                store.heartbeat(run_id, clock())
            except Exception:  # noqa: BLE001 - a missed beat is not worth failing the cycle
                log.warning("heartbeat_failed", run_id=run_id)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def footer_lines(open_findings: Sequence[dict]) -> list[str]:
    """The cycle footer: counts, and money that can be added up without counting anything twice.

    Cost sums resource-level findings only, each resource once (its largest finding): scope
    findings (tag coverage, budgets, anomalies) contain resource findings or each other. Savings
    sum the findings that have one, each resource once (its largest saving: removing a volume and
    converting it to gp3 do not add up). Every sum is per currency."""
    by_sev: dict[str, int] = {}
    res_cost: dict[str, dict[tuple, Decimal]] = {}
    res_save: dict[str, dict[tuple, Decimal]] = {}
    scope: dict[str, int] = {}
    for f in open_findings:
        by_sev[f["severity"]] = by_sev.get(f["severity"], 0) + 1
        cur = f.get("currency") or "USD"
        key = (f.get("provider"), f.get("account_id"), f.get("resource_id") or f["fingerprint"])
        if f.get("resource_id"):
            c = res_cost.setdefault(cur, {})
            c[key] = max(c.get(key, Decimal(0)), f.get("monthly_cost") or Decimal(0))
        else:
            scope[f["kind"]] = scope.get(f["kind"], 0) + 1
        if f.get("monthly_savings") is not None:
            s = res_save.setdefault(cur, {})
            s[key] = max(s.get(key, Decimal(0)), f["monthly_savings"])
    sev = ", ".join(f"{n} {s}" for s, n in sorted(by_sev.items(), key=lambda x: -SEVERITY_RANK.get(x[0], 0)))
    out = [f"open findings: {len(open_findings)}" + (f" ({sev})" if sev else "")]
    for cur in sorted(set(res_cost) | set(res_save)):
        parts = []
        if res_cost.get(cur):
            parts.append(f"{fmt_money(sum(res_cost[cur].values(), Decimal(0)), cur)}/month on {len(res_cost[cur])} "
                         "flagged resource(s), each counted once")
        if res_save.get(cur):
            parts.append(f"acting on them saves {fmt_money(sum(res_save[cur].values(), Decimal(0)), cur)}/month")
        out.append(f"  {cur}: " + " · ".join(parts))
    if scope:
        words = {"tag": "tag coverage gap(s)", "budget": "budget(s) over a threshold", "anomaly": "spend anomaly(ies)",
                 "commitment": "commitment finding(s)", "data": "data finding(s)"}
        out.append("  scope findings (not added to the sums above): "
                   + ", ".join(f"{n} {words.get(k, k)}" for k, n in sorted(scope.items())))
    return out


def _resource_tags(costs: pl.LazyFrame, ids: set[str], as_of: date) -> dict[str, str | None]:
    if not ids:
        return {}
    df = (
        costs.filter(pl.col("ResourceId").is_in(list(ids)) & (pl.col("x_ChargeDate") <= as_of) & pl.col("x_Tags").is_not_null())
        .group_by("ResourceId")
        .agg(pl.col("x_Tags").max_by("x_ChargeDate"))  # the tags of its latest day, without sorting the history
        .collect(engine="streaming")
    )
    return dict(zip(df["ResourceId"].to_list(), df["x_Tags"].to_list(), strict=True))
