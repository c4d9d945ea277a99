"""The daemon's weekly digest job (``schedule.digest``): runs ``costguard digest --scheduled`` as a
child process, as cycles run, so the week's data and the chart library never load into the
long-lived daemon and a crash while making a digest stays in the child."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from costguard.daemon import PARENT_ENV, _die_with_parent
from costguard.logs import get_logger

log = get_logger("costguard.digest")


class DigestWorker:
    """Callable for ``CycleScheduler(digest=...)``: one scheduled digest run (org + teams, last
    complete week, written to ``digest.archive``)."""

    def __init__(self, config_path: Path, *, stop: threading.Event, command: Sequence[str] | None = None) -> None:
        self.config_path = config_path
        self.stop = stop
        self.command = list(command) if command else [sys.executable, "-m", "costguard"]

    def __call__(self) -> int | None:
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
