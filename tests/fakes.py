"""Small stateful fakes of Jira, GitHub and ServiceNow on pytest-httpserver, and an SMTP server
(aiosmtpd) with STARTTLS and AUTH. They implement only the calls costguard makes, in the
documented request/response shapes, and record every request."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import socket
import ssl
from pathlib import Path
from urllib.parse import parse_qs

from werkzeug import Request, Response


def _json(data, status=200):
    return Response(json.dumps(data), status=status, content_type="application/json")


class FakeJira:
    """Jira Cloud REST v3 (search/jql, issue, comment, transitions)."""

    TRANSITIONS = [{"id": "31", "name": "Done", "to": {"statusCategory": {"key": "done"}}},
                   {"id": "11", "name": "Reopen", "to": {"statusCategory": {"key": "new"}}}]

    def __init__(self, httpserver) -> None:
        self.issues: dict[str, dict] = {}
        self.calls: list[tuple[str, str, dict | None]] = []
        self.auth: list[str] = []
        httpserver.expect_request(re.compile(r"^/rest/api/3/.*")).respond_with_handler(self.handle)

    def handle(self, req: Request) -> Response:
        body = json.loads(req.get_data() or b"null")
        self.calls.append((req.method, req.path, body))
        self.auth.append(req.headers.get("Authorization", ""))
        p = req.path.removeprefix("/rest/api/3")
        if p == "/search/jql" and req.method == "POST":
            label = re.search(r'labels = "([^"]+)"', body["jql"]).group(1)
            hits = [{"id": i["id"], "key": k, "fields": {"status": {"statusCategory": {"key": i["category"]}}}}
                    for k, i in self.issues.items() if label in i["fields"]["labels"]]
            return _json({"issues": hits[: body.get("maxResults", 50)]})
        if p == "/issue" and req.method == "POST":
            key = f"{body['fields']['project']['key']}-{len(self.issues) + 1}"
            self.issues[key] = {"id": str(10000 + len(self.issues)), "fields": body["fields"], "category": "new", "comments": []}
            return _json({"id": self.issues[key]["id"], "key": key, "self": f"/rest/api/3/issue/{key}"}, 201)
        m = re.fullmatch(r"/issue/([A-Z]+-\d+)/(comment|transitions)", p)
        if m and m.group(1) in self.issues:
            issue = self.issues[m.group(1)]
            if m.group(2) == "comment":
                issue["comments"].append(body["body"])
                return _json({"id": "1"}, 201)
            if req.method == "GET":
                return _json({"transitions": self.TRANSITIONS})
            t = next(t for t in self.TRANSITIONS if t["id"] == body["transition"]["id"])
            issue["category"] = t["to"]["statusCategory"]["key"]
            return Response(status=204)
        return _json({"errorMessages": ["not found"]}, 404)

    def creates(self) -> int:
        return sum(1 for m, p, _ in self.calls if m == "POST" and p == "/rest/api/3/issue")


class FakeGithub:
    def __init__(self, httpserver) -> None:
        self.issues: dict[int, dict] = {}
        self.calls: list[tuple[str, str]] = []
        self.auth: list[str] = []
        httpserver.expect_request(re.compile(r"^/repos/.*")).respond_with_handler(self.handle)

    def handle(self, req: Request) -> Response:
        self.calls.append((req.method, req.path))
        self.auth.append(req.headers.get("Authorization", ""))
        body = json.loads(req.get_data() or b"null")
        m = re.fullmatch(r"/repos/([\w.-]+/[\w.-]+)/issues(?:/(\d+))?(/comments)?", req.path)
        if not m:
            return _json({"message": "Not Found"}, 404)
        repo, number, comments = m.group(1), m.group(2), m.group(3)
        if number is None and req.method == "GET":
            label = req.args.get("labels")
            state = req.args.get("state", "open")
            hits = [i for i in self.issues.values() if i["repo"] == repo and label in i["labels"]
                    and (state == "all" or i["state"] == state)]
            return _json([{k: v for k, v in i.items() if k != "repo"} for i in hits])
        if number is None and req.method == "POST":
            n = len(self.issues) + 1
            self.issues[n] = {"number": n, "repo": repo, "title": body["title"], "body": body["body"],
                              "labels": body["labels"], "state": "open", "comments": []}
            return _json({"number": n, "html_url": f"https://github.example/{repo}/issues/{n}"}, 201)
        issue = self.issues.get(int(number))
        if issue is None:
            return _json({"message": "Not Found"}, 404)
        if comments:
            issue["comments"].append(body["body"])
            return _json({"id": 1}, 201)
        if req.method == "PATCH":
            issue["state"] = body["state"]
            issue["state_reason"] = body.get("state_reason")
            return _json({"number": issue["number"], "state": issue["state"]})
        return _json({"message": "Not Found"}, 404)

    def creates(self) -> int:
        return sum(1 for m, p in self.calls if m == "POST" and p.endswith("/issues"))


class FakeServiceNow:
    def __init__(self, httpserver, table: str = "incident") -> None:
        self.records: dict[str, dict] = {}
        self.calls: list[tuple[str, str, dict | None]] = []
        self.auth: list[str] = []
        self.table = table
        httpserver.expect_request(re.compile(rf"^/api/now/table/{table}.*")).respond_with_handler(self.handle)

    def handle(self, req: Request) -> Response:
        body = json.loads(req.get_data() or b"null")
        self.calls.append((req.method, req.path, body))
        self.auth.append(req.headers.get("Authorization", ""))
        base = f"/api/now/table/{self.table}"
        if req.path == base and req.method == "GET":
            q = parse_qs(req.query_string.decode())["sysparm_query"][0]
            corr = q.removeprefix("correlation_id=")
            hits = [{"sys_id": s, "number": r["number"], "state": r["state"], "active": r["active"]}
                    for s, r in self.records.items() if r["correlation_id"] == corr]
            return _json({"result": hits[:1]})
        if req.path == base and req.method == "POST":
            sys_id = f"{len(self.records) + 1:032x}"
            self.records[sys_id] = {**body, "number": f"INC{len(self.records) + 1:07d}", "state": "1", "active": "true",
                                    "work_notes": []}
            return _json({"result": {"sys_id": sys_id, "number": self.records[sys_id]["number"]}}, 201)
        sys_id = req.path.removeprefix(base + "/")
        rec = self.records.get(sys_id)
        if rec is None or req.method != "PATCH":
            return _json({"error": {"message": "No Record found"}}, 404)
        if "work_notes" in body:
            rec["work_notes"].append(body.pop("work_notes"))
        rec.update(body)
        if "state" in body:
            rec["active"] = "false" if body["state"] in ("6", "7", "8") else "true"
        return _json({"result": {"sys_id": sys_id, "number": rec["number"]}})

    def creates(self) -> int:
        return sum(1 for m, _, _ in self.calls if m == "POST")


# ---- SMTP ------------------------------------------------------------------------------------


def self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    certfile, keyfile = folder / "smtp.crt", folder / "smtp.key"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return certfile, keyfile


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpServer:
    """aiosmtpd with STARTTLS required and AUTH (LOGIN/PLAIN) for one user; keeps every mail."""

    def __init__(self, folder: Path, user: str, password: str) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        self.mails: list = []
        self.logins: list[str] = []
        certfile, keyfile = self_signed(folder)
        self.certfile = certfile
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(certfile, keyfile)
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802
                outer.mails.append(envelope)
                return "250 OK"

        def authenticate(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and auth_data.login == user.encode() and auth_data.password == password.encode()
            outer.logins.append(auth_data.login.decode() if isinstance(auth_data, LoginPassword) else "?")
            return AuthResult(success=ok, handled=False)

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, tls_context=ctx,
                                     require_starttls=True, authenticator=authenticate, auth_require_tls=True)

    def __enter__(self) -> "SmtpServer":
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
