"""``costguard serve``: the scheduler, the HTTP endpoints and clean shutdown on SIGTERM.

Each cycle runs in a child process (``costguard run --once`` with a run id chosen here). The
daemon itself only schedules, serves HTTP and reads run records, so its memory stays small
whatever the size of the bills (the child's memory goes back to the OS when it exits), and a
crash inside a cycle cannot take the daemon down. Health and metrics are filled from the run
record the child leaves in the state store.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

import structlog

from costguard.config import LoadedConfig
from costguard.model import new_run_id

log = structlog.get_logger("costguard.daemon")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def run_summary(run: dict) -> dict:
    """The part of a run record that /healthz shows."""
    keys = ("run_id", "status", "trigger", "started_at", "finished_at", "as_of", "error")
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in run.items() if k in keys}


class CycleWorker:
    """Runs one cycle as a child process and reports its run record to metrics and health."""

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        store: Any,
        metrics: Any,
        health: Any,
        stop: threading.Event,
        clock: Callable[[], datetime] = utcnow,
        command: Sequence[str] | None = None,
    ) -> None:
        self.loaded = loaded
        self.store = store
        self.metrics = metrics
        self.health = health
        self.stop = stop
        self.clock = clock
        self.command = list(command) if command else [sys.executable, "-m", "costguard"]

    def __call__(self, trigger: str) -> None:
        if self.stop.is_set():
            return
        run_id = new_run_id(self.clock())
        cmd = [*self.command, "run", "--once", "-c", str(self.loaded.path), "--trigger", trigger, "--run-id", run_id]
        log.info("cycle_worker_started", run_id=run_id, trigger=trigger)
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        while proc.poll() is None:
            if self.stop.wait(timeout=0.5):
                log.info("cycle_worker_stopping", run_id=run_id)
                proc.send_signal(signal.SIGTERM)
                proc.wait()
        code = proc.returncode
        run = self.store.get_run(run_id)
        if run is not None and run["status"] == "running":
            self.store.finish_run(
                run_id, status="failed", finished_at=self.clock(), providers=run.get("providers") or {},
                conformance=run.get("conformance") or {}, stats=run.get("stats") or {},
                error=f"the cycle worker exited with code {code} before recording how the cycle ended",
            )
            run = self.store.get_run(run_id)
        log.info("cycle_worker_finished", run_id=run_id, exit_code=code, status=run["status"] if run else None)
        self.observe(run, exit_code=code)

    def observe(self, run: dict | None, *, exit_code: int) -> None:
        if run is None:  # the worker died before it could open the store (bad config is caught at start)
            self.metrics.record_cycle("failed", 0.0, self.clock().timestamp())
            return
        finished = run.get("finished_at") or self.clock()
        duration = (finished - run["started_at"]).total_seconds()
        self.metrics.record_cycle(run["status"], duration, finished.timestamp())
        for source, p in (run.get("providers") or {}).items():
            ok = p.get("status") == "ok"
            self.metrics.rows_ingested_total.labels(source).inc(p.get("rows") or 0)
            self.metrics.set_provider_up(source, ok)
            if not ok:
                self.metrics.provider_errors_total.labels(source).inc()
            for check, c in ((p.get("conformance") or {}).get("checks") or {}).items():
                self.metrics.conformance_failures_total.labels(source, check).inc(c.get("count") or 0)
            self.health.set_provider(source, p.get("status") or "unknown", p.get("detail"), at=finished)
        self.metrics.set_findings(self.store.open_findings_count())
        self.health.set_last_run(run_summary(run))


def serve(loaded: LoadedConfig, *, stop: threading.Event | None = None, command: Sequence[str] | None = None) -> int:
    """Run until SIGTERM/SIGINT (or ``stop`` is set). Returns the process exit code."""
    from costguard.app import check_config
    from costguard.errors import ConfigError
    from costguard.metrics import Metrics
    from costguard.scheduler import CycleScheduler
    from costguard.server import HealthState, HttpServer
    from costguard.store import Store

    issues, _warnings = check_config(loaded)  # fail fast: a worker would fail the same way every time
    if issues:
        raise ConfigError(issues)
    stop = stop or threading.Event()
    cfg = loaded.config
    metrics = Metrics()
    health = HealthState()
    store = Store.open(loaded.state_url())
    abandoned = store.mark_abandoned_runs(utcnow())
    if abandoned:
        log.warning("abandoned_runs_marked_failed", runs=abandoned)
    last = store.last_run()
    known = (last or {}).get("providers") or {}
    for p in cfg.providers:  # what the last run saw, until this daemon's first cycle
        if p.name in known:
            seen = known[p.name]
            health.set_provider(p.name, seen.get("status") or "unknown", seen.get("detail"), at=last["finished_at"] or utcnow())
            metrics.set_provider_up(p.name, seen.get("status") == "ok")
        else:
            health.set_provider(p.name, "unknown", "no cycle has run yet", at=utcnow())
    metrics.set_findings(store.open_findings_count())
    if last:
        health.set_last_run(run_summary(last))
    worker = CycleWorker(loaded, store=store, metrics=metrics, health=health, stop=stop, command=command)

    def last_success() -> datetime | None:
        run = store.last_run(statuses=("ok", "partial"))
        return run["finished_at"] if run else None

    server = HttpServer(cfg.server.host, cfg.server.port, health, metrics)

    def handle(signum: int, _frame: object) -> None:
        log.info("stop_requested", signal=signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, handle) for s in (signal.SIGTERM, signal.SIGINT)}
    scheduler = CycleScheduler(worker, cron=cfg.schedule.cycle, timezone=cfg.schedule.timezone, last_success=last_success)
    server.start()
    log.info("server_started", host=cfg.server.host, port=server.port)
    try:
        scheduler.start()
        health.set_ready(True)
        log.info("daemon_ready", next_cycle=str(scheduler.next_run_time()))
        while not stop.wait(timeout=1.0):
            pass
    finally:
        health.set_ready(False)
        scheduler.shutdown(wait=True)
        server.stop()
        store.close()
        for s, h in previous.items():
            signal.signal(s, h)
        log.info("daemon_stopped")
    return 0
