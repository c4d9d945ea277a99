"""The ticket lifecycle shared by Jira, GitHub and ServiceNow (one ticket per finding, or per group).

    no ticket yet        → search the tracker for the marker (a lost ledger never duplicates a
                           ticket); none found → create (unless the news is only "resolved")
    new, ticket open     → nothing (a resend after a crash: the ticket already exists)
    updated / repeat     → comment
    regressed / unsnoozed / new, ticket closed → reopen and comment
    resolved             → comment and close (transition to done)

The marker is the finding's fingerprint when the receiver groups by fingerprint, else a hash of
the group key; each tracker stores it where its search can find it (Jira label, GitHub label plus
a hidden comment in the body, ServiceNow ``correlation_id``).
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

from costguard.notify.model import Message, Sent

FIRING = ("new", "regressed", "unsnoozed")


def marker(message: Message) -> str:
    fp = message.group.get("fingerprint")
    if fp and fp != "-":
        return str(fp)
    return hashlib.sha256(f"{message.receiver}\x1f{message.group_key}".encode()).hexdigest()[:24]


class Tracker(Protocol):
    def find(self, marker: str, message: Message) -> dict[str, Any] | None: ...
    def create(self, marker: str, message: Message) -> dict[str, Any]: ...
    def comment(self, ticket: dict[str, Any], message: Message) -> None: ...
    def close(self, ticket: dict[str, Any], message: Message) -> None: ...
    def reopen(self, ticket: dict[str, Any], message: Message) -> None: ...


def deliver(tracker: Tracker, message: Message) -> Sent:
    events = {i.event for i in message.items}
    ticket = dict(message.state) if message.state else None
    m = marker(message)
    if ticket is None:
        ticket = tracker.find(m, message)
    if ticket is None:
        if events == {"resolved"}:
            return Sent(detail="nothing to close: no ticket was ever made")
        ticket = tracker.create(m, message)
        return Sent(state={**ticket, "open": True, "marker": m})
    if events == {"resolved"}:
        if ticket.get("open", True):
            tracker.comment(ticket, message)
            tracker.close(ticket, message)
        return Sent(state={**ticket, "open": False, "marker": m})
    if not ticket.get("open", True):
        tracker.reopen(ticket, message)
        tracker.comment(ticket, message)
    elif events - {"new"}:
        tracker.comment(ticket, message)
    return Sent(state={**ticket, "open": True, "marker": m})
