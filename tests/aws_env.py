"""Real AWS SDK traffic for the aws provider's tests: moto's server on 127.0.0.1 (port 0), and a
small recording proxy in front of it that can answer chosen requests with an AWS error.

The proxy is a real HTTP server: boto3 talks to it exactly as to AWS. It records every request
(service, operation, the account of the credentials that signed it), so tests can compare the
provider's own request counts with what actually went over the wire, and inject AccessDenied,
throttling or 5xx answers for one account, one role or one API (moto checks no IAM policy).
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
         "AWS_DEFAULT_REGION": "us-east-1"}
MANAGEMENT = "123456789012"  # moto's default account


@dataclass
class Req:
    method: str
    path: str
    service: str
    operation: str
    account: str | None
    body: bytes = field(repr=False, default=b"")
    headers: dict[str, str] = field(repr=False, default_factory=dict)
    upstream_seconds: float = 0.0  # time the emulator took to answer (0 for injected answers)

    @property
    def api(self) -> str:
        return f"{self.service}:{self.operation}"

    def form(self) -> dict[str, str]:
        try:
            return {k: v[0] for k, v in urllib.parse.parse_qs(self.body.decode()).items()}
        except UnicodeDecodeError:
            return {}


Rule = Callable[[Req], "tuple[int, dict[str, str], bytes] | None"]
SIGNING = {"monitoring": "cloudwatch", "tagging": "resourcegroupstaggingapi", "elasticloadbalancing": "elbv2"}


def denied(protocol: str, code: str = "AccessDenied", message: str = "not authorized (injected by the test)") -> tuple[int, dict[str, str], bytes]:
    """An AWS error answer in the wire format of ``protocol`` (ec2, query, json)."""
    if protocol == "ec2":
        body = (f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
                "<RequestID>t</RequestID></Response>").encode()
        return 403, {"Content-Type": "text/xml"}, body
    if protocol == "query":
        body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
                "<RequestId>t</RequestId></ErrorResponse>").encode()
        return 403, {"Content-Type": "text/xml"}, body
    body = json.dumps({"__type": code, "message": message}).encode()
    return 400, {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": code}, body


def throttled(protocol: str) -> tuple[int, dict[str, str], bytes]:
    if protocol in ("ec2", "query"):
        code = "RequestLimitExceeded" if protocol == "ec2" else "Throttling"
        s, h, b = denied(protocol, code, "Rate exceeded (injected)")
        return 400 if protocol == "query" else 503, h, b
    body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded (injected)"}).encode()
    return 400, {"Content-Type": "application/x-amz-json-1.1"}, body


class Proxy:
    """Forwards every request to ``upstream`` unless a rule answers it; records them all."""

    def __init__(self, upstream: str) -> None:
        u = urllib.parse.urlsplit(upstream)
        self.upstream = (u.hostname, u.port)
        self.requests: list[Req] = []
        self.rules: list[Rule] = []
        self.keys: dict[str, str] = {}  # access key id -> account (learned from AssumeRole answers)
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _any(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                req = proxy._describe(self.command, self.path, dict(self.headers.items()), body)
                with proxy._lock:
                    proxy.requests.append(req)
                    rules = list(proxy.rules)
                for rule in rules:
                    got = rule(req)
                    if got is not None:
                        status, headers, payload = got
                        self.send_response(status)
                        for k, v in headers.items():
                            self.send_header(k, v)
                        self.send_header("Content-Length", str(len(payload)))
                        self.end_headers()
                        self.wfile.write(payload)
                        return
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                fwd = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
                t0 = time.perf_counter()
                conn.request(self.command, self.path, body=body, headers=fwd)
                resp = conn.getresponse()
                data = resp.read()
                req.upstream_seconds = time.perf_counter() - t0
                if req.api == "sts:AssumeRole" and resp.status == 200:
                    m = re.search(rb"<AccessKeyId>([^<]+)</AccessKeyId>", data)
                    arn = req.form().get("RoleArn", "")
                    if m and arn.count(":") >= 4:
                        with proxy._lock:
                            proxy.keys[m.group(1).decode()] = arn.split(":")[4]
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _describe(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Req:
        auth = headers.get("Authorization", "")
        m = re.search(r"Credential=([^/]+)/\d+/[^/]+/([^/]+)/", auth)
        key, signing = (m.group(1), m.group(2)) if m else ("", "")
        service = SIGNING.get(signing, signing)
        target = headers.get("X-Amz-Target", "")
        if target:
            op = target.split(".")[-1]
        elif "/operation/" in path:
            op = path.rsplit("/operation/", 1)[1].split("?")[0]
        elif signing == "s3":
            op = _s3_op(method, path)
        else:
            op = urllib.parse.parse_qs(body.decode(errors="replace")).get("Action", ["?"])[0]
        with self._lock:
            account = self.keys.get(key, MANAGEMENT if key == "testing" else None)
        return Req(method, path, service, op, account, body, headers)

    def apis(self) -> dict[str, int]:
        out: dict[str, int] = {}
        with self._lock:
            for r in self.requests:
                out[r.api] = out.get(r.api, 0) + 1
        return out

    def upstream_seconds(self) -> float:
        """Time spent inside the emulator answering the recorded requests."""
        with self._lock:
            return sum(r.upstream_seconds for r in self.requests)

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
            self.rules.clear()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _s3_op(method: str, path: str) -> str:
    q = urllib.parse.urlsplit(path).query
    if method == "GET" and ("list-type=2" in q):
        return "ListObjectsV2"
    if method == "GET" and path.count("/") <= 1 and not q:
        return "ListBuckets" if path in ("", "/") else "ListObjects"
    return {"GET": "GetObject", "HEAD": "HeadObject", "PUT": "PutObject", "DELETE": "DeleteObject"}.get(method, method)


def reset(endpoint: str) -> None:
    requests.post(f"{endpoint}/moto-api/reset", timeout=30).raise_for_status()


def seed_ce(endpoint: str, results: list[dict[str, Any]], account_id: str = MANAGEMENT) -> None:
    """Queue Cost Explorer answers in moto (each new request body takes the next one)."""
    r = requests.post(f"{endpoint}/moto-api/static/ce/cost-and-usage-results",
                      json={"results": results, "account_id": account_id}, timeout=30)
    assert r.status_code == 201, r.text


def seed_athena(endpoint: str, results: list[dict[str, Any]], region: str = "us-east-1") -> None:
    r = requests.post(f"{endpoint}/moto-api/static/athena/query-results", json={"region": region, "results": results}, timeout=30)
    assert r.status_code == 201, r.text


# ---- fixtures (imported by the test modules that use them) --------------------------------------

import os  # noqa: E402

import boto3  # noqa: E402
import pytest  # noqa: E402


_SERVER: dict[str, Any] = {}


def moto_server() -> str:
    """moto's server for this test process, started on first use (127.0.0.1, a free port)."""
    if "endpoint" not in _SERVER:
        os.environ.update(CREDS)
        os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = "false"
        import atexit
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        srv = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        srv.start()
        atexit.register(srv.stop)
        host, port = srv.get_host_and_port()
        _SERVER.update(server=srv, endpoint=f"http://{host}:{port}")
    return _SERVER["endpoint"]


@pytest.fixture(scope="session")
def moto_endpoint():
    return moto_server()


class World:
    """One test's AWS: moto behind a recording proxy, and helpers to build an organisation."""

    def __init__(self, moto: str, proxy: Proxy) -> None:
        self.moto = moto
        self.proxy = proxy
        self.endpoint = proxy.endpoint
        self._creds: dict[str, dict[str, Any]] = {}

    def client(self, service: str, region: str = "us-east-1", account: str | None = None) -> Any:
        """A client straight to moto (not recorded), as the management account or a member."""
        if account is None or account == MANAGEMENT:
            return boto3.client(service, region_name=region, endpoint_url=self.moto)
        c = self._creds.get(account)
        if c is None:
            c = self._creds[account] = boto3.client("sts", region_name="us-east-1", endpoint_url=self.moto).assume_role(
                RoleArn=f"arn:aws:iam::{account}:role/setup", RoleSessionName="test-setup")["Credentials"]
        return boto3.client(service, region_name=region, endpoint_url=self.moto, aws_access_key_id=c["AccessKeyId"],
                            aws_secret_access_key=c["SecretAccessKey"], aws_session_token=c["SessionToken"])

    def organization(self, members: int = 3) -> list[str]:
        org = self.client("organizations")
        org.create_organization(FeatureSet="ALL")
        ids = []
        for i in range(members):
            r = org.create_account(AccountName=f"member-{i + 1}", Email=f"m{i + 1}@example.com")
            ids.append(r["CreateAccountStatus"]["AccountId"])
        return ids


@pytest.fixture
def world(moto_endpoint, monkeypatch):
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    reset(moto_endpoint)
    proxy = Proxy(moto_endpoint)
    yield World(moto_endpoint, proxy)
    proxy.stop()
