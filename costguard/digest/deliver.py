"""Sending digests through the delivery stage's transports, once per audience, week and receiver.

Who gets what: the organisation's digest goes to ``digest.receivers``; a team's digest (with
``digest.teams: true``) to the receivers that team names in owners.yaml. Only transports that can
carry a digest take part (email, Slack, Teams: they implement
:class:`~costguard.digest.send.DigestTransport`).

Once: before each send the delivery store is asked whether this receiver already has this
audience's digest of this week (``receiver_state`` under ``digest:<audience>:<week>``); after a
successful send that record is committed before the next send starts. A re-run of the same week
(a restarted daemon, a second ``costguard digest --send``) sends nothing new; a receiver that
failed is tried again on the next run. Transient failures are retried with the delivery stage's
retry policy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from costguard.digest.send import DigestBundle, DigestTransport
from costguard.logs import get_logger
from costguard.notify.errors import DeliveryError

log = get_logger("costguard.digest")

#: receiver types whose transport carries digests
DIGEST_TYPES = ("email", "slack", "teams")


class SendRecords(Protocol):
    """Where "this receiver has this digest" is kept (``costguard.store.delivery.DeliveryStore``)."""

    def state(self, receiver: str, group_key: str) -> dict | None: ...

    def keep_state(self, receiver: str, group_key: str, data: Mapping[str, Any], at: datetime) -> None: ...


class Retry(Protocol):
    def call(self, fn: Callable[[], Any]) -> Any: ...


@dataclass(frozen=True)
class SendResult:
    audience: str
    week: str
    receiver: str
    outcome: str                 # sent | already_sent | failed
    detail: str | None = None

    def line(self) -> str:
        what = f"the {self.week} digest ({self.audience})"
        if self.outcome == "sent":
            return f"sent {what} to {self.receiver}"
        if self.outcome == "already_sent":
            return f"{self.receiver} already has {what}: not sent again"
        return f"FAILED to send {what} to {self.receiver}: {self.detail}"


def record_key(bundle: DigestBundle) -> str:
    return f"digest:{bundle.digest.audience}:{bundle.digest.week}"


def receivers_for(team: str | None, *, org: Sequence[str], teams: Mapping[str, Sequence[str]], types: Mapping[str, str],
                  team_digests: bool) -> list[str]:
    """The receivers of one audience's digest (``types``: receiver name → type)."""
    if team is None:
        return list(org)
    if not team_digests:
        return []
    return [r for r in teams.get(team, ()) if types.get(r) in DIGEST_TYPES]


def send_digests(plan: Sequence[tuple[DigestBundle, Sequence[str]]], transports: Mapping[str, DigestTransport],
                 records: SendRecords, *, retry: Retry, clock: Callable[[], datetime]) -> list[SendResult]:
    """Send each bundle to its receivers; one receiver failing never stops the others."""
    out = []
    for bundle, receivers in plan:
        d = bundle.digest
        key = record_key(bundle)
        for name in receivers:
            if records.state(name, key) is not None:
                out.append(SendResult(d.audience, d.week, name, "already_sent"))
                continue
            transport = transports[name]
            try:
                data = retry.call(lambda t=transport, b=bundle: t.send_digest(b)) or {}
            except DeliveryError as e:
                log.error("digest_send_failed", audience=d.audience, week=d.week, receiver=name, error=str(e))
                out.append(SendResult(d.audience, d.week, name, "failed", str(e)))
                continue
            except Exception as e:  # noqa: BLE001 - a transport's bug must not stop the other receivers
                log.exception("digest_send_crashed", audience=d.audience, week=d.week, receiver=name)
                out.append(SendResult(d.audience, d.week, name, "failed", f"{type(e).__name__}: {e}"))
                continue
            at = clock()
            records.keep_state(name, key, {"sent_at": at.isoformat(), **dict(data)}, at)
            log.info("digest_sent", audience=d.audience, week=d.week, receiver=name)
            out.append(SendResult(d.audience, d.week, name, "sent"))
    return out
