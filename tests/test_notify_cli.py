"""`costguard notify test`, receiver and route validation, and delivery on /metrics and /healthz."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

from werkzeug import Response

from costguard.daemon import CycleWorker
from costguard.metrics import Metrics
from costguard.server import HealthState
from costguard.store import Store
from notify_env import FAST_RETRY, bodies, project


def test_notify_test_sends_one_sample_and_says_what_failed(cli, tmp_path, httpserver, monkeypatch):
    monkeypatch.setenv("HOOK_URL", httpserver.url_for("/hook"))
    monkeypatch.setenv("DOWN_URL", httpserver.url_for("/down"))
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    httpserver.expect_request("/down", method="POST").respond_with_handler(lambda r: Response("no", status=404))
    cfg = project(tmp_path, f"""
        receivers:
          hook: {{type: webhook, url: "${{HOOK_URL}}"}}
          down: {{type: webhook, url: "${{DOWN_URL}}"}}
        {FAST_RETRY}
        """)
    r = cli("notify", "test", "hook", "-c", cfg)
    assert "receiver hook: sample message delivered" in r.stdout
    (_, body), = bodies(httpserver, "/hook")
    (f,) = body["findings"]
    assert f["event"] == "new" and f["rule"] == "costguard-notify-test" and f["monthly_cost"] == 12.34
    assert not (tmp_path / "state.db").exists()  # the state store is not touched
    bad = cli("notify", "test", "down", "-c", cfg, expect=1)
    assert "receiver down failed: webhook down: HTTP 404" in bad.stderr
    unknown = cli("notify", "test", "nope", "-c", cfg, expect=2)
    assert "no receiver named 'nope'; configured: hook, down" in unknown.stderr


def test_receiver_and_route_config_errors_name_file_line_and_key(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("T", "xoxb-abcdefgh")
    cfg = project(tmp_path, """
        receivers:
          slack: {type: slack, token: "${T}"}
          hook: {type: webhook, url: "${T}", group_by: [colour]}
        routes:
          - {receiver: slack, match: {team: payments}}
          - {receiver: slack, match_re: {rule: "(unclosed"}}
          - {receiver: nobody}
        repeat_interval: a week
        """)
    err = cli("validate", "-c", cfg, expect=2).stderr
    assert "notify.receivers.slack.channel: Value error, a bot token needs a channel" in err
    assert "notify.receivers.hook.group_by" in err and "unknown finding field 'colour'" in err
    assert "notify.routes[0].match" in err and "unknown finding field 'team'" in err
    assert "notify.routes[1].match_re" in err and "not a regular expression" in err
    assert "notify.repeat_interval" in err and "7d, 12h" in err
    assert "costguard.yaml:" in err


def test_delivery_counts_reach_metrics_and_healthz(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path}/state.db")
    metrics, health = Metrics(), HealthState()
    worker = CycleWorker(tmp_path / "c.yaml", store=store, metrics=metrics, health=health, stop=threading.Event(),
                         clock=lambda: datetime(2026, 3, 10, tzinfo=timezone.utc))
    t = datetime(2026, 3, 10, 6, tzinfo=timezone.utc)
    worker.observe({"run_id": "r1", "status": "partial", "started_at": t, "finished_at": t, "providers": {},
                    "stats": {"delivery": {"slack": {"sent": 3, "failed": 0, "muted": 1, "suppressed": 0, "error": None},
                                           "jira": {"sent": 0, "failed": 2, "muted": 0, "suppressed": 0,
                                                    "error": "jira jira create: HTTP 400: project FIN not found"}}}})
    store.close()
    get = metrics.registry.get_sample_value
    assert get("costguard_notifications_total", {"receiver": "slack", "outcome": "sent"}) == 3
    assert get("costguard_notifications_total", {"receiver": "slack", "outcome": "muted"}) == 1
    assert get("costguard_notifications_total", {"receiver": "jira", "outcome": "failed"}) == 2
    snap = health.snapshot()
    assert snap["status"] == "degraded"
    assert snap["receivers"]["jira"]["status"] == "failing" and "HTTP 400" in snap["receivers"]["jira"]["detail"]
    assert snap["receivers"]["slack"]["status"] == "ok"
