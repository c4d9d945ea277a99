"""The typed values that travel between delivery stages (no I/O here).

    Notification  one outbox row: a finding change (event) with the finding as it was then
    Item          one finding in one message: the event to tell, the notifications it settles
    Message       what one receiver gets for one group in one cycle, with a stable id
    Sent          what a transport hands back: state to keep for the group (Slack ts, Jira key, …)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

EVENTS = ("new", "updated", "resolved", "regressed", "unsnoozed", "repeat")
FIRING_EVENTS = ("new", "regressed", "unsnoozed")


@dataclass(frozen=True, slots=True)
class Notification:
    """A pending notification. ``id`` is the outbox row id (negative: not stored, a dry run)."""

    id: int
    fingerprint: str
    event: str
    created_at: datetime
    finding: Mapping[str, Any]
    detail: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Item:
    """One finding in a message: the event told and the notifications it settles."""

    fingerprint: str
    event: str
    finding: Mapping[str, Any]
    notification_ids: tuple[int, ...]
    detail: Mapping[str, Any] | None = None

    def stored(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "event": self.event, "notification_ids": list(self.notification_ids)}


@dataclass(frozen=True, slots=True)
class Message:
    """What one receiver gets for one group. ``state`` is what the receiver kept for this group
    key the last time (Slack ts, Jira key, …), or None."""

    receiver: str
    group_key: str
    group: Mapping[str, Any]
    items: tuple[Item, ...]
    message_id: str
    state: Mapping[str, Any] | None = None

    @property
    def single(self) -> Item | None:
        """The one item of a one-finding message (ticket-like receivers), else None."""
        return self.items[0] if len(self.items) == 1 else None

    def with_state(self, state: Mapping[str, Any] | None) -> "Message":
        return Message(self.receiver, self.group_key, self.group, self.items, self.message_id, state)


@dataclass(frozen=True, slots=True)
class Sent:
    """A successful send. ``state``: what to keep for the group key (None keeps what was there)."""

    state: Mapping[str, Any] | None = None
    detail: str | None = None


def message_id(receiver: str, group_key: str, notification_ids: Sequence[int]) -> str:
    """A stable id from (receiver, group, the notifications carried): a resend carries the same id."""
    text = "\x1f".join([receiver, group_key, ",".join(str(i) for i in sorted(notification_ids))])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass
class ReceiverReport:
    """How one receiver did in one cycle (counted per notification)."""

    sent: int = 0
    failed: int = 0
    muted: int = 0
    suppressed: int = 0
    messages: int = 0
    error: str | None = None
    would_send: list[Message] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"sent": self.sent, "failed": self.failed, "muted": self.muted, "suppressed": self.suppressed,
                "messages": self.messages, "error": self.error}
