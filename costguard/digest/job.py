"""The daemon's weekly digest job (``schedule.digest``): runs ``costguard digest --scheduled`` as a
child process, as cycles run, so the week's data and the chart library never load into the
long-lived daemon and a crash while making a digest stays in the child."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from costguard.daemon import PARENT_ENV, _die_with_parent
from costguard.logs import get_logger

log = get_logger("costguard.digest")


class DigestWorker:
    """Callable for ``CycleScheduler(digest=...)``: one scheduled digest run (org + teams, last
    complete week, written to ``digest.archive``)."""

    def __init__(self, config_path: Path, *, stop: threading.Event, command: Sequence[str] | None = None,
                 busy: Callable[[], bool] = lambda: False, poll_seconds: float = 10.0, max_wait_seconds: float = 3600.0) -> None:
        self.config_path = config_path
        self.stop = stop
        self.command = list(command) if command else [sys.executable, "-m", "costguard"]
        self.busy = busy
        self.poll_seconds = poll_seconds
        self.max_wait_seconds = max_wait_seconds

    def _wait_for_cycle(self) -> None:
        """Readers of the lake take no lock, and a cycle swaps days in as it lands them: wait until
        a running cycle has finished (up to ``max_wait_seconds``), so the digest reads a settled lake."""
        deadline = time.monotonic() + self.max_wait_seconds
        if self.busy():
            log.info("digest_waiting_for_cycle")
            while self.busy() and time.monotonic() < deadline:
                if self.stop.wait(timeout=self.poll_seconds):
                    return

    def __call__(self) -> int | None:
        self._wait_for_cycle()
        if self.stop.is_set():
            return None
        cmd = [*self.command, "digest", "-c", str(self.config_path), "--scheduled"]
        log.info("digest_worker_started")
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, env={**os.environ, PARENT_ENV: str(os.getpid())},
                                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        while proc.poll() is None:
            if self.stop.wait(timeout=0.5):
                proc.send_signal(signal.SIGTERM)
                proc.wait()
        if proc.returncode == 0:
            log.info("digest_worker_finished", exit_code=0)
        else:
            log.error("digest_worker_failed", exit_code=proc.returncode)
        return proc.returncode
