"""The daemon's HTTP side: ``/healthz``, ``/readyz`` and ``/metrics`` (stdlib only).

``/healthz`` stays 200 while a cloud is down (restarting the pod would not fix AWS); it says
``degraded`` and shows each provider's status instead. ``/readyz`` is 503 until the daemon has
validated its config and opened its store. Nothing here logs to stdout, and provider details
and run summaries are passed through the log redaction before they are served.
"""

from __future__ import annotations

import json
import threading
from copy import deepcopy
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from costguard.logs import get_logger, redact_text, redact_value
from costguard.metrics import Metrics

__all__ = ["HealthState", "HttpServer"]

_HEALTHY = frozenset({"ok", "unknown"})

log = get_logger(__name__)


def _iso(at: datetime) -> str:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


class HealthState:
    """What ``/healthz`` and ``/readyz`` report; updated by the app, read by HTTP threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready = False
        self._providers: dict[str, dict[str, Any]] = {}
        self._receivers: dict[str, dict[str, Any]] = {}
        self._last_run: dict[str, Any] | None = None

    def set_ready(self, ready: bool) -> None:
        with self._lock:
            self._ready = bool(ready)

    def set_provider(self, source: str, status: str, detail: str | None, *, at: datetime) -> None:
        """Record a provider's connection status (a ``ConnectionStatus`` value) and why."""
        entry = {
            "status": str(status),
            "detail": None if detail is None else redact_text(str(detail)),
            "at": _iso(at),
        }
        with self._lock:
            self._providers[source] = entry

    def set_receiver(self, name: str, status: str, detail: str | None, *, at: datetime) -> None:
        """Record a receiver's delivery state (``ok`` or ``failing``) and why."""
        entry = {"status": status, "detail": None if detail is None else redact_text(str(detail)), "at": _iso(at)}
        with self._lock:
            self._receivers[name] = entry

    def set_last_run(self, run: dict[str, Any]) -> None:
        """Record the last cycle's summary (run_id, status, started/finished, counts...)."""
        safe = redact_value(deepcopy(dict(run)))
        with self._lock:
            self._last_run = safe

    def snapshot(self) -> dict[str, Any]:
        """``{"ready", "status", "providers", "last_run"}``; a copy, safe to mutate."""
        with self._lock:
            providers = {k: dict(v) for k, v in self._providers.items()}
            receivers = {k: dict(v) for k, v in self._receivers.items()}
            last_run = deepcopy(self._last_run)
            ready = self._ready
        degraded = any(p["status"] not in _HEALTHY for p in providers.values()) or \
            any(r["status"] not in _HEALTHY for r in receivers.values())
        return {
            "ready": ready,
            "status": "degraded" if degraded else "ok",
            "providers": providers,
            "receivers": receivers,
            "last_run": last_run,
        }


def _handler_class(health: HealthState, metrics: Metrics) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "costguard"
        sys_version = ""
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 (stdlib name)
            path = urlsplit(self.path).path.rstrip("/") or "/"
            try:
                if path == "/healthz":
                    snap = health.snapshot()
                    self._json(
                        HTTPStatus.OK,
                        {
                            "status": snap["status"],
                            "providers": snap["providers"],
                            "receivers": snap["receivers"],
                            "last_run": snap["last_run"],
                        },
                    )
                elif path == "/readyz":
                    ready = health.snapshot()["ready"]
                    self._json(
                        HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE, {"ready": ready}
                    )
                elif path == "/metrics":
                    payload, content_type = metrics.render()
                    self._send(HTTPStatus.OK, payload, content_type)
                else:
                    self._json(HTTPStatus.NOT_FOUND, {"error": "not found", "path": path})
            except Exception:  # one bad request must not take the server down
                log.exception("http_request_failed", path=path)
                self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})

        def _json(self, status: HTTPStatus, body: dict[str, Any]) -> None:
            payload = json.dumps(body, default=str, sort_keys=True).encode()
            self._send(status, payload, "application/json")

        def _send(self, status: HTTPStatus, payload: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
            log.debug("http_request_served", client=self.client_address[0], line=format % args)

    return Handler


class HttpServer:
    """``ThreadingHTTPServer`` on a daemon thread. ``port=0`` binds a free port."""

    def __init__(self, host: str, port: int, health: HealthState, metrics: Metrics) -> None:
        self._host = host
        self._port = port
        self._handler = _handler_class(health, metrics)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port once started (the real one when 0 was asked), else the asked one."""
        if self._server is not None:
            return int(self._server.server_address[1])
        return self._port

    @property
    def host(self) -> str:
        return self._host

    def start(self) -> None:
        """Bind and serve on a daemon thread; raises ``OSError`` if the port is taken."""
        if self._server is not None:
            return
        server = ThreadingHTTPServer((self._host, self._port), self._handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="costguard-http", daemon=True
        )
        self._thread.start()
        log.info("http_server_started", host=self._host, port=self.port)

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call twice."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None
        log.info("http_server_stopped")
