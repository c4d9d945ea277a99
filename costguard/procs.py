"""Which process owns a run, and whether that process is still alive.

A run record carries its owner (host, pid and the process's start time, so a pid reused by a
later process is not mistaken for the owner) and a heartbeat. On the same host, liveness is
checked directly; for a run owned elsewhere (several replicas on one PostgreSQL database) only
a stale heartbeat proves the owner gone.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

HEARTBEAT_SECONDS = 15
STALE_AFTER = timedelta(minutes=5)  # a heartbeat this old means the owner is gone


@dataclass(frozen=True, slots=True)
class ProcessId:
    host: str
    pid: int
    start: str  # the process's start time as the kernel reports it ("" where unknown)


def start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot, from /proc), "" where the
    platform has no /proc, None when no such process exists."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode("ascii", "replace")
    except FileNotFoundError:
        return None
    except OSError:
        return ""
    # the command name (field 2) may hold spaces and parentheses: split after the last ")"
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else ""


def this_process() -> ProcessId:
    return ProcessId(socket.gethostname(), os.getpid(), start_time(os.getpid()) or "")


def owner_gone(host: str | None, pid: int | None, start: str | None, heartbeat: datetime | None, now: datetime) -> bool:
    """True when the process that owns a run has certainly ended."""
    if host is None or pid is None:  # a run recorded before owners were: only age can tell
        return heartbeat is None or now - heartbeat > STALE_AFTER
    if host != socket.gethostname():
        return heartbeat is not None and now - heartbeat > STALE_AFTER
    current = start_time(pid)
    if current is None:
        return True
    if current == "" or not start:  # no /proc: the pid exists; trust it unless the heartbeat stopped
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
        return heartbeat is not None and now - heartbeat > STALE_AFTER
    return current != start  # the pid now belongs to a different process
