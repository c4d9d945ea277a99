"""``costguard serve``: the scheduler, the HTTP endpoints and clean shutdown on SIGTERM."""

from __future__ import annotations

import signal
import threading
from typing import TextIO

import structlog

from costguard.config import LoadedConfig

log = structlog.get_logger("costguard.daemon")


def serve(loaded: LoadedConfig, *, out: TextIO, stop: threading.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or ``stop`` is set). Returns the process exit code."""
    from costguard.app import App
    from costguard.metrics import Metrics
    from costguard.scheduler import CycleScheduler
    from costguard.server import HealthState, HttpServer

    stop = stop or threading.Event()
    metrics = Metrics()
    health = HealthState()
    app = App(loaded, out=out, metrics=metrics, health=health, stop=stop,
              progress=lambda m: log.info("progress", message=m))
    for p in app.providers:
        health.set_provider(p.name, "unknown", "no cycle has run yet", at=app.clock())
    metrics.set_findings(app.store.open_findings_count())
    cfg = loaded.config
    server = HttpServer(cfg.server.host, cfg.server.port, health, metrics)

    def handle(signum: int, _frame: object) -> None:
        log.info("stop_requested", signal=signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, handle) for s in (signal.SIGTERM, signal.SIGINT)}

    def cycle(trigger: str) -> None:
        if stop.is_set():
            return
        try:
            app.run_cycle(trigger=trigger)
        except Exception:  # noqa: BLE001 - already recorded in the run record; the daemon keeps going
            log.exception("scheduled_cycle_failed")

    scheduler = CycleScheduler(cycle, cron=cfg.schedule.cycle, timezone=cfg.schedule.timezone,
                               last_success=app.last_success, clock=app.clock)
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
        app.close()
        for s, h in previous.items():
            signal.signal(s, h)
        log.info("daemon_stopped")
    return 0
