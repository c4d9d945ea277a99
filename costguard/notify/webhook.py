"""Generic webhook: POST of the canonical JSON, with an idempotency key and an HMAC signature.

Body: ``{"version": 1, "receiver": NAME, "group": {...}, "findings": [FINDING + "event"]}`` where
FINDING is exactly what ``costguard findings --format json`` prints. Headers:
``Idempotency-Key: <message id>`` (the same on a resend after a crash) and, with a secret,
``X-Costguard-Signature: sha256=<hex HMAC-SHA256 of the raw body>``.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

from pydantic import Field, SecretStr

from costguard.build import BuildContext
from costguard.notify import payload
from costguard.notify.base import RECEIVERS, GroupedReceiverConfig
from costguard.notify.http import request
from costguard.notify.model import Message, Sent

SIGNATURE_HEADER = "X-Costguard-Signature"


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@RECEIVERS.register("webhook")
class WebhookConfig(GroupedReceiverConfig):
    """POSTs findings as JSON to any HTTP endpoint.

    ```yaml
    audit-hook:
      type: webhook
      url: "${AUDIT_HOOK_URL}"                # or url_file: /run/secrets/audit-hook-url
      hmac_secret: "${AUDIT_HOOK_HMAC}"       # or hmac_secret_file: …
      headers: {X-Team: finops}
      group_by: [owner]
    ```
    """

    type: Literal["webhook"] = "webhook"
    url: SecretStr
    hmac_secret: SecretStr | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    def build(self, name: str, ctx: BuildContext) -> "WebhookNotifier":
        return WebhookNotifier(name, ctx.http, self.url, hmac_secret=self.hmac_secret, headers=self.headers,
                               group_by=self.grouping())


class WebhookNotifier:
    catch_all = False

    def __init__(self, name: str, client, url: SecretStr, *, hmac_secret: SecretStr | None = None,
                 headers: dict[str, str] | None = None, group_by: tuple[str, ...] = ()) -> None:
        self.name = name
        self.client = client
        self._url = url
        self._secret = hmac_secret
        self.headers = dict(headers or {})
        self.group_by = group_by

    def send(self, message: Message) -> Sent:
        body = payload.dumps(payload.body(message)).encode()
        headers = {**self.headers, "Content-Type": "application/json", "Idempotency-Key": message.message_id}
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = signature(self._secret.get_secret_value(), body)
        request(self.client, "POST", self._url.get_secret_value(), f"webhook {self.name}", content=body, headers=headers)
        return Sent()
