"""The seam between the digest and the delivery stage.

A digest is rendered once per audience and week into a :class:`DigestBundle` (every payload a
transport may want); a transport that can carry digests implements :class:`DigestTransport` and
picks its payload: an email receiver builds the MIME message with :meth:`DigestBundle.email`
(its own sender and recipients), a Slack receiver posts ``bundle.slack`` and uploads its files,
a Teams receiver posts ``bundle.teams``.

Once per audience per week: the delivery stage checks and records each send in the state store's
ledger under ``(group_key, receiver, event, episode) = (bundle.group_key, <receiver name>,
EVENT, bundle.episode)``, i.e. ``("digest:org", "finops-mail", "digest", "2026-W05")``; the
ledger's unique key makes a re-run of the same week (a restarted daemon, a manual
``costguard digest --send``) a no-op for receivers that already have it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Protocol, runtime_checkable

from costguard.digest.charts import Chart
from costguard.digest.chat import SlackMessage, slack_message, teams_message
from costguard.digest.email import email_message
from costguard.digest.files import to_json
from costguard.digest.model import Digest
from costguard.digest.render import render_text

EVENT = "digest"


@dataclass(frozen=True)
class DigestBundle:
    digest: Digest
    charts: list[Chart]
    text: str
    slack: SlackMessage
    teams: dict[str, Any]
    data_json: str

    @property
    def group_key(self) -> str:
        return f"digest:{self.digest.audience}"

    @property
    def episode(self) -> str:
        return self.digest.week

    def email(self, *, sender: str, to: Sequence[str]) -> EmailMessage:
        return email_message(self.digest, self.charts, sender=sender, to=to)


def bundle(d: Digest, charts: Sequence[Chart], *, link: str | None = None) -> DigestBundle:
    return DigestBundle(d, list(charts), render_text(d), slack_message(d, charts, link=link), teams_message(d, link=link),
                        to_json(d.to_data()))


@runtime_checkable
class DigestTransport(Protocol):
    """A receiver that can deliver a digest (implemented by the delivery stage's transports)."""

    name: str

    def send_digest(self, bundle: DigestBundle) -> Mapping[str, Any] | None:
        """Deliver; return what to keep in the ledger's ``receiver_data`` (message ids…). Raise on failure."""


SEND_UNAVAILABLE = (
    "sending needs the delivery stage (notify.receivers for email, Slack and Teams), which is not in this "
    "version; write the digest with --out DIR (HTML with its charts, and the JSON data) and share that"
)
