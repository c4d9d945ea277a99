"""PagerDuty Events API v2: trigger on new / regressed critical findings, resolve on resolved.

``dedup_key`` is the finding's fingerprint, so PagerDuty itself folds repeats into one alert and
a resolve closes it. Only findings whose severity is in ``trigger_severities`` (default
``[critical]``) are routed here. Setup: an "Events API v2" integration on a service; its
integration (routing) key is the secret ``routing_key_file``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr

from costguard.build import BuildContext
from costguard.notify.base import RECEIVERS, ReceiverConfig
from costguard.notify.http import request
from costguard.notify.model import Message, Sent
from costguard.notify.render import hint, over_budget
from costguard.rules.base import fmt_money

PD_SEVERITIES = ("critical", "error", "warning", "info")


@RECEIVERS.register("pagerduty")
class PagerDutyConfig(ReceiverConfig):
    """On-call paging for critical findings.

    ```yaml
    pagerduty-finops:
      type: pagerduty
      routing_key: "${PAGERDUTY_ROUTING_KEY}"   # or routing_key_file: …
      trigger_severities: [critical]
      severity_map: {critical: critical, warning: warning, info: info}
    ```
    """

    default_group_by: ClassVar[tuple[str, ...] | None] = ("fingerprint",)
    type: Literal["pagerduty"] = "pagerduty"
    routing_key: SecretStr
    url: str = "https://events.pagerduty.com/v2/enqueue"
    trigger_severities: list[Literal["info", "warning", "critical"]] = Field(default_factory=lambda: ["critical"])
    severity_map: dict[Literal["info", "warning", "critical"], Literal["critical", "error", "warning", "info"]] = Field(
        default_factory=lambda: {"critical": "critical", "warning": "warning", "info": "info"})

    def build(self, name: str, ctx: BuildContext) -> "PagerDutyNotifier":
        return PagerDutyNotifier(name, ctx.http, self)


class PagerDutyNotifier:
    catch_all = False
    fixed_grouping = True
    group_by = ("fingerprint",)

    def __init__(self, name: str, client: Any, cfg: PagerDutyConfig) -> None:
        self.name = name
        self.client = client
        self.cfg = cfg

    def accepts(self, finding: dict[str, Any]) -> bool:
        return finding.get("severity") in self.cfg.trigger_severities

    def event(self, message: Message) -> dict[str, Any]:
        item = message.items[0]
        f = item.finding
        cur = f.get("currency") or "USD"
        body: dict[str, Any] = {"routing_key": self.cfg.routing_key.get_secret_value(), "dedup_key": item.fingerprint}
        if item.event == "resolved":
            return {**body, "event_action": "resolve"}
        cost = f.get("monthly_cost")
        summary = f"{f.get('title')} ({fmt_money(cost, cur)}{'' if f.get('kind') == 'budget' else '/month'})" if cost is not None else str(f.get("title"))
        return {**body, "event_action": "trigger", "client": "costguard", "payload": {
            "summary": summary[:1024],
            "source": f"{f.get('provider') or '-'} account {f.get('account_id') or '-'}",
            "severity": self.cfg.severity_map.get(f.get("severity"), "warning"),
            "component": f.get("service") or f.get("resource_id") or "-",
            "group": f.get("owner") or "unowned",
            "class": f.get("kind"),
            "custom_details": {
                "event": item.event, "rule": f.get("rule"), "owner": f.get("owner"), "owner_reason": f.get("owner_reason"),
                "monthly_cost": fmt_money(cost, cur) if cost is not None else None,
                "monthly_savings": fmt_money(f["monthly_savings"], cur) if f.get("monthly_savings") is not None else None,
                "over_budget": fmt_money(over, cur) if (over := over_budget(f)) is not None else None,
                "resource_id": f.get("resource_id"), "details": hint(item.fingerprint), "fingerprint": item.fingerprint,
            },
        }}

    def send(self, message: Message) -> Sent:
        request(self.client, "POST", self.cfg.url, f"pagerduty {self.name}", json=self.event(message))
        return Sent(state={"dedup_key": message.items[0].fingerprint, "open": message.items[0].event != "resolved"})
