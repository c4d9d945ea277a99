"""The digest for chat: a Slack Block Kit message (plus the daily chart as a file to upload into
its thread) and a Microsoft Teams Adaptive Card in the ``message`` envelope that Workflows
webhooks accept. Summaries only: the full digest is the email / archived HTML.

Limits respected (and tested): Slack allows 50 blocks, 3,000 characters per section text,
10 fields of 2,000 characters, 150 for a header; Teams messages must stay under about 28 KB.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from costguard.digest.charts import Chart
from costguard.digest.files import chart_file
from costguard.digest.model import Digest
from costguard.digest.render import budget_text, data_notice, headline, money, mover_text, pct, pts, signed, week_span

SLACK_SECTION_MAX = 3000
SLACK_HEADER_MAX = 150
SLACK_FIELDS_MAX = 10
TEAMS_MAX_BYTES = 28_000
LIST_LIMIT = 5


def _mrkdwn(text: str) -> str:
    """Slack's three control characters, escaped (names from bills may contain them)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class SlackFile:
    filename: str
    title: str
    alt_text: str
    content: bytes


@dataclass(frozen=True)
class SlackMessage:
    """``text`` (notification fallback) and ``blocks`` for ``chat.postMessage``; ``files`` to upload
    into the message's thread (``files.getUploadURLExternal`` + ``files.completeUploadExternal``)."""

    text: str
    blocks: list[dict[str, Any]]
    files: list[SlackFile] = field(default_factory=list)

    def payload(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks}


def _summary_lines(d: Digest) -> dict[str, list[str]]:
    f = d.findings
    findings = []
    if f is not None:
        findings.append(f"{f.open} open · {len(f.new_this_week)} new · {len(f.fixed_this_week)} fixed this week")
        findings += [f"{k.kind}: {k.open} open" + "".join(
            f", {money(m.monthly_cost, m.currency)}/month at stake" for m in k.money if m.resources) for k in f.by_kind]
        findings += [f"realised savings {money(t.amount, t.currency)}/month" for t in f.realised_savings_total]
    return {
        "movers": [mover_text(m) for m in d.movers[:LIST_LIMIT]] or ["no service moved by 1% or more"],
        "budgets": [budget_text(b) for b in d.budgets[:LIST_LIMIT]] or ["no budget rules"],
        "coverage": [f"{c.rule}: {pct(c.this_week, sign=False)} ({pts(c.change)}), target {pct(c.target, sign=False, places=0)}"
                     for c in d.coverage[:LIST_LIMIT]] or ["no tag-coverage rules"],
        "findings": findings or ["no cycle has run yet"],
        "anomalies": [f"[{a.severity}] {a.title}" for a in (d.anomalies or [])[:LIST_LIMIT]],
    }


def _title(d: Digest) -> str:
    return f"Cost digest {d.week}" + (f" · {d.team}" if d.team else "") + f" ({week_span(d)})"


def slack_message(d: Digest, charts: Sequence[Chart], *, link: str | None = None) -> SlackMessage:
    lines = _summary_lines(d)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(_title(d), SLACK_HEADER_MAX), "emoji": False}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _mrkdwn(f"{d.metric} · per currency · time zone {d.timezone}")}]},
    ]
    notice = data_notice(d)
    if notice:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(
            ":warning: *Incomplete data*\n" + "\n".join(f"• {_mrkdwn(x)}" for x in notice), SLACK_SECTION_MAX)}})
    fields = []
    for a in d.totals[: SLACK_FIELDS_MAX // 2]:
        fields.append({"type": "mrkdwn", "text": _mrkdwn(f"*This week ({a.currency})*\n{money(a.this_week, a.currency)}")})
        avg = f"\n{signed(a.vs_average, a.currency)} vs {a.four_week_average_weeks}-week avg" if a.vs_average is not None else ""
        fields.append({"type": "mrkdwn", "text": _mrkdwn(f"*vs last week*\n{signed(a.change, a.currency)} ({pct(a.change_ratio)}){avg}")})
    if fields:
        blocks.append({"type": "section", "fields": fields})
    for title, key in (("Top movers", "movers"), ("Budgets", "budgets"), ("Tag coverage", "coverage"),
                       ("Findings", "findings"), ("Anomalies", "anomalies")):
        if lines[key] or key != "anomalies" or d.anomalies is not None:
            body = "\n".join(f"• {_mrkdwn(x)}" for x in lines[key]) or "• none"
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(f"*{title}*\n{body}", SLACK_SECTION_MAX)}})
    if link:
        blocks.append({"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open the full digest"}, "url": link}]})
    files = [SlackFile(chart_file(d, c), c.title, c.alt, c.png) for c in charts if c.name.startswith("daily-")][:1]
    return SlackMessage(text=f"{_title(d)}: {headline(d)}", blocks=blocks, files=files)


def teams_message(d: Digest, *, link: str | None = None) -> dict[str, Any]:
    """An Adaptive Card (1.4) wrapped as a Teams ``message`` with one attachment."""
    lines = _summary_lines(d)
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": _title(d), "size": "Large", "weight": "Bolder", "wrap": True},
        {"type": "TextBlock", "text": f"{d.metric} · per currency · time zone {d.timezone}", "isSubtle": True, "spacing": "None", "wrap": True},
    ]
    notice = data_notice(d)
    if notice:
        body.append({"type": "TextBlock", "text": "Incomplete data: " + " ".join(notice), "color": "Warning", "wrap": True})
    facts = []
    for a in d.totals:
        facts.append({"title": f"This week ({a.currency})", "value": money(a.this_week, a.currency)})
        facts.append({"title": "vs last week", "value": f"{signed(a.change, a.currency)} ({pct(a.change_ratio)})"})
        if a.vs_average is not None:
            facts.append({"title": f"vs {a.four_week_average_weeks}-week average", "value": f"{signed(a.vs_average, a.currency)} ({pct(a.vs_average_ratio)})"})
    if facts:
        body.append({"type": "FactSet", "facts": facts})
    for title, key in (("Top movers", "movers"), ("Budgets", "budgets"), ("Tag coverage", "coverage"),
                       ("Findings", "findings"), ("Anomalies", "anomalies")):
        if key == "anomalies" and d.anomalies is None:
            continue
        body.append({"type": "TextBlock", "text": title, "weight": "Bolder", "spacing": "Medium", "wrap": True})
        body.append({"type": "TextBlock", "text": "\n".join(f"- {x}" for x in lines[key]) or "- none", "wrap": True, "spacing": "Small"})
    card: dict[str, Any] = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
                            "version": "1.4", "body": body, "msteams": {"width": "Full"}}
    if link:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open the full digest", "url": link}]
    return {"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}]}
