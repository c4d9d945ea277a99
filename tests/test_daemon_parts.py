"""logs, metrics, server and scheduler: the daemon's moving parts, with real HTTP and threads."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import structlog
from prometheus_client import REGISTRY, CollectorRegistry

from costguard.errors import ConfigError
from costguard.logs import configure_logging, get_logger, redact_text, redact_value
from costguard.metrics import Metrics
from costguard.scheduler import (
    CycleScheduler,
    cron_trigger,
    is_overdue,
    previous_fire_time,
    schedule_period,
    validate_schedule,
)
from costguard.server import HealthState, HttpServer

T0 = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)  # a Tuesday


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    config = structlog.get_config()
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)
    structlog.configure(**config)
    structlog.contextvars.clear_contextvars()


@pytest.fixture
def server():
    health = HealthState()
    metrics = Metrics()
    srv = HttpServer("127.0.0.1", 0, health, metrics)
    srv.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{srv.port}", timeout=5) as client:
            yield srv, health, metrics, client
    finally:
        srv.stop()


# --------------------------------------------------------------------------- logs


def test_logs_redact_secrets_and_go_to_stderr_as_json(capsys, restore_logging):
    configure_logging(json=True, level="info")
    configure_logging(json=True, level="info")  # idempotent: still one line per event
    structlog.contextvars.bind_contextvars(run_id="r-123")
    log = get_logger("costguard.test")
    log.info(
        "provider_configured",
        api_token="tok-SECRET-1",
        headers={"Authorization": "Bearer tok-SECRET-2"},
        url="postgresql+psycopg://cg:pw-SECRET-3@db:5432/costguard",
        note="see https://acct.blob.core.windows.net/c?sv=1&sig=sig-SECRET-4",
        client_secret=None,
    )
    log.debug("not_shown")
    logging.getLogger("apscheduler.scheduler").warning(
        "connect to %s failed", "redis://:pw-SECRET-5@cache:6379/0"
    )
    logging.getLogger("apscheduler.scheduler").info("below warning, dropped")
    try:
        raise RuntimeError("cannot open postgresql://cg:pw-SECRET-6@db/x")
    except RuntimeError:
        log.exception("store_failed")

    out, err = capsys.readouterr()
    assert out == ""
    for secret in ("tok-SECRET-1", "tok-SECRET-2", "pw-SECRET-3", "sig-SECRET-4", "pw-SECRET-5", "pw-SECRET-6"):
        assert secret not in err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert [line["event"] for line in lines] == [
        "provider_configured",
        "connect to redis://:***@cache:6379/0 failed",
        "store_failed",
    ]
    first = lines[0]
    assert first["run_id"] == "r-123"
    assert first["logger"] == "costguard.test"
    assert first["level"] == "info"
    assert first["timestamp"].endswith("Z")
    assert first["api_token"] == "***"
    assert first["headers"] == {"Authorization": "***"}
    assert first["url"] == "postgresql+psycopg://cg:***@db:5432/costguard"
    assert "sig=***" in first["note"]
    assert first["client_secret"] is None
    assert lines[1]["run_id"] == "r-123"  # stdlib records get contextvars too
    assert lines[1]["level"] == "warning"
    assert "RuntimeError" in lines[2]["exception"]


def test_console_renderer_also_redacts(capsys, restore_logging):
    configure_logging(json=False)
    get_logger().warning("login_failed", password="hunter2", dsn="mysql://u:hunter3@h/db")
    out, err = capsys.readouterr()
    assert out == ""
    assert "login_failed" in err
    assert "hunter2" not in err and "hunter3" not in err


def test_redact_helpers():
    assert redact_text("http://host:8080/path") == "http://host:8080/path"
    assert redact_text("s3://bucket/key") == "s3://bucket/key"
    assert redact_text("https://u:p@h/") == "https://u:***@h/"
    assert redact_value({"db": {"PASSWORD": "x", "port": 5}, "list": ["a://b:c@d"]}) == {
        "db": {"PASSWORD": "***", "port": 5},
        "list": ["a://b:***@d"],
    }


def test_bad_level_is_rejected(restore_logging):
    with pytest.raises(ValueError, match="log level"):
        configure_logging(level="loud")


# --------------------------------------------------------------------------- metrics


def test_metrics_own_registry_and_findings_reset():
    a, b = Metrics(), Metrics()  # no duplicate-registration error: never the global REGISTRY
    assert a.registry is not REGISTRY and a.registry is not b.registry
    reg = CollectorRegistry()
    m = Metrics(reg)
    assert m.registry is reg
    m.record_cycle("ok", 12.5, 1_700_000_000)
    m.rows_ingested_total.labels("exports").inc(42)
    m.record_requests("aws-org", {"ce:GetCostAndUsage": 2, "ec2:DescribeInstances": 4}, {"ce:GetCostAndUsage": 2})
    m.set_findings({("budget", "critical"): 2, ("tag", "warning"): 5})
    m.set_findings({("tag", "warning"): 3})
    get = reg.get_sample_value
    assert get("costguard_cycles_total", {"status": "ok"}) == 1
    assert get("costguard_cycle_duration_seconds_count", {"status": "ok"}) == 1
    assert get("costguard_last_cycle_timestamp_seconds", {"status": "ok"}) == 1_700_000_000
    assert get("costguard_rows_ingested_total", {"source": "exports"}) == 42
    assert get("costguard_paid_api_requests_total", {"provider": "aws-org", "api": "ce:GetCostAndUsage"}) == 2
    assert get("costguard_api_requests_total", {"provider": "aws-org", "api": "ec2:DescribeInstances"}) == 4
    assert get("costguard_paid_api_requests_total", {"provider": "aws-org", "api": "ec2:DescribeInstances"}) is None
    assert get("costguard_findings_open", {"kind": "tag", "severity": "warning"}) == 3
    assert get("costguard_findings_open", {"kind": "budget", "severity": "critical"}) is None
    payload, content_type = m.render()
    assert content_type.startswith("text/plain")
    assert b"costguard_provider_up" in payload


# --------------------------------------------------------------------------- server


def test_healthz_reports_providers_and_degrades(server):
    _, health, _, client = server
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "providers": {}, "receivers": {}, "last_run": None}

    health.set_provider("exports", "ok", None, at=T0)
    health.set_provider("aws-org", "unknown", None, at=T0)
    assert client.get("/healthz").json()["status"] == "ok"

    health.set_provider(
        "azure-prod", "failed_connection", "GET https://u:pw-SECRET@mgmt.azure.com/x -> 503", at=T0
    )
    health.set_last_run({"run_id": "r1", "status": "partial", "token": "tok-SECRET"})
    r = client.get("/healthz")
    assert r.status_code == 200  # a cloud outage must not get the pod killed
    body = r.json()
    assert body["status"] == "degraded"
    assert body["providers"]["azure-prod"]["status"] == "failed_connection"
    assert body["providers"]["azure-prod"]["at"] == "2026-03-10T10:00:00Z"
    assert body["providers"]["exports"]["status"] == "ok"
    assert body["last_run"]["run_id"] == "r1"
    assert "SECRET" not in r.text

    health.set_provider("azure-prod", "ok", None, at=T0)
    assert client.get("/healthz").json()["status"] == "ok"


def test_readyz_503_then_200(server):
    _, health, _, client = server
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json() == {"ready": False}
    health.set_ready(True)
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json() == {"ready": True}


def test_metrics_endpoint(server):
    _, _, metrics, client = server
    metrics.cycles_total.labels("partial").inc(3)
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert 'costguard_cycles_total{status="partial"} 3.0' in r.text


def test_unknown_path_404_json(server):
    _, _, _, client = server
    r = client.get("/nope")
    assert r.status_code == 404
    assert r.json()["error"] == "not found"


def test_server_port_and_stop_twice():
    srv = HttpServer("127.0.0.1", 0, HealthState(), Metrics())
    assert srv.port == 0
    srv.start()
    port = srv.port
    assert port > 0
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    srv.stop()
    srv.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


# --------------------------------------------------------------------------- schedule maths


def test_schedule_period():
    assert schedule_period("0 6 * * *", "UTC", T0) == timedelta(days=1)
    assert schedule_period("0 8 * * MON", "UTC", T0) == timedelta(days=7)
    assert schedule_period("*/15 * * * *", "UTC", T0) == timedelta(minutes=15)
    # DST starts in Berlin on 2026-03-29: 06:00 local on the 28th and 29th are 23 h apart.
    assert schedule_period("0 6 * * *", "Europe/Berlin", datetime(2026, 3, 28, 0, 0, tzinfo=UTC)) == timedelta(hours=23)


def test_weekday_numbers_follow_crontab_not_apscheduler3():
    trigger = cron_trigger("0 8 * * 1", "UTC")  # crontab: 1 = Monday (APScheduler 3 alone: Tuesday)
    assert trigger.get_next_fire_time(None, T0).weekday() == 0
    sunday = cron_trigger("0 8 * * 0", "UTC").get_next_fire_time(None, T0)
    assert sunday.weekday() == 6
    assert cron_trigger("0 8 * * 7", "UTC").get_next_fire_time(None, T0) == sunday
    weekdays = cron_trigger("0 8 * * 1-5", "UTC")
    fires, t = [], None
    for _ in range(5):
        t = weekdays.get_next_fire_time(t, t or T0)
        fires.append(t.weekday())
    assert fires == [2, 3, 4, 0, 1]  # Wed Thu Fri Mon Tue (T0 is Tuesday 10:00)


def test_previous_fire_time():
    assert previous_fire_time("0 6 * * *", "UTC", T0) == datetime(2026, 3, 10, 6, tzinfo=UTC)
    assert previous_fire_time("0 8 * * MON", "UTC", T0) == datetime(2026, 3, 9, 8, tzinfo=UTC)
    assert previous_fire_time("0 6 1,2 * *", "UTC", T0) == datetime(2026, 3, 2, 6, tzinfo=UTC)


@pytest.mark.parametrize(
    ("last", "now", "cron", "expected"),
    [
        (None, T0, "0 6 * * *", True),
        (datetime(2026, 3, 10, 6, 5, tzinfo=UTC), T0, "0 6 * * *", False),  # today's run done
        (datetime(2026, 3, 9, 6, 5, tzinfo=UTC), T0, "0 6 * * *", True),  # today's run missed
        (datetime(2026, 3, 1, tzinfo=UTC), T0, "0 6 * * *", True),  # days old
        # 05:00, yesterday's run done, today's is still ahead: wait for it
        (datetime(2026, 3, 9, 6, 5, tzinfo=UTC), datetime(2026, 3, 10, 5, tzinfo=UTC), "0 6 * * *", False),
        # restarted at 06:03 while today's cycle ran: not a period old, but today's run is owed
        (datetime(2026, 3, 9, 6, 4, tzinfo=UTC), datetime(2026, 3, 10, 6, 3, tzinfo=UTC), "0 6 * * *", True),
        (datetime(2026, 3, 9, 8, 30, tzinfo=UTC), T0, "0 8 * * MON", False),  # weekly, done Monday
        (datetime(2026, 3, 2, 8, 30, tzinfo=UTC), T0, "0 8 * * MON", True),  # missed this Monday
    ],
)
def test_is_overdue(last, now, cron, expected):
    assert is_overdue(last, cron, "UTC", now) is expected


@pytest.mark.parametrize(
    ("cron", "tz", "key", "fragment"),
    [
        ("0 6 * *", "UTC", "schedule.cycle", "expected 5"),
        ("61 6 * * *", "UTC", "schedule.cycle", "invalid"),
        ("0 6 * * funday", "UTC", "schedule.cycle", "funday"),
        ("0 6 1 * MON", "UTC", "schedule.cycle", "both day-of-month and day-of-week"),
        ("0 6 * * *", "Mars/Olympus", "schedule.timezone", "unknown time zone 'Mars/Olympus'"),
        ("0 6 * * *", "", "schedule.timezone", "time zone is empty"),
    ],
)
def test_bad_schedules(cron, tz, key, fragment):
    message = validate_schedule(cron, tz)
    assert message is not None and fragment in message
    with pytest.raises(ConfigError) as info:
        schedule_period(cron, tz, T0)
    (issue,) = info.value.issues
    assert (issue.file, issue.line, issue.key) == ("<config>", None, key)
    assert fragment in issue.message
    with pytest.raises(ConfigError):
        CycleScheduler(lambda trigger: None, cron=cron, timezone=tz, last_success=lambda: None)


def test_good_schedule_validates():
    assert validate_schedule("0 6 * * *", "UTC") is None
    assert validate_schedule("0 8 * * MON", "Europe/Berlin") is None


# --------------------------------------------------------------------------- CycleScheduler


def test_startup_cycle_runs_when_never_succeeded():
    ran = threading.Event()
    triggers: list[str] = []

    def cycle(trigger: str) -> None:
        triggers.append(trigger)
        ran.set()

    sched = CycleScheduler(cycle, cron="0 6 * * *", timezone="UTC", last_success=lambda: None)
    assert sched.next_run_time() is None
    sched.start()
    try:
        assert ran.wait(timeout=10), "start-up cycle did not run"
        assert triggers == ["startup"]
        assert sched.job_ids() == ["cycle"]
        expected = cron_trigger("0 6 * * *", "UTC").get_next_fire_time(None, datetime.now(UTC))
        assert sched.next_run_time() == expected  # back on the regular schedule
    finally:
        sched.shutdown(wait=True)
    assert sched.next_run_time() is None
    sched.shutdown()  # second call is harmless


def test_no_startup_cycle_after_a_recent_success():
    now = datetime.now(UTC)
    calls: list[str] = []
    sched = CycleScheduler(
        calls.append,
        cron="0 6 * * *",
        timezone="UTC",
        digest=lambda: None,
        digest_cron="0 8 * * MON",
        last_success=lambda: now,
        clock=lambda: now,
    )
    sched.start()
    try:
        assert sched.job_ids() == ["cycle", "digest"]
        expected = cron_trigger("0 6 * * *", "UTC").get_next_fire_time(None, datetime.now(UTC))
        assert sched.next_run_time() == expected
        assert sched.next_run_time() > now
    finally:
        sched.shutdown(wait=True)
    assert calls == []


def test_cycle_errors_are_contained_and_cycles_do_not_overlap(restore_logging):
    configure_logging(json=True)
    release = threading.Event()
    started = threading.Event()
    calls: list[str] = []

    def cycle(trigger: str) -> None:
        calls.append(trigger)
        started.set()
        release.wait(timeout=10)
        raise RuntimeError("boom")

    sched = CycleScheduler(cycle, cron="0 6 * * *", timezone="UTC", last_success=lambda: None)
    sched.start()
    try:
        assert started.wait(timeout=10)
        sched._run_cycle("schedule")  # a second cycle while one runs is skipped, not queued
        assert calls == ["startup"]
        release.set()
    finally:
        sched.shutdown(wait=True)
    sched._run_cycle("schedule")  # the crash was contained and the lock released
    assert calls == ["startup", "schedule"]


def test_dst_and_zoned_inputs():
    # Berlin switches to summer time on 2026-03-29: 06:00 local is 05:00 UTC on the 28th and
    # 04:00 UTC on the 29th.
    now = datetime(2026, 3, 29, 8, 30, tzinfo=UTC)
    assert previous_fire_time("0 6 * * *", "Europe/Berlin", now) == datetime(2026, 3, 29, 4, tzinfo=UTC)
    last = datetime(2026, 3, 28, 5, 0, tzinfo=UTC)  # the 28th's run
    assert is_overdue(last, "0 6 * * *", "Europe/Berlin", datetime(2026, 3, 29, 3, 30, tzinfo=UTC)) is False
    assert is_overdue(last, "0 6 * * *", "Europe/Berlin", datetime(2026, 3, 29, 4, 30, tzinfo=UTC)) is True
    # naive datetimes are read as UTC
    assert is_overdue(last.replace(tzinfo=None), "0 6 * * *", "Europe/Berlin", datetime(2026, 3, 29, 3, 30)) is False
