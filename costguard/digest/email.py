"""The digest as an email: ``multipart/alternative`` with the plain-text version first and the HTML
version last (the one clients prefer), the HTML part ``multipart/related`` with every chart as an
inline image whose ``Content-ID`` the HTML references as ``cid:…``."""

from __future__ import annotations

from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import format_datetime

from costguard.digest.charts import Chart
from costguard.digest.files import base_name, slug
from costguard.digest.model import Digest
from costguard.digest.render import headline, render_html, render_text


def subject(d: Digest) -> str:
    who = f" · {d.team}" if d.team else ""
    return f"Cost digest {d.week}{who}: {headline(d)}"


def content_id(d: Digest, chart: Chart, domain: str) -> str:
    """``<name>.<digest base>@<domain>`` (no angle brackets: the HTML says ``cid:`` + this)."""
    return f"{chart.name}.{base_name(d)}@{domain}"


def email_message(d: Digest, charts: Sequence[Chart], *, sender: str, to: Sequence[str], domain: str | None = None) -> EmailMessage:
    """A complete message. ``Message-ID`` is the same for the same week and audience, so a mail
    system (and a reader's client) can tell a repeat from a new digest."""
    domain = domain or (sender.rsplit("@", 1)[-1].strip(">") if "@" in sender else "costguard.invalid")
    cids = {c.name: content_id(d, c, domain) for c in charts}
    msg = EmailMessage()
    msg["Subject"] = subject(d)
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = format_datetime(d.generated_at)
    msg["Message-ID"] = f"<digest.{d.week}.{slug(d.team) if d.team else 'org'}@{domain}>"
    msg["X-Costguard-Digest"] = f"{d.week}; audience={d.audience}"
    msg.set_content(render_text(d))
    msg.add_alternative(render_html(d, charts, {name: f"cid:{cid}" for name, cid in cids.items()}), subtype="html")
    html_part = msg.get_payload()[-1]
    for c in charts:
        html_part.add_related(c.png, maintype="image", subtype="png", cid=f"<{cids[c.name]}>",
                              filename=f"{c.name}.png", disposition="inline")
    return msg
