"""Email over SMTP: STARTTLS (or implicit TLS) and login, an HTML and a text part, one mail per
owner per cycle, to the owner team's ``contact`` in owners.yaml (``to`` for unowned findings and
teams without a contact). The mail's Message-ID is the message id, so a resend after a crash is
recognisable as the same mail.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, SecretStr

from costguard.build import BuildContext
from costguard.notify.base import RECEIVERS, GroupedReceiverConfig
from costguard.notify.errors import PermanentDeliveryError, RetryableDeliveryError
from costguard.notify.model import Message, Sent
from costguard.notify.render import Renderer

if TYPE_CHECKING:
    from costguard.digest.send import DigestBundle


@RECEIVERS.register("email")
class EmailConfig(GroupedReceiverConfig):
    """Mail to each owner team's contact.

    ```yaml
    email:
      type: email
      host: smtp.example.com
      port: 587
      tls: starttls               # starttls | ssl | none
      username: costguard@example.com
      password: "${SMTP_PASSWORD}"    # or password_file: /run/secrets/smtp-password
      from: costguard@example.com
      to: [finops@example.com]    # unowned findings, and teams without a contact
    ```
    """

    default_group_by: ClassVar[tuple[str, ...] | None] = ("owner",)
    type: Literal["email"] = "email"
    host: str
    port: int = Field(587, ge=1, le=65535)
    tls: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    from_: str = Field(alias="from")
    to: list[str] = Field(default_factory=list)
    ca_bundle: str | None = Field(None, description="extra CA bundle to trust (a private mail relay)")
    timeout_seconds: float = 30.0

    def build(self, name: str, ctx: BuildContext) -> "EmailNotifier":
        return EmailNotifier(name, self, Renderer(self.template_files(ctx)), contacts=ctx.contacts,
                             ca_bundle=ctx.resolve(self.ca_bundle) if self.ca_bundle else None)


class EmailNotifier:
    catch_all = False
    fixed_grouping = True
    group_by = ()  # one mail per owner

    def __init__(self, name: str, cfg: EmailConfig, renderer: Renderer, *, contacts: Mapping[str, str] | None = None,
                 ca_bundle: str | None = None) -> None:
        self.name = name
        self.cfg = cfg
        self.renderer = renderer
        self.contacts = dict(contacts or {})
        self.ca_bundle = ca_bundle

    def recipients(self, message: Message) -> list[str]:
        owner = message.group.get("owner") or ""
        contact = self.contacts.get(owner)
        return [c.strip() for c in contact.split(",")] if contact else list(self.cfg.to)

    def build_mail(self, message: Message) -> EmailMessage:
        to = self.recipients(message)
        if not to:
            raise PermanentDeliveryError(f"email {self.name}: no address for owner {message.group.get('owner')!r}: "
                                         "set the team's contact in owners.yaml or `to` on the receiver")
        mail = EmailMessage()
        mail["Subject"] = self.renderer.render("email_subject.txt.j2", message).strip()
        mail["From"] = self.cfg.from_
        mail["To"] = ", ".join(to)
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = f"<{message.message_id}@costguard>"
        mail.set_content(self.renderer.render("email.txt.j2", message) + "\n")
        mail.add_alternative(self.renderer.render("email.html.j2", message), subtype="html")
        return mail

    def _context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        if self.ca_bundle:
            ctx.load_verify_locations(self.ca_bundle)
        return ctx

    def send(self, message: Message) -> Sent:
        self._deliver(self.build_mail(message))
        return Sent()

    def send_digest(self, bundle: "DigestBundle") -> dict[str, Any]:
        """The weekly digest (HTML with inline charts, text alternative) to a team's contact, or to
        ``to`` for the organisation's digest and teams without a contact."""
        team = bundle.digest.team
        contact = self.contacts.get(team) if team else None
        to = [c.strip() for c in contact.split(",")] if contact else list(self.cfg.to)
        if not to:
            raise PermanentDeliveryError(f"email {self.name}: no address for the {bundle.digest.audience} digest: "
                                         "set the team's contact in owners.yaml or `to` on the receiver")
        mail = bundle.email(sender=self.cfg.from_, to=to)
        self._deliver(mail)
        return {"message_id": mail["Message-ID"], "to": to}

    def _deliver(self, mail: EmailMessage) -> None:
        what = f"email {self.name}"
        try:
            smtp: Any
            if self.cfg.tls == "ssl":
                smtp = smtplib.SMTP_SSL(self.cfg.host, self.cfg.port, timeout=self.cfg.timeout_seconds, context=self._context())
            else:
                smtp = smtplib.SMTP(self.cfg.host, self.cfg.port, timeout=self.cfg.timeout_seconds)
            with smtp:
                smtp.ehlo()
                if self.cfg.tls == "starttls":
                    smtp.starttls(context=self._context())
                    smtp.ehlo()
                if self.cfg.username and self.cfg.password is not None:
                    smtp.login(self.cfg.username, self.cfg.password.get_secret_value())
                smtp.send_message(mail)
        except smtplib.SMTPAuthenticationError as e:
            raise PermanentDeliveryError(f"{what}: login refused ({e.smtp_code})") from None
        except smtplib.SMTPRecipientsRefused as e:
            raise PermanentDeliveryError(f"{what}: recipients refused: {', '.join(sorted(e.recipients))}") from None
        except smtplib.SMTPResponseException as e:
            cls = RetryableDeliveryError if 400 <= e.smtp_code < 500 else PermanentDeliveryError
            raise cls(f"{what}: SMTP {e.smtp_code}") from None
        except smtplib.SMTPNotSupportedError:
            raise PermanentDeliveryError(f"{what}: the server does not offer STARTTLS or AUTH; check tls: and port:") from None
        except ssl.SSLError as e:
            raise PermanentDeliveryError(f"{what}: TLS failed: {e.reason or type(e).__name__}") from None
        except (smtplib.SMTPException, OSError) as e:
            raise RetryableDeliveryError(f"{what}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
