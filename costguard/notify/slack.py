"""Slack: an incoming webhook, or a bot token (``chat.postMessage``, then ``chat.update`` for
changes), with Block Kit messages, at most one message per second per channel, and 429
``Retry-After`` honoured.

With a bot token and ``group_by: [fingerprint]`` (one message per finding), a later change of the
finding (updated, resolved, snooze ended) updates its message in place (the message ``ts`` and
channel are kept in the receiver state); other messages are posted. An incoming webhook can only
post. Bot scopes needed: ``chat:write`` (and the bot invited to the channel).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from costguard.build import BuildContext
from costguard.notify.base import RECEIVERS, GroupedReceiverConfig
from costguard.notify.errors import PermanentDeliveryError, RetryableDeliveryError
from costguard.notify.http import request
from costguard.notify.model import Message, Sent
from costguard.notify.ratelimit import RateLimiter
from costguard.notify.render import Renderer

if TYPE_CHECKING:
    from costguard.digest.send import DigestBundle

UPDATE_EVENTS = ("updated", "resolved", "unsnoozed")
RETRYABLE_ERRORS = {"internal_error", "fatal_error", "service_unavailable", "request_timeout", "ratelimited"}
MAX_ITEMS = 40  # Block Kit allows 50 blocks


@RECEIVERS.register("slack")
class SlackConfig(GroupedReceiverConfig):
    """A Slack channel, through an incoming webhook or a bot token.

    ```yaml
    slack-payments:
      type: slack
      token: "${SLACK_BOT_TOKEN}"   # bot token (chat:write): posts, then updates; or token_file: …
      channel: "#payments-cost"
      # webhook_url: "${SLACK_WEBHOOK_URL}"   # or an incoming webhook (post only)
      group_by: [owner]
    ```
    """

    type: Literal["slack"] = "slack"
    webhook_url: SecretStr | None = None
    token: SecretStr | None = None
    channel: str | None = Field(None, validate_default=True)
    api_url: str = Field("https://slack.com/api", description="Web API base (GovSlack, tests)")
    min_interval_seconds: float = Field(1.0, ge=0, description="per channel, between two messages")

    @field_validator("channel")
    @classmethod
    def _one_way(cls, channel: str | None, info: ValidationInfo) -> str | None:
        webhook, token = info.data.get("webhook_url"), info.data.get("token")
        if (webhook is None) == (token is None):
            raise ValueError("give either webhook_url (an incoming webhook) or token + channel (a bot), not both")
        if token is not None and not channel:
            raise ValueError("a bot token needs a channel to post to")
        return channel

    def build(self, name: str, ctx: BuildContext) -> "SlackNotifier":
        return SlackNotifier(name, ctx.http, webhook_url=self.webhook_url, token=self.token, channel=self.channel,
                             api_url=self.api_url.rstrip("/"), renderer=Renderer(self.template_files(ctx)),
                             limiter=RateLimiter(self.min_interval_seconds), group_by=self.grouping())


class SlackNotifier:
    catch_all = False

    def __init__(self, name: str, client: Any, *, webhook_url: SecretStr | None, token: SecretStr | None,
                 channel: str | None, api_url: str, renderer: Renderer, limiter: RateLimiter,
                 group_by: tuple[str, ...] = ()) -> None:
        self.name = name
        self.client = client
        self._webhook_url = webhook_url
        self._token = token
        self.channel = channel
        self.api_url = api_url
        self.renderer = renderer
        self.limiter = limiter
        self.group_by = group_by

    def render(self, message: Message) -> dict[str, Any]:
        return self.renderer.render_json("slack.json.j2", message, max_items=MAX_ITEMS)

    def send(self, message: Message) -> Sent:
        body = self.render(message)
        if self._webhook_url is not None:
            self.limiter.wait(self.name)
            request(self.client, "POST", self._webhook_url.get_secret_value(), f"slack {self.name}", json=body)
            return Sent()
        state = message.state or {}
        item = message.single
        per_finding = "fingerprint" in message.group
        if per_finding and item is not None and item.event in UPDATE_EVENTS and state.get("ts"):
            self.limiter.wait(state.get("channel") or self.channel or "")
            try:
                self._api("chat.update", {**body, "channel": state["channel"], "ts": state["ts"]})
                return Sent(state=state)
            except PermanentDeliveryError as e:
                if "message_not_found" not in str(e) and "cant_update_message" not in str(e):
                    raise
        self.limiter.wait(self.channel or "")
        data = self._api("chat.postMessage", {**body, "channel": self.channel})
        return Sent(state={"channel": data.get("channel"), "ts": data.get("ts")} if per_finding else None)

    def send_digest(self, bundle: "DigestBundle") -> dict[str, Any]:
        """The weekly digest: its Block Kit summary, and with a bot token the daily chart uploaded
        into the message's thread (``files.getUploadURLExternal``, the upload, then
        ``files.completeUploadExternal``; scope ``files:write``). An incoming webhook can only post
        the summary."""
        payload = bundle.slack.payload()
        if self._webhook_url is not None:
            self.limiter.wait(self.name)
            request(self.client, "POST", self._webhook_url.get_secret_value(), f"slack {self.name}", json=payload)
            return {}
        self.limiter.wait(self.channel or "")
        posted = self._api("chat.postMessage", {**payload, "channel": self.channel})
        channel, ts = posted.get("channel"), posted.get("ts")
        files = []
        for f in bundle.slack.files:
            got = self._api("files.getUploadURLExternal", form={"filename": f.filename, "length": str(len(f.content)),
                                                                "alt_txt": f.alt_text[:1000]})
            request(self.client, "POST", got["upload_url"], f"slack {self.name} file upload", content=f.content,
                    headers={"Content-Type": "application/octet-stream"})
            files.append({"id": got["file_id"], "title": f.title})
        if files:
            self._api("files.completeUploadExternal", {"files": files, "channel_id": channel, "thread_ts": ts})
        return {"channel": channel, "ts": ts, "files": [f["id"] for f in files]}

    def _api(self, method: str, body: dict[str, Any] | None = None, *, form: dict[str, str] | None = None) -> dict[str, Any]:
        assert self._token is not None
        kwargs: dict[str, Any] = {"data": form} if form is not None else {"json": body}
        resp = request(self.client, "POST", f"{self.api_url}/{method}", f"slack {self.name} {method}", **kwargs,
                       headers={"Authorization": f"Bearer {self._token.get_secret_value()}"})
        data = resp.json()
        if not data.get("ok"):
            err = str(data.get("error") or "unknown_error")
            cls = RetryableDeliveryError if err in RETRYABLE_ERRORS else PermanentDeliveryError
            raise cls(f"slack {self.name} {method}: {err}")
        return data
