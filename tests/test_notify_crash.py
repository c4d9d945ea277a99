"""A cycle killed with SIGKILL in the middle of delivering 55 findings, then run again: every
finding's "new" notification arrives, and always under one message id (the Idempotency-Key)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from notify_env import AS_OF, FAST_RETRY, project

N = 55
KILL_AT = 20


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.got: list[tuple[str, list[tuple[str, str]]]] = []  # (idempotency key, [(fingerprint, event)])
        self.reached = threading.Event()
        self.release = threading.Event()
        self.hold = True


def serve(rec: Recorder) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with rec.lock:
                rec.got.append((self.headers["Idempotency-Key"], [(f["fingerprint"], f["event"]) for f in body["findings"]]))
                n = len(rec.got)
            if rec.hold and n >= KILL_AT:
                rec.reached.set()       # the test kills the cycle now, while this send waits for its answer
                rec.release.wait(60)
                return
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *a: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def test_sigkill_mid_delivery_then_rerun_delivers_everything_under_one_id_each(tmp_path):
    rec = Recorder()
    srv = serve(rec)
    try:
        resources = {f"i-{i:03d}": ("payments" if i % 2 else "data", "2.00") for i in range(N)}
        cfg = project(tmp_path, f"""
            receivers: {{hook: {{type: webhook, url: "${{HOOK_URL}}", group_by: [fingerprint]}}}}
            {FAST_RETRY}
            """, resources=resources)
        env = {**os.environ, "HOOK_URL": f"http://127.0.0.1:{srv.server_address[1]}/hook", "COSTGUARD_LOG_LEVEL": "warning"}
        cmd = [sys.executable, "-m", "costguard", "run", "--once", "-c", str(cfg), "--as-of", AS_OF]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert rec.reached.wait(120), proc.communicate(timeout=5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        rec.hold = False
        rec.release.set()
        with rec.lock:
            before = len(rec.got)
        assert KILL_AT <= before < N + 1  # killed mid-delivery

        again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr
        third = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert third.returncode == 0, third.stderr
    finally:
        srv.shutdown()
        srv.server_close()

    ids_of: dict[str, set[str]] = {}
    for key, items in rec.got:
        for fp, event in items:
            assert event == "new"
            ids_of.setdefault(fp, set()).add(key)
    assert len(ids_of) == N + 1  # every resource finding and the coverage finding
    assert all(len(ids) == 1 for ids in ids_of.values())  # a resend carried the same id
    assert len({next(iter(v)) for v in ids_of.values()}) == N + 1  # and ids are per message
    assert len(rec.got) - len({k for k, _ in rec.got}) == 1  # the one in flight when killed went twice, same id
