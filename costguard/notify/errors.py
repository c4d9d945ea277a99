"""Delivery errors say whether retrying can help, and never carry a secret.

    DeliveryError
    ├── RetryableDeliveryError   5xx, 429 (with Retry-After), timeouts, connection errors
    └── PermanentDeliveryError   any other 4xx, a refused payload, a missing project or repo

Messages pass through ``costguard.logs.redact_text``: registered secret values (webhook URLs,
tokens, passwords), URL passwords and secret query parameters become ``***``.
"""

from __future__ import annotations

from costguard.errors import CostguardError
from costguard.logs import redact_text


class DeliveryError(CostguardError):
    retryable = False

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(redact_text(message))


class RetryableDeliveryError(DeliveryError):
    retryable = True


class PermanentDeliveryError(DeliveryError):
    retryable = False
