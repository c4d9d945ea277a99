"""GitHub Issues: one issue per finding (or per group) in the owner's repository.

The marker is a label ``costguard-<fingerprint>`` plus a hidden ``<!-- costguard:marker=… -->``
comment in the body; the label is searched before creating (the issues list is consistent at
once, unlike the search API), so a lost ledger never opens a second issue. Changes comment,
resolved closes (state_reason completed), a regression reopens. Token permissions: Issues
read & write on each repository (fine-grained token), or ``repo`` scope (classic).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr

from costguard.build import BuildContext
from costguard.notify import tickets
from costguard.notify.base import RECEIVERS, GroupedReceiverConfig
from costguard.notify.http import request
from costguard.notify.model import Message, Sent
from costguard.notify.render import Renderer

API_VERSION = "2022-11-28"


def hidden_marker(marker: str) -> str:
    return f"<!-- costguard:marker={marker} -->"


@RECEIVERS.register("github")
class GithubConfig(GroupedReceiverConfig):
    """Issues in GitHub (or GitHub Enterprise Server with api_url).

    ```yaml
    github-platform:
      type: github
      token: "${GITHUB_TOKEN}"          # or token_file: /run/secrets/github-token
      repo: acme/finops                 # default repository
      repos: {platform: acme/platform}  # owner team -> repository
    ```
    """

    default_group_by: ClassVar[tuple[str, ...] | None] = ("fingerprint",)
    type: Literal["github"] = "github"
    token: SecretStr
    repo: str = Field(pattern=r"^[\w.-]+/[\w.-]+$")
    repos: dict[str, str] = Field(default_factory=dict)
    api_url: str = "https://api.github.com"
    labels: list[str] = Field(default_factory=lambda: ["costguard"])

    def build(self, name: str, ctx: BuildContext) -> "GithubNotifier":
        return GithubNotifier(name, ctx.http, self, Renderer(self.template_files(ctx)))


class GithubNotifier:
    catch_all = False

    def __init__(self, name: str, client: Any, cfg: GithubConfig, renderer: Renderer) -> None:
        self.name = name
        self.client = client
        self.cfg = cfg
        self.renderer = renderer
        self.group_by = cfg.grouping()

    def _repo(self, message: Message) -> str:
        return self.cfg.repos.get(message.group.get("owner") or "", self.cfg.repo)

    def _call(self, method: str, path: str, what: str, **kw: Any) -> Any:
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION,
                   "Authorization": f"Bearer {self.cfg.token.get_secret_value()}"}
        resp = request(self.client, method, f"{self.cfg.api_url.rstrip('/')}{path}", f"github {self.name} {what}",
                       headers=headers, **kw)
        return resp.json() if resp.content else None

    def send(self, message: Message) -> Sent:
        return tickets.deliver(self, message)

    def find(self, marker: str, message: Message) -> dict[str, Any] | None:
        repo = self._repo(message)
        data = self._call("GET", f"/repos/{repo}/issues", "search",
                          params={"labels": f"costguard-{marker}", "state": "all", "per_page": 10, "direction": "asc"})
        for issue in data or []:
            if "pull_request" not in issue and hidden_marker(marker) in (issue.get("body") or ""):
                return {"repo": repo, "number": issue["number"], "open": issue.get("state") == "open"}
        return None

    def create(self, marker: str, message: Message) -> dict[str, Any]:
        repo = self._repo(message)
        body = self.renderer.render("ticket_body.txt.j2", message) + "\n\n" + hidden_marker(marker) + "\n"
        data = self._call("POST", f"/repos/{repo}/issues", "create", json={
            "title": self.renderer.render("ticket_title.txt.j2", message).strip()[:250],
            "body": body, "labels": [*self.cfg.labels, f"costguard-{marker}"]})
        return {"repo": repo, "number": data["number"]}

    def comment(self, ticket: dict[str, Any], message: Message) -> None:
        body = self.renderer.render("ticket_comment.txt.j2", message)
        self._call("POST", f"/repos/{ticket['repo']}/issues/{ticket['number']}/comments", "comment", json={"body": body})

    def close(self, ticket: dict[str, Any], message: Message) -> None:
        self._call("PATCH", f"/repos/{ticket['repo']}/issues/{ticket['number']}", "close",
                   json={"state": "closed", "state_reason": "completed"})

    def reopen(self, ticket: dict[str, Any], message: Message) -> None:
        self._call("PATCH", f"/repos/{ticket['repo']}/issues/{ticket['number']}", "reopen", json={"state": "open"})
