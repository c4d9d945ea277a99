"""The composition root: the one place where real objects are built and wired together.

``App`` owns a cycle: ingest every provider → evaluate rules → resolve owners → reconcile findings
→ deliver to receivers → record the run. The CLI and the daemon call it; nothing else builds
stores, lakes or providers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, TextIO

import polars as pl
import structlog

from costguard import focus
from costguard.config import LoadedConfig
from costguard.errors import ConfigError, ConfigIssue, CycleCancelled
from costguard.ingest import SourceResult, ingest_source
from costguard.lake import ROLLUP_KEYS, Lake
from costguard.model import COST_METRICS, SEVERITY_RANK, ConnectionStatus, Finding, money, new_run_id
from costguard.notify.console import ConsoleNotifier
from costguard.owners import OwnerResolver, load_owners
from costguard.providers import Provider, provider_class
from costguard.rules import RuleContext, evaluate, load_rules
from costguard.store import Store

log = structlog.get_logger("costguard.app")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class CycleOutcome:
    run_id: str
    status: str
    exit_code: int
    sources: dict[str, SourceResult] = field(default_factory=dict)
    rule_errors: dict[str, str] = field(default_factory=dict)
    changes: list[tuple[str, dict]] = field(default_factory=list)


def build_providers(loaded: LoadedConfig) -> list[Provider]:
    out: list[Provider] = []
    for p in loaded.config.providers:
        cls = provider_class(p.type)
        opts = dict(p.storage_options)
        if p.endpoint_url:
            opts.setdefault("aws_endpoint_url", p.endpoint_url)
        out.append(cls(p.name, p.paths, base_dir=loaded.base_dir, inventory=p.inventory, storage_options=opts))
    return out


def check_config(loaded: LoadedConfig) -> tuple[list[ConfigIssue], list[str]]:
    """Everything ``validate`` checks without touching data: rules, owners, schedule. (issues, warnings)"""
    from costguard.scheduler import validate_schedule

    issues: list[ConfigIssue] = []
    warnings: list[str] = []
    cfg = loaded.config
    try:
        load_rules(cfg.rules, base_dir=loaded.base_dir)
    except ConfigError as e:
        issues.extend(e.issues)
    if cfg.owners:
        try:
            owners = load_owners(loaded.resolve(cfg.owners))
            for name, team in owners.teams.items():
                for r in team.receivers:
                    if r not in cfg.notify.receivers:
                        issues.append(ConfigIssue(loaded.resolve(cfg.owners), None, f"teams.{name}.receivers",
                                                  f"receiver {r!r} is not defined under notify.receivers in {loaded.path}"))
        except ConfigError as e:
            issues.extend(e.issues)
    for i, r in enumerate(cfg.notify.routes):
        if r.receiver not in cfg.notify.receivers:
            issues.append(ConfigIssue(str(loaded.path), loaded.line("notify", "routes", i, "receiver"),
                                      f"notify.routes[{i}].receiver", f"unknown receiver {r.receiver!r}"))
    for key, cron in (("cycle", cfg.schedule.cycle), ("digest", cfg.schedule.digest)):
        msg = validate_schedule(cron, cfg.schedule.timezone)
        if msg:
            k = "timezone" if "timezone" in msg.lower() else key
            issues.append(ConfigIssue(str(loaded.path), loaded.line("schedule", k), f"schedule.{k}", msg))
    if "://" in cfg.state.lake:
        issues.append(ConfigIssue(str(loaded.path), loaded.line("state", "lake"), "state.lake",
                                  "object-storage lakes are not supported by this version; use a local or mounted path"))
    for i, p in enumerate(cfg.providers):
        for j, pat in enumerate(p.paths):
            if "://" not in pat:
                try:
                    focus.discover([pat], loaded.base_dir)
                except Exception as e:  # noqa: BLE001 - reported as a warning, validate must go on
                    warnings.append(f"{loaded.path}:{loaded.line('providers', i, 'paths', j)}: providers[{i}].paths[{j}]: {e}")
        if p.inventory and "://" not in p.inventory and not (loaded.base_dir / p.inventory).exists():
            warnings.append(f"{loaded.path}:{loaded.line('providers', i, 'inventory')}: providers[{i}].inventory: file {p.inventory} does not exist (yet)")
    return issues, warnings


class App:
    """A configured costguard: store, lake, providers, rules, owners and receivers."""

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        out: TextIO,
        clock: Callable[[], datetime] = utcnow,
        progress: Callable[[str], None] = lambda _m: None,
        stop: threading.Event | None = None,
        hints: bool = True,
    ) -> None:
        self.loaded = loaded
        self.hints = hints
        cfg = loaded.config
        issues, _ = check_config(loaded)
        if issues:
            raise ConfigError(issues)
        self.rules = load_rules(cfg.rules, base_dir=loaded.base_dir)
        self.owners = OwnerResolver(load_owners(loaded.resolve(cfg.owners) if cfg.owners else None))
        self.store = Store.open(loaded.state_url())
        self.lake = Lake(loaded.resolve(cfg.state.lake), keep_rows=cfg.ingest.keep_rows, writer=True)
        self.providers = build_providers(loaded)
        self.out = out
        self.clock = clock
        self.progress = progress
        self.stop = stop or threading.Event()
        self.receivers = {name: ConsoleNotifier(out, group_by=r.group_by) for name, r in cfg.notify.receivers.items()}
        self._cycle_lock = threading.Lock()

    def close(self) -> None:
        self.store.close()

    # ---- one cycle ----------------------------------------------------------------------------
    def _check_cancel(self) -> None:
        if self.stop.is_set():
            raise CycleCancelled("stop requested")

    def run_cycle(self, *, as_of: date | None = None, dry_run: bool = False, trigger: str = "cli",
                  run_id: str | None = None) -> CycleOutcome:
        with self._cycle_lock:
            return self._run_cycle(as_of=as_of, dry_run=dry_run, trigger=trigger, run_id=run_id)

    def _run_cycle(self, *, as_of: date | None, dry_run: bool, trigger: str, run_id: str | None) -> CycleOutcome:
        started = self.clock()
        t0 = time.monotonic()
        as_of = as_of or started.date()
        run_id = run_id or new_run_id(started)
        structlog.contextvars.bind_contextvars(run_id=run_id)
        self.store.start_run(run_id, as_of=as_of, started_at=started, trigger=trigger, dry_run=dry_run)
        log.info("cycle_started", as_of=as_of.isoformat(), dry_run=dry_run, trigger=trigger)
        outcome = CycleOutcome(run_id, "running", EXIT_OK)
        stats: dict[str, Any] = {}
        try:
            self._ingest_all(run_id, as_of, outcome.sources)
            failed = {s for s, r in outcome.sources.items() if not r.ok}
            self._check_cancel()
            findings, outcome.rule_errors, evaluated = self._evaluate(as_of)
            self._check_cancel()
            result = self.store.reconcile(
                findings, run_id=run_id, now=self.clock(), evaluated_rules=evaluated,
                skip_sources=failed, persist=not dry_run,
            )
            outcome.changes = list(result.changes)
            stats = {"findings": len(findings), **result.counts(), "rule_errors": outcome.rule_errors}
            self._print_header(run_id, as_of, outcome, dry_run)
            for receiver in self.receivers.values():
                receiver.deliver(outcome.changes, dry_run=dry_run)
            self._print_footer(findings, dry_run)
            if failed:
                outcome.status, outcome.exit_code = "partial", EXIT_PARTIAL
            elif outcome.rule_errors:
                outcome.status, outcome.exit_code = "partial", EXIT_FAILED
            else:
                outcome.status = "ok"
            error = None
            if outcome.rule_errors:
                error = "; ".join(f"rule {k}: {v}" for k, v in outcome.rule_errors.items())
        except CycleCancelled:
            outcome.status, outcome.exit_code = "cancelled", EXIT_FAILED
            error = "stopped by a signal before the cycle finished; windows already written are complete and kept"
            log.warning("cycle_cancelled")
        except Exception as e:  # a bug or an unreadable lake: record it, then let the caller see it
            outcome.status, outcome.exit_code = "failed", EXIT_FAILED
            error = f"{type(e).__name__}: {e}"
            log.exception("cycle_failed")
            self._finish(run_id, outcome, stats, error, t0)
            raise
        self._finish(run_id, outcome, stats, error, t0)
        structlog.contextvars.unbind_contextvars("run_id")
        return outcome

    def _finish(self, run_id: str, outcome: CycleOutcome, stats: dict, error: str | None, t0: float) -> None:
        conformance = {s: (r.report.to_dict() if r.report else None) for s, r in outcome.sources.items()}
        self.store.finish_run(
            run_id, status=outcome.status, finished_at=self.clock(),
            providers={s: r.to_dict() for s, r in outcome.sources.items()},
            conformance=conformance, stats=stats, error=error,
        )
        duration = time.monotonic() - t0
        log.info("cycle_finished", status=outcome.status, seconds=round(duration, 3))

    def _ingest_all(self, run_id: str, as_of: date, out: dict[str, SourceResult]) -> None:
        """Ingest every provider into ``out`` (filled as it goes, so a cancelled run records what finished)."""
        ing = self.loaded.config.ingest

        def record(source: str, day: date, rows: int, accounts: list[str]) -> None:
            self.store.record_window(source, day, rows=rows, billing_accounts=accounts, run_id=run_id, ingested_at=self.clock())

        for p in self.providers:
            self._check_cancel()
            structlog.contextvars.bind_contextvars(source=p.name)
            try:
                res = ingest_source(p, self.lake, as_of=as_of, restate_days=ing.restate_days,
                                    month_to_date=ing.month_to_date, record_day=record,
                                    check_cancel=self._check_cancel, progress=self.progress)
            except CycleCancelled:
                raise
            except Exception as e:  # noqa: BLE001 - one source's bug must not stop the others
                log.exception("ingest_crashed", source=p.name)
                res = SourceResult(p.name, status=str(ConnectionStatus.FAILED_CONNECTION), detail=f"{type(e).__name__}: {e}")
            finally:
                structlog.contextvars.unbind_contextvars("source")
            out[p.name] = res

    def _evaluate(self, as_of: date) -> tuple[list[Finding], dict[str, str], set[str]]:
        ctx = RuleContext(as_of=as_of, costs=self.lake.rollup(), inventory=self.lake.inventory())
        result = evaluate(self.rules, ctx)
        for rid, err in result.errors.items():
            log.error("rule_failed", rule=rid, error=err)
        tags_of = self._resource_tags({f.resource_id for f in result.findings if f.resource_id}, as_of)
        findings = self.owners.apply(list(result.findings), tags_of)
        return findings, dict(result.errors), set(result.evaluated)

    def _resource_tags(self, ids: set[str], as_of: date) -> dict[str, str | None]:
        if not ids:
            return {}
        df = (
            self.lake.rollup()
            .filter(pl.col("ResourceId").is_in(list(ids)) & (pl.col("x_ChargeDate") <= as_of) & pl.col("x_Tags").is_not_null())
            .sort("x_ChargeDate")
            .group_by("ResourceId")
            .agg(pl.col("x_Tags").last())
            .collect(engine="streaming")
        )
        return dict(zip(df["ResourceId"].to_list(), df["x_Tags"].to_list(), strict=True))

    # ---- output -------------------------------------------------------------------------------
    def _print_header(self, run_id: str, as_of: date, outcome: CycleOutcome, dry_run: bool) -> None:
        w = self.out.write
        w(f"costguard cycle {run_id} · as of end of {as_of.isoformat()}" + (" · DRY RUN" if dry_run else "") + "\n")
        if not outcome.sources:
            w("  no providers configured\n")
        for name, r in outcome.sources.items():
            mark = "ok" if r.ok else "FAILED"
            line = f"  source {name}: {mark}"
            if r.ok:
                line += f" · {r.rows:,} rows in {r.days} day(s) pulled, {r.skipped_days} day(s) already stored"
            w(line + "\n")
            if r.detail and not r.ok:
                w(f"    {r.detail}\n")
            if r.report and r.report.checks:
                w(f"    FOCUS conformance: {r.report.flagged_rows:,} of {r.report.rows:,} rows flagged (kept, not fixed)\n")
                for s in r.report.summary_lines():
                    w(f"      {s}\n")
        for rid, err in outcome.rule_errors.items():
            w(f"  rule {rid}: FAILED: {err}\n")

    def _print_footer(self, findings: Sequence[Finding], dry_run: bool) -> None:
        w = self.out.write
        open_ = self.store.list_findings(status="open")
        by_sev: dict[str, int] = {}
        cost = Decimal(0)
        savings = Decimal(0)
        currency = "USD"
        for f in open_:
            by_sev[f["severity"]] = by_sev.get(f["severity"], 0) + 1
            cost += f.get("monthly_cost") or 0
            savings += f.get("monthly_savings") or 0
            currency = f.get("currency") or currency
        sev = ", ".join(f"{n} {s}" for s, n in sorted(by_sev.items(), key=lambda x: -SEVERITY_RANK.get(x[0], 0)))
        w("\n")
        if dry_run:
            w(f"{len(findings)} finding(s) this cycle (dry run: the findings store was not changed)\n")
        else:
            w(f"open findings: {len(open_)}" + (f" ({sev})" if sev else "") +
              f" · cost they cover {money(cost)} {currency}/month · possible savings {money(savings)} {currency}/month\n")
        if self.hints:
            cfg = self.loaded.path
            w(f"next: costguard findings -c {cfg}   ·   costguard costs -c {cfg} --by ServiceName\n")

    # ---- queries ------------------------------------------------------------------------------
    def findings(self, *, status: str, kind: str | None) -> list[dict]:
        return self.store.list_findings(status=status, kind=kind)

    def snooze(self, fingerprint: str, *, until: date, reason: str) -> dict:
        return self.store.snooze(fingerprint, until=until, reason=reason, now=self.clock())

    def last_success(self) -> datetime | None:
        run = self.store.last_run(statuses=("ok", "partial"))
        return run["finished_at"] if run else None


def query_costs(lake: Lake, by: Sequence[str], *, start: date | None, end: date | None, metric: str) -> pl.DataFrame:
    """Sums of one FOCUS cost grouped by columns / tag:KEY; reads the rollup when it has the columns."""
    schema = focus.lake_schema()
    exprs = []
    use_rollup = True
    for col in by:
        if col.startswith("tag:"):
            key = col[4:].strip().lower()
            if not key:
                raise ConfigError.single("<command line>", None, "--by", "tag: needs a key, e.g. tag:team")
            exprs.append(pl.col("x_Tags").str.json_path_match(f'$["{key}"]').alias(col))
        elif col in ("source", "x_Source"):
            exprs.append(pl.col("x_Source").alias(col))
        elif col in schema:
            use_rollup = use_rollup and col in ROLLUP_KEYS
            exprs.append(pl.col(col))
        else:
            raise ConfigError.single("<command line>", None, "--by", f"unknown column {col!r}; use a FOCUS column name (e.g. ProviderName, ServiceName, SubAccountId), source, or tag:KEY")
    if metric not in COST_METRICS:
        raise ConfigError.single("<command line>", None, "--metric", f"must be one of {', '.join(COST_METRICS)}")
    if not use_rollup and not lake.keep_rows:
        raise ConfigError.single(
            "<command line>", None, "--by",
            "this lake keeps daily rollups only (ingest.keep_rows: false); group by rollup columns: "
            + ", ".join(k for k in ROLLUP_KEYS if not k.startswith("x_")) + ", source or tag:KEY",
        )
    lf = lake.rollup() if use_rollup else lake.costs()
    if start:
        lf = lf.filter(pl.col("x_ChargeDate") >= start)
    if end:
        lf = lf.filter(pl.col("x_ChargeDate") < end)
    return (
        lf.group_by(exprs).agg(pl.col(metric).sum().alias(metric))
        .sort([metric, *by], descending=[True] + [False] * len(by), nulls_last=True)
        .collect(engine="streaming")
    )


def costs_query(loaded: LoadedConfig, by: Sequence[str], *, start: date | None, end: date | None, metric: str) -> pl.DataFrame:
    lake = Lake(loaded.resolve(loaded.config.state.lake), keep_rows=loaded.config.ingest.keep_rows)
    return query_costs(lake, by, start=start, end=end, metric=metric)


def list_findings(loaded: LoadedConfig, *, status: str, kind: str | None) -> list[dict]:
    store = Store.open(loaded.state_url())
    try:
        return store.list_findings(status=status, kind=kind)
    finally:
        store.close()


def snooze_finding(loaded: LoadedConfig, fingerprint: str, *, until: date, reason: str, now: datetime | None = None) -> dict:
    store = Store.open(loaded.state_url())
    try:
        return store.snooze(fingerprint, until=until, reason=reason, now=now or utcnow())
    finally:
        store.close()
