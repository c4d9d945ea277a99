"""The aws provider's parts that need no AWS: config errors, the IAM files, error classes, the
CUR 2.0 mapping of text exports, the rollup SQL, and AWS budgets in the budget rule."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from conftest import write_config
from costguard import focus
from costguard.errors import ConfigError
from costguard.config import load_config
from costguard.model import NativeBudget
from costguard.providers.aws import cur2, iam
from costguard.rules import RuleContext, load_rules

DOCS = Path(__file__).resolve().parent.parent / "docs" / "aws-iam"


# ---- config ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("body, where, message", [
    ("accounts: {discover: organization}", "providers[0].accounts", "several accounts need assume_role"),
    ("accounts: {discover: organization, ids: ['111122223333'], assume_role: R}", "providers[0].accounts", "not both"),
    ("regions: [us-east-one]", "providers[0].regions[0]", "should match pattern"),
    ("costs: {source: cost_explorer, max_paid_requests: 0}", "providers[0].costs.max_paid_requests", "greater than or equal to 1"),
    ("costs: {source: focus_export, uri: billing/focus}", "providers[0].costs.uri", "should match pattern"),
    ("costs: {source: athena, uri: 's3://b/x/', table: nodot}", "providers[0].costs.table", "should match pattern"),
    ("costs: {source: exports}", "providers[0].costs", "source"),
    ("inventory: {resources: [instances, lambdas]}", "providers[0].inventory.resources[1]", "instances"),
    ("accounts: {ids: ['111122223333'], external_id: 'has space'}", "providers[0].accounts.external_id", "pattern"),
    ("max_attemps: 3", "providers[0].max_attemps", "unknown key"),
])
def test_config_errors_name_file_line_and_key(tmp_path, body, where, message):
    cfg = write_config(tmp_path, f"""
        providers:
          - name: aws
            type: aws
            {body}
        rules: []
        """)
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    text = str(e.value)
    assert f"{cfg}:" in text and where in text and message in text, text


def test_role_arn_from_a_name_or_a_template():
    from costguard.providers.aws.config import AccountsConfig

    assert AccountsConfig(ids=["111122223333"], assume_role="Ro").role_arn("111122223333") == "arn:aws:iam::111122223333:role/Ro"
    tpl = AccountsConfig(ids=["1" * 12], assume_role="arn:aws-us-gov:iam::{account}:role/path/Ro")
    assert tpl.role_arn("222233334444") == "arn:aws-us-gov:iam::222233334444:role/path/Ro"


# ---- IAM -------------------------------------------------------------------------------------------


def test_iam_files_in_docs_are_the_generated_ones():
    for name, text in iam.files().items():
        assert (DOCS / name).read_text() == text, f"docs/aws-iam/{name} is stale: python -m costguard.providers.aws.iam docs/aws-iam"


def test_every_action_of_the_table_is_in_a_policy():
    cg = {a for st in iam.costguard_policy()["Statement"] for a in st["Action"]}
    member = set(iam.member_policy()["Statement"][0]["Action"])
    for api, (actions, roles, _why) in iam.ACTIONS.items():
        for role in roles:
            assert set(actions) <= (cg if role == "costguard" else member), (api, role)
    assert "sts:AssumeRole" not in member and "ce:GetCostAndUsage" not in member  # members need no billing access


# ---- errors ----------------------------------------------------------------------------------------


def test_classify_botocore_errors():
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    from costguard.providers.aws.clients import classify

    def err(code: str, status: int) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")

    assert classify(err("UnauthorizedOperation", 403)).kind == "denied"
    assert classify(err("ThrottlingException", 400)).kind == "throttled"
    assert classify(err("RequestLimitExceeded", 503)).kind == "throttled"
    assert classify(err("InternalError", 500)).kind == "unavailable"
    assert classify(err("NoSuchBucket", 404)).kind == "missing"
    assert classify(err("ValidationException", 400)).kind == "error"
    assert classify(NoCredentialsError()).kind == "denied"
    assert classify(EndpointConnectionError(endpoint_url="http://x")).kind == "unavailable"


# ---- CUR 2.0 as text (gzip CSV exports) ------------------------------------------------------------


def test_cur2_text_rows_map_to_focus_and_an_unreadable_amount_is_rejected():
    raw = pl.DataFrame({
        "bill_payer_account_id": ["999999999999"] * 3,
        "line_item_usage_account_id": ["111122223333"] * 3,
        "line_item_usage_start_date": ["2026-11-01T00:00:00Z", "2026-11-01T01:00:00Z", "2026-11-02T00:00:00Z"],
        "line_item_usage_end_date": ["2026-11-01T01:00:00Z", "2026-11-01T02:00:00Z", "2026-11-02T01:00:00Z"],
        "line_item_unblended_cost": ["1.5", "twelve", "0.25"],
        "line_item_net_unblended_cost": ["", "", "0.20"],
        "line_item_line_item_type": ["Usage", "Usage", "SavingsPlanCoveredUsage"],
        "savings_plan_savings_plan_effective_cost": ["", "", "0.1"],
        "savings_plan_savings_plan_arn": ["", "", "arn:aws:savingsplans::999999999999:savingsplan/sp-1"],
        "line_item_currency_code": ["USD"] * 3,
        "line_item_product_code": ["AmazonEC2", "AmazonEC2", "AmazonEC2"],
        "resource_tags": ['{"user_team": "payments", "aws_createdBy": "x"}', None, "{}"],
    }).with_row_index(focus.LINE, offset=2)
    rows = focus.normalize(cur2.to_focus(raw.lazy(), file="cur.csv.gz"), file="cur.csv.gz").collect()
    assert rows["x_Reject"].to_list() == [None, "BilledCost is not a decimal number", None]
    ok = rows.filter(pl.col("x_Reject").is_null())
    assert ok["BilledCost"].to_list() == [Decimal("1.5"), Decimal("0.2")]  # net unblended when present
    assert ok["EffectiveCost"].to_list() == [Decimal("1.5"), Decimal("0.1")]  # the savings plan's effective cost
    assert ok["ServiceCategory"].to_list() == ["Compute", "Compute"]
    assert ok["CommitmentDiscountType"].to_list() == [None, "Savings Plan"]
    assert json.loads(rows["x_Tags"][0]) == {"team": "payments", "aws_createdby": "x"}
    assert rows[focus.LINE].to_list() == [2, 3, 4]


def test_cur2_reader_names_missing_columns():
    from costguard.errors import DataError

    with pytest.raises(DataError, match="this looks like a FOCUS export"):
        cur2.to_focus(pl.LazyFrame({"BilledCost": ["1"]}), file="x.parquet")


# ---- rollup SQL ------------------------------------------------------------------------------------


def test_rollup_sql_selects_null_for_missing_keys_and_rejects_unknown_dialects():
    from costguard import rollup_sql

    sql = rollup_sql.rollup_query("db.t", ["ChargePeriodStart", "BilledCost"], start=date(2026, 1, 1), end=date(2026, 1, 2), dialect="athena")
    assert 'CAST(NULL AS VARCHAR) AS "SubAccountId"' in sql and 'SUM(CAST("BilledCost" AS DECIMAL(38, 10)))' in sql
    assert "GROUP BY CAST(\"ChargePeriodStart\" AS DATE)" in sql and "billing_period" not in sql
    with pytest.raises(ValueError, match="unknown dialect"):
        rollup_sql.rollup_query("db.t", ["ChargePeriodStart"], start=date(2026, 1, 1), end=date(2026, 1, 2), dialect="oracle")
    with pytest.raises(ValueError, match="no ChargePeriodStart"):
        rollup_sql.rollup_query("db.t", ["BilledCost"], start=date(2026, 1, 1), end=date(2026, 1, 2), dialect="duckdb")


# ---- AWS budgets in the budget rule -------------------------------------------------------------------


def test_native_budget_findings_belong_to_the_budgets_account(tmp_path):
    (tmp_path / "r.yaml").write_text("""
- id: cloud-budgets
  kind: budget
  severity: warning
  native: true
  thresholds:
    - {on: actual, percent: 100, severity: critical}
    - {on: forecast, percent: 100, severity: warning}
""")
    [rule] = load_rules(["r.yaml"], base_dir=tmp_path)
    over = NativeBudget(source="aws-org", name="team-x", amount=Decimal(100), currency="USD", period="month",
                        actual=Decimal(130), forecast=Decimal(150), provider="AWS", account_id="222233334444",
                        thresholds=({"on": "actual", "value": Decimal(80), "type": "percent", "comparison": "gt"},),
                        read_on=date(2026, 11, 20))
    under = NativeBudget(source="aws-org", name="team-y", amount=Decimal(100), currency="USD", period="month",
                         actual=Decimal(10), forecast=Decimal(20), provider="AWS", account_id="333344445555")
    ctx = RuleContext(as_of=date(2026, 11, 20), costs=pl.LazyFrame(), budgets=(over, under))
    [f] = rule.impl.evaluate(rule, ctx)
    assert (f.account_id, f.provider, f.severity, f.monthly_cost, f.monthly_savings) == ("222233334444", "AWS", "critical", 130, None)
    assert f.evidence["actual"] == 130 and f.evidence["forecast"] == 150 and f.evidence["amount"] == 100
