"""The pure parts of delivery: the dedup decision (table-driven, injected time), routing,
grouping, message ids, retry waits, durations."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from costguard.notify.dedup import Reason, Told, needs_update
from costguard.notify.duration import parse_duration
from costguard.notify.errors import PermanentDeliveryError, RetryableDeliveryError
from costguard.notify.http import retry_after
from costguard.notify.model import message_id
from costguard.notify.ratelimit import RateLimiter
from costguard.notify.retry import Retrier, RetryPolicy
from costguard.notify.routing import Route, Router, group_key, group_labels

NOW = datetime(2026, 3, 10, 6, 0, tzinfo=timezone.utc)
WEEK = timedelta(days=7)


@pytest.mark.parametrize(
    ("events", "told", "muted", "send", "reason", "event"),
    [
        (["new"], None, False, True, Reason.FIRST_NOTIFICATION, "new"),
        (["new", "updated"], None, False, True, Reason.FIRST_NOTIFICATION, "new"),
        (["new", "resolved"], None, False, False, Reason.RESOLVED_NEVER_TOLD, None),
        (["resolved"], Told("new", NOW - timedelta(days=1)), False, True, Reason.RESOLVED, "resolved"),
        (["resolved"], Told("resolved", NOW - timedelta(days=1)), False, False, Reason.RESOLVED_NEVER_TOLD, None),
        (["regressed"], Told("resolved", NOW - timedelta(days=3)), False, True, Reason.FIRST_NOTIFICATION, "regressed"),
        (["updated"], Told("new", NOW - timedelta(hours=1)), False, True, Reason.CHANGED, "updated"),
        (["updated", "repeat"], Told("new", NOW - timedelta(hours=1)), False, True, Reason.CHANGED, "updated"),
        (["repeat"], Told("new", NOW - timedelta(days=6)), False, False, Reason.REPEAT_NOT_DUE, None),
        (["repeat"], Told("new", NOW - WEEK), False, True, Reason.REPEAT_INTERVAL_ELAPSED, "repeat"),
        (["repeat"], None, False, True, Reason.FIRST_NOTIFICATION, "repeat"),  # a receiver added later
        (["new"], None, True, False, Reason.MUTED, None),
        (["updated"], Told("new", NOW - timedelta(days=1)), True, False, Reason.MUTED, None),
        (["resolved"], Told("new", NOW - timedelta(days=1)), True, True, Reason.RESOLVED, "resolved"),  # tickets close
        (["unsnoozed"], Told("new", NOW - timedelta(days=30)), False, True, Reason.CHANGED, "unsnoozed"),
    ],
)
def test_needs_update(events, told, muted, send, reason, event):
    d = needs_update(events, told, now=NOW, repeat_interval=WEEK, muted=muted)
    assert (d.send, d.reason, d.event) == (send, reason, event)


def test_needs_update_wants_an_event():
    with pytest.raises(ValueError):
        needs_update([], None, now=NOW, repeat_interval=WEEK)


def F(**kw):
    base = {"fingerprint": "fp1", "rule": "app-tag", "kind": "tag", "severity": "warning", "owner": "payments",
            "provider": "AWS", "account_id": "111", "region": "us-east-1"}
    return {**base, **kw}


def router(routes=(), teams=None, receivers=("slack-pay", "jira", "hook", "console"), catch_all=("console",)):
    return Router(list(routes), teams if teams is not None else {"payments": ["slack-pay"], "data": []},
                  list(receivers), WEEK, frozenset(catch_all))


def names(targets):
    return [t.receiver for t in targets]


def test_no_routes_owner_team_receivers_else_everyone_and_the_console_always():
    r = router()
    assert names(r.targets(F())) == ["slack-pay", "console"]
    assert names(r.targets(F(owner="data"))) == ["slack-pay", "jira", "hook", "console"]      # team names none
    assert names(r.targets(F(owner=None))) == ["slack-pay", "jira", "hook", "console"]        # unowned
    assert names(r.targets(F(owner="someone-else"))) == ["slack-pay", "jira", "hook", "console"]


def test_routes_match_continue_and_stop():
    routes = [
        Route("jira", {"severity": frozenset({"critical"})}, continue_=True, repeat_interval=timedelta(days=1)),
        Route("hook", {"kind": frozenset({"budget"})}),
        Route("hook", match_re={"account_id": re.compile(r"9+")}),
    ]
    r = router(routes)
    t = r.targets(F(severity="critical"))
    assert names(t) == ["jira", "slack-pay", "console"]          # continue: then the team's receivers
    assert t[0].repeat_interval == timedelta(days=1) and t[1].repeat_interval == WEEK
    assert names(r.targets(F(kind="budget"))) == ["hook", "console"]     # matched, no continue: stops
    assert names(r.targets(F(kind="budget", severity="critical"))) == ["jira", "hook", "console"]
    assert names(r.targets(F(account_id="999"))) == ["hook", "console"]
    assert names(r.targets(F(account_id="9991"))) == ["slack-pay", "console"]  # fullmatch


def test_group_keys_always_split_owners():
    a, b = F(owner="payments"), F(owner="data", fingerprint="fp2")
    assert group_key(group_labels(a, ())) == "owner=payments"
    assert group_key(group_labels(a, ())) != group_key(group_labels(b, ()))
    assert group_key(group_labels(a, ("fingerprint",))) == "owner=payments|fingerprint=fp1"
    assert group_key(group_labels(F(owner=None), ("region",))) == "owner=-|region=us-east-1"
    assert group_key(group_labels(a, None)) == "all"


def test_message_id_is_stable_and_depends_on_what_it_carries():
    assert message_id("hook", "owner=a", [3, 1, 2]) == message_id("hook", "owner=a", [1, 2, 3])
    assert message_id("hook", "owner=a", [1, 2]) != message_id("hook", "owner=a", [1, 2, 3])
    assert message_id("hook", "owner=a", [1]) != message_id("hook", "owner=b", [1])
    assert message_id("hook", "owner=a", [1]) != message_id("other", "owner=a", [1])


class Clock:
    def __init__(self):
        self.t = 0.0
        self.slept = []

    def sleep(self, s):
        self.slept.append(s)
        self.t += s

    def monotonic(self):
        return self.t


def test_retry_backs_off_with_jitter_honours_retry_after_and_stops_at_the_deadline():
    c = Clock()
    calls = []

    def flaky():
        calls.append(c.t)
        if len(calls) == 1:
            raise RetryableDeliveryError("HTTP 429", status=429, retry_after=7.0)
        if len(calls) == 2:
            raise RetryableDeliveryError("HTTP 503", status=503)
        return "ok"

    r = Retrier(RetryPolicy(attempts=5, initial_backoff=1, max_backoff=30, max_elapsed=60), sleep=c.sleep,
                monotonic=c.monotonic, rng=lambda: 0.5)
    assert r.call(flaky) == "ok"
    assert c.slept == [7.0, 1.0]  # Retry-After as given; then jitter 0.5 x (1 * 2**1)

    c2 = Clock()
    always = Retrier(RetryPolicy(attempts=10, initial_backoff=4, max_backoff=30, max_elapsed=60), deadline=10,
                     sleep=c2.sleep, monotonic=c2.monotonic, rng=lambda: 1.0)
    with pytest.raises(RetryableDeliveryError, match="deadline"):
        always.call(lambda: (_ for _ in ()).throw(RetryableDeliveryError("HTTP 502")))
    assert c2.slept == [4.0] and c2.t <= 10  # 4, then 8 would pass the deadline: no unbounded wait

    c3 = Clock()
    with pytest.raises(PermanentDeliveryError):
        Retrier(RetryPolicy(), sleep=c3.sleep, monotonic=c3.monotonic).call(
            lambda: (_ for _ in ()).throw(PermanentDeliveryError("HTTP 400")))
    assert c3.slept == []  # a permanent error is never retried


def test_retry_after_header_forms():
    assert retry_after("3") == 3.0
    assert retry_after("Wed, 10 Mar 2026 06:00:30 GMT", NOW) == 30.0
    assert retry_after("soon") is None and retry_after(None) is None


def test_rate_limiter_spaces_messages_per_channel():
    c = Clock()
    lim = RateLimiter(1.0, sleep=c.sleep, monotonic=c.monotonic)
    assert [lim.wait("#a"), lim.wait("#a"), lim.wait("#b"), lim.wait("#a")] == [0.0, 1.0, 0.0, 1.0]


@pytest.mark.parametrize(("text", "seconds"), [("7d", 604800), ("12h", 43200), ("1d12h", 129600), (90, 90),
                                               ("0.5s", 0.5), ("2w", 1209600)])
def test_durations(text, seconds):
    assert parse_duration(text).total_seconds() == seconds


def test_bad_duration_says_how_to_write_one():
    with pytest.raises(ValueError, match="7d, 12h"):
        parse_duration("a week")
