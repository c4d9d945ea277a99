"""Whether to tell a receiver about a finding now: a pure function of (pending events, ledger).

After Alertmanager's ``needsUpdate``: the answer carries a reason, time is passed in, and
the tests are a table (tests/test_notify_dedup.py).

    pending ends with "resolved":  send if the receiver was told the finding is open,
                                   else nothing (it never heard of it)
    receiver not told it is open:  send (first notification); the event is the first of
                                   new/regressed/unsnoozed pending, else the latest
    told, a material change pending (updated, regressed, unsnoozed, new): send the latest
    told, only "repeat" pending:   send when the last send is repeat_interval old, else nothing
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from costguard.notify.model import FIRING_EVENTS


class Reason(StrEnum):
    FIRST_NOTIFICATION = "first_notification"
    CHANGED = "changed"
    RESOLVED = "resolved"
    REPEAT_INTERVAL_ELAPSED = "repeat_interval_elapsed"
    RESOLVED_NEVER_TOLD = "resolved_never_told"      # do not notify
    REPEAT_NOT_DUE = "repeat_not_due"                # do not notify
    MUTED = "muted"                                  # do not notify (an exception matched)


@dataclass(frozen=True, slots=True)
class Told:
    """The last thing actually sent to a receiver about a finding."""

    event: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Decision:
    send: bool
    reason: Reason
    event: str | None = None


def needs_update(events: Sequence[str], told: Told | None, *, now: datetime, repeat_interval: timedelta,
                 muted: bool = False) -> Decision:
    """``events``: the pending events of one finding for one receiver, oldest first (not empty)."""
    if not events:
        raise ValueError("needs_update needs at least one pending event")
    latest = events[-1]
    knows_open = told is not None and told.event != "resolved"
    if latest == "resolved":
        if knows_open:  # close the loop even under an exception: tickets must not stay open forever
            return Decision(True, Reason.RESOLVED, "resolved")
        return Decision(False, Reason.RESOLVED_NEVER_TOLD)
    if muted:
        return Decision(False, Reason.MUTED)
    if not knows_open:
        first = next((e for e in events if e in FIRING_EVENTS), None)
        return Decision(True, Reason.FIRST_NOTIFICATION, first or latest)
    material = [e for e in events if e not in ("repeat", "resolved")]
    if material:
        return Decision(True, Reason.CHANGED, material[-1])
    assert told is not None
    if now - told.at >= repeat_interval:
        return Decision(True, Reason.REPEAT_INTERVAL_ELAPSED, "repeat")
    return Decision(False, Reason.REPEAT_NOT_DUE)
