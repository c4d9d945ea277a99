"""At most one message per interval per key (Slack: 1 message per second per channel)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(self, interval: float, *, sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.sleep = sleep
        self.monotonic = monotonic
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, key: str) -> float:
        """Block until ``key`` may send again; returns the seconds waited."""
        with self._lock:
            now = self.monotonic()
            last = self._last.get(key)
            wait = 0.0 if last is None else max(0.0, last + self.interval - now)
            if wait:
                self.sleep(wait)
            self._last[key] = now + wait
            return wait
