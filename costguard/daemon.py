"""``costguard serve``: the scheduler, the HTTP endpoints and clean shutdown on SIGTERM.

Each cycle runs in a child process (``costguard run --once`` with a run id chosen here). The
daemon itself only schedules, serves HTTP and reads run records, so its memory stays small
whatever the size of the bills, and a crash inside a cycle cannot take the daemon down. The
child dies with the daemon (Linux: the kernel sends it SIGTERM; elsewhere it notices its parent
is gone), and only one daemon runs per state (a lock file in the lake folder).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from costguard.errors import CostguardError
from costguard.logs import get_logger
from costguard.model import new_run_id

log = get_logger("costguard.daemon")

PARENT_ENV = "COSTGUARD_PARENT_PID"  # set for a cycle worker: the daemon it must not outlive


def run_summary(run: dict) -> dict:
    """The part of a run record that /healthz shows."""
    keys = ("run_id", "status", "trigger", "started_at", "finished_at", "as_of", "error")
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in run.items() if k in keys}


class AlreadyServing(CostguardError):
    """Another ``costguard serve`` holds this state."""


class ServeLock:
    """One daemon per state: an exclusive lock on ``<lake>/.serve.lock`` for the daemon's life."""

    def __init__(self, lake_root: Path) -> None:
        self.path = Path(lake_root) / ".serve.lock"
        self._fh: Any = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise AlreadyServing(
                f"another costguard serve is using this state ({holder}; lock {self.path}); "
                "stop it first: one daemon per state (leader election for several replicas comes with the Helm chart)"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: ask the kernel to send this process SIGTERM when its parent (the daemon) dies."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def watch_parent(stop: threading.Event) -> None:
    """In a cycle worker: set ``stop`` when the daemon that started it is gone (covers platforms
    without PDEATHSIG, and a daemon killed with SIGKILL)."""
    parent = os.environ.get(PARENT_ENV)
    if not parent or not parent.isdigit():
        return
    pid = int(parent)

    def loop() -> None:
        while not stop.wait(1.0):
            if os.getppid() != pid:
                log.warning("parent_daemon_gone", parent_pid=pid)
                stop.set()
                return

    threading.Thread(target=loop, name="parent-watch", daemon=True).start()


class CycleWorker:
    """Runs one cycle as a child process and reports its run record to metrics and health."""

    def __init__(
        self,
        config_path: Path,
        *,
        store: Any,
        metrics: Any,
        health: Any,
        stop: threading.Event,
        clock: Callable[[], datetime],
        command: Sequence[str] | None = None,
    ) -> None:
        self.config_path = config_path
        self.store = store
        self.metrics = metrics
        self.health = health
        self.stop = stop
        self.clock = clock
        self.command = list(command) if command else [sys.executable, "-m", "costguard"]

    def __call__(self, trigger: str) -> None:
        if self.stop.is_set():
            return
        self.store.mark_abandoned_runs(self.clock())
        live = self.store.running_runs()
        if live:  # e.g. a `run --once` in a terminal, or a worker that outlived a previous daemon
            log.warning("cycle_skipped", trigger=trigger, reason="another cycle is still running",
                        run_id=live[0]["run_id"], owner_pid=live[0].get("owner_pid"), owner_host=live[0].get("owner_host"))
            return
        run_id = new_run_id(self.clock())
        cmd = [*self.command, "run", "--once", "-c", str(self.config_path), "--trigger", trigger, "--run-id", run_id]
        log.info("cycle_worker_started", run_id=run_id, trigger=trigger)
        env = {**os.environ, PARENT_ENV: str(os.getpid())}
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, env=env,
                                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
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
        self.observe(run)

    def observe(self, run: dict | None) -> None:
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
            self.metrics.record_requests(source, p.get("api_requests") or {}, p.get("paid_requests") or {})
            if not ok:
                self.metrics.provider_errors_total.labels(source).inc()
            for check, c in ((p.get("conformance") or {}).get("checks") or {}).items():
                self.metrics.conformance_failures_total.labels(source, check).inc(c.get("count") or 0)
            self.health.set_provider(source, p.get("status") or "unknown", p.get("detail"), at=finished)
        delivery = (run.get("stats") or {}).get("delivery") or {}
        self.metrics.record_delivery(delivery)
        self.metrics.record_phases((run.get("stats") or {}).get("phase_seconds") or {})
        for name, d in delivery.items():
            self.health.set_receiver(name, "failing" if d.get("error") else "ok", d.get("error"), at=finished)
        self.metrics.set_findings(self.store.open_findings_count())
        self.health.set_last_run(run_summary(run))


class Daemon:
    """Runs until SIGTERM/SIGINT (or ``stop`` is set); every part is built by ``app.build_daemon``."""

    def __init__(self, *, providers: Sequence[str], store: Any, metrics: Any, health: Any, server: Any,
                 scheduler: Any, worker: CycleWorker, lock: ServeLock, stop: threading.Event,
                 clock: Callable[[], datetime]) -> None:
        self.providers = list(providers)
        self.store = store
        self.metrics = metrics
        self.health = health
        self.server = server
        self.scheduler = scheduler
        self.worker = worker
        self.lock = lock
        self.stop = stop
        self.clock = clock

    def _restore(self) -> None:
        """Health and metrics as the last run left them, until this daemon's first cycle."""
        for gone in self.store.mark_abandoned_runs(self.clock()):
            log.warning("abandoned_run_marked_failed", run_id=gone)
        last = self.store.last_run()
        known = (last or {}).get("providers") or {}
        for name in self.providers:
            if name in known:
                seen = known[name]
                self.health.set_provider(name, seen.get("status") or "unknown", seen.get("detail"),
                                         at=last["finished_at"] or self.clock())
                self.metrics.set_provider_up(name, seen.get("status") == "ok")
            else:
                self.health.set_provider(name, "unknown", "no cycle has run yet", at=self.clock())
        self.metrics.set_findings(self.store.open_findings_count())
        for name, d in (((last or {}).get("stats") or {}).get("delivery") or {}).items():
            self.health.set_receiver(name, "failing" if d.get("error") else "ok", d.get("error"),
                                     at=last["finished_at"] or self.clock())
        if last:
            self.health.set_last_run(run_summary(last))
            if last.get("finished_at") is not None:
                self.metrics.last_cycle_timestamp_seconds.labels(last["status"]).set(last["finished_at"].timestamp())

    def run(self) -> int:
        def handle(signum: int, _frame: object) -> None:
            log.info("stop_requested", signal=signal.Signals(signum).name)
            self.stop.set()

        previous = {s: signal.signal(s, handle) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self._restore()
            try:
                self.server.start()
            except OSError as e:
                raise CostguardError(
                    f"cannot listen on {self.server.host}:{self.server.port} ({e.strerror}); "
                    "another process uses the port: set server.port in the config (0 picks a free one) or stop that process"
                ) from None
            log.info("server_started", host=self.server.host, port=self.server.port)
            self.scheduler.start()
            self.health.set_ready(True)
            log.info("daemon_ready", next_cycle=str(self.scheduler.next_run_time()))
            while not self.stop.wait(timeout=1.0):
                pass
        finally:
            self.health.set_ready(False)
            self.scheduler.shutdown(wait=True)
            self.server.stop()
            self.store.close()
            self.lock.release()
            for s, h in previous.items():
                signal.signal(s, h)
            log.info("daemon_stopped")
        return 0
