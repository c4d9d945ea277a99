"""The daemon's cycle worker: a child that dies without recording its end gets its run failed."""

from __future__ import annotations

import sys
import threading

from costguard.app import utcnow
from costguard.config import load_config
from costguard.daemon import CycleWorker
from costguard.metrics import Metrics
from costguard.server import HealthState
from costguard.store import Store

from conftest import write_config

# Stands in for a worker that crashes (OOM kill, segfault) after opening its run record.
CRASHING_WORKER = """
import os, sys
from datetime import date, datetime, timezone
from costguard.store import Store
args = sys.argv[1:]
run_id = args[args.index("--run-id") + 1]
s = Store.open(os.environ["CG_TEST_DB"])
s.start_run(run_id, as_of=date(2026, 1, 1), started_at=datetime.now(timezone.utc), trigger="schedule", dry_run=False)
s.close()
os._exit(9)
"""


def test_crashed_worker_run_is_marked_failed_with_its_exit_code(tmp_path, monkeypatch):
    cfg = write_config(tmp_path, """
        state: {url: "sqlite:///state.db", lake: lake}
        rules: []
        """)
    db = f"sqlite:///{tmp_path / 'state.db'}"
    monkeypatch.setenv("CG_TEST_DB", db)
    store = Store.open(db)
    metrics, health = Metrics(), HealthState()
    worker = CycleWorker(load_config(cfg).path, clock=utcnow, store=store, metrics=metrics, health=health, stop=threading.Event(),
                         command=[sys.executable, "-c", CRASHING_WORKER])
    worker("schedule")
    run = store.last_run()
    assert run["status"] == "failed"
    assert "exited with code 9" in run["error"]
    assert health.snapshot()["last_run"]["status"] == "failed"
    assert b'costguard_cycles_total{status="failed"} 1.0' in metrics.render()[0]
    store.close()


def test_worker_that_never_starts_counts_a_failed_cycle(tmp_path):
    cfg = write_config(tmp_path, """
        state: {url: "sqlite:///state.db", lake: lake}
        rules: []
        """)
    store = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    metrics = Metrics()
    worker = CycleWorker(load_config(cfg).path, clock=utcnow, store=store, metrics=metrics, health=HealthState(), stop=threading.Event(),
                         command=[sys.executable, "-c", "import sys; sys.exit(3)"])
    worker("startup")
    assert store.last_run() is None
    assert b'costguard_cycles_total{status="failed"} 1.0' in metrics.render()[0]
    store.close()
