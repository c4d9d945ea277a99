"""ServiceNow Table API: one incident (or ``sc_task``, any table) per finding.

The fingerprint is the record's ``correlation_id`` (``correlation_display: costguard``) and is
searched before creating, so a lost ledger never opens a second record. Changes add work notes,
resolved sets ``resolve_fields`` (incident default: state 6 Resolved, close code and notes),
a regression sets ``reopen_fields``. The account needs the ``itil`` role (or table ACLs for
read/create/write on the table). Jira Service Management goes through the ``jira`` receiver.
"""

from __future__ import annotations

import base64
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from costguard.build import BuildContext
from costguard.logs import add_known_secrets
from costguard.notify import tickets
from costguard.notify.base import RECEIVERS, GroupedReceiverConfig
from costguard.notify.http import request
from costguard.notify.model import Message, Sent
from costguard.notify.render import Renderer

URGENCY = {"critical": "1", "warning": "2", "info": "3"}
RESOLVE_DEFAULTS = {"incident": {"state": "6", "close_code": "Resolved by caller"}, "sc_task": {"state": "3"}}
REOPEN_DEFAULTS = {"incident": {"state": "2"}, "sc_task": {"state": "1"}}


@RECEIVERS.register("servicenow")
class ServiceNowConfig(GroupedReceiverConfig):
    """Records in a ServiceNow table (incident by default).

    ```yaml
    servicenow:
      type: servicenow
      url: https://acme.service-now.com
      user: costguard.integration
      password: "${SNOW_PASSWORD}"   # or password_file: …; or token: an OAuth bearer token
      table: incident                             # or sc_task
      assignment_groups: {payments: Payments Ops}
    ```
    """

    default_group_by: ClassVar[tuple[str, ...] | None] = ("fingerprint",)
    type: Literal["servicenow"] = "servicenow"
    url: str
    table: str = Field("incident", pattern=r"^[a-z0-9_]+$")
    user: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = Field(None, validate_default=True)
    fields: dict[str, str] = Field(default_factory=dict, description="extra fields set on create")
    assignment_groups: dict[str, str] = Field(default_factory=dict, description="owner team -> assignment_group")
    resolve_fields: dict[str, str] | None = None
    reopen_fields: dict[str, str] | None = None

    @field_validator("token")
    @classmethod
    def _auth(cls, token: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        basic = info.data.get("user") is not None and info.data.get("password") is not None
        if (token is None) == (not basic):
            raise ValueError("give user + password (basic auth) or token (OAuth bearer), not both")
        return token

    def build(self, name: str, ctx: BuildContext) -> "ServiceNowNotifier":
        return ServiceNowNotifier(name, ctx.http, self, Renderer(self.template_files(ctx)))


class ServiceNowNotifier:
    catch_all = False

    def __init__(self, name: str, client: Any, cfg: ServiceNowConfig, renderer: Renderer) -> None:
        self.name = name
        self.client = client
        self.cfg = cfg
        self.renderer = renderer
        self.group_by = cfg.grouping()
        self.base = f"{cfg.url.rstrip('/')}/api/now/table/{cfg.table}"
        if cfg.user and cfg.password is not None:  # basic auth sends base64(user:password): hide that form too
            add_known_secrets([base64.b64encode(f"{cfg.user}:{cfg.password.get_secret_value()}".encode()).decode()])

    def _call(self, method: str, path: str, what: str, **kw: Any) -> Any:
        headers = {"Accept": "application/json"}
        auth = None
        if self.cfg.token is not None:
            headers["Authorization"] = f"Bearer {self.cfg.token.get_secret_value()}"
        else:
            assert self.cfg.password is not None and self.cfg.user is not None
            auth = (self.cfg.user, self.cfg.password.get_secret_value())
        resp = request(self.client, method, f"{self.base}{path}", f"servicenow {self.name} {what}", auth=auth,
                       headers=headers, **kw)
        return (resp.json() if resp.content else {}).get("result")

    def send(self, message: Message) -> Sent:
        return tickets.deliver(self, message)

    def find(self, marker: str, message: Message) -> dict[str, Any] | None:
        rows = self._call("GET", "", "search", params={
            "sysparm_query": f"correlation_id={marker}", "sysparm_limit": "1",
            "sysparm_fields": "sys_id,number,state,active"})
        if not rows:
            return None
        r = rows[0]
        return {"sys_id": r["sys_id"], "number": r.get("number"), "open": str(r.get("active", "true")).lower() == "true"}

    def create(self, marker: str, message: Message) -> dict[str, Any]:
        first = message.items[0].finding
        owner = message.group.get("owner") or ""
        body = {
            **self.cfg.fields,
            "short_description": self.renderer.render("ticket_title.txt.j2", message).strip()[:160],
            "description": self.renderer.render("ticket_body.txt.j2", message),
            "correlation_id": marker,
            "correlation_display": "costguard",
            "urgency": URGENCY.get(first.get("severity") or "", "3"),
            "impact": URGENCY.get(first.get("severity") or "", "3"),
        }
        if owner in self.cfg.assignment_groups:
            body["assignment_group"] = self.cfg.assignment_groups[owner]
        r = self._call("POST", "", "create", json=body)
        return {"sys_id": r["sys_id"], "number": r.get("number")}

    def comment(self, ticket: dict[str, Any], message: Message) -> None:
        self._call("PATCH", f"/{ticket['sys_id']}", "work note",
                   json={"work_notes": self.renderer.render("ticket_comment.txt.j2", message)})

    def close(self, ticket: dict[str, Any], message: Message) -> None:
        fields = self.cfg.resolve_fields if self.cfg.resolve_fields is not None else RESOLVE_DEFAULTS.get(self.cfg.table, {"state": "3"})
        self._call("PATCH", f"/{ticket['sys_id']}", "resolve",
                   json={**fields, "close_notes": "costguard: the finding is resolved (no longer present)."})

    def reopen(self, ticket: dict[str, Any], message: Message) -> None:
        fields = self.cfg.reopen_fields if self.cfg.reopen_fields is not None else REOPEN_DEFAULTS.get(self.cfg.table, {"state": "1"})
        self._call("PATCH", f"/{ticket['sys_id']}", "reopen", json=dict(fields))
