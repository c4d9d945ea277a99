"""The seam between the digest and the delivery stage.

A digest is rendered once per audience and week into a :class:`DigestBundle` (every payload a
transport may want); a transport that can carry digests implements :class:`DigestTransport`
(``send_digest``) and picks its payload: the email receiver builds the MIME message with
:meth:`DigestBundle.email` (its own sender, and the team's contact or its ``to``), the Slack
receiver posts ``bundle.slack`` and uploads its chart, the Teams receiver posts ``bundle.teams``.
``deliver.send_digests`` sends each bundle once per receiver and week.
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

@dataclass(frozen=True)
class DigestBundle:
    digest: Digest
    charts: list[Chart]
    text: str
    slack: SlackMessage
    teams: dict[str, Any]
    data_json: str

    def email(self, *, sender: str, to: Sequence[str]) -> EmailMessage:
        return email_message(self.digest, self.charts, sender=sender, to=to)


def bundle(d: Digest, charts: Sequence[Chart], *, link: str | None = None) -> DigestBundle:
    return DigestBundle(d, list(charts), render_text(d), slack_message(d, charts, link=link), teams_message(d, link=link),
                        to_json(d.to_data()))


@runtime_checkable
class DigestTransport(Protocol):
    """A receiver that can deliver a digest (the email, Slack and Teams transports)."""

    name: str

    def send_digest(self, bundle: DigestBundle) -> Mapping[str, Any] | None:
        """Deliver; return what to keep about it (message id, Slack ts…). Raise
        ``RetryableDeliveryError`` / ``PermanentDeliveryError`` on failure."""
