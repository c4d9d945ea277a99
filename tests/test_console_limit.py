"""The console on big runs: per group and event the `limit` most severe and most expensive
findings, then one line with the count of the rest and the command that lists them; every
finding is still settled in the ledger; `limit: 0` prints all."""

from __future__ import annotations

import io
import re
import shlex

from notify_env import AS_OF, ledger, project

from costguard.notify.console import ConsoleNotifier

# five payments resources (dearest i-pay4) and one data resource, none tagged with application
MANY = {**{f"i-pay{i}": ("payments", f"{10 + i}.00") for i in range(5)}, "i-data1": ("data", "3.00")}


def run(cli, cfg):
    return cli("run", "--once", "-c", cfg, "--as-of", AS_OF).stdout


def shown(out: str) -> list[str]:
    return re.findall(r"\] tag +(i-\w+) ", out)


def test_console_prints_the_limit_per_group_then_how_many_more_and_the_command(cli, tmp_path):
    cfg = project(tmp_path, "receivers:\n  console: {type: console, limit: 2}\n", resources=MANY)
    out = run(cli, cfg)
    found = cli.json("findings", "-c", cfg)
    assert f"this cycle: {len(found)} new" in out  # the counts line counts everything
    assert "  NEW (5)" in out.split("owner: payments")[1]
    assert [r for r in shown(out) if r.startswith("i-pay")] == ["i-pay4", "i-pay3"]  # the dearest first
    more = re.search(r"… and 3 more new for owner payments: (.+)\n", out)
    assert more is not None, out
    cmd = shlex.split(more.group(1))
    assert cmd == ["costguard", "findings", "-c", str(cfg), "--owner", "payments"]
    listed = cli.json(*cmd[1:])  # the command it names lists the whole group
    assert sorted(f["resource_id"] for f in listed) == [f"i-pay{i}" for i in range(5)]
    assert "i-data1" in shown(out) and "more new for owner data" not in out  # under the limit: all shown
    # nothing hidden from the ledger: every notification is settled for the console
    sent = [e for e in ledger(tmp_path) if e["receiver"] == "console"]
    assert len(sent) == len(found) and {e["outcome"] for e in sent} == {"sent"}


def test_limit_zero_prints_every_finding(cli, tmp_path):
    cfg = project(tmp_path, "receivers:\n  console: {type: console, limit: 0}\n", resources=MANY)
    out = run(cli, cfg)
    assert sorted(r for r in shown(out) if r.startswith("i-pay")) == [f"i-pay{i}" for i in range(5)]
    assert "more new" not in out


def test_a_negative_limit_is_a_config_error_naming_the_key(cli, tmp_path):
    cfg = project(tmp_path, "receivers:\n  console: {type: console, limit: -1}\n")
    err = cli("run", "--once", "-c", cfg, "--as-of", AS_OF, expect=2).stderr
    assert "limit" in err and "costguard.yaml" in err


def finding(fp: str, cost: int, *, owner=None, rule="r1", kind="tag") -> dict:
    return {"fingerprint": fp, "rule": rule, "kind": kind, "severity": "warning", "title": f"t {fp}",
            "monthly_cost": cost, "monthly_savings": None, "currency": "USD", "owner": owner, "owner_reason": None}


def test_more_line_names_the_filter_of_each_grouping():
    out = io.StringIO()
    changes = [("new", finding(f"n{i}", i)) for i in range(3)] + [("resolved", finding(f"r{i}", i)) for i in range(2)]
    ConsoleNotifier(out, limit=1, config="my dir/cg.yaml").print(changes)
    text = out.getvalue()
    assert "… and 2 more new for owner (unowned): costguard findings -c 'my dir/cg.yaml' --owner -\n" in text
    assert "… and 1 more resolved for owner (unowned): costguard findings -c 'my dir/cg.yaml' --status resolved --owner -\n" in text
    for by, flag, key in (("rule", "--rule", "r1"), ("kind", "--kind", "tag")):
        out = io.StringIO()
        ConsoleNotifier(out, group_by=by, limit=2).print(changes)
        assert f"… and 1 more new for {by} {key}: costguard findings {flag} {key}\n" in out.getvalue()
