"""Retry with exponential backoff, full jitter and a deadline; ``Retry-After`` is honoured.

Retryable failures (``RetryableDeliveryError``: 5xx, 429, timeouts, connection errors) are tried
again until ``attempts`` or the time budget runs out; anything else is raised at once. Sleeping is
injected, so tests record the waits instead of waiting, and no wait ever passes the deadline.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from costguard.notify.errors import RetryableDeliveryError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5              # tries per message, the first included
    initial_backoff: float = 1.0   # seconds before the second try (then doubling)
    max_backoff: float = 30.0      # cap of one wait (Retry-After above it is still honoured, within budget)
    max_elapsed: float = 120.0     # budget of one message, waits included


class Retrier:
    """Runs one send under a ``RetryPolicy`` and a cycle-wide ``deadline`` (a monotonic time)."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        deadline: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy
        self.deadline = deadline
        self.sleep = sleep
        self.monotonic = monotonic
        self.rng = rng

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, initial * 2**(attempt-1))]."""
        cap = min(self.policy.max_backoff, self.policy.initial_backoff * (2 ** (attempt - 1)))
        return cap * self.rng()

    def call(self, fn: Callable[[], T], *, on_retry: Callable[[int, RetryableDeliveryError, float], None] | None = None) -> T:
        start = self.monotonic()
        limit = start + self.policy.max_elapsed
        if self.deadline is not None:
            limit = min(limit, self.deadline)
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except RetryableDeliveryError as e:
                if attempt >= self.policy.attempts:
                    raise RetryableDeliveryError(f"{e} (gave up after {attempt} tries)", status=e.status) from None
                wait = e.retry_after if e.retry_after is not None else self.backoff(attempt)
                wait = max(0.0, wait)
                if self.monotonic() + wait > limit:
                    raise RetryableDeliveryError(
                        f"{e} (gave up after {attempt} tries: the next try, in {wait:.1f}s, would pass the delivery deadline)",
                        status=e.status) from None
                if on_retry is not None:
                    on_retry(attempt, e, wait)
                self.sleep(wait)
