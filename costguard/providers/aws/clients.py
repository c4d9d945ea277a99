"""boto3 clients for one provider: one endpoint override, adaptive retries, every request counted.

:class:`RequestCounter` hooks botocore's ``before-send`` event, so it counts HTTP requests as
they leave (retries included), per ``service:Operation`` (``ce:GetCostAndUsage``). Requests to
paid APIs are also counted apart. :class:`Clients` builds and caches the clients of one
boto3 session (one account). :func:`classify` turns a botocore error into what an operator
needs: denied (fix the IAM policy), throttled (retry later), or another failure.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Operations billed per request (Cost Explorer: $0.01 each) or per metric (GetMetricData).
PAID: Mapping[str, frozenset[str] | None] = {
    "ce": None,  # every Cost Explorer operation
    "cloudwatch": frozenset({"GetMetricData"}),
}
#: Regions that serve the global APIs.
GLOBAL_REGION = "us-east-1"
GLOBAL_SERVICES = frozenset({"organizations", "ce", "budgets", "pricing", "sts-global"})

DENIED = frozenset({
    "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess",
    "AuthorizationError", "AuthFailure", "InvalidClientTokenId", "UnrecognizedClientException",
    "ExpiredToken", "ExpiredTokenException", "SignatureDoesNotMatch", "OptInRequired",
    "AWSOrganizationsNotInUseException", "AccessDeniedForDependencyException", "Forbidden", "403",
})
THROTTLED = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled", "RequestThrottledException",
    "TooManyRequestsException", "RequestLimitExceeded", "SlowDown", "ProvisionedThroughputExceededException",
    "LimitExceededException", "BandwidthLimitExceeded", "EC2ThrottledException", "PriorRequestNotComplete",
})


class PullFailed(Exception):
    """A cost pull that cannot complete: nothing of it may be stored (the provider turns it into a
    ProviderError, so the lake keeps what it had)."""


class RequestCounter:
    """Counts requests per ``service:Operation`` (thread-safe), and the paid ones apart."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._all: Counter[str] = Counter()
        self._paid: Counter[str] = Counter()

    def attach(self, client: Any, service: str) -> None:
        paid_ops = PAID.get(service, frozenset()) if service in PAID else frozenset()

        def count(event_name: str = "", **_kw: Any) -> None:
            op = event_name.rsplit(".", 1)[-1]
            key = f"{service}:{op}"
            with self._lock:
                self._all[key] += 1
                if paid_ops is None or op in paid_ops:
                    self._paid[key] += 1

        client.meta.events.register("before-send", count)

    def count(self, key: str) -> int:
        with self._lock:
            return self._all[key]

    def paid_total(self, service: str | None = None) -> int:
        with self._lock:
            return sum(n for k, n in self._paid.items() if service is None or k.startswith(service + ":"))

    def snapshot(self) -> tuple[dict[str, int], dict[str, int]]:
        with self._lock:
            return dict(sorted(self._all.items())), dict(sorted(self._paid.items()))


class Clients:
    """Clients of one boto3 session (one account), created once per (service, region)."""

    def __init__(self, session: Any, *, counter: RequestCounter, endpoint_url: str | None = None,
                 max_attempts: int = 8, default_region: str = GLOBAL_REGION) -> None:
        from botocore.config import Config

        self.session = session
        self.counter = counter
        self.endpoint_url = endpoint_url
        self.default_region = default_region
        self._config = Config(retries={"mode": "adaptive", "total_max_attempts": max_attempts},
                              connect_timeout=10, read_timeout=60, user_agent_extra="costguard")
        self._cache: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def client(self, service: str, region: str | None = None) -> Any:
        """The client of ``service`` in ``region`` (global services always in us-east-1)."""
        region = GLOBAL_REGION if service in GLOBAL_SERVICES else (region or self.default_region)
        key = (service, region)
        with self._lock:  # boto3 sessions are not thread-safe; clients are
            c = self._cache.get(key)
            if c is None:
                kw: dict[str, Any] = {"region_name": region, "config": self._config}
                if self.endpoint_url:
                    kw["endpoint_url"] = self.endpoint_url
                c = self.session.client(service, **kw)
                self.counter.attach(c, service)
                self._cache[key] = c
        return c


@dataclass(frozen=True)
class Failure:
    """A botocore error, classified: ``kind`` is denied, throttled, unavailable, missing or error."""

    kind: str
    code: str
    message: str

    def describe(self) -> str:
        return f"{self.code}: {self.message}" if self.message else self.code


def classify(e: BaseException) -> Failure:
    """What went wrong, in the terms an operator acts on."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, PartialCredentialsError

    if isinstance(e, ClientError):
        err = e.response.get("Error", {}) or {}
        code = str(err.get("Code") or "")
        msg = str(err.get("Message") or "").strip().splitlines()[0] if err.get("Message") else ""
        status = int((e.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
        if code in DENIED or status == 403:
            return Failure("denied", code or "AccessDenied", msg)
        if code in THROTTLED or status == 429:
            return Failure("throttled", code or "Throttling", msg or "throttled after every retry")
        if status >= 500 or code in ("InternalError", "InternalFailure", "ServiceUnavailable", "InternalServerError"):
            return Failure("unavailable", code or f"HTTP {status}", msg or "server error after every retry")
        if code in ("NoSuchBucket", "NoSuchKey", "NotFound", "ResourceNotFoundException", "EntityNotFoundException"):
            return Failure("missing", code, msg)
        return Failure("error", code or type(e).__name__, msg)
    if isinstance(e, (NoCredentialsError, PartialCredentialsError)):
        return Failure("denied", "NoCredentials", "no AWS credentials found (environment, profile, web identity or instance role)")
    if isinstance(e, EndpointConnectionError):
        return Failure("unavailable", "EndpointConnectionError", str(e))
    return Failure("error", type(e).__name__, str(e).strip().splitlines()[0] if str(e).strip() else "")


def is_aws_error(e: BaseException) -> bool:
    """True for errors raised by botocore (anything else is a bug and must surface)."""
    from botocore.exceptions import BotoCoreError, ClientError

    return isinstance(e, (BotoCoreError, ClientError))


class Problems:
    """Partial failures of one run, each naming the account, region and request, with the fix.
    Thread-safe; a repeated problem is kept once."""

    def __init__(self, source: str = "") -> None:
        self.source = source
        self._lock = threading.Lock()
        self._items: list[str] = []
        self.kinds: Counter[str] = Counter()

    def add(self, where: str, api: str, e: BaseException, *, role: str = "the member role") -> Failure:
        from costguard.providers.aws.iam import fix_for

        f = classify(e)
        if f.kind == "denied":
            text = f"{where}: {api} denied ({f.describe()}); fix: {fix_for(api, role=role)}"
        elif f.kind in ("throttled", "unavailable"):
            text = f"{where}: {api} {f.kind} after every retry ({f.describe()}); the next run tries again"
        else:
            text = f"{where}: {api} failed ({f.describe()})"
        self.note(text, f.kind)
        return f

    def note(self, text: str, kind: str = "error") -> None:
        with self._lock:
            if text in self._items:
                return
            self._items.append(text)
            self.kinds[kind] += 1
        from costguard.logs import get_logger

        get_logger("costguard.providers.aws").warning("provider_problem", source=self.source, kind=kind, problem=text)

    def items(self) -> list[str]:
        with self._lock:
            return list(self._items)
