"""Prometheus metrics, on a registry of their own (never client_python's global REGISTRY).

``app.py`` builds one ``Metrics`` and passes it to whatever records or serves metrics; tests
build as many as they like without duplicate-registration errors.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["CYCLE_BUCKETS", "Metrics"]

# A cycle takes seconds (demo) to tens of minutes (large organisations).
CYCLE_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, float("inf"))


class Metrics:
    """Every costguard metric. Names are prefixed ``costguard_``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.cycle_duration_seconds = Histogram(
            "costguard_cycle_duration_seconds",
            "Wall time of one cycle (ingest, evaluate, reconcile, route, deliver).",
            ["status"],
            buckets=CYCLE_BUCKETS,
            registry=r,
        )
        self.cycle_phase_seconds = Histogram(
            "costguard_cycle_phase_duration_seconds",
            "Wall time of one phase of a cycle: ingest, evaluate, reconcile, deliver, report.",
            ["phase"],
            buckets=CYCLE_BUCKETS,
            registry=r,
        )
        self.cycles_total = Counter(
            "costguard_cycles",
            "Cycles finished, by final status (ok, partial, failed, cancelled).",
            ["status"],
            registry=r,
        )
        self.last_cycle_timestamp_seconds = Gauge(
            "costguard_last_cycle_timestamp_seconds",
            "Unix time at which the last cycle with this status finished.",
            ["status"],
            registry=r,
        )
        self.rows_ingested_total = Counter(
            "costguard_rows_ingested",
            "FOCUS cost rows written to the cost lake.",
            ["source"],
            registry=r,
        )
        self.conformance_failures_total = Counter(
            "costguard_conformance_failures",
            "FOCUS conformance checks that failed, by source and check.",
            ["source", "check"],
            registry=r,
        )
        self.findings_open = Gauge(
            "costguard_findings_open",
            "Open findings after the last reconcile, by kind and severity.",
            ["kind", "severity"],
            registry=r,
        )
        self.provider_errors_total = Counter(
            "costguard_provider_errors",
            "Provider failures (throttling, credentials, outage, bad data).",
            ["source"],
            registry=r,
        )
        self.provider_up = Gauge(
            "costguard_provider_up",
            "1 if the provider's last fetch succeeded, else 0.",
            ["source"],
            registry=r,
        )
        self.api_requests_total = Counter(
            "costguard_api_requests",
            "Cloud API requests made by a provider (retries included), by provider entry and service:Operation.",
            ["provider", "api"],
            registry=r,
        )
        self.paid_api_requests_total = Counter(
            "costguard_paid_api_requests",
            "Billable cloud API requests (AWS Cost Explorer $0.01 each; CloudWatch GetMetricData per metric).",
            ["provider", "api"],
            registry=r,
        )
        self.notifications_total = Counter(
            "costguard_notifications",
            "Notifications by receiver and outcome (sent, failed, muted, suppressed), one per finding change.",
            ["receiver", "outcome"],
            registry=r,
        )
        self._findings_lock = threading.Lock()
        self._findings_labels: set[tuple[str, str]] = set()

    def record_cycle(self, status: str, duration_seconds: float, finished_at: float) -> None:
        """Count one finished cycle: duration, total and last-finished time (unix seconds)."""
        self.cycle_duration_seconds.labels(status).observe(duration_seconds)
        self.cycles_total.labels(status).inc()
        self.last_cycle_timestamp_seconds.labels(status).set(finished_at)

    def record_phases(self, phase_seconds: Mapping[str, float]) -> None:
        """Observe each phase's wall seconds of one cycle (``stats.phase_seconds`` of its run record)."""
        for phase, seconds in phase_seconds.items():
            self.cycle_phase_seconds.labels(phase).observe(seconds)

    def record_requests(self, provider: str, requests: Mapping[str, int], paid: Mapping[str, int]) -> None:
        """Add one run's request counts (from its run record) to the request counters."""
        for api, n in requests.items():
            self.api_requests_total.labels(provider, api).inc(n)
        for api, n in paid.items():
            self.paid_api_requests_total.labels(provider, api).inc(n)

    def set_provider_up(self, source: str, up: bool) -> None:
        self.provider_up.labels(source).set(1 if up else 0)

    def set_findings(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Replace ``costguard_findings_open``: ``{(kind, severity): n}``.

        Label sets present last time but absent now are removed, so a resolved kind does not
        keep reporting its old count.
        """
        with self._findings_lock:
            new = {(str(k), str(s)) for k, s in counts}
            for kind, severity in self._findings_labels - new:
                try:
                    self.findings_open.remove(kind, severity)
                except KeyError:
                    pass  # already gone (e.g. removed by hand); nothing to reset
            for (kind, severity), n in counts.items():
                self.findings_open.labels(str(kind), str(severity)).set(n)
            self._findings_labels = new

    def record_delivery(self, delivery: Mapping[str, Mapping[str, object]]) -> None:
        """Count one cycle's delivery: ``{receiver: {"sent": n, "failed": n, ...}}`` (run stats)."""
        for receiver, counts in delivery.items():
            for outcome in ("sent", "failed", "muted", "suppressed"):
                n = counts.get(outcome) or 0
                if isinstance(n, int) and n > 0:
                    self.notifications_total.labels(str(receiver), outcome).inc(n)

    def render(self) -> tuple[bytes, str]:
        """The exposition payload and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
