"""The weekly digest over golden data (tests/digest_data.py): every total equals `costguard costs`
for the same days, movers and root causes are the planted ones, the HTML and the email reference
every chart, chat payloads stay within their platform limits, missing days are said and not shown
as a drop, and the JSON shape is documented."""

from __future__ import annotations

import email
import email.policy
import io
import json
import re
import threading
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest
from focus_rows import row, write

import digest_data as g
from conftest import write_config
from costguard.app import build_cycle, build_digests
from costguard.config import load_config
from costguard.digest.chat import SLACK_FIELDS_MAX, SLACK_HEADER_MAX, SLACK_SECTION_MAX, TEAMS_MAX_BYTES
from costguard.digest.charts import digest_charts
from costguard.digest.files import to_json
from costguard.digest.render import money, pct
from costguard.digest.send import bundle
from costguard.model import SEVERITIES

ROOT = Path(__file__).parent.parent
W09, W08 = g.WEEK, g.WEEK.shift(-1)
MONDAY_AFTER = datetime(2026, 3, 2, 8, tzinfo=timezone.utc)


def at(when: datetime):
    return lambda: when


def exact(text: str):
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


@pytest.fixture(scope="module")
def golden(tmp_path_factory) -> g.Golden:
    return g.build(tmp_path_factory.mktemp("golden"))


@pytest.fixture(scope="module")
def written(golden) -> tuple[Path, dict]:
    """`costguard digest --week 2026-W09 --out DIR`, run through the real CLI."""
    from conftest import Cli

    out = golden.root / "out"
    r = Cli()("digest", "-c", golden.config, "--week", str(W09), "--out", out)
    listed = [Path(p) for p in r.stdout.split()]
    assert listed and all(p.exists() for p in listed)
    return out, exact((out / "digest-2026-W09.json").read_text())


@pytest.fixture(scope="module")
def w09(golden):
    """The organisation's 2026-W09 digest, made on the Monday after, with its charts (small)."""
    [d] = build_digests(load_config(golden.config), week=W09, clock=at(MONDAY_AFTER))
    return d, digest_charts(d, scale=1)


def costs(cli, cfg: Path, by: str, start: date, end: date, metric: str = "BilledCost") -> list[dict]:
    return exact(cli("costs", "-c", cfg, "--by", by, "--from", start.isoformat(), "--to", end.isoformat(),
                     "--metric", metric, "--format", "json", "--exact").stdout)


def per(rows: list[dict], *keys: str, metric: str = "BilledCost") -> dict[tuple, Decimal]:
    return {tuple(r[k] for k in keys): r[metric] for r in rows}


# ---- totals reconcile with `costguard costs` ------------------------------------------------------


def test_every_total_equals_costguard_costs_for_the_same_days(cli, golden, written):
    _, data = written
    cfg = golden.config
    assert (data["week"], data["start"], data["end"], data["metric"]) == ("2026-W09", "2026-02-23", "2026-03-02", "BilledCost")
    this = per(costs(cli, cfg, "BillingCurrency", W09.start, W09.end), "BillingCurrency")
    last = per(costs(cli, cfg, "BillingCurrency", W08.start, W08.end), "BillingCurrency")
    weeks = costs(cli, cfg, "week", W09.shift(-4).start, W08.end)
    assert [t["currency"] for t in data["totals"]] == ["USD"]
    t = data["totals"][0]
    assert t["this_week"] == this[("USD",)] and t["last_week"] == last[("USD",)]
    # every earlier week is full (both sources, seven days), so the average is over four weeks
    four = sum((r["BilledCost"] for r in weeks), Decimal(0))
    assert t["four_week_average_weeks"] == 4 and t["four_week_average"] == (four / 4).quantize(Decimal("1e-10"))
    assert t["change"] == t["this_week"] - t["last_week"] and t["vs_average"] == t["this_week"] - t["four_week_average"]
    assert data["data"]["like_for_like"] is False and data["data"]["this_week"]["complete"] is True
    # breakdowns: each row is the same query, for both weeks
    for key, by, labels in (("by_service", "ProviderName,ServiceName", ("provider", "service")),
                            ("by_provider", "ProviderName", ("provider",)),
                            ("by_account", "SubAccountId", ("account_id",))):
        cols = by.split(",")
        now = per(costs(cli, cfg, by, W09.start, W09.end), *cols, "BillingCurrency")
        before = per(costs(cli, cfg, by, W08.start, W08.end), *cols, "BillingCurrency")
        got = {(*(r[x] for x in labels), r["currency"]): r for r in data[key]}
        assert {k for k, v in now.items() if v} <= set(got), key
        for k, r in got.items():
            assert r["this_week"] == now.get(k, 0) and r["last_week"] == before.get(k, 0), (key, k)
    # teams split the spend without losing or double-counting a cent
    assert sum(r["this_week"] for r in data["by_team"]) == t["this_week"]
    assert sum(r["last_week"] for r in data["by_team"]) == t["last_week"]
    # daily series over eight weeks
    days = per(costs(cli, cfg, "day", W09.shift(-7).start, W09.end), "day", "BillingCurrency")
    assert {(r["day"], r["currency"]): r["cost"] for r in data["daily"]} == {k: v for k, v in days.items()}
    assert len(data["daily"]) == 56


def test_team_digest_is_the_teams_rows_budgets_and_findings(cli, golden):
    text = cli("digest", "-c", golden.config, "--week", str(W09), "--team", "payments").stdout
    assert text.startswith("costguard weekly digest · team payments") and "BY TEAM" not in text
    loaded = load_config(golden.config)
    [d] = build_digests(loaded, week=W09, team="payments", clock=at(MONDAY_AFTER))
    data = exact(to_json(d.to_data()))
    assert data["team"] == "payments"
    t = data["totals"][0]
    # payments = account 222222222222: the runaway ($60/day this week, $5 before) and the retired notebook ($30/day until W08)
    assert (t["this_week"], t["last_week"], t["change"]) == (420, 245, 175)
    assert [m["service"] for m in data["movers"]] == [g.EC2, g.SAGEMAKER]
    # the team's budgets only, at the rule's own projection: the account budget ($1,000, crossed on
    # 18 March) and the team's own budget from owners.yaml ($900, crossed on 16 March)
    account, own = sorted(data["budgets"], key=lambda b: b["rule"])
    assert (account["rule"], account["name"], account["status"], account["team"]) == ("payments-budget", g.PAYMENTS, "at_risk", "payments")
    assert (account["actual"], account["breach_date"], account["days_to_breach"]) == (60, "2026-03-18", 17)
    assert account["forecast"] == Decimal("1752.857142858")
    assert (own["rule"], own["name"], own["amount"], own["team"]) == ("team-budgets", "team payments", 900, "payments")
    assert (own["status"], own["breach_date"], own["days_to_breach"], own["covers_digest"]) == ("at_risk", "2026-03-16", 15, True)
    f = data["findings"]
    # the first cycle ran on Wed 25 Feb (W09): the runaway's tag finding and February's budget findings are new this week
    assert sorted(x["kind"] for x in f["new_this_week"]) == ["anomaly", "budget", "budget", "tag"]
    assert [x["fingerprint"] for x in f["fixed_this_week"]] == [golden.idle_fp]
    [r] = f["realised_savings"]
    assert (r["before_monthly"], r["after_monthly"], r["realised_monthly_savings"], r["before_days"], r["after_days"]) == (900, 0, 900, 7, 4)
    assert f["realised_savings_total"] == [{"currency": "USD", "amount": 900}]
    assert [a["fingerprint"] for a in data["anomalies"]] == [golden.anomaly_fp]
    [data_team] = build_digests(loaded, week=W09, team="data", clock=at(MONDAY_AFTER))
    assert data_team.totals[0].change == 224 and data_team.budgets == []


def test_all_teams_from_one_scan_equal_each_made_alone(golden):
    from costguard.app import scheduled_digests

    loaded = load_config(golden.config)
    batch = scheduled_digests(loaded, week=W09, clock=at(MONDAY_AFTER))   # one read of the lake and the findings
    together = batch.digests
    assert [d.audience for d in together] == ["org", "team:data", "team:finops", "team:payments"]
    assert (batch.skipped, batch.failed) == (["ml"], {})   # said, not silently dropped
    for d in (together[0], together[-1]):   # the organisation, and the team with budgets, findings and anomalies
        [alone] = build_digests(loaded, week=W09, team=d.team, clock=at(MONDAY_AFTER))
        assert to_json(d.to_data()) == to_json(alone.to_data()), d.audience


# ---- movers ---------------------------------------------------------------------------------------


def test_movers_and_root_causes_are_the_planted_ones(written):
    _, data = written
    movers = {m["service"]: m for m in data["movers"]}
    assert list(movers)[:3] == [g.EC2, g.RDS_SERVICE, g.SAGEMAKER] or set(list(movers)[:3]) == {g.EC2, g.RDS_SERVICE, g.SAGEMAKER}
    ec2 = movers[g.EC2]["root_cause"]
    assert (ec2["level"], ec2["id"], ec2["account_id"], ec2["change"], ec2["status"]) == ("resource", g.RUNAWAY, g.PAYMENTS, 385, "changed")
    assert ec2["share"] > Decimal("0.5")
    rds = movers[g.RDS_SERVICE]
    assert (rds["root_cause"]["level"], rds["root_cause"]["id"], rds["root_cause"]["change"]) == ("account", g.DATA, 224)
    assert [r["change"] for r in rds["top_resources"]] == [28, 28, 28]   # eight equal resources: none carries half
    sm = movers[g.SAGEMAKER]
    assert (sm["change"], sm["this_week"], sm["last_week"]) == (-210, 0, 210)
    assert (sm["root_cause"]["level"], sm["root_cause"]["id"], sm["root_cause"]["status"], sm["root_cause"]["share"]) == ("resource", g.RETIRED, "gone", 1)
    for m in data["movers"]:
        assert m["change"] == m["this_week"] - m["last_week"]
        assert abs(m["change"]) >= data["totals"][0]["last_week"] / 100


# ---- missing days, averages, weeks in progress ----------------------------------------------------


@pytest.fixture(scope="module")
def gappy(tmp_path_factory) -> Path:
    """Two sources: `a` from Wed 28 Jan (2026-W05), `b` whose last two days of 2026-W09 have not
    arrived; ingested on Monday 2 March 06:00 UTC, so `a`'s Sunday may still be arriving. Costs
    are constant except `i-c` ($1/day, $3/day in W09), in a service whose name carries Slack's
    control characters."""
    root = tmp_path_factory.mktemp("gappy")
    a, b = [], []
    d = date(2026, 1, 28)
    while d < W09.end:
        a.append(row(d, "10", resource="i-a", account="111111111111", service="Amazon EC2", tags={"team": "ops"}))
        a.append(row(d, "3" if d >= W09.start else "1", resource="i-c", account="111111111111", service="Support & <Ops>"))
        if d < W09.end - timedelta(days=2):
            b.append(row(d, "4", resource="i-b", account="444444444444", service="Amazon EC2"))
        d += timedelta(days=1)
    write(root / "a" / "a.csv", a)
    write(root / "b" / "b.csv", b)
    cfg = write_config(root, """
        state: {url: "sqlite:///state.db", lake: lake}
        providers:
          - {name: a, type: focus, paths: ["a/*.csv"]}
          - {name: b, type: focus, paths: ["b/*.csv"]}
        rules: []
        schedule: {cycle: "0 6 * * *", digest: "0 8 * * MON", timezone: Europe/Berlin}
        digest: {archive: archive}
        """)
    cycle = build_cycle(load_config(cfg), out=io.StringIO(), clock=at(datetime(2026, 3, 2, 6, tzinfo=timezone.utc)))
    try:  # read on Monday 06:00 UTC: `a`'s Sunday only 6 hours after it ended
        assert cycle.run(as_of=date(2026, 3, 1)).status == "ok"
    finally:
        cycle.close()
    return cfg


def test_missing_days_are_said_and_compared_like_for_like(cli, gappy):
    out = gappy.parent / "out"
    cli("digest", "-c", gappy, "--week", str(W09), "--out", out)
    data = exact((out / "digest-2026-W09.json").read_text())
    t = data["totals"][0]
    this = per(costs(cli, gappy, "BillingCurrency", W09.start, W09.end), "BillingCurrency")[("USD",)]
    assert t["this_week"] == this == 7 * 10 + 7 * 3 + 5 * 4    # what the lake holds: the total is not padded
    assert t["last_week"] == 7 * 10 + 7 * 1 + 7 * 4
    assert data["data"]["this_week"]["missing"] == {"b": ["2026-02-28", "2026-03-01"]}
    assert data["data"]["this_week"]["unsettled"] == {"a": ["2026-03-01"]}       # read 6 h after it ended
    assert data["data"]["this_week"]["complete"] is False and data["data"]["like_for_like"] is True
    # naively the week rose $6 (b's missing weekend hides $8); like for like (a: Mon..Sat, b: Mon..Fri
    # of both weeks) it rose $12: exactly the planted move of i-c over the compared days
    assert t["this_week"] - t["last_week"] == 6
    assert (t["change"], t["compared_this_week"], t["compared_last_week"]) == (12, 98, 86)
    [m] = data["movers"]
    assert (m["service"], m["change"], m["root_cause"]["id"], m["root_cause"]["level"]) == ("Support & <Ops>", 12, "i-c", "resource")
    assert t["vs_average"] is None                            # this week is incomplete: no comparison with the average
    # `a` started on a Wednesday: W05 is not a full week, so the average is over W06..W08
    assert (t["four_week_average_weeks"], t["four_week_average"]) == (3, 105)
    text = (out / "digest-2026-W09.html").read_text()
    assert "no data from source b for Sat 28 Feb, Sun 1 Mar" in text
    assert "Sun 1 Mar from source a may still be arriving" in text
    page = _Page()
    page.feed(text)
    assert "2 day(s) incomplete, a source's data missing or still arriving (28 Feb, 01 Mar)" in next(i["alt"] for i in page.images if "daily" in i["src"])  # hatched, not a zero bar
    assert "not counted as a drop" in cli("digest", "-c", gappy, "--week", str(W09)).stdout


def test_a_week_in_progress_says_which_days_are_not_over(gappy):
    thursday = datetime(2026, 2, 26, 9, tzinfo=timezone.utc)       # 10:00 in Berlin
    [d] = build_digests(load_config(gappy), week=W09, clock=at(thursday))
    assert d.data.this_week.not_yet == [date(2026, 2, 26), date(2026, 2, 27), date(2026, 2, 28), date(2026, 3, 1)]
    assert d.data.this_week.missing == {} and d.data.like_for_like is True
    assert d.data.compared_days == [date(2026, 2, 23), date(2026, 2, 24), date(2026, 2, 25)]
    # the default week is the last complete ISO week in the configured time zone
    sunday_night_utc = datetime(2026, 3, 1, 23, 30, tzinfo=timezone.utc)   # already Monday in Berlin
    assert build_digests(load_config(gappy), clock=at(sunday_night_utc))[0].week == "2026-W09"
    assert build_digests(load_config(gappy), clock=at(sunday_night_utc - timedelta(hours=1)))[0].week == "2026-W08"


# ---- HTML, email, charts ---------------------------------------------------------------------------


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict] = []
        self.coloured: list[tuple[str, dict]] = []
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a)
        if re.search(r"(^|;)\s*color:", a.get("style") or ""):
            self.coloured.append((tag, a))
        self._in_style = tag == "style"

    def handle_data(self, data):
        if self._in_style:
            self.style += data

    def handle_endtag(self, tag):
        self._in_style = False


def test_html_references_every_chart_and_every_chart_is_referenced(written):
    out, _ = written
    page = _Page()
    page.feed((out / "digest-2026-W09.html").read_text())
    srcs = [i["src"] for i in page.images]
    pngs = sorted(p.name for p in out.glob("digest-2026-W09-*.png") if not p.name.startswith("digest-2026-W09-payments"))
    assert sorted(srcs) == pngs == ["digest-2026-W09-change-USD.png", "digest-2026-W09-coverage.png", "digest-2026-W09-daily-USD.png"]
    assert all(i.get("alt") and i.get("width") for i in page.images)
    daily = next(i for i in page.images if "daily" in i["src"])
    assert "budget AWS allows" in daily["alt"]                                    # it covers every charted cost
    assert "222222222222" not in daily["alt"] and "team payments" not in daily["alt"]  # these do not


def test_dark_mode_overrides_every_inline_text_colour(written):
    out, _ = written
    page = _Page()
    page.feed((out / "digest-2026-W09.html").read_text())
    dark = page.style.split("prefers-color-scheme: dark", 1)[1]
    overridden = set(re.findall(r"\.([a-z]+)\s*[{,]", dark))
    assert {"muted", "up", "down", "flat", "card", "page"} <= overridden
    for tag, attrs in page.coloured:
        assert set((attrs.get("class") or "").split()) & overridden, f"<{tag} style={attrs['style'][:60]!r}> has no dark-mode class"


def test_email_is_multipart_with_every_chart_inline(w09):
    d, charts = w09
    msg = bundle(d, charts).email(sender="costguard@finops.example.com", to=["finops@example.com"])
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    plain, related = parsed.get_payload()
    assert plain.get_content_type() == "text/plain" and "TOP MOVERS" in plain.get_content()
    assert related.get_content_type() == "multipart/related"
    html_part, *images = related.get_payload()
    assert html_part.get_content_type() == "text/html"
    page = _Page()
    page.feed(html_part.get_content())
    cids = {i["src"].removeprefix("cid:") for i in page.images}
    attached = {p["Content-ID"].strip("<>") for p in images}
    assert all(i["src"].startswith("cid:") for i in page.images)
    assert cids == attached and len(attached) == len(charts) == 3
    assert all(p.get_content_type() == "image/png" and p.get_content().startswith(b"\x89PNG") for p in images)
    assert parsed["Message-ID"] == "<digest.2026-W09.org@finops.example.com>"
    t = d.totals[0]
    assert parsed["Subject"] == f"Cost digest 2026-W09: {money(t.this_week, 'USD', 0)} ({pct(t.change_ratio)} vs last week)"


def _contrast(a: str, b: str) -> float:
    def lum(h: str) -> float:
        def ch(v: int) -> float:
            c = v / 255
            return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
        r, gg, bb = (int(h[i:i + 2], 16) for i in (1, 3, 5))
        return 0.2126 * ch(r) + 0.7152 * ch(gg) + 0.0722 * ch(bb)
    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_charts_are_opaque_small_and_keep_contrast(written):
    from PIL import Image

    from costguard.digest import charts as c

    out, _ = written
    for p in out.glob("digest-2026-W09-*.png"):
        img = Image.open(p)
        assert img.mode in ("RGB", "RGBA")
        if img.mode == "RGBA":
            assert img.getextrema()[3] == (255, 255), f"{p.name} has transparent pixels: unreadable on a dark page"
        assert img.width <= 1400 and p.stat().st_size < 150_000, p.name
    assert _contrast(c.TEXT, c.BACKGROUND) >= 4.5
    for colour in (c.MUTED, c.BAR, c.INCREASE, c.DECREASE, c.BUDGET, c.MISSING, *c.SERIES):
        assert _contrast(colour, c.BACKGROUND) >= 3.0, colour


# ---- chat payloads -----------------------------------------------------------------------------------


def _slack_limits(blocks: list[dict]) -> None:
    assert len(blocks) <= 50
    for b in blocks:
        if b["type"] == "header":
            assert len(b["text"]["text"]) <= SLACK_HEADER_MAX
        if b["type"] == "section":
            assert len(b.get("text", {}).get("text", "")) <= SLACK_SECTION_MAX
            assert len(b.get("fields", [])) <= SLACK_FIELDS_MAX
            assert all(len(f["text"]) <= 2000 for f in b.get("fields", []))


def test_slack_and_teams_summaries(w09, gappy):
    d, charts = w09
    b = bundle(d, charts, link="https://finops.example.com/digests/digest-2026-W09.html")
    _slack_limits(b.slack.blocks)
    text = json.dumps(b.slack.blocks)
    assert g.RUNAWAY in text and "Top movers" in text and b.slack.text.startswith("Cost digest 2026-W09")
    assert [f.filename for f in b.slack.files] == ["digest-2026-W09-daily-USD.png"] and b.slack.files[0].content[:4] == b"\x89PNG"
    assert b.slack.blocks[-1]["elements"][0]["url"].endswith("digest-2026-W09.html")
    card = b.teams["attachments"][0]
    assert b.teams["type"] == "message" and card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["content"]["type"] == "AdaptiveCard" and card["content"]["version"] == "1.4"
    assert len(json.dumps(b.teams).encode()) < TEAMS_MAX_BYTES
    facts = {f["title"]: f["value"] for blk in card["content"]["body"] if blk["type"] == "FactSet" for f in blk["facts"]}
    assert facts["This week (USD)"] == money(d.totals[0].this_week, "USD")
    # names from bills are escaped for Slack's mrkdwn
    [gd] = build_digests(load_config(gappy), week=W09, clock=at(MONDAY_AFTER))
    blob = json.dumps(bundle(gd, []).slack.blocks)
    assert "Support & <Ops>" not in blob and "Support &amp; &lt;Ops&gt;" in blob


# ---- JSON shape ----------------------------------------------------------------------------------------

TOP_LEVEL = ["format", "week", "start", "end", "timezone", "team", "metric", "generated_at", "data", "totals",
             "by_provider", "by_account", "by_service", "by_team", "movers", "daily", "budgets", "coverage",
             "findings", "anomalies", "teams"]


def _keys(value, prefix="") -> set[str]:
    out: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if prefix.endswith((".missing", ".unsettled", ".gaps", ".by_severity", ".filter")):
                continue  # keyed by data (source names, severities, filter columns)
            out.add(k)
            out |= _keys(v, f"{prefix}.{k}")
    elif isinstance(value, list):
        for v in value:
            out |= _keys(v, prefix)
    return out


def test_json_shape_is_stable_and_documented(written):
    _, data = written
    assert list(data) == TOP_LEVEL
    assert data["format"] == 1
    doc = (ROOT / "docs" / "digest.md").read_text()
    undocumented = sorted(k for k in _keys(data) if f"`{k}`" not in doc)
    assert not undocumented, f"keys missing from docs/digest.md: {undocumented}"
    assert set(data["findings"]["by_kind"][0]["by_severity"]) <= set(SEVERITIES)


# ---- the command line and the daemon's job ---------------------------------------------------------------


def test_cli_refuses_what_it_cannot_do(cli, gappy, tmp_path):
    assert "e.g. 2026-W05" in cli("digest", "-c", gappy, "--week", "2026-W9", expect=2).stderr
    assert "2025 has ISO weeks 01 to 52" in cli("digest", "-c", gappy, "--week", "2025-W53", expect=2).stderr
    assert "has not started yet" in cli("digest", "-c", gappy, "--week", "2099-W01", expect=2).stderr
    r = cli("digest", "-c", gappy, "--send", "--out", tmp_path / "x", expect=2)
    assert "has no receivers" in r.stderr and not (tmp_path / "x").exists()
    cfg = write_config(tmp_path / "empty", """
        state: {url: "sqlite:///state.db", lake: lake}
        rules: []
        """)
    assert "run `costguard run --once" in cli("digest", "-c", cfg, expect=1).stderr


def test_team_must_be_known(cli, golden):
    r = cli("digest", "-c", golden.config, "--team", "nobody", expect=2)
    assert "unknown team 'nobody'" in r.stderr and "data, finops, ml, payments" in r.stderr


def test_scheduled_job_writes_the_archive_and_the_daemon_schedules_it(gappy):
    from costguard.app import build_daemon, utcnow
    from costguard.digest.job import DigestWorker
    from costguard.digest.weeks import last_complete_week

    stop = threading.Event()
    answers = iter([True, True, False])                       # a cycle is running, then it has finished
    asked: list[bool] = []

    def busy() -> bool:
        asked.append(next(answers))
        return asked[-1]

    assert DigestWorker(gappy, stop=stop, busy=busy, poll_seconds=0.001)() == 0
    assert asked == [True, True, False]                        # it waited for the cycle, then ran
    week = last_complete_week(utcnow(), "Europe/Berlin")
    archive = gappy.parent / "archive"
    assert {p.name for p in archive.glob("*.html")} == {f"digest-{week}.html"}
    assert (archive / f"digest-{week}.json").exists()
    stop.set()  # a set stop makes the start-up cycle return at once: nothing runs
    daemon = build_daemon(load_config(gappy), stop=stop)
    try:
        daemon.scheduler.start()
        assert daemon.scheduler.job_ids() == ["cycle", "digest"]
    finally:
        daemon.scheduler.shutdown()
        daemon.store.close()
        daemon.lock.release()
