"""No secret (webhook URL, token, HMAC key, password, routing key) reaches the logs, the error
text, the metric labels or the state database, for every transport, even when the service
echoes the request back in its error response."""

from __future__ import annotations

import json
import sqlite3

import pytest
from werkzeug import Response

from costguard.metrics import Metrics
from fakes import SmtpServer
from notify_env import AS_OF, FAST_RETRY, db_text, project

RES = {"i-pay1": ("payments", "5.00")}


def echo(request):
    """A service that refuses everything and echoes the whole request into its error body."""
    text = f"bad request {request.url} {dict(request.headers)} {request.get_data(as_text=True)}"
    return Response(json.dumps({"error": text, "ok": False}), status=400, content_type="application/json")


CASES = {
    "webhook": ({"HOOK_URL": "{base}/hook/WEBHOOKSECRET123", "HOOK_HMAC": "HMACSECRET456"},
                'hook: {{type: webhook, url: "${{HOOK_URL}}", hmac_secret: "${{HOOK_HMAC}}"}}',
                ["WEBHOOKSECRET123", "HMACSECRET456"]),
    "slack-webhook": ({"SLACK_URL": "{base}/services/T1/B2/SLACKHOOKSECRET"},
                      'slack: {{type: slack, webhook_url: "${{SLACK_URL}}", min_interval_seconds: 0}}',
                      ["SLACKHOOKSECRET"]),
    "slack-bot": ({"SLACK_TOKEN": "xoxb-SLACKBOTSECRET"},
                  'slack: {{type: slack, token: "${{SLACK_TOKEN}}", channel: "#c", api_url: "{base}/api", min_interval_seconds: 0}}',
                  ["SLACKBOTSECRET"]),
    "teams": ({"TEAMS_URL": "{base}/workflows/TEAMSSECRET999"},
              'teams: {{type: teams, url: "${{TEAMS_URL}}"}}', ["TEAMSSECRET999"]),
    "jira": ({"JIRA_TOKEN": "JIRATOKENSECRET"},
             'jira: {{type: jira, url: "{base}", user: bot@example.com, token: "${{JIRA_TOKEN}}", project: FIN}}',
             ["JIRATOKENSECRET", "Ym90QGV4YW1wbGUuY29tOkpJUkFUT0tFTlNFQ1JFVA"]),
    "github": ({"GH_TOKEN": "ghp_GITHUBSECRET42"},
               'github: {{type: github, token: "${{GH_TOKEN}}", api_url: "{base}", repo: acme/finops}}',
               ["GITHUBSECRET42"]),
    "servicenow": ({"SNOW_PASSWORD": "SNOWPASSSECRET"},
                   'snow: {{type: servicenow, url: "{base}", user: costguard, password: "${{SNOW_PASSWORD}}"}}',
                   ["SNOWPASSSECRET", "Y29zdGd1YXJkOlNOT1dQQVNTU0VDUkVU"]),
    "pagerduty": ({"PD_KEY": "PDROUTINGSECRET1"},
                  'pd: {{type: pagerduty, routing_key: "${{PD_KEY}}", url: "{base}/v2/enqueue", trigger_severities: [warning]}}',
                  ["PDROUTINGSECRET1"]),
}


def _check(cli, tmp_path, cfg, secrets, monkeypatch):
    monkeypatch.setenv("COSTGUARD_LOG_LEVEL", "debug")
    r = cli("run", "--once", "-c", cfg, "--as-of", AS_OF, expect=3)
    assert "FAILED" in r.stdout
    out = r.stdout + r.stderr
    db = db_text(tmp_path)
    con = sqlite3.connect(tmp_path / "state.db")
    (stats,) = con.execute("SELECT stats FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()
    errors = [e for (e,) in con.execute("SELECT last_error FROM messages")]
    con.close()
    m = Metrics()
    m.record_delivery(json.loads(stats)["delivery"])
    metrics = m.render()[0].decode()
    assert "costguard_notifications_total" in metrics and 'outcome="failed"' in metrics
    assert errors and all(errors)  # the failure is recorded, with its reason
    shown = cli("findings", "-c", cfg, "--delivery", "--format", "json").stdout
    for secret in secrets:
        for where, text in (("output and logs", out), ("state db", db), ("metrics", metrics), ("findings", shown)):
            assert secret not in text, f"{secret} leaked into {where}"
    return r


@pytest.mark.parametrize("case", sorted(CASES))
def test_no_secret_leaks_from_a_failing_http_transport(case, cli, tmp_path, httpserver, monkeypatch):
    env, receiver, secrets = CASES[case]
    base = httpserver.url_for("").rstrip("/")
    for k, v in env.items():
        monkeypatch.setenv(k, v.format(base=base))
    import re

    httpserver.expect_request(re.compile(".*")).respond_with_handler(echo)
    cfg = project(tmp_path, f"""
        receivers:
          {receiver.format(base=base)}
        {FAST_RETRY}
        """, resources=RES)
    r = _check(cli, tmp_path, cfg, secrets, monkeypatch)
    assert "HTTP 400" in r.stdout
    assert httpserver.log  # the service was really called (and echoed the secret back)
    echoed = " ".join(resp.get_data(as_text=True) for _, resp in httpserver.log)
    assert any(s in echoed for s in secrets)  # so the test can fail


def test_no_secret_leaks_from_a_failing_smtp_login(cli, tmp_path, monkeypatch):
    (tmp_path / "smtp-pw").write_text("SMTPPASSSECRET\n")
    with SmtpServer(tmp_path, "bot", "the-right-one") as smtp:
        cfg = project(tmp_path, f"""
            receivers:
              mail: {{type: email, host: 127.0.0.1, port: {smtp.port}, username: bot, password_file: smtp-pw,
                     from: costguard@example.com, to: [x@example.com], ca_bundle: {smtp.certfile}}}
            {FAST_RETRY}
            """, resources=RES)
        _check(cli, tmp_path, cfg, ["SMTPPASSSECRET"], monkeypatch)


def test_secrets_written_in_the_config_file_are_refused(cli, tmp_path):
    cfg = project(tmp_path, """
        receivers: {hook: {type: webhook, url: "https://hooks.example/T/LITERALSECRET"}}
        """)
    r = cli("validate", "-c", cfg, expect=2)
    assert "notify.receivers.hook.url: this is a secret" in r.stderr and "LITERALSECRET" not in r.stderr
