"""Microsoft Teams through a Workflows (Power Automate) webhook: one Adaptive Card per message.

Office 365 connectors are retired; create the webhook with the "Post to a channel when a webhook
request is received" Workflows template and use its URL (a secret: ``url_file`` or ``${ENV}``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import SecretStr

from costguard.build import BuildContext
from costguard.notify.base import RECEIVERS, GroupedReceiverConfig
from costguard.notify.http import request
from costguard.notify.model import Message, Sent
from costguard.notify.render import Renderer

if TYPE_CHECKING:
    from costguard.digest.send import DigestBundle

MAX_ITEMS = 25


@RECEIVERS.register("teams")
class TeamsConfig(GroupedReceiverConfig):
    """A Teams channel through a Workflows webhook.

    ```yaml
    teams-data:
      type: teams
      url: "${TEAMS_DATA_WORKFLOW_URL}"   # or url_file: /run/secrets/…
    ```
    """

    type: Literal["teams"] = "teams"
    url: SecretStr

    def build(self, name: str, ctx: BuildContext) -> "TeamsNotifier":
        return TeamsNotifier(name, ctx.http, self.url, Renderer(self.template_files(ctx)), group_by=self.grouping())


class TeamsNotifier:
    catch_all = False

    def __init__(self, name: str, client: Any, url: SecretStr, renderer: Renderer, *, group_by: tuple[str, ...] = ()) -> None:
        self.name = name
        self.client = client
        self._url = url
        self.renderer = renderer
        self.group_by = group_by

    def render(self, message: Message) -> dict[str, Any]:
        return self.renderer.render_json("teams.json.j2", message, max_items=MAX_ITEMS)

    def send(self, message: Message) -> Sent:
        request(self.client, "POST", self._url.get_secret_value(), f"teams {self.name}", json=self.render(message))
        return Sent()

    def send_digest(self, bundle: "DigestBundle") -> dict[str, Any]:
        """The weekly digest's Adaptive Card summary."""
        request(self.client, "POST", self._url.get_secret_value(), f"teams {self.name}", json=bundle.teams)
        return {}
