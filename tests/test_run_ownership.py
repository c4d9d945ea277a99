"""Runs and daemons that cannot trample each other (issue "Trust the numbers" §7): real processes,
SIGKILL, a second daemon on the same state, a cycle worker outliving its daemon.

A cycle is held mid-ingest by a named pipe in the export folder: reading it blocks until the test
writes the file's contents, so a "running" cycle exists for exactly as long as a test needs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import httpx
import pytest

from costguard.store import Store

from conftest import write_config
from focus_rows import days, row, write
from test_daemon import Daemon

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo") or not os.path.isdir("/proc/self/fd"),
                                reason="needs named pipes and /proc")


def _project(tmp_path: Path, *, cron: str = "0 6 * * *") -> tuple[Path, Path]:
    write(tmp_path / "exports" / "a.csv", [row(d, "1.00") for d in days(date(2026, 3, 1), 3)])
    held = tmp_path / "exports" / "held.csv"
    os.mkfifo(held)
    cfg = write_config(tmp_path, f"""
        state: {{url: "sqlite:///state.db", lake: lake}}
        providers: [{{name: s, type: focus, paths: ["exports/*.csv"]}}]
        rules: []
        server: {{host: 127.0.0.1, port: 0}}
        schedule: {{cycle: "{cron}", timezone: UTC}}
        """)
    return cfg, held


def _reading(pid: int, held: Path) -> bool:
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") == str(held) for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


def _release(held: Path, reader: int) -> threading.Thread:
    """Feed the named pipe (in a thread: opening it blocks until the reader is there). The focus
    provider reads an export twice (its days, then its rows), so the pipe is fed twice; before the
    second feed the first reader must have closed its end, or both copies would go to it."""
    body = (Path(__file__).parent / "fixtures" / "focus" / "focus_sample.csv").read_bytes()

    def feed() -> None:
        for _ in range(2):
            with open(held, "wb") as fh:
                fh.write(body)
            _wait_for(lambda: not _reading(reader, held), "the reader to finish the file", timeout=120)

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    return t


def _store(tmp_path: Path) -> Store:
    return Store.open(f"sqlite:///{tmp_path / 'state.db'}")


def _wait_for(predicate, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)  # polling interval, not an assertion on timing


def _running(tmp_path: Path):
    def check():
        if not (tmp_path / "state.db").exists():
            return None
        with _store(tmp_path) as s:
            runs = s.running_runs()
        return runs[0] if runs else None
    return check


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its dead parent's reaper) counts as gone
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_a_killed_run_once_is_marked_abandoned_by_the_next_run(cli, tmp_path):
    cfg, held = _project(tmp_path)
    p = subprocess.Popen([sys.executable, "-m", "costguard", "run", "--once", "-c", str(cfg)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run = _wait_for(_running(tmp_path), "the run to start")
    assert run["owner_pid"] == p.pid and run["owner_host"]
    p.send_signal(signal.SIGKILL)
    p.wait()
    held.unlink()
    cli("run", "--once", "-c", cfg)
    with _store(tmp_path) as s:
        dead = s.get_run(run["run_id"])
    assert dead["status"] == "failed" and "abandoned" in dead["error"]


def test_a_restarted_daemon_leaves_a_live_cycle_alone_and_does_not_start_another(tmp_path):
    cfg, held = _project(tmp_path)
    orphan = subprocess.Popen([sys.executable, "-m", "costguard", "run", "--once", "-c", str(cfg)],
                              stdout=open(tmp_path / "orphan.out", "w"), stderr=open(tmp_path / "orphan.err", "w"))
    try:
        run = _wait_for(_running(tmp_path), "the orphan's run")
        d = Daemon(cfg)
        try:
            skipped = d.wait_event("cycle_skipped")
            assert skipped["run_id"] == run["run_id"] and skipped["owner_pid"] == orphan.pid
            with _store(tmp_path) as s:
                assert s.get_run(run["run_id"])["status"] == "running"
                assert len(s.running_runs()) == 1
        finally:
            assert d.stop() == 0
        _release(held, orphan.pid)
        assert orphan.wait(timeout=120) == 0
        with _store(tmp_path) as s:
            assert s.get_run(run["run_id"])["status"] == "ok"
    finally:
        if orphan.poll() is None:
            orphan.kill()


def test_a_second_daemon_on_the_same_state_refuses_to_start(tmp_path):
    cfg, held = _project(tmp_path, cron="0 6 1 1 *")
    held.unlink()
    first = Daemon(cfg)
    try:
        first.wait_event("daemon_ready")
        second = subprocess.run([sys.executable, "-m", "costguard", "serve", "-c", str(cfg)],
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert "another costguard serve is using this state" in second.stderr
        assert f'"pid": {first.proc.pid}' in second.stderr and "Traceback" not in second.stderr
    finally:
        assert first.stop() == 0


def test_the_cycle_worker_stops_when_its_daemon_is_killed(tmp_path):
    cfg, held = _project(tmp_path)
    d = Daemon(cfg)
    try:
        d.wait_event("cycle_worker_started")
        run = _wait_for(_running(tmp_path), "the worker's run")
        child = run["owner_pid"]
        assert child != d.proc.pid
        d.proc.send_signal(signal.SIGKILL)  # no clean shutdown: the kernel / the worker's watch notice
        d.proc.wait()
        _release(held, child)  # let the worker reach its next safe point
        _wait_for(lambda: not _alive(child), "the cycle worker to exit", timeout=120)
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
    with _store(tmp_path) as s:
        assert s.get_run(run["run_id"])["status"] == "cancelled"


def test_metrics_show_the_last_cycle_right_after_a_restart(cli, tmp_path):
    cfg, held = _project(tmp_path)
    held.unlink()
    cli("run", "--once", "-c", cfg)
    with _store(tmp_path) as s:
        last = s.last_run()
    d = Daemon(cfg)
    try:
        port = d.wait_event("server_started")["port"]
        d.wait_event("daemon_ready")
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        line = next(x for x in body.splitlines() if x.startswith('costguard_last_cycle_timestamp_seconds{status="ok"}'))
        assert float(line.split()[-1]) == pytest.approx(last["finished_at"].timestamp())
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json()
        assert health["last_run"]["run_id"] == last["run_id"] and health["last_run"]["status"] == "ok"
    finally:
        assert d.stop() == 0
