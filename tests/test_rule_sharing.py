"""What the rules compute once and share, and the shortcuts that skip work, give the answers the
plain computation gives: the lake's per-resource costs shared by tag-policy and the inventory
rules, tag-policy's cost floor bound, the anomaly root causes read only for the flagged groups,
tag-coverage's per-group counts. Real rule files, the real engine, constructed rollups."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, timedelta

from costguard.rules import RuleContext, evaluate
from costguard.rules.resources import lake_costs

from rule_data import D, cost, costs, daily, inventory, resource, rules, run

AS_OF = date(2026, 3, 31)
MONTH = date(2026, 3, 2)  # the 30 days ending AS_OF

POLICY = """\
- id: tp
  kind: tag-policy
  severity: info
  mandatory: [team]
  min_monthly_cost: 50
"""
IDLE = "- {id: waste, kind: idle, severity: warning}\n"


def _evaluate(rule_list, rows, inv):
    ctx = RuleContext(as_of=AS_OF, costs=costs(rows), inventory=inventory(inv))
    result = evaluate(rule_list, ctx)
    assert result.ok, result.errors
    return result.findings


def _key(findings):
    return sorted((asdict(f) for f in findings), key=lambda d: d["fingerprint"])


def test_tag_policy_cost_floor_is_exact_at_the_boundary(tmp_path):
    (rule,) = rules(tmp_path, POLICY)
    rows = (daily(MONTH, 29, "1.67", ResourceId="arn:at-floor") + [cost(AS_OF, "1.57", ResourceId="arn:at-floor")]  # $50.00
            + daily(MONTH, 29, "1.67", ResourceId="arn:under") + [cost(AS_OF, "1.5699999999", ResourceId="arn:under")]  # a hair under
            + daily(AS_OF - timedelta(days=9), 10, D("5"), ResourceId="arn:young")    # $50 in 10 days: x 30 / 10 = $150
            + daily(AS_OF - timedelta(days=9), 10, D("1.6"), ResourceId="arn:young-cheap")  # $16 x 3 = $48
            + [cost(AS_OF, D("-500"), ResourceId="arn:credit")]                        # below any floor
            + daily(MONTH, 30, D("1000") / 30, ResourceId="arn:tagged", tags={"team": "web"}))
    found = {f.resource_id: f for f in run(rule, AS_OF, rows, [])}
    assert set(found) == {"arn:at-floor", "arn:young"}
    assert found["arn:at-floor"].monthly_cost == D(50)
    assert found["arn:young"].monthly_cost == D(150) and found["arn:young"].evidence["lake_days"] == 10


def test_tag_policy_with_and_without_a_filter_judge_the_lake_alike(tmp_path):
    (shared,) = rules(tmp_path, POLICY)
    (filtered,) = rules(tmp_path, POLICY.replace("  mandatory", "  filter: {ProviderName: AWS}\n  mandatory"))
    rows = daily(MONTH, 30, 3, ResourceId="arn:a") + daily(MONTH, 30, 2, ResourceId="arn:b", tags={"team": "x"}) \
        + daily(MONTH, 30, 4, ResourceId="arn:c", tags={"owner": "y"})
    a, b = run(shared, AS_OF, rows, []), run(filtered, AS_OF, rows, [])
    assert [f.resource_id for f in a] == [f.resource_id for f in b] == ["arn:a", "arn:c"]
    assert [(f.monthly_cost, f.evidence) for f in a] == [(f.monthly_cost, f.evidence) for f in b]


def test_inventory_rules_find_the_same_with_a_whole_lake_tag_policy_beside_them(tmp_path):
    """With a tag-policy rule reading the whole lake, the inventory rules take their resources'
    costs from that one query: the same findings as evaluated alone."""
    (idle,) = rules(tmp_path, IDLE)
    (policy,) = rules(tmp_path, POLICY)
    inv = [resource("vol-1", "volume", sku="gp2", size_gb=100, state="available", created_at=date(2025, 1, 1)),
           resource("VOL-2", "volume", sku="gp2", size_gb=10, state="available", created_at=date(2025, 1, 1)),
           resource("i-idle", "instance", sku="m5.large", state="running", cpu_p95=1, metrics_days=14)]
    rows = (daily(MONTH, 30, 2, ResourceId="vol-1") + daily(MONTH, 30, 1, ResourceId="vol-2", ProviderName="aws")
            + daily(MONTH, 30, 3, ResourceId="i-idle", CommitmentDiscountId="sp-1") + daily(MONTH, 30, 9, ResourceId="arn:other"))
    alone = _evaluate([idle], rows, inv)
    together = _evaluate([policy, idle], rows, inv)
    assert _key(alone) == _key([f for f in together if f.rule == "waste"])
    assert {f.resource_id: f.evidence["price_source"] for f in alone if f.kind == "idle"} == \
        {"vol-1": "lake", "VOL-2": "lake", "i-idle": "lake"}


def test_lake_costs_details_from_the_costliest_row_and_tags_from_the_latest_tagged_day():
    rows = [cost(MONTH, 5, ResourceId="i-1", RegionId="us-east-1", ServiceName="EC2", tags={"team": "old"}),
            cost(MONTH + timedelta(days=1), 50, ResourceId="i-1", RegionId="eu-west-1", ServiceName="Amazon EC2",
                 SubAccountName="big day", tags={"team": "mid"}),
            cost(MONTH + timedelta(days=2), 7, ResourceId="I-1", RegionId="us-west-2", tags={"team": "new"}),
            cost(MONTH + timedelta(days=3), 6, ResourceId="i-1", RegionId="us-west-2"),          # no tags that day
            cost(MONTH + timedelta(days=3), 1, ResourceId="i-1", BillingCurrency="EUR"),         # the smaller currency
            cost(MONTH - timedelta(days=5), 999, ResourceId="i-1", RegionId="ap-south-1")]       # outside the window
    (r,) = lake_costs(costs(rows), AS_OF, None).to_dicts()
    assert (r["_key"], r["lake_ResourceId"], r["_cost"], r["_currency"]) == ("i-1", "i-1", D(68), "USD")
    assert (r["lake_RegionId"], r["lake_ServiceName"], r["lake_SubAccountName"]) == ("eu-west-1", "Amazon EC2", "big day")
    assert r["lake_x_Tags"] == '{"team": "new"}' and r["_days"] == 30
    (only,) = lake_costs(costs(rows), AS_OF, ["i-1"]).to_dicts()
    assert only == r
    assert lake_costs(costs(rows), AS_OF, ["i-2"]).is_empty()


MONDAY = date(2026, 1, 5)


def test_anomaly_root_causes_of_an_untagged_group_and_of_two_groups_at_once(tmp_path):
    (teams,) = rules(tmp_path, "- {id: t, kind: anomaly, severity: info, group_by: ['tag:team'], min_impact: 50}\n")
    day = MONDAY + timedelta(days=45)
    base = daily(MONDAY, 60, 100, tags={"team": "data"}, ResourceId="d-1") + daily(MONDAY, 60, 300, ResourceId="u-1") \
        + daily(MONDAY, 60, 50, tags={"team": "web"}, ResourceId="w-1")
    spikes = [cost(day, 400, ResourceId="u-big", RegionId="eu-west-1"),                 # untagged: team is null
              cost(day, 500, tags={"team": "data"}, ResourceId="d-big", RegionId="eu-west-1")]
    found = {f.evidence["group"]["tag:team"]: f for f in run(teams, day + timedelta(days=1), base + spikes)}
    assert set(found) == {None, "data"}
    for team, rid in ((None, "u-big"), ("data", "d-big")):
        ev = found[team].evidence
        assert ev["root_cause"]["dimension"] == "ResourceId" and ev["root_cause"]["value"] == rid, ev["root_causes"]
        assert {c["dimension"]: c["value"] for c in ev["root_causes"]}["RegionId"] == "eu-west-1"
    assert found[None].evidence["root_cause"]["change"] == D(400) and found["data"].evidence["root_cause"]["change"] == D(500)


def test_tag_coverage_counts_and_top_untagged_per_group(tmp_path):
    (rule,) = rules(tmp_path, "- {id: c, kind: tag-coverage, severity: info, keys: [team], min_coverage: 0.9, "
                              "group_by: [SubAccountId]}\n")
    rows = (daily(MONTH, 30, 10, SubAccountId="111", ResourceId="a", tags={"team": "x"})
            + daily(MONTH, 30, 4, SubAccountId="111", ResourceId="b") + daily(MONTH, 30, 3, SubAccountId="111", ResourceId="c")
            + daily(MONTH, 30, 2, SubAccountId="111", ResourceId="d") + daily(MONTH, 30, 2, SubAccountId="111", ResourceId="e")
            + daily(MONTH, 30, 1, SubAccountId="111")                                       # no resource id
            + daily(MONTH, 30, 5, SubAccountId="222", ResourceId="z"))
    found = {f.account_id: f for f in run(rule, AS_OF, rows)}
    ev = found["111"].evidence
    assert (ev["resources_total"], ev["resources_untagged"], ev["count_coverage"]) == (5, 4, D("0.2"))
    assert ev["top_untagged_resources"] == [{"resource_id": "b", "cost": D(120)}, {"resource_id": "c", "cost": D(90)},
                                            {"resource_id": "d", "cost": D(60)}]                # d before e: by id on a tie
    assert "4 of 5 resources are untagged" in found["111"].summary
    assert (found["222"].evidence["resources_total"], found["222"].evidence["top_untagged_resources"]) == \
        (1, [{"resource_id": "z", "cost": D(150)}])
