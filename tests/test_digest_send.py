"""`costguard digest --send` and the daemon's weekly job, through the delivery stage's transports
against real local servers: SMTP (aiosmtpd, STARTTLS + AUTH), a Slack Web API fake (post, then the
chart uploaded into the thread) and a Teams Workflows endpoint. Each audience's digest reaches
each of its receivers once per week, across separate runs; a receiver that is down does not stop
the others and gets it on the next run."""

from __future__ import annotations

import email
import email.policy
import json
import textwrap
from datetime import date, timedelta
from html.parser import HTMLParser

import pytest
from werkzeug import Response

from fakes import SmtpServer
from focus_rows import row, write
from notify_env import FAST_RETRY

WEEK = "2026-W09"
MONDAY = date(2026, 2, 23)
SECRETS = ("smtp-pass-42", "xoxb-digest-token-7", "/workflows/digest-secret")


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.src: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.src.append(dict(attrs)["src"])


@pytest.fixture
def env(tmp_path, httpserver, monkeypatch):
    """Two weeks of costs for team ops (tag team=ops) and the rest of the organisation; receivers
    email (org digest + ops), Slack bot and Teams (ops)."""
    rows = []
    for i in range(14):
        d = MONDAY - timedelta(days=7) + timedelta(days=i)
        rows.append(row(d, "12" if d >= MONDAY else "10", resource="i-ops", account="111111111111", tags={"team": "ops"}))
        rows.append(row(d, "5", resource="i-web", account="222222222222", service="Amazon S3"))
    write(tmp_path / "exports" / "costs.csv", rows)
    smtp = SmtpServer(tmp_path, "bot", "smtp-pass-42")
    smtp.__enter__()
    monkeypatch.setenv("SMTP_PASSWORD", "smtp-pass-42")
    monkeypatch.setenv("SLACK_TOKEN", "xoxb-digest-token-7")
    monkeypatch.setenv("TEAMS_URL", httpserver.url_for("/workflows/digest-secret"))
    teams = {"down": False}

    def slack(request):
        method = request.path.rsplit("/", 1)[-1]
        if method == "chat.postMessage":
            return _ok({"channel": "C0OPS", "ts": "1772000000.000100"})
        if method == "files.getUploadURLExternal":
            return _ok({"upload_url": httpserver.url_for("/upload/F0CHART"), "file_id": "F0CHART"})
        return _ok({"files": [{"id": "F0CHART"}]})

    def workflow(_request):
        return Response("down", status=503) if teams["down"] else Response("", status=202)

    for method in ("chat.postMessage", "files.getUploadURLExternal", "files.completeUploadExternal"):
        httpserver.expect_request(f"/api/{method}", method="POST").respond_with_handler(slack)
    httpserver.expect_request("/upload/F0CHART", method="POST").respond_with_data("OK - upload")
    httpserver.expect_request("/workflows/digest-secret", method="POST").respond_with_handler(workflow)
    (tmp_path / "owners.yaml").write_text(textwrap.dedent("""
        default: finops
        teams:
          finops: {contact: finops@example.com}
          ops: {contact: ops@example.com, receivers: [mail, slack, teams]}
        """))
    cfg = tmp_path / "costguard.yaml"
    cfg.write_text(textwrap.dedent(f"""
        state: {{url: "sqlite:///state.db", lake: lake}}
        providers: [{{name: exports, type: focus, paths: ["exports/*.csv"]}}]
        rules: []
        owners: owners.yaml
        digest: {{archive: archive, receivers: [mail], link: "https://finops.example.com/digests"}}
        notify:
          receivers:
            mail: {{type: email, host: 127.0.0.1, port: {smtp.port}, tls: starttls, username: bot,
                   password: "${{SMTP_PASSWORD}}", from: costguard@example.com, to: [finops@example.com],
                   ca_bundle: {smtp.certfile}}}
            slack: {{type: slack, token: "${{SLACK_TOKEN}}", channel: "#ops-cost", api_url: "{httpserver.url_for('/api')}",
                    min_interval_seconds: 0}}
            teams: {{type: teams, url: "${{TEAMS_URL}}"}}
          {FAST_RETRY}
        """).lstrip())
    yield cfg, smtp, httpserver, teams
    smtp.__exit__(None, None, None)


def _ok(data: dict) -> Response:
    return Response(json.dumps({"ok": True, **data}), content_type="application/json")


def _calls(httpserver, path: str) -> list:
    return [req for req, _ in httpserver.log if req.path == path]


def test_each_audience_gets_its_digest_once_per_week(cli, env):
    cfg, smtp, httpserver, teams = env
    cli("run", "--once", "-c", cfg, "--as-of", "2026-03-01")
    # the organisation's digest: to digest.receivers (mail, to its `to`)
    r = cli("digest", "-c", cfg, "--week", WEEK, "--send")
    assert "sent the 2026-W09 digest (org) to mail" in r.stdout
    assert (cfg.parent / "archive" / "digest-2026-W09.html").exists()           # the archive copy
    [mail] = smtp.mails
    assert mail.rcpt_tos == ["finops@example.com"]
    msg = email.message_from_bytes(mail.content, policy=email.policy.default)
    assert msg["Message-ID"] == "<digest.2026-W09.org@example.com>" and msg["Subject"].startswith("Cost digest 2026-W09: $")
    plain, related = msg.get_payload()
    html, *images = related.get_payload()
    page = _Images()
    page.feed(html.get_content())
    assert {s.removeprefix("cid:") for s in page.src} == {p["Content-ID"].strip("<>") for p in images} and len(images) == 2  # daily, change (no coverage rules here)
    assert "SPEND" in plain.get_content()
    # the same week again (a second run, a new store connection): nothing is sent again
    again = cli("digest", "-c", cfg, "--week", WEEK, "--send")
    assert "mail already has the 2026-W09 digest (org): not sent again" in again.stdout and len(smtp.mails) == 1

    # the team's digest: to the team's receivers; Teams is down
    teams["down"] = True
    r = cli("digest", "-c", cfg, "--week", WEEK, "--team", "ops", "--send", expect=3)
    assert "sent the 2026-W09 digest (team:ops) to mail" in r.stdout and "sent the 2026-W09 digest (team:ops) to slack" in r.stdout
    assert "FAILED to send the 2026-W09 digest (team:ops) to teams: teams teams: HTTP 503" in r.stderr
    assert smtp.mails[-1].rcpt_tos == ["ops@example.com"]                      # the team's contact
    [post] = _calls(httpserver, "/api/chat.postMessage")
    body = post.get_json()
    assert body["channel"] == "#ops-cost" and body["blocks"][0]["type"] == "header" and "team:ops" not in body["text"]
    assert post.headers["Authorization"] == "Bearer xoxb-digest-token-7"
    assert body["blocks"][-1]["elements"][0]["url"] == "https://finops.example.com/digests/digest-2026-W09-ops.html"
    [ask] = _calls(httpserver, "/api/files.getUploadURLExternal")
    [upload] = _calls(httpserver, "/upload/F0CHART")
    assert ask.form["filename"] == "digest-2026-W09-ops-daily-USD.png" and int(ask.form["length"]) == len(upload.get_data())
    assert upload.get_data().startswith(b"\x89PNG") and "Authorization" not in upload.headers   # the URL is presigned
    [done] = _calls(httpserver, "/api/files.completeUploadExternal")
    assert done.get_json() == {"files": [{"id": "F0CHART", "title": "Daily spend (USD)"}], "channel_id": "C0OPS",
                               "thread_ts": "1772000000.000100"}
    assert len(_calls(httpserver, "/workflows/digest-secret")) == 3               # tried 3 times (notify.retry)

    # Teams is back: the daemon's weekly job sends only what is missing (Teams), nothing twice
    teams["down"] = False
    cli("digest", "-c", cfg, "--week", WEEK, "--scheduled")
    cards = _calls(httpserver, "/workflows/digest-secret")
    assert len(cards) == 4 and cards[-1].get_json()["attachments"][0]["content"]["type"] == "AdaptiveCard"
    assert len(smtp.mails) == 2 and len(_calls(httpserver, "/api/chat.postMessage")) == 1
    archived = {p.name for p in (cfg.parent / "archive").glob("*.html")}
    assert archived == {"digest-2026-W09.html", "digest-2026-W09-ops.html", "digest-2026-W09-finops.html"}  # finops: archived, no receivers
    # a restarted daemon running the same week: still nothing twice
    cli("digest", "-c", cfg, "--week", WEEK, "--scheduled")
    assert len(_calls(httpserver, "/workflows/digest-secret")) == 4 and len(smtp.mails) == 2
    # no secret in the output or the state store
    db = (cfg.parent / "state.db").read_bytes()
    for secret in SECRETS:
        assert secret.encode() not in db


def test_send_without_receivers_is_refused_before_anything_is_done(cli, env):
    cfg, smtp, _httpserver, _teams = env
    cfg.write_text(cfg.read_text().replace("receivers: [mail], ", ""))
    r = cli("digest", "-c", cfg, "--week", WEEK, "--send", expect=2)
    assert "the organisation digest has no receivers: list receivers under digest.receivers" in r.stderr
    assert not (cfg.parent / "archive").exists() and smtp.mails == []


def test_digest_receivers_are_validated(cli, env):
    cfg, *_ = env
    text = cfg.read_text()
    cfg.write_text(text.replace("receivers: [mail]", "receivers: [mail, nowhere]"))
    r = cli("validate", "-c", cfg, expect=2)
    assert "digest.receivers[1]: unknown receiver 'nowhere'" in r.stderr
