"""Each transport against a real local server that records requests, in the service's documented
shape: Slack Block Kit (post, then update), Teams Adaptive Card, Jira (ADF, marker label, JQL
search, transitions), GitHub Issues, ServiceNow Table API, PagerDuty Events v2, SMTP with
STARTTLS and AUTH. Ticket trackers: a lost ledger never makes a second ticket; resolved closes,
regressed reopens the same ticket."""

from __future__ import annotations

import json
import sqlite3
from email import message_from_bytes, policy

from werkzeug import Response

from fakes import FakeGithub, FakeJira, FakeServiceNow, SmtpServer
from notify_env import AS_OF, FAST_RETRY, bodies, ledger, project

RES = {"i-pay1": ("payments", "5.00"), "i-data1": ("data", "3.00")}


def run(cli, cfg, expect=0):
    return cli("run", "--once", "-c", cfg, "--as-of", AS_OF, expect=expect)


def forget_deliveries(folder):
    """The delivery memory lost (ledger, receiver state, messages): everything pending again."""
    con = sqlite3.connect(folder / "state.db")
    with con:
        for sql in ("DELETE FROM ledger", "DELETE FROM receiver_state", "DELETE FROM messages",
                    "UPDATE outbox SET done_at = NULL"):
            con.execute(sql)
    con.close()


def lifecycle(cli, tmp_path, notify, resources=RES):
    """new → (lost ledger) → i-pay1 resolved → i-pay1 regressed."""
    cfg = project(tmp_path, notify, resources=resources)
    run(cli, cfg)
    yield "created"
    forget_deliveries(tmp_path)
    run(cli, cfg)
    yield "ledger lost"
    project(tmp_path, notify, resources=resources, tagged={"i-pay1"})
    run(cli, cfg)
    yield "resolved"
    project(tmp_path, notify, resources=resources)
    run(cli, cfg)
    yield "regressed"


# ---- chat ------------------------------------------------------------------------------------


def test_slack_bot_posts_block_kit_then_updates_the_same_message(cli, tmp_path, httpserver, monkeypatch):
    monkeypatch.setenv("SLACK_TOKEN", "xoxb-test-token-123")
    n = {"ts": 0}

    def handler(request):
        n["ts"] += 1
        body = request.get_json()
        return Response(json.dumps({"ok": True, "channel": "C0COST", "ts": body.get("ts") or f"1700000000.{n['ts']:06d}"}),
                        content_type="application/json")

    httpserver.expect_request("/api/chat.postMessage", method="POST").respond_with_handler(handler)
    httpserver.expect_request("/api/chat.update", method="POST").respond_with_handler(handler)
    notify = f"""
        receivers:
          slack: {{type: slack, token: "${{SLACK_TOKEN}}", channel: "#cost", api_url: "{httpserver.url_for('/api')}",
                  group_by: [fingerprint], min_interval_seconds: 0}}
        {FAST_RETRY}
        """
    cfg = project(tmp_path, notify, resources=RES)
    run(cli, cfg)
    posts = bodies(httpserver, "/api/chat.postMessage")
    assert len(posts) == 3  # one per finding (group_by: [fingerprint])
    headers, body = next((h, b) for h, b in posts if "i-pay1" in json.dumps(b))
    assert headers["Authorization"] == "Bearer xoxb-test-token-123" and body["channel"] == "#cost"
    assert [b["type"] for b in body["blocks"]] == ["header", "context", "section"]
    text = body["blocks"][2]["text"]["text"]
    assert body["blocks"][2]["text"]["type"] == "mrkdwn" and body["text"].startswith("costguard: 1 new")
    assert text.splitlines()[1:3] == ["Costs $150.00/month", text.splitlines()[2]] and text.splitlines()[2].startswith("Owner payments (tag team=payments) · ")
    assert "costguard findings show " in text
    pay_ts = next(e for e in ledger(tmp_path) if e["event"] == "new")  # the state keeps channel + ts
    assert pay_ts["outcome"] == "sent"

    project(tmp_path, notify, resources=RES, tagged={"i-pay1"})
    run(cli, cfg)
    updates = bodies(httpserver, "/api/chat.update")
    resolved = [b for _, b in updates if "*Resolved*" in b["blocks"][2]["text"]["text"]]
    assert len(resolved) == 1 and resolved[0]["channel"] == "C0COST" and resolved[0]["ts"].startswith("1700000000.")
    assert len(bodies(httpserver, "/api/chat.postMessage")) == 3  # updated in place, not posted again


def test_slack_webhook_429_retry_after_and_permanent_error_code(cli, tmp_path, httpserver, monkeypatch):
    monkeypatch.setenv("SLACK_HOOK", httpserver.url_for("/services/T000/B000/XXXXSECRET"))
    state = {"n": 0}

    def handler(request):
        state["n"] += 1
        if state["n"] == 1:
            return Response("rate_limited", status=429, headers={"Retry-After": "0"})
        return Response("ok")

    httpserver.expect_request("/services/T000/B000/XXXXSECRET", method="POST").respond_with_handler(handler)
    cfg = project(tmp_path, f"""
        receivers: {{slack: {{type: slack, webhook_url: "${{SLACK_HOOK}}", min_interval_seconds: 0}}}}
        {FAST_RETRY}
        """, resources=RES)
    run(cli, cfg)
    got = bodies(httpserver)
    assert len(got) == 4  # 3 owners, the first one twice (429)
    assert got[0][1] == got[1][1]
    assert all("blocks" in b for _, b in got)


def test_teams_adaptive_card(cli, tmp_path, httpserver, monkeypatch):
    monkeypatch.setenv("TEAMS_URL", httpserver.url_for("/workflows/abc"))
    httpserver.expect_request("/workflows/abc", method="POST").respond_with_data("", status=202)
    cfg = project(tmp_path, """
        receivers: {teams: {type: teams, url: "${TEAMS_URL}"}}
        """, resources=RES)
    run(cli, cfg)
    got = [b for _, b in bodies(httpserver)]
    assert len(got) == 3
    card = next(b for b in got if "payments" in json.dumps(b))
    assert card["type"] == "message"
    (att,) = card["attachments"]
    assert att["contentType"] == "application/vnd.microsoft.card.adaptive"
    content = att["content"]
    assert content["type"] == "AdaptiveCard" and content["version"] == "1.4"
    assert content["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    facts = {f["title"]: f["value"] for f in content["body"][2]["items"][1]["facts"]}
    assert facts["Costs"] == "$150.00/month" and facts["Owner"] == "payments (tag team=payments)"
    assert facts["Details"].startswith("costguard findings show ")


# ---- tickets ---------------------------------------------------------------------------------


def test_jira_issue_lifecycle_marker_search_and_no_duplicate_after_a_lost_ledger(cli, tmp_path, httpserver, monkeypatch):
    monkeypatch.setenv("JIRA_TOKEN", "atl-token-xyz")
    jira = FakeJira(httpserver)
    notify = f"""
        receivers:
          jira: {{type: jira, url: "{httpserver.url_for('/')}", user: bot@example.com, token: "${{JIRA_TOKEN}}",
                 project: FIN, projects: {{payments: PAY}}}}
        {FAST_RETRY}
        """
    steps = lifecycle(cli, tmp_path, notify)
    next(steps)
    assert jira.creates() == 3
    pay = next(k for k in jira.issues if k.startswith("PAY-"))
    issue = jira.issues[pay]
    fp = next(f["fingerprint"] for f in cli.json("findings", "-c", tmp_path / "costguard.yaml") if f["resource_id"] == "i-pay1")
    assert issue["fields"]["labels"] == ["costguard", f"costguard-{fp}"]
    assert issue["fields"]["issuetype"] == {"name": "Task"}
    desc = issue["fields"]["description"]
    assert desc["type"] == "doc" and desc["version"] == 1
    assert {c["type"] for c in desc["content"]} == {"paragraph", "bulletList"}
    assert "Costs: $150.00/month" in json.dumps(desc) and "tag team=payments" in json.dumps(desc)
    assert {a.split()[0] for a in jira.auth} == {"Basic"}
    next(steps)  # ledger lost: the marker search finds every issue
    assert jira.creates() == 3
    next(steps)  # resolved
    assert issue["category"] == "done" and any("resolved" in json.dumps(c) for c in issue["comments"])
    next(steps)  # regressed: the same issue reopened
    assert issue["category"] == "new" and "back again" in json.dumps(issue["comments"][-1])
    assert jira.creates() == 3


def test_github_issue_lifecycle_and_no_duplicate_after_a_lost_ledger(cli, tmp_path, httpserver, monkeypatch):
    monkeypatch.setenv("GH_TOKEN", "ghp_testtoken123456")
    gh = FakeGithub(httpserver)
    notify = f"""
        receivers:
          github: {{type: github, token: "${{GH_TOKEN}}", api_url: "{httpserver.url_for('/')}", repo: acme/finops,
                   repos: {{payments: acme/payments}}}}
        {FAST_RETRY}
        """
    steps = lifecycle(cli, tmp_path, notify)
    next(steps)
    assert gh.creates() == 3
    issue = next(i for i in gh.issues.values() if i["repo"] == "acme/payments")
    assert issue["title"].startswith("[costguard] ") and "<!-- costguard:marker=" in issue["body"]
    assert "Fixing saves: -" in issue["body"] and "Costs: $150.00/month" in issue["body"]
    assert {a for a in gh.auth} == {"Bearer ghp_testtoken123456"}
    next(steps)
    assert gh.creates() == 3
    next(steps)
    assert issue["state"] == "closed" and issue["state_reason"] == "completed"
    next(steps)
    assert issue["state"] == "open" and "back again" in issue["comments"][-1]
    assert gh.creates() == 3


def test_servicenow_record_lifecycle_by_correlation_id(cli, tmp_path, httpserver, monkeypatch):
    (tmp_path / "snow-pw").write_text("snow-password-1\n")
    snow = FakeServiceNow(httpserver)
    notify = f"""
        receivers:
          snow: {{type: servicenow, url: "{httpserver.url_for('/')}", user: costguard, password_file: snow-pw,
                 assignment_groups: {{payments: Payments Ops}}}}
        {FAST_RETRY}
        """
    steps = lifecycle(cli, tmp_path, notify)
    next(steps)
    assert snow.creates() == 3
    rec = next(r for r in snow.records.values() if r.get("assignment_group") == "Payments Ops")
    assert rec["correlation_display"] == "costguard" and len(rec["correlation_id"]) == 24
    assert rec["urgency"] == "2" and "$150.00/month" in rec["description"]
    next(steps)
    assert snow.creates() == 3
    next(steps)
    assert rec["state"] == "6" and rec["close_code"] == "Resolved by caller" and rec["active"] == "false"
    next(steps)
    assert rec["state"] == "2" and rec["active"] == "true" and "back again" in rec["work_notes"][-1]
    assert snow.creates() == 3


def test_pagerduty_triggers_and_resolves_by_fingerprint(cli, tmp_path, httpserver, monkeypatch):
    (tmp_path / "pd-key").write_text("R0UTINGKEY0123456789\n")
    httpserver.expect_request("/v2/enqueue", method="POST").respond_with_json(
        {"status": "success", "message": "Event processed"}, status=202)
    notify = f"""
        receivers:
          pd: {{type: pagerduty, routing_key_file: pd-key, url: "{httpserver.url_for('/v2/enqueue')}",
               trigger_severities: [warning], severity_map: {{warning: error}}}}
        {FAST_RETRY}
        """
    resources = {"i-pay1": ("payments", "5.00")}
    cfg = project(tmp_path, notify, resources=resources)
    run(cli, cfg)
    events = [b for _, b in bodies(httpserver)]
    fps = {f["fingerprint"]: f for f in cli.json("findings", "-c", cfg)}
    assert {e["dedup_key"] for e in events} == set(fps) and {e["event_action"] for e in events} == {"trigger"}
    e = next(x for x in events if fps[x["dedup_key"]]["resource_id"] == "i-pay1")
    assert e["routing_key"] == "R0UTINGKEY0123456789"
    p = e["payload"]
    assert p["severity"] == "error" and p["group"] == "payments" and p["class"] == "tag"
    assert p["summary"].endswith("($150.00/month)") and p["custom_details"]["owner_reason"] == "tag team=payments"
    project(tmp_path, notify, resources=resources, tagged={"i-pay1"})
    run(cli, cfg)
    after = [b for _, b in bodies(httpserver)][len(events):]
    # i-pay1 tagged: its finding and the (now 100%) coverage finding both resolve, each once
    assert sorted(x["dedup_key"] for x in after if x["event_action"] == "resolve") == sorted(fps)
    assert all(set(x) == {"routing_key", "dedup_key", "event_action"} for x in after)


# ---- email -----------------------------------------------------------------------------------


def test_email_one_mail_per_owner_to_the_team_contact_over_starttls_with_auth(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("SMTP_PASSWORD", "smtp-pass-42")
    with SmtpServer(tmp_path, "bot", "smtp-pass-42") as smtp:
        cfg = project(tmp_path, f"""
            receivers:
              mail: {{type: email, host: 127.0.0.1, port: {smtp.port}, tls: starttls, username: bot,
                     password: "${{SMTP_PASSWORD}}", from: costguard@example.com, to: [finops@example.com],
                     ca_bundle: {smtp.certfile}}}
            {FAST_RETRY}
            """, resources=RES)
        run(cli, cfg)
        mails = list(smtp.mails)
        assert smtp.logins == ["bot"] * 3
    assert sorted(m.rcpt_tos[0] for m in mails) == ["data@example.com", "finops@example.com", "payments-oncall@example.com"]
    pay = next(message_from_bytes(m.content, policy=policy.default) for m in mails if m.rcpt_tos == ["payments-oncall@example.com"])
    assert pay["Subject"] == "costguard: 1 new for payments" and pay["From"] == "costguard@example.com"
    ids = {e["message_id"] for e in ledger(tmp_path)}
    assert pay["Message-ID"].strip("<>").removesuffix("@costguard") in ids
    text = pay.get_body(("plain",)).get_content().replace("\r\n", "\n")
    html = pay.get_body(("html",)).get_content()
    assert "  Costs $150.00/month\n" in text and "  Owner payments (tag team=payments)\n" in text
    assert "costguard findings show " in text and "<table" in html and "$150.00/month" in html


def test_email_wrong_password_is_a_permanent_failure_and_exit_3(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("SMTP_PASSWORD", "not-the-password")
    with SmtpServer(tmp_path, "bot", "smtp-pass-42") as smtp:
        cfg = project(tmp_path, f"""
            receivers:
              mail: {{type: email, host: 127.0.0.1, port: {smtp.port}, username: bot, password: "${{SMTP_PASSWORD}}",
                     from: costguard@example.com, ca_bundle: {smtp.certfile}}}
            {FAST_RETRY}
            """, resources=RES)
        r = run(cli, cfg, expect=3)
        assert smtp.mails == []
    assert "receiver mail FAILED: email mail: login refused (535)" in r.stdout
