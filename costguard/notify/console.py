"""The console receiver: a grouped, readable account of what changed in a cycle.

It is a receiver on the delivery pipeline like any other (its notifications are settled in the
ledger), that takes every finding (``catch_all``) in one message per cycle.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, ClassVar, Literal, TextIO

from costguard.build import BuildContext
from costguard.model import SEVERITY_RANK, money
from costguard.notify.base import RECEIVERS, ReceiverConfig
from costguard.notify.model import Message, Sent
from costguard.notify.render import hint

EVENT_ORDER = ("new", "regressed", "updated", "unsnoozed", "repeat", "resolved")
EVENT_TITLE = {
    "new": "NEW",
    "regressed": "BACK AGAIN (regressed)",
    "updated": "CHANGED",
    "unsnoozed": "SNOOZE ENDED",
    "repeat": "STILL OPEN (reminder)",
    "resolved": "RESOLVED",
}
EVENT_WORD = {"new": "new", "regressed": "back again", "updated": "changed", "unsnoozed": "snooze ended",
              "repeat": "still open", "resolved": "resolved"}


def _amount(v: Any, currency: str) -> str:
    return f"{money(v)} {currency}" if v is not None else "-"


@RECEIVERS.register("console")
class ConsoleConfig(ReceiverConfig):
    """The terminal (stdout of `costguard run`), grouped by owner, rule or kind.

    ```yaml
    console: {type: console, group_by: owner}
    ```
    """

    default_group_by: ClassVar[tuple[str, ...] | None] = None
    type: Literal["console"] = "console"
    group_by: Literal["owner", "rule", "kind"] = "owner"

    def build(self, name: str, ctx: BuildContext) -> "ConsoleNotifier":
        return ConsoleNotifier(ctx.out, group_by=self.group_by, name=name)


class ConsoleNotifier:
    """Prints changes grouped by owner (or rule / kind), most severe and most expensive first."""

    group_by = None     # one message per cycle: the whole account
    catch_all = True    # every finding, whatever the routes say
    fixed_grouping = True

    def __init__(self, out: TextIO, *, group_by: str = "owner", name: str = "console") -> None:
        self.out = out
        self.display_by = group_by
        self.name = name

    def send(self, message: Message) -> Sent:
        self.print([(i.event, dict(i.finding)) for i in message.items])
        return Sent()

    def print(self, changes: list[tuple[str, dict]]) -> int:
        w = self.out.write
        relevant = [(e, f) for e, f in changes if e in EVENT_TITLE]
        if not relevant:
            w("\nNo finding changed in this cycle.\n")
            return 0
        counts = {e: sum(1 for x, _ in relevant if x == e) for e in EVENT_ORDER}
        w("\nthis cycle: " + " · ".join(f"{counts[e]} {EVENT_WORD[e]}" for e in EVENT_ORDER if counts[e]) + "\n")
        groups: dict[str, list[tuple[str, dict]]] = defaultdict(list)
        for e, f in relevant:
            groups[str(f.get(self.display_by) or "(unowned)")].append((e, f))
        for key in sorted(groups):
            items = groups[key]
            w(f"\n── {self.display_by}: {key} " + "─" * max(4, 60 - len(key)) + "\n")
            for event in EVENT_ORDER:
                sel = [f for e, f in items if e == event]
                if not sel:
                    continue
                sel.sort(key=lambda f: (-SEVERITY_RANK.get(f["severity"], 0), -(f.get("monthly_cost") or 0)))
                w(f"  {EVENT_TITLE[event]} ({len(sel)})\n")
                for f in sel:
                    cur = f.get("currency") or "USD"
                    w(f"   [{f['severity']:<8}] {f['kind']:<7} {f['title']}\n")
                    spend = "spent so far this period" if f["kind"] == "budget" else "/month"
                    line = f"              costs {_amount(f.get('monthly_cost'), cur)}{spend}" if spend == "/month" \
                        else f"              {_amount(f.get('monthly_cost'), cur)} {spend}"
                    over = ((f.get("evidence") or {}).get("overage") or {}).get("forecast") if f["kind"] == "budget" else None
                    if over:
                        line += f" · forecast over budget by {_amount(over, cur)}"
                    if f.get("monthly_savings") is not None:
                        line += f" · fixing saves {_amount(f['monthly_savings'], cur)}/month"
                    line += f" · {hint(f['fingerprint'])}"
                    w(line + "\n")
                    if f.get("owner_reason"):
                        w(f"              owner {f.get('owner') or '-'} ({f['owner_reason']})\n")
        return len(relevant)
