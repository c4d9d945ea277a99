"""Message templates: Jinja2 files shipped in ``costguard/notify/templates/``, each overridable
from a receiver's config (``templates: {slack.json.j2: my/slack.json.j2}``).

Context of every template: ``receiver``, ``group`` (labels), ``items`` (each with ``event``,
``event_title``, ``finding``, ``detail``, ``hint``, ``over_budget``), ``counts`` (per event), ``message_id``,
``owner``. Filters: ``money(amount, currency)`` (``$1,234.50`` / ``1,234.50 CHF``; rounding
happens only here), ``tojson`` (for JSON templates). Undefined names are errors.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from costguard.model import SEVERITY_RANK
from costguard.notify.model import Message
from costguard.rules.base import fmt_money

if TYPE_CHECKING:
    import jinja2

TEMPLATES = Path(__file__).resolve().parent / "templates"
EVENT_TITLE = {
    "new": "New", "regressed": "Back again", "updated": "Changed", "unsnoozed": "Snooze ended",
    "resolved": "Resolved", "repeat": "Still open",
}  # fmt: skip
EVENT_ORDER = ("new", "regressed", "updated", "unsnoozed", "repeat", "resolved")


def _money(amount: Any, currency: str | None = None) -> str:
    if amount is None:
        return "-"
    return fmt_money(amount if isinstance(amount, Decimal) else Decimal(str(amount)), currency or "USD")


def _json(value: Any) -> str:
    def enc(o: Any) -> Any:
        if isinstance(o, Decimal):
            return str(o)
        if hasattr(o, "isoformat"):
            return o.isoformat()
        raise TypeError(type(o).__name__)

    return json.dumps(value, default=enc, ensure_ascii=False)


def over_budget(finding: Mapping[str, Any]) -> Any:
    """A budget finding's forecast overrun (``evidence.overage.forecast``), or None."""
    if finding.get("kind") != "budget":
        return None
    over = ((finding.get("evidence") or {}).get("overage") or {}).get("forecast")
    return over if over else None


def hint(fingerprint: str) -> str:
    return f"costguard findings show {fingerprint[:12]}"


class Renderer:
    """Renders a receiver's templates; ``overrides`` maps a template name to a file."""

    def __init__(self, overrides: Mapping[str, str | Path] | None = None) -> None:
        import jinja2  # here, not at the top: every receiver's config model imports this module

        self.overrides = {k: Path(v) for k, v in (overrides or {}).items()}
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([str(TEMPLATES)]),
            undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self.env.filters["money"] = _money
        self.env.filters["tojson"] = _json
        self.env.globals["hint"] = hint

    def template(self, name: str) -> jinja2.Template:
        path = self.overrides.get(name)
        if path is not None:
            env = self.env.overlay(autoescape=name.endswith(".html.j2"))
            return env.from_string(path.read_text(encoding="utf-8"))
        return self.env.get_template(name)

    def render(self, name: str, message: Message, **extra: Any) -> str:
        return self.template(name).render(**context(message), **extra)

    def render_json(self, name: str, message: Message, **extra: Any) -> Any:
        text = self.render(name, message, **extra)
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"template {name} did not render valid JSON (line {e.lineno}: {e.msg})") from None


def context(message: Message) -> dict[str, Any]:
    items = sorted(
        message.items,
        key=lambda i: (EVENT_ORDER.index(i.event) if i.event in EVENT_ORDER else 99,
                       -SEVERITY_RANK.get(i.finding.get("severity"), 0), -(i.finding.get("monthly_cost") or 0),
                       i.fingerprint),
    )
    counts: dict[str, int] = {}
    for i in items:
        counts[i.event] = counts.get(i.event, 0) + 1
    return {
        "receiver": message.receiver,
        "group": dict(message.group),
        "owner": message.group.get("owner"),
        "message_id": message.message_id,
        "items": [
            {"event": i.event, "event_title": EVENT_TITLE.get(i.event, i.event), "finding": i.finding,
             "detail": i.detail or {}, "hint": hint(i.fingerprint), "fingerprint": i.fingerprint,
             "over_budget": over_budget(i.finding)}
            for i in items
        ],
        "counts": counts,
        "summary": " · ".join(f"{counts[e]} {EVENT_TITLE[e].lower()}" for e in EVENT_ORDER if e in counts),
    }
