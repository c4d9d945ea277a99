"""Jira Cloud (REST v3) and Jira Data Center / Server (REST v2), Jira Service Management included.

One issue per finding (``group_by: [fingerprint]``, the default) or per group, in the owner's
project (``projects: {team: KEY}``, else ``project``), labelled ``costguard`` and with a marker
label ``costguard-<fingerprint>``. Before creating, the marker is searched with JQL, so a lost
ledger never creates a second issue. A material change comments; resolved transitions to done;
a regression reopens. Permissions: Browse projects, Create issues, Add comments, Transition
issues (and Edit issues for labels) in each project.
"""

from __future__ import annotations

import base64
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr

from costguard.build import BuildContext
from costguard.logs import add_known_secrets
from costguard.notify import tickets
from costguard.notify.base import RECEIVERS, GroupedReceiverConfig
from costguard.notify.errors import PermanentDeliveryError
from costguard.notify.http import request
from costguard.notify.model import Message, Sent
from costguard.notify.render import Renderer


def adf(text: str) -> dict[str, Any]:
    """Plain text → an Atlassian Document Format doc: paragraphs, and "- " lines as bullet lists."""
    content: list[dict[str, Any]] = []
    bullets: list[dict[str, Any]] = []

    def para(t: str) -> dict[str, Any]:
        return {"type": "paragraph", "content": [{"type": "text", "text": t}]}

    def flush() -> None:
        if bullets:
            content.append({"type": "bulletList", "content": list(bullets)})
            bullets.clear()

    for line in text.splitlines():
        s = line.rstrip()
        if s.startswith("- "):
            bullets.append({"type": "listItem", "content": [para(s[2:])]})
        else:
            flush()
            if s.strip():
                content.append(para(s))
    flush()
    return {"type": "doc", "version": 1, "content": content or [para("-")]}


@RECEIVERS.register("jira")
class JiraConfig(GroupedReceiverConfig):
    """Issues in Jira Cloud (api_version 3) or Data Center (api_version 2).

    ```yaml
    jira-payments:
      type: jira
      url: https://acme.atlassian.net
      user: finops-bot@acme.com            # Cloud: account email + API token (basic auth)
      token: "${JIRA_TOKEN}"               # or token_file: …; Data Center: a PAT and no user (bearer)
      project: FIN                         # default project
      projects: {payments: PAY}            # owner team -> project
      issue_type: Task
    ```
    """

    default_group_by: ClassVar[tuple[str, ...] | None] = ("fingerprint",)
    type: Literal["jira"] = "jira"
    url: str
    api_version: Literal[2, 3] = 3
    user: str | None = None
    token: SecretStr
    project: str
    projects: dict[str, str] = Field(default_factory=dict)
    issue_type: str = "Task"
    labels: list[str] = Field(default_factory=lambda: ["costguard"])
    done_transition: str | None = Field(None, description="transition name to close; default: the first to a 'done' status")
    reopen_transition: str | None = Field(None, description="transition name to reopen; default: the first to a 'to do' status")

    def build(self, name: str, ctx: BuildContext) -> "JiraNotifier":
        return JiraNotifier(name, ctx.http, self, Renderer(self.template_files(ctx)))


class JiraNotifier:
    catch_all = False

    def __init__(self, name: str, client: Any, cfg: JiraConfig, renderer: Renderer) -> None:
        self.name = name
        self.client = client
        self.cfg = cfg
        self.renderer = renderer
        self.group_by = cfg.grouping()
        self.base = f"{cfg.url.rstrip('/')}/rest/api/{cfg.api_version}"
        if cfg.user:  # basic auth sends base64(user:token): hide that form too
            add_known_secrets([base64.b64encode(f"{cfg.user}:{cfg.token.get_secret_value()}".encode()).decode()])

    def _call(self, method: str, path: str, what: str, **kw: Any) -> Any:
        token = self.cfg.token.get_secret_value()
        auth = None
        headers = {"Accept": "application/json"}
        if self.cfg.user:
            auth = (self.cfg.user, token)
        else:
            headers["Authorization"] = f"Bearer {token}"
        resp = request(self.client, method, f"{self.base}{path}", f"jira {self.name} {what}", auth=auth, headers=headers, **kw)
        return resp.json() if resp.content else None

    def _text(self, text: str) -> Any:
        return adf(text) if self.cfg.api_version == 3 else text

    def send(self, message: Message) -> Sent:
        return tickets.deliver(self, message)

    # ---- tickets.Tracker ----
    def find(self, marker: str, message: Message) -> dict[str, Any] | None:
        jql = f'labels = "costguard-{marker}" ORDER BY created ASC'
        path = "/search/jql" if self.cfg.api_version == 3 else "/search"
        data = self._call("POST", path, "search", json={"jql": jql, "fields": ["status"], "maxResults": 1})
        issues = (data or {}).get("issues") or []
        if not issues:
            return None
        issue = issues[0]
        category = (((issue.get("fields") or {}).get("status") or {}).get("statusCategory") or {}).get("key")
        return {"key": issue["key"], "id": str(issue.get("id", "")), "open": category != "done"}

    def create(self, marker: str, message: Message) -> dict[str, Any]:
        owner = message.group.get("owner")
        project = self.cfg.projects.get(owner or "", self.cfg.project)
        fields = {
            "project": {"key": project},
            "summary": self.renderer.render("ticket_title.txt.j2", message).strip()[:250],
            "issuetype": {"name": self.cfg.issue_type},
            "labels": [*self.cfg.labels, f"costguard-{marker}"],
            "description": self._text(self.renderer.render("ticket_body.txt.j2", message)),
        }
        data = self._call("POST", "/issue", "create", json={"fields": fields})
        return {"key": data["key"], "id": str(data.get("id", ""))}

    def comment(self, ticket: dict[str, Any], message: Message) -> None:
        body = self._text(self.renderer.render("ticket_comment.txt.j2", message))
        self._call("POST", f"/issue/{ticket['key']}/comment", "comment", json={"body": body})

    def _transition(self, ticket: dict[str, Any], name: str | None, categories: tuple[str, ...], what: str) -> None:
        data = self._call("GET", f"/issue/{ticket['key']}/transitions", "transitions") or {}
        options = data.get("transitions") or []
        pick = None
        for t in options:
            to = ((t.get("to") or {}).get("statusCategory") or {}).get("key")
            if (name is not None and t.get("name", "").lower() == name.lower()) or (name is None and to in categories):
                pick = t
                break
        if pick is None:
            names = ", ".join(t.get("name", "?") for t in options) or "none"
            want = f"named {name!r}" if name else f"to a {'/'.join(categories)} status"
            raise PermanentDeliveryError(f"jira {self.name}: issue {ticket['key']} has no transition {want} "
                                         f"(available: {names}); set {what}_transition")
        self._call("POST", f"/issue/{ticket['key']}/transitions", what, json={"transition": {"id": pick["id"]}})

    def close(self, ticket: dict[str, Any], message: Message) -> None:
        self._transition(ticket, self.cfg.done_transition, ("done",), "done")

    def reopen(self, ticket: dict[str, Any], message: Message) -> None:
        self._transition(ticket, self.cfg.reopen_transition, ("new", "indeterminate"), "reopen")
