"""Delivery end to end through the real CLI against real local HTTP servers that record what they
get: grouping per owner, routes with continue, idempotency keys, signatures, retries, a receiver
down for a cycle, a permanent failure, dry runs, shadow mode, exceptions."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3

from werkzeug import Response

from notify_env import AS_OF, FAST_RETRY, bodies, ledger, project


def run(cli, cfg, expect=0, *extra):
    return cli("run", "--once", "-c", cfg, "--as-of", AS_OF, *extra, expect=expect)


def hook(monkeypatch, httpserver, name="HOOK_URL", path="/hook"):
    monkeypatch.setenv(name, httpserver.url_for(path))
    return path


def test_webhook_one_message_per_owner_exact_findings_idempotency_key_and_signature(cli, tmp_path, httpserver, monkeypatch):
    path = hook(monkeypatch, httpserver)
    (tmp_path / "hmac.txt").write_text("s3cret-hmac-key\n")
    httpserver.expect_request(path, method="POST").respond_with_data("ok")
    cfg = project(tmp_path, f"""
        receivers:
          console: {{type: console}}
          hook: {{type: webhook, url: "${{HOOK_URL}}", hmac_secret_file: hmac.txt, headers: {{X-Team: finops}}}}
        {FAST_RETRY}
        """)
    out = run(cli, cfg).stdout
    assert "this cycle: 4 new" in out  # the console is on the pipeline too
    got = bodies(httpserver, path)
    assert sorted(b["group"]["owner"] for _, b in got) == ["data", "finops", "payments"]  # one message per owner
    findings = {f["fingerprint"]: f for f in cli.json("findings", "-c", cfg, "--status", "all")}
    raw = {req.headers["Idempotency-Key"]: req.get_data() for req, _ in httpserver.log}
    for headers, body in got:
        assert body["version"] == 1 and body["receiver"] == "hook"
        assert {f["owner"] for f in body["findings"]} == {body["group"]["owner"]}  # two owners never share
        for f in body["findings"]:
            assert f.pop("event") == "new"
            assert f == findings[f["fingerprint"]]  # exactly what `costguard findings --format json` prints
        assert headers["X-Team"] == "finops"
        key = headers["Idempotency-Key"]
        want = "sha256=" + hmac.new(b"s3cret-hmac-key", raw[key], hashlib.sha256).hexdigest()
        assert headers["X-Costguard-Signature"] == want
    pay = next(b for _, b in got if b["group"]["owner"] == "payments")
    assert {f["resource_id"] for f in pay["findings"]} == {"i-pay1", "i-pay2"}
    assert pay["findings"][0]["monthly_cost"] in (150, 120)  # exact numbers, not strings
    sent_ids = {e["message_id"] for e in ledger(tmp_path) if e["receiver"] == "hook"}
    assert sent_ids == set(raw)

    again = run(cli, cfg).stdout  # nothing changed: nothing is sent again
    assert "No finding changed in this cycle." in again
    assert len(httpserver.log) == 3
    table = cli("findings", "-c", cfg).stdout
    assert "delivery" in table.splitlines()[0] and "sent 2/2" in table
    rows = cli.json("findings", "-c", cfg, "--delivery")
    assert {r["delivery"]["state"] for r in rows} == {"sent"}
    assert set(rows[0]["delivery"]["receivers"]) == {"console", "hook"}


def test_team_receivers_routes_with_continue_and_group_by_fingerprint(cli, tmp_path, httpserver, monkeypatch):
    a, b = hook(monkeypatch, httpserver, "A_URL", "/a"), hook(monkeypatch, httpserver, "B_URL", "/b")
    c = hook(monkeypatch, httpserver, "C_URL", "/c")
    for p in (a, b, c):
        httpserver.expect_request(p, method="POST").respond_with_data("ok")
    owners = """
        default: finops
        tag_keys: [team]
        teams:
          finops: {}
          payments: {receivers: [hook-c]}
          data: {}
        """
    cfg = project(tmp_path, f"""
        receivers:
          hook-a: {{type: webhook, url: "${{A_URL}}"}}
          hook-b: {{type: webhook, url: "${{B_URL}}", group_by: [fingerprint]}}
          hook-c: {{type: webhook, url: "${{C_URL}}"}}
        routes:
          - {{receiver: hook-a, match: {{owner: data}}, continue: true}}
          - {{receiver: hook-b, match: {{owner: data}}}}
        {FAST_RETRY}
        """, owners=owners)
    run(cli, cfg)
    owners_at = {p: sorted(bd["group"]["owner"] for _, bd in bodies(httpserver, p)) for p in (a, b, c)}
    # data: hook-a (continue) and hook-b; payments: its team's hook-c only; finops names none: everyone
    assert owners_at == {a: ["data", "finops"], b: ["data", "finops"], c: ["finops", "payments"]}
    assert all(len(bd["findings"]) == 1 for _, bd in bodies(httpserver, b))  # one per finding
    pay = next(bd for _, bd in bodies(httpserver, c) if bd["group"]["owner"] == "payments")
    assert len(pay["findings"]) == 2  # one message per receiver x owner, never one per finding or region


def test_429_retry_after_is_honoured_and_the_message_arrives_once(cli, tmp_path, httpserver, monkeypatch):
    path = hook(monkeypatch, httpserver)
    calls = []

    def handler(request):
        calls.append(request.headers["Idempotency-Key"])
        if len(calls) == 1:
            return Response("slow down", status=429, headers={"Retry-After": "1"})
        return Response("ok")

    httpserver.expect_request(path, method="POST").respond_with_handler(handler)
    cfg = project(tmp_path, f"""
        receivers: {{hook: {{type: webhook, url: "${{HOOK_URL}}"}}}}
        {FAST_RETRY}
        """, resources={"i-pay1": ("payments", "5.00")})
    monkeypatch.setenv("COSTGUARD_LOG_LEVEL", "info")
    r = run(cli, cfg)
    assert len(calls) == 3  # payments (429, then again) and finops
    assert calls[0] == calls[1]  # the retry is the same message
    retry = [json.loads(line) for line in r.stderr.splitlines() if '"notification_retry"' in line]
    assert [e["wait_seconds"] for e in retry] == [1.0]  # Retry-After, not our own backoff
    assert all(e["outcome"] == "sent" for e in ledger(tmp_path))


def test_a_receiver_down_for_a_cycle_gets_its_messages_next_cycle_once(cli, tmp_path, httpserver, monkeypatch):
    path = hook(monkeypatch, httpserver)
    state = {"up": False}
    keys = []

    def handler(request):
        keys.append((state["up"], request.headers["Idempotency-Key"]))
        return Response("ok") if state["up"] else Response("maintenance", status=503)

    httpserver.expect_request(path, method="POST").respond_with_handler(handler)
    cfg = project(tmp_path, f"""
        receivers: {{hook: {{type: webhook, url: "${{HOOK_URL}}"}}}}
        {FAST_RETRY}
        """)
    r1 = run(cli, cfg, 3)
    assert "receiver hook FAILED" in r1.stdout and "HTTP 503" in r1.stdout
    down = {k for up, k in keys if not up}
    assert len(down) == 1  # the first message's tries; the others wait for the next cycle
    table = cli("findings", "-c", cfg).stdout
    assert "failed: hook" in table or "pending" in table
    state["up"] = True
    run(cli, cfg, 0)
    sent = [k for up, k in keys if up]
    assert len(sent) == len(set(sent)) == 3  # each owner's message once
    assert down <= set(sent)  # the interrupted message kept its id
    run(cli, cfg, 0)
    assert len([k for up, k in keys if up]) == 3  # and never again
    assert {r["delivery"]["state"] for r in cli.json("findings", "-c", cfg, "--delivery")} == {"sent"}


def test_a_permanent_400_does_not_block_other_receivers_and_exits_3(cli, tmp_path, httpserver, monkeypatch):
    bad, good = hook(monkeypatch, httpserver, "BAD_URL", "/bad"), hook(monkeypatch, httpserver, "GOOD_URL", "/good")
    httpserver.expect_request(bad, method="POST").respond_with_data('{"error": "unknown field"}', status=400)
    httpserver.expect_request(good, method="POST").respond_with_data("ok")
    cfg = project(tmp_path, f"""
        receivers:
          bad: {{type: webhook, url: "${{BAD_URL}}"}}
          good: {{type: webhook, url: "${{GOOD_URL}}"}}
        {FAST_RETRY}
        """)
    r = run(cli, cfg, 3)
    assert "receiver bad FAILED" in r.stdout and "HTTP 400" in r.stdout
    assert len(bodies(httpserver, good)) == 3
    assert len(bodies(httpserver, bad)) == 3  # each message tried once: a 400 is not retried
    rows = cli.json("findings", "-c", cfg, "--delivery")
    assert {r["delivery"]["state"] for r in rows} == {"failed"}
    assert {r["delivery"]["receivers"]["good"]["outcome"] for r in rows} == {"sent"}
    con = sqlite3.connect(tmp_path / "state.db")
    (stats,) = con.execute("SELECT stats FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()
    con.close()
    delivery = json.loads(stats)["delivery"]
    assert delivery["good"]["sent"] == 4 and delivery["bad"]["failed"] == 4 and "HTTP 400" in delivery["bad"]["error"]


def test_dry_run_sends_and_stores_nothing_and_shows_what_would_go_where(cli, tmp_path, httpserver, monkeypatch):
    path = hook(monkeypatch, httpserver)
    httpserver.expect_request(path, method="POST").respond_with_data("ok")
    cfg = project(tmp_path, """
        receivers:
          console: {type: console}
          hook: {type: webhook, url: "${HOOK_URL}"}
        """)
    r = run(cli, cfg, 0, "--dry-run")
    assert "this cycle: 4 new" in r.stdout
    assert "hook: 3 message(s), 4 finding(s)" in r.stdout and "owner=payments: new 2" in r.stdout
    assert httpserver.log == []
    assert cli.json("findings", "-c", cfg, "--status", "all") == []
    run(cli, cfg)
    assert len(httpserver.log) == 3


def test_shadow_mode_writes_json_lines_instead_of_sending(cli, tmp_path, httpserver, monkeypatch):
    path = hook(monkeypatch, httpserver)
    httpserver.expect_request(path, method="POST").respond_with_data("ok")
    cfg = project(tmp_path, """
        mode: shadow
        shadow_path: out/shadow.jsonl
        receivers: {hook: {type: webhook, url: "${HOOK_URL}"}}
        """)
    run(cli, cfg)
    assert httpserver.log == []
    lines = [json.loads(x) for x in (tmp_path / "out" / "shadow.jsonl").read_text().splitlines()]
    assert sorted(x["group"]["owner"] for x in lines) == ["data", "finops", "payments"]
    assert {x["receiver"] for x in lines} == {"hook"} and {x["type"] for x in lines} == {"webhook"}
    assert all(x["message_id"] and x["findings"][0]["event"] == "new" for x in lines)
    run(cli, cfg)
    assert len((tmp_path / "out" / "shadow.jsonl").read_text().splitlines()) == 3  # exactly once there too


def test_exceptions_mute_and_are_validated(cli, tmp_path, httpserver, monkeypatch):
    path = hook(monkeypatch, httpserver)
    httpserver.expect_request(path, method="POST").respond_with_data("ok")
    exceptions = """
        - id: pay1-legacy
          match: {owner: payments}
          reason: legacy hosts, gone in Q2
          approver: jane@example.com
          expires: 2099-06-30
        - id: old-one
          match: {kind: budget}
          reason: was needed last year
          approver: jane@example.com
          expires: 2020-01-01
        """
    cfg = project(tmp_path, """
        exceptions: exceptions.yaml
        receivers: {hook: {type: webhook, url: "${HOOK_URL}"}}
        """, exceptions=exceptions)
    v = cli("validate", "-c", cfg)
    assert "exception 'old-one' expired on 2020-01-01" in v.stderr and "exceptions.yaml:" in v.stderr
    run(cli, cfg)
    assert sorted(b["group"]["owner"] for _, b in bodies(httpserver, path)) == ["data", "finops"]
    muted = [e for e in ledger(tmp_path) if e["outcome"] == "muted"]
    assert len(muted) == 2 and {e["reason"] for e in muted} == {"exception pay1-legacy"}
    rows = {r["resource_id"]: r for r in cli.json("findings", "-c", cfg, "--delivery")}
    assert rows["i-pay1"]["delivery"]["state"] == "muted"

    (tmp_path / "exceptions.yaml").write_text("- id: x\n  fingerprint: abc\n  match: {kind: tag}\n  reason: r\n  expires: soon\n")
    bad = cli("validate", "-c", cfg, expect=2)
    assert "exceptions.yaml:1" in bad.stderr and "approver: required key is missing" in bad.stderr
    assert "expires" in bad.stderr


def test_resolved_and_regressed_reach_the_receiver_once_each(cli, tmp_path, httpserver, monkeypatch):
    path = hook(monkeypatch, httpserver)
    httpserver.expect_request(path, method="POST").respond_with_data("ok")
    notify = f"""
        receivers: {{hook: {{type: webhook, url: "${{HOOK_URL}}", group_by: [fingerprint]}}}}
        {FAST_RETRY}
        """
    resources = {"i-pay1": ("payments", "5.00")}
    cfg = project(tmp_path, notify, resources=resources)
    run(cli, cfg)
    project(tmp_path, notify, resources=resources, tagged={"i-pay1"})
    run(cli, cfg)
    project(tmp_path, notify, resources=resources)
    run(cli, cfg)
    events = [(b["findings"][0]["resource_id"], b["findings"][0]["event"]) for _, b in bodies(httpserver, path)]
    assert [e for e in events if e[0] == "i-pay1"] == [("i-pay1", "new"), ("i-pay1", "resolved"), ("i-pay1", "regressed")]


def test_later_changes_wait_behind_an_unsent_message_so_the_ending_is_never_lost(cli, tmp_path, httpserver, monkeypatch):
    path = hook(monkeypatch, httpserver)
    state = {"up": False}
    ok = []

    def handler(request):
        if not state["up"]:
            return Response('{"error": "bad token"}', status=401)
        ok.append([(f["resource_id"], f["event"]) for f in json.loads(request.get_data())["findings"]])
        return Response("ok")

    httpserver.expect_request(path, method="POST").respond_with_handler(handler)
    notify = f"""
        receivers: {{hook: {{type: webhook, url: "${{HOOK_URL}}", group_by: [fingerprint]}}}}
        {FAST_RETRY}
        """
    resources = {"i-pay1": ("payments", "5.00"), "i-pay2": ("payments", "4.00")}
    cfg = project(tmp_path, notify, resources=resources)
    run(cli, cfg, 3)                                            # cycle 1: "new" refused (401)
    project(tmp_path, notify, resources=resources, tagged={"i-pay1"})
    run(cli, cfg, 3)                                            # cycle 2: i-pay1 resolved, still refused
    state["up"] = True
    run(cli, cfg, 0)                                            # cycle 3: the receiver is fixed
    pay1 = [e for msg in ok for e in msg if e[0] == "i-pay1"]
    assert pay1 == [("i-pay1", "new"), ("i-pay1", "resolved")]  # in order, each once
    run(cli, cfg, 0)
    assert [e for msg in ok for e in msg if e[0] == "i-pay1"] == pay1
