"""Delivery benchmark: reconcile N findings (outbox written in the same transaction), then deliver
them to a local webhook (stdlib HTTP server) through the real pipeline: SQLite state, the shared
httpx client, a planned-message commit before and a ledger commit after every send.

    python bench/notify_delivery.py --findings 10000 --owners 20 --per-finding 2000

Prints one JSON object: seconds for reconcile, grouped delivery (one message per owner),
per-finding delivery (one message per finding) and an idle delivery (nothing pending); then the
console path of `costguard run` (the default receiver): reconcile + delivery of N new findings to
the console, and of a second run where every other finding's cost moved (updated) — each as wall
and CPU seconds (``resource.getrusage``; the CPU figure is the one to compare on a busy machine).
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from pydantic import SecretStr

from costguard.logs import configure_logging
from costguard.model import Finding, fingerprint
from costguard.notify.console import ConsoleNotifier
from costguard.notify.pipeline import Delivery
from costguard.notify.routing import Router
from costguard.notify.webhook import WebhookNotifier
from costguard.store import Store
from costguard.store.delivery import DeliveryStore

T0 = datetime(2026, 3, 10, 6, tzinfo=timezone.utc)


def server() -> tuple[ThreadingHTTPServer, list[int]]:
    got: list[int] = []

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            got.append(len(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, got


def findings(n: int, owners: int, rule: str, *, moved: int = 0) -> list[Finding]:
    """``moved``: every ``moved``-th finding costs more (an "updated" on a second run)."""
    out = []
    for i in range(n):
        rid = f"i-{i:07d}"
        cost = Decimal("12.3456789") + (Decimal(i % 97) if moved and i % moved == 0 else 0)
        evidence = {"missing_keys": ["team"], "untagged_cost": cost, "window": {"start": "2026-02-08", "end": "2026-03-10"},
                    "keys": ["team", "application"], "metric": "EffectiveCost"}
        out.append(Finding(fingerprint(rule, "AWS", "111", rid), rule, "tag", "warning", f"{rid} untagged", "missing tag",
                           cost, None, "USD", provider="AWS", account_id="111", resource_id=rid,
                           owner=f"team-{i % owners:02d}", owner_reason="tag team", source="bench", evidence=evidence))
    return out


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def console_cycle(store: Store, batch: list[Finding], run_id: str, now: datetime) -> dict[str, float]:
    """What `costguard run` does after the rules with the default receiver: reconcile, then deliver
    to the console (output discarded)."""
    console = ConsoleNotifier(io.StringIO())
    d = Delivery(store=DeliveryStore(store), notifiers={"console": console},
                 router=Router([], {}, ["console"], timedelta(days=7), frozenset({"console"})), clock=lambda: now)
    c, t = cpu(), time.perf_counter()
    store.reconcile(batch, run_id=run_id, now=now, evaluated_rules={"console"})
    mid_c, mid_t = cpu(), time.perf_counter()
    out = d.run(run_id)
    assert not out.errors, out.errors
    return {"reconcile_seconds": round(mid_t - t, 3), "reconcile_cpu": round(mid_c - c, 3),
            "deliver_seconds": round(time.perf_counter() - mid_t, 3), "deliver_cpu": round(cpu() - mid_c, 3)}


def deliver(store: Store, url: str, client: httpx.Client, group_by: tuple[str, ...], clock) -> float:
    hook = WebhookNotifier("hook", client, SecretStr(url), group_by=group_by)
    d = Delivery(store=DeliveryStore(store), notifiers={"hook": hook},
                 router=Router([], {}, ["hook"], timedelta(days=7)), clock=clock)
    t = time.perf_counter()
    out = d.run("bench")
    assert not out.errors, out.errors
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--findings", type=int, default=10_000)
    ap.add_argument("--owners", type=int, default=20)
    ap.add_argument("--per-finding", type=int, default=2_000)
    a = ap.parse_args()
    configure_logging(level="warning")
    srv, got = server()
    url = f"http://127.0.0.1:{srv.server_address[1]}/hook"
    result: dict[str, object] = {"findings": a.findings, "owners": a.owners, "per_finding": a.per_finding}
    with tempfile.TemporaryDirectory() as tmp, httpx.Client(timeout=30) as client:
        store = Store.open(f"sqlite:///{Path(tmp) / 'state.db'}")
        t = time.perf_counter()
        store.reconcile(findings(a.findings, a.owners, "grouped"), run_id="r1", now=T0, evaluated_rules={"grouped"})
        result["reconcile_seconds"] = round(time.perf_counter() - t, 3)
        result["grouped_seconds"] = round(deliver(store, url, client, (), lambda: T0), 3)
        result["grouped_messages"] = len(got)
        result["grouped_bytes"] = sum(got)
        result["idle_seconds"] = round(deliver(store, url, client, (), lambda: T0), 3)
        got.clear()
        store.reconcile(findings(a.per_finding, a.owners, "single"), run_id="r2", now=T0, evaluated_rules={"single"})
        secs = deliver(store, url, client, ("fingerprint",), lambda: T0)
        result["per_finding_seconds"] = round(secs, 3)
        result["per_finding_messages"] = len(got)
        result["per_finding_messages_per_second"] = round(len(got) / secs, 1)
        store.close()
        store = Store.open(f"sqlite:///{Path(tmp) / 'console.db'}")
        result["console_first"] = console_cycle(store, findings(a.findings, a.owners, "console"), "c1", T0)
        result["console_incremental"] = console_cycle(store, findings(a.findings, a.owners, "console", moved=2), "c2",
                                                      T0 + timedelta(days=1))
        store.close()
    srv.shutdown()
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
