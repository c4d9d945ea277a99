"""The console receiver: a grouped, readable account of what changed in a cycle.

It is a receiver on the delivery pipeline like any other (its notifications are settled in the
ledger), that takes every finding (``catch_all``) in one message per cycle. On a big run (a first
cycle on a real account opens thousands of findings) each group prints its ``limit`` most severe
and most expensive findings per event, then one line naming how many more there are and the
command that lists them; the counts line at the top always counts everything.
"""

from __future__ import annotations

import shlex
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, TextIO

from pydantic import Field

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


DEFAULT_LIMIT = 20
#: the `costguard findings` filter of each grouping
FILTER_FLAG = {"owner": "--owner", "rule": "--rule", "kind": "--kind"}
UNOWNED = "(unowned)"


def _amount(v: Any, currency: str) -> str:
    return f"{money(v)} {currency}" if v is not None else "-"


@RECEIVERS.register("console")
class ConsoleConfig(ReceiverConfig):
    """The terminal (stdout of `costguard run`), grouped by owner, rule or kind; per group and
    event the ``limit`` most severe and most expensive findings, then "… and N more" with the
    command that lists them (``limit: 0`` prints every finding).

    ```yaml
    console: {type: console, group_by: owner, limit: 20}
    ```
    """

    default_group_by: ClassVar[tuple[str, ...] | None] = None
    type: Literal["console"] = "console"
    group_by: Literal["owner", "rule", "kind"] = "owner"
    limit: int = Field(DEFAULT_LIMIT, ge=0, description="findings printed per group and event (most severe and "
                       "most expensive first); the rest is one line with their count; 0 prints all")

    def build(self, name: str, ctx: BuildContext) -> "ConsoleNotifier":
        return ConsoleNotifier(ctx.out, group_by=self.group_by, name=name, limit=self.limit, config=ctx.config_path)


class ConsoleNotifier:
    """Prints changes grouped by owner (or rule / kind), most severe and most expensive first."""

    group_by = None     # one message per cycle: the whole account
    catch_all = True    # every finding, whatever the routes say
    fixed_grouping = True

    def __init__(self, out: TextIO, *, group_by: str = "owner", name: str = "console", limit: int = DEFAULT_LIMIT,
                 config: str | Path | None = None) -> None:
        if limit < 0:
            raise ValueError(f"console limit must be 0 (print all) or more, got {limit}")
        self.out = out
        self.display_by = group_by
        self.name = name
        self.limit = limit
        self.config = config

    def send(self, message: Message) -> Sent:
        self.print([(i.event, i.finding) for i in message.items])
        return Sent()

    def print(self, changes: list[tuple[str, Mapping[str, Any]]]) -> int:
        w = self.out.write
        relevant = [(e, f) for e, f in changes if e in EVENT_TITLE]
        if not relevant:
            w("\nNo finding changed in this cycle.\n")
            return 0
        counts = {e: sum(1 for x, _ in relevant if x == e) for e in EVENT_ORDER}
        w("\nthis cycle: " + " · ".join(f"{counts[e]} {EVENT_WORD[e]}" for e in EVENT_ORDER if counts[e]) + "\n")
        groups: dict[str, list[tuple[str, Mapping[str, Any]]]] = defaultdict(list)
        for e, f in relevant:
            groups[str(f.get(self.display_by) or UNOWNED)].append((e, f))
        for key in sorted(groups):
            items = groups[key]
            w(f"\n── {self.display_by}: {key} " + "─" * max(4, 60 - len(key)) + "\n")
            for event in EVENT_ORDER:
                sel = [f for e, f in items if e == event]
                if not sel:
                    continue
                sel.sort(key=lambda f: (-SEVERITY_RANK.get(f["severity"], 0), -(f.get("monthly_cost") or 0)))
                w(f"  {EVENT_TITLE[event]} ({len(sel)})\n")
                shown = sel if not self.limit else sel[: self.limit]
                for f in shown:
                    self._finding(w, f)
                if len(shown) < len(sel):
                    w(f"   … and {len(sel) - len(shown)} more {EVENT_WORD[event]} for {self.display_by} {key}: "
                      f"{self.more_command(key, event)}\n")
        return len(relevant)

    def more_command(self, key: str, event: str) -> str:
        """The `costguard findings` command listing a group's findings."""
        parts = ["costguard", "findings"]
        if self.config is not None:
            parts += ["-c", str(self.config)]
        if event == "resolved":
            parts += ["--status", "resolved"]
        parts += [FILTER_FLAG[self.display_by], "-" if key == UNOWNED else key]
        return shlex.join(parts)

    @staticmethod
    def _finding(w: Any, f: Mapping[str, Any]) -> None:
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
