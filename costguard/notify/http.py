"""One HTTP call for every transport: the shared ``httpx.Client``, errors classified for retry
(Alertmanager's ``Retrier.Check``), and nothing secret in the error text."""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from costguard.notify.errors import PermanentDeliveryError, RetryableDeliveryError

if TYPE_CHECKING:
    import httpx

RETRYABLE_STATUSES = frozenset({408, 425, 429})
BODY_SNIPPET = 300


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        at = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return max(0.0, (at - (now or datetime.now(timezone.utc))).total_seconds())


def check(resp: httpx.Response, what: str) -> httpx.Response:
    """``resp`` if 2xx; else a Retryable (5xx, 408/425/429) or Permanent (other) delivery error."""
    if 200 <= resp.status_code < 300:
        return resp
    body = " ".join(resp.text[:BODY_SNIPPET].split()) if resp.content else ""
    msg = f"{what}: HTTP {resp.status_code}" + (f": {body}" if body else "")
    if resp.status_code >= 500 or resp.status_code in RETRYABLE_STATUSES:
        raise RetryableDeliveryError(msg, status=resp.status_code, retry_after=retry_after(resp.headers.get("Retry-After")))
    raise PermanentDeliveryError(msg, status=resp.status_code)


def request(client: httpx.Client, method: str, url: str, what: str, **kwargs: Any) -> httpx.Response:
    """Send and classify. Transport errors (timeouts, refused connections) are retryable; their
    text is the exception's class and first line, without the URL."""
    import httpx  # here, not at the top: every receiver's config model imports this module
    try:
        resp = client.request(method, url, **kwargs)
    except httpx.TimeoutException as e:
        raise RetryableDeliveryError(f"{what}: timed out ({type(e).__name__})") from None
    except httpx.TransportError as e:
        reason = str(e).splitlines()[0] if str(e) else ""
        raise RetryableDeliveryError(f"{what}: {type(e).__name__}: {reason}") from None
    except httpx.InvalidURL:
        raise PermanentDeliveryError(f"{what}: the configured URL is not valid") from None
    return check(resp, what)
