"""A small project for delivery tests: tag-coverage findings owned by teams, and a config whose
`notify:` section each test writes."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from datetime import date
from pathlib import Path

from focus_rows import days, row, write

AS_OF = "2026-03-10"
RULES = """
- id: app-tag
  kind: tag-coverage
  severity: warning
  keys: [application]
  metric: EffectiveCost
  window_days: 10
  min_coverage: 0.99
  group_by: [ProviderName]
  resource_cost_floor: 10
"""
OWNERS = """
default: finops
tag_keys: [team]
teams:
  finops: {contact: finops@example.com}
  payments: {contact: payments-oncall@example.com}
  data: {contact: data@example.com}
"""
# resource id -> (team tag, dollars per day); none carries the application tag
RESOURCES = {"i-pay1": ("payments", "5.00"), "i-pay2": ("payments", "4.00"), "i-data1": ("data", "3.00")}
FAST_RETRY = "retry: {attempts: 3, initial_backoff: 0.01, max_backoff: 0.05, max_elapsed: 5}"


def export(folder: Path, resources: dict[str, tuple[str, str]] = RESOURCES, *, tagged: set[str] = frozenset()) -> None:
    rows = []
    for d in days(date(2026, 3, 1), 10):
        for rid, (team, cost) in resources.items():
            tags = {"team": team, **({"application": "x"} if rid in tagged else {})}
            rows.append(row(d, cost, resource=rid, tags=tags))
        rows.append(row(d, "1.00", resource="i-tagged", tags={"application": "web", "team": "payments"}))
    write(folder / "exports" / "costs.csv", rows)


def project(folder: Path, notify: str, *, owners: str = OWNERS, resources=RESOURCES, tagged=frozenset(),
            exceptions: str | None = None) -> Path:
    (folder / "rules").mkdir(parents=True, exist_ok=True)
    (folder / "rules" / "tags.yaml").write_text(RULES)
    (folder / "owners.yaml").write_text(textwrap.dedent(owners).lstrip())
    if exceptions is not None:
        (folder / "exceptions.yaml").write_text(textwrap.dedent(exceptions).lstrip())
    export(folder, resources, tagged=tagged)
    body = textwrap.dedent("""
        state: {url: "sqlite:///state.db", lake: lake}
        providers: [{name: aws, type: focus, paths: ["exports/*.csv"]}]
        rules: [rules/]
        owners: owners.yaml
        notify:
        """).lstrip() + textwrap.indent(textwrap.dedent(notify).strip("\n"), "  ") + "\n"
    cfg = folder / "costguard.yaml"
    cfg.write_text(body)
    return cfg


def db_text(folder: Path) -> str:
    """Every row of every table of the state DB, as text (to look for secrets)."""
    con = sqlite3.connect(folder / "state.db")
    try:
        return "\n".join(con.iterdump())
    finally:
        con.close()


def ledger(folder: Path) -> list[dict]:
    con = sqlite3.connect(folder / "state.db")
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM ledger ORDER BY id")]
    finally:
        con.close()


def bodies(httpserver, path: str | None = None) -> list[tuple[dict, dict]]:
    """(headers, JSON body) of every request the server got (on ``path``), in order."""
    out = []
    for req, _resp in httpserver.log:
        if path is None or req.path == path:
            out.append((dict(req.headers), json.loads(req.get_data(as_text=True) or "null")))
    return out
