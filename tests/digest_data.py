"""The digest's golden dataset: ten ISO weeks (2025-W52 .. 2026-W09) of realistic synthetic FOCUS
data (``costguard.sim``, no step change or spike) plus a second export with planted movers whose
effect is known exactly, ingested and evaluated by real cycles at fixed clocks, and a state store
that also holds findings with a known history.

Planted (all USD, ProviderName AWS; the digest week is 2026-W09, Mon 23 Feb – Sun 1 Mar 2026):

- ``i-0planted0runaway`` (EC2, account 222222222222 = team payments, untagged): $5/day, then
  $60/day in W09 → EC2 moves +$385, root cause this resource (new spend level), and the
  application-tag coverage drops in W09.
- ``nb-0retired`` (Amazon SageMaker, account 222222222222, tagged): $30/day until Sun 22 Feb,
  then gone → SageMaker moves -$210, root cause this resource ("gone").
- ``db-01`` .. ``db-08`` (RDS, account 333333333333 = team data, tagged): $2/day each, then $6/day
  in W09 → RDS moves +$224, spread evenly over eight resources, root cause the account.

Budgets: AWS $10,000/month (covers every cost), account 222222222222 $1,000/month (a rule's
filter), team payments $900/month (owners.yaml, checked by a ``teams: true`` rule).
"""

from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from focus_rows import row, write

from costguard.app import build_cycle
from costguard.config import load_config
from costguard.digest import IsoWeek
from costguard.model import Finding, fingerprint
from costguard.sim import SimSpec, generate
from costguard.store import Store

WEEK = IsoWeek(2026, 9)
FIRST = date(2025, 12, 22)          # Monday of 2025-W52
END = WEEK.end                       # 2026-03-02, exclusive
PAYMENTS, DATA = "222222222222", "333333333333"
RUNAWAY, RETIRED = "i-0planted0runaway", "nb-0retired"
RDS = [f"db-{i:02d}" for i in range(1, 9)]
EC2, SAGEMAKER, RDS_SERVICE = "Amazon Elastic Compute Cloud", "Amazon SageMaker", "Amazon Relational Database Service"


def utc(y: int, m: int, d: int, h: int = 6) -> datetime:
    return datetime(y, m, d, h, tzinfo=timezone.utc)


def planted_rows() -> list[dict]:
    rows = []
    d = FIRST
    while d < END:
        this_week = d >= WEEK.start
        rows.append(row(d, "60" if this_week else "5", resource=RUNAWAY, account=PAYMENTS, service=EC2, tags=None))
        if d < WEEK.start:
            rows.append(row(d, "30", resource=RETIRED, account=PAYMENTS, service=SAGEMAKER, tags={"application": "ml"}))
        for r in RDS:
            rows.append(row(d, "6" if this_week else "2", resource=r, account=DATA, service=RDS_SERVICE, tags={"application": "orders"}))
        d += timedelta(days=1)
    return rows


CONFIG = """
state: {url: "sqlite:///state/state.db", lake: state/lake}
providers:
  - {name: sim, type: focus, paths: ["sim/focus/data/**/*.parquet"]}
  - {name: planted, type: focus, paths: ["planted/*.csv"]}
ingest: {keep_rows: false}          # the digest reads the daily rollup only
rules: [rules/]
owners: owners.yaml
schedule: {cycle: "0 6 * * *", digest: "0 8 * * MON", timezone: UTC}
digest: {archive: archive, top: 5}
"""

OWNERS = f"""
default: finops
teams:
  finops: {{}}
  payments: {{accounts: ["{PAYMENTS}"], budget: {{amount: 900, period: month}}}}
  data: {{accounts: ["{DATA}"]}}
  ml: {{accounts: ["999000999000"]}}      # no spend, no findings: no digest of its own
"""

RULES = f"""
- id: aws-budget
  kind: budget
  severity: warning
  filter: {{ProviderName: AWS}}
  amount: 10000
  period: month
  metric: BilledCost
  thresholds: [{{on: forecast, percent: 100, severity: warning}}]
- id: payments-budget
  kind: budget
  severity: warning
  filter: {{SubAccountId: "{PAYMENTS}"}}
  amount: 1000
  period: month
  metric: BilledCost
  thresholds:
    - {{on: actual, percent: 80, severity: warning}}
    - {{on: forecast, percent: 100, severity: warning}}
- id: team-budgets
  kind: budget
  severity: warning
  teams: true                         # each team's budget in owners.yaml
  thresholds: [{{on: forecast, percent: 100, severity: warning}}]
- id: application-tag
  kind: tag-coverage
  severity: warning
  keys: [application]
  metric: EffectiveCost
  window_days: 30
  min_coverage: 0.95
  group_by: [ProviderName]
  resource_cost_floor: 100
"""

IDLE_RULE, ANOMALY_RULE = "idle-notebooks", "spend-anomaly"


@dataclass(frozen=True)
class Golden:
    root: Path
    config: Path
    idle_fp: str
    anomaly_fp: str


def _finding(rule: str, kind: str, resource: str | None, service: str, cost: str, savings: str | None, title: str) -> Finding:
    return Finding(
        fingerprint=fingerprint(rule, "AWS", PAYMENTS, resource or f"scope:{service}"), rule=rule, kind=kind, severity="warning",
        title=title, summary=title, monthly_cost=Decimal(cost), monthly_savings=None if savings is None else Decimal(savings),
        currency="USD", provider="AWS", account_id=PAYMENTS, service=service, resource_id=resource, owner="payments",
        owner_reason=f"account {PAYMENTS}", source="planted",
    )


def build(root: Path) -> Golden:
    root.mkdir(parents=True, exist_ok=True)
    generate(SimSpec(rows=20_000, days=(END - FIRST).days, end=END, step_change=None, spike=None, partial_last_day=1.0),
             root / "sim")
    write(root / "planted" / "planted.csv", planted_rows())
    (root / "rules").mkdir(exist_ok=True)
    (root / "rules" / "rules.yaml").write_text(textwrap.dedent(RULES).lstrip())
    (root / "owners.yaml").write_text(textwrap.dedent(OWNERS).lstrip())
    cfg = root / "costguard.yaml"
    cfg.write_text(textwrap.dedent(CONFIG).lstrip())
    loaded = load_config(cfg)
    # real cycles at fixed clocks: mid-week (W09), and on Tuesday after, when Sunday has settled
    for at, as_of in ((utc(2026, 2, 25), date(2026, 2, 24)), (utc(2026, 3, 3), date(2026, 3, 1))):
        cycle = build_cycle(loaded, out=io.StringIO(), clock=lambda at=at: at, hints=False)
        try:
            outcome = cycle.run(as_of=as_of)
        finally:
            cycle.close()
        assert outcome.status == "ok", outcome
    # findings of kinds this version has no rule for (idle, anomaly), with a known history
    idle = _finding(IDLE_RULE, "idle", RETIRED, SAGEMAKER, "900", "900", f"{RETIRED} is idle")
    anomaly = _finding(ANOMALY_RULE, "anomaly", None, EC2, "1650", None, "EC2 spend in account 222222222222 is 12x its usual")
    with Store.open(loaded.state_url()) as store:
        store.reconcile([idle], run_id="seed-1", now=utc(2026, 2, 10), evaluated_rules={IDLE_RULE})
        store.reconcile([idle], run_id="seed-2", now=utc(2026, 2, 20), evaluated_rules={IDLE_RULE})
        store.reconcile([], run_id="seed-3", now=utc(2026, 2, 25, 7), evaluated_rules={IDLE_RULE})
        store.reconcile([anomaly], run_id="seed-4", now=utc(2026, 2, 26), evaluated_rules={ANOMALY_RULE})
    return Golden(root, cfg, idle.fingerprint, anomaly.fingerprint)
