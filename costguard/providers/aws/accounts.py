"""Which accounts a provider covers, and a boto3 session for each.

- no ``accounts:`` section: the account of the credentials (``sts:GetCallerIdentity``);
- ``discover: organization``: every ACTIVE account of ``organizations:ListAccounts``;
- ``ids: [...]``: those accounts.

``include`` / ``exclude`` filter by id or name. For every account but the caller's own,
:class:`Sessions` assumes ``assume_role`` with the session name ``costguard-<provider>`` (so
CloudTrail in the member account says who called) and the configured external id. The
credentials are botocore ``RefreshableCredentials``: they are renewed by a new AssumeRole before
they expire, however long a run takes.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

from costguard.providers.aws.clients import Clients, RequestCounter
from costguard.providers.aws.config import AccountsConfig


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    name: str | None = None


class AccountError(Exception):
    """An account could not be reached; ``api`` is the request that failed (for the fix hint)."""

    def __init__(self, account: str, api: str, cause: BaseException) -> None:
        self.account = account
        self.api = api
        self.cause = cause
        super().__init__(f"account {account}: {api}: {cause}")


def session_name(provider: str) -> str:
    """``costguard-<provider>``, cut to what STS accepts (2-64 of ``[\\w+=,.@-]``)."""
    return ("costguard-" + re.sub(r"[^\w+=,.@-]", "-", provider))[:64]


def select(accounts: list[Account], cfg: AccountsConfig) -> list[Account]:
    """Apply ``include`` / ``exclude`` (by id or name), keeping the order."""
    def hit(a: Account, keys: list[str]) -> bool:
        return a.id in keys or (a.name is not None and a.name in keys)

    out = [a for a in accounts if (not cfg.include or hit(a, cfg.include)) and not hit(a, cfg.exclude)]
    return out


def discover(cfg: AccountsConfig, base: Clients, caller: str) -> list[Account]:
    """The accounts to cover (raises botocore errors: the caller reports them)."""
    if cfg.discover == "organization":
        org = base.client("organizations")
        found: list[Account] = []
        for page in org.get_paginator("list_accounts").paginate():
            for a in page.get("Accounts", []):
                if a.get("Status", "ACTIVE") == "ACTIVE":
                    found.append(Account(str(a["Id"]), a.get("Name")))
        return select(found, cfg)
    if cfg.ids:
        return select([Account(i) for i in dict.fromkeys(cfg.ids)], cfg)
    return [Account(caller)]


class Sessions:
    """A boto3 session per account: the base session for the caller's own account, an assumed
    role (refreshed before expiry) for the others. Sessions are made once and reused."""

    def __init__(self, base_session: Any, base: Clients, cfg: AccountsConfig, *, provider: str,
                 caller: str, counter: RequestCounter, endpoint_url: str | None, max_attempts: int) -> None:
        self.base_session = base_session
        self.base = base
        self.cfg = cfg
        self.provider = provider
        self.caller = caller
        self.counter = counter
        self.endpoint_url = endpoint_url
        self.max_attempts = max_attempts
        self._clients: dict[str, Clients] = {caller: base}
        self._lock = threading.Lock()

    def clients(self, account: str) -> Clients:
        """The clients of ``account`` (raises :class:`AccountError` when the role cannot be assumed)."""
        with self._lock:
            c = self._clients.get(account)
        if c is not None:
            return c
        session = self._assume(account)
        c = Clients(session, counter=self.counter, endpoint_url=self.endpoint_url,
                    max_attempts=self.max_attempts, default_region=self.base.default_region)
        with self._lock:
            return self._clients.setdefault(account, c)

    def _assume(self, account: str) -> Any:
        import boto3
        from botocore.credentials import RefreshableCredentials
        from botocore.session import get_session

        arn = self.cfg.role_arn(account)
        if arn is None:
            raise AccountError(account, "sts:AssumeRole", RuntimeError(
                "no assume_role configured: only the credentials' own account can be read"))
        sts = self.base.client("sts")
        params: dict[str, Any] = {"RoleArn": arn, "RoleSessionName": session_name(self.provider),
                                  "DurationSeconds": self.cfg.session_duration}
        if self.cfg.external_id:
            params["ExternalId"] = self.cfg.external_id

        def fetch() -> dict[str, str]:
            c = sts.assume_role(**params)["Credentials"]
            return {"access_key": c["AccessKeyId"], "secret_key": c["SecretAccessKey"],
                    "token": c["SessionToken"], "expiry_time": c["Expiration"].isoformat()}

        try:
            first = fetch()
        except Exception as e:  # noqa: BLE001 - classified by the caller (botocore errors only)
            from costguard.providers.aws.clients import is_aws_error

            if not is_aws_error(e):
                raise
            raise AccountError(account, "sts:AssumeRole", e) from None
        creds = RefreshableCredentials.create_from_metadata(metadata=first, refresh_using=fetch, method="sts-assume-role")
        bs = get_session()
        bs._credentials = creds  # botocore's documented way to hand a session refreshable credentials
        # share the base session's loader: service models (ec2's is 2 MB of JSON) are parsed once per run
        bs.register_component("data_loader", self.base_session._session.get_component("data_loader"))
        return boto3.Session(botocore_session=bs, region_name=self.base.default_region)
