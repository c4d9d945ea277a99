"""No traceback for a user's mistake; stdout stays clean; read-only commands create nothing
(issue "Trust the numbers" §6). The real CLI, in-process and as a subprocess."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from conftest import write_config
from focus_rows import days, row, write


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(tmp_path / "exports" / "a.csv",
          [row(d, "1.00", resource="i-1", tags={"team": "web"}) for d in days(date(2026, 2, 20), 20)]
          + [row(d, "4.00", resource="i-2", account="222222222222") for d in days(date(2026, 2, 20), 20)])
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(
        "- {id: app, kind: tag-coverage, severity: warning, keys: [application], window_days: 10, resource_cost_floor: 1}\n"
        "- {id: bud, kind: budget, severity: critical, amount: 10, thresholds: [{on: actual, percent: 100, severity: critical}]}\n")
    (tmp_path / "owners.yaml").write_text("teams:\n  web: {}\n  data: {accounts: ['222222222222']}\n")
    return write_config(tmp_path, """
        state: {url: "sqlite:///state/state.db", lake: state/lake}
        providers: [{name: s, type: focus, paths: ["exports/*.csv"]}]
        rules: [rules/]
        owners: owners.yaml
        """)


def _one_line_error(result, *needles: str) -> None:
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert result.stderr.startswith("error:")
    for n in needles:
        assert n in result.stderr


def test_costs_usage_errors_are_one_line_exit_2(cli, project):
    cli("run", "--once", "-c", project, "--as-of", "2026-03-10")
    _one_line_error(cli("costs", "-c", project, "--by", "BilledCost", expect=2), "BilledCost is an amount", "--metric BilledCost")
    _one_line_error(cli("costs", "-c", project, "--by", "ServiceName,ServiceName", expect=2), "'ServiceName' is named twice")
    _one_line_error(cli("costs", "-c", project, "--by", "ChargePeriodStart", expect=2), "group by day, week or month")
    _one_line_error(cli("costs", "-c", project, "--by", "Nope", expect=2), "unknown column 'Nope'")
    _one_line_error(cli("costs", "-c", project, "--from", "2026-03-05", "--to", "2026-03-01", expect=2), "is not after --from")


def test_costs_by_day_week_month_sorted_by_time(cli, project):
    cli("run", "--once", "-c", project, "--as-of", "2026-03-10")
    by_day = cli.json("costs", "-c", project, "--by", "day")
    assert [r["day"] for r in by_day] == [d.isoformat() for d in days(date(2026, 2, 20), 19)]
    assert {r["BilledCost"] for r in by_day} == {5.0}
    weeks = cli.json("costs", "-c", project, "--by", "week")
    assert [r["week"] for r in weeks] == ["2026-02-16", "2026-02-23", "2026-03-02", "2026-03-09"]  # Mondays
    assert [r["BilledCost"] for r in weeks] == [15.0, 35.0, 35.0, 10.0]  # Fri 20 .. Sun 22 in the first week
    months = cli.json("costs", "-c", project, "--by", "month,SubAccountId")
    assert [(r["month"], r["SubAccountId"], r["BilledCost"]) for r in months] == [
        ("2026-02-01", "222222222222", 36.0), ("2026-02-01", "111111111111", 9.0),
        ("2026-03-01", "222222222222", 40.0), ("2026-03-01", "111111111111", 10.0)]


def test_snooze_in_the_past_is_a_usage_error(cli, project):
    cli("run", "--once", "-c", project, "--as-of", "2026-03-10")
    fp = cli.json("findings", "-c", project)[0]["fingerprint"]
    _one_line_error(cli("snooze", fp, "--until", "2020-01-01", "--reason", "x", "-c", project, expect=2), "is in the past")


def test_read_only_commands_create_no_database_and_no_lake(cli, project):
    state = project.parent / "state"
    assert cli.json("findings", "-c", project) == []
    assert "no findings yet" in cli("findings", "-c", project).stdout
    assert "no costs in the lake" in cli("costs", "-c", project).stdout
    assert cli.json("costs", "-c", project) == []
    assert not state.exists()
    _one_line_error(cli("snooze", "abcdef", "--until", "2099-01-01", "--reason", "x", "-c", project, expect=1), "no state yet")
    assert not state.exists()


def test_findings_filters_and_show_with_history(cli, project):
    cli("run", "--once", "-c", project, "--as-of", "2026-03-10")
    every = cli.json("findings", "-c", project)
    assert {f["rule"] for f in every} == {"app", "bud"}
    assert {f["owner"] for f in cli.json("findings", "-c", project, "--owner", "data")} == {"data"}
    assert [f["rule"] for f in cli.json("findings", "-c", project, "--severity", "critical")] == ["bud"]
    assert {f["rule"] for f in cli.json("findings", "-c", project, "--rule", "app")} == {"app"}
    assert cli.json("findings", "-c", project, "--owner", "-") == [f for f in every if f["owner"] is None]
    _one_line_error(cli("findings", "-c", project, "--severity", "loud", expect=2), "--severity 'loud'")
    fp = next(f["fingerprint"] for f in every if f["rule"] == "bud")
    shown = cli("findings", "show", fp[:8], "-c", project)
    assert "history" in shown.stdout and " new " in shown.stdout and "evidence" in shown.stdout
    (doc,) = json.loads(cli("findings", "show", fp, "-c", project, "--format", "json").stdout)
    assert doc["fingerprint"] == fp and [e["event"] for e in doc["events"]] == ["new"]
    assert cli("findings", "-c", project, "show", fp).exit_code == 0  # -c before the subcommand works too
    _one_line_error(cli("findings", "show", "ffffffffffff", "-c", project, expect=1), "no finding with fingerprint")


def test_version(cli):
    from costguard import __version__

    assert cli("--version").stdout.strip() == f"costguard {__version__}"


def test_unwritable_lake_folder_is_one_line(cli, tmp_path):
    (tmp_path / "blocker").write_text("a file where the lake folder should be")
    cfg = write_config(tmp_path, """
        state: {url: "sqlite:///state.db", lake: blocker/lake}
        providers: []
        rules: []
        """)
    _one_line_error(cli("run", "--once", "-c", cfg, expect=1), "cannot write to the cost lake folder", "point state.lake at a writable folder")


def test_serve_on_a_port_in_use_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = write_config(tmp_path, f"""
            state: {{url: "sqlite:///state.db", lake: lake}}
            providers: []
            rules: []
            server: {{host: 127.0.0.1, port: {port}}}
            schedule: {{cycle: "0 6 1 1 *"}}
            """)
        r = subprocess.run([sys.executable, "-m", "costguard", "serve", "-c", str(cfg)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in r.stderr and "set server.port" in r.stderr


def test_run_piped_into_head_is_not_a_failed_cycle(project):
    cmd = f"{sys.executable} -m costguard run --once -c {project} --as-of 2026-03-10 | head -1"
    r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert r.stdout.startswith("costguard cycle ") and r.stdout.count("\n") == 1
    assert "BrokenPipe" not in r.stderr and "Traceback" not in r.stderr
    from costguard.store import Store

    with Store.open(f"sqlite:///{project.parent / 'state' / 'state.db'}") as store:
        assert store.last_run()["status"] == "ok"


def test_logs_never_reach_stdout_whatever_is_imported_first():
    code = ("import costguard.ingest, costguard.lake, costguard.cycle;"
            "costguard.lake.log.warning('lake_event'); costguard.ingest.log.error('ingest_event');"
            "import structlog; structlog.get_logger('other').warning('plain')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == ""
    assert "lake_event" in r.stderr and "ingest_event" in r.stderr and "plain" in r.stderr
