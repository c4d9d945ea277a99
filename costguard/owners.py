"""Who owns a finding, and why: resource tags → account map → default, with the reason recorded.

owners.yaml::

    default: finops                 # gets whatever nothing else claims
    tag_keys: [team, owner]         # tag keys whose value names the owning team (checked in order)
    teams:
      payments:
        tag_values: [payments, pay]  # values of tag_keys meaning this team (its own name always matches)
        accounts: ["111122223333"]   # accounts / subscriptions / projects it owns
        contact: payments-oncall@example.com
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from costguard import yamlsrc
from costguard.errors import ConfigError
from costguard.model import Finding

if TYPE_CHECKING:
    import polars as pl


class TeamConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    tag_values: list[str] = Field(default_factory=list)
    accounts: list[str] = Field(default_factory=list)
    contact: str | None = None
    receivers: list[str] = Field(default_factory=list)


class OwnersConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    default: str | None = None
    tag_keys: list[str] = Field(default_factory=lambda: ["team", "owner"])
    teams: dict[str, TeamConfig] = Field(default_factory=dict)


def load_owners(path: str | Path | None) -> OwnersConfig:
    if path is None:
        return OwnersConfig()
    src = yamlsrc.load(path)
    data = src.data if src.data is not None else {}
    if not isinstance(data, dict):
        raise ConfigError.single(str(path), 1, "", "the owners file must be a YAML mapping")
    try:
        cfg = OwnersConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(yamlsrc.issues_from_validation(e, src)) from None
    seen: dict[str, str] = {}
    issues = []
    for team, t in cfg.teams.items():
        for acct in t.accounts:
            if acct in seen and seen[acct] != team:
                issues.append(
                    yamlsrc.ConfigIssue(str(path), src.line(("teams", team, "accounts")), f"teams.{team}.accounts",
                                        f"account {acct} is also owned by team {seen[acct]!r}")
                )
            seen[acct] = team
    if cfg.default is not None and cfg.teams and cfg.default not in cfg.teams:
        issues.append(yamlsrc.ConfigIssue(str(path), src.line(("default",)), "default", f"default team {cfg.default!r} is not under teams:"))
    if issues:
        raise ConfigError(issues)
    return cfg


@dataclass(frozen=True)
class OwnerResolver:
    """Resolves an owner for a finding. ``tags_of`` maps resource id → normalised tags JSON."""

    config: OwnersConfig

    def _by_value(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for team, t in self.config.teams.items():
            out[team.strip().lower()] = team
            for v in t.tag_values:
                out[v.strip().lower()] = team
        return out

    def resolve(self, f: Finding, tags_of: Mapping[str, str | None]) -> tuple[str | None, str]:
        by_value = self._by_value()
        tags_json = tags_of.get(f.resource_id) if f.resource_id else None
        if tags_json:
            tags = json.loads(tags_json)
            for key in self.config.tag_keys:
                k = key.strip().lower()
                val = tags.get(k)
                if val:
                    team = by_value.get(str(val).strip().lower())
                    if team:
                        return team, f"tag {k}={val}"
                    if not self.config.teams:
                        return str(val), f"tag {k}={val}"
        for acct in (f.account_id, f.billing_account_id):
            if acct:
                for team, t in self.config.teams.items():
                    if acct in t.accounts:
                        return team, f"account {acct}"
        if self.config.default:
            return self.config.default, "default owner: no tag or account matched"
        return None, "unowned: no tag, account or default owner matched"

    def apply(self, findings: list[Finding], tags_of: Mapping[str, str | None]) -> list[Finding]:
        return [f.with_owner(*self.resolve(f, tags_of)) for f in findings]


def owner_expr(config: OwnersConfig) -> pl.Expr:
    """The owning team of each cost row, as a polars expression over the lake's rollup: the same
    order as :meth:`OwnerResolver.resolve` (the row's own tags → SubAccountId, then
    BillingAccountId → the default), null when nothing matches. Used to split spend by team."""
    import polars as pl

    resolver = OwnerResolver(config)
    by_value = resolver._by_value()
    by_account = {a: team for team, t in config.teams.items() for a in t.accounts}
    out: pl.Expr = pl.lit(config.default, pl.String)
    for col in ("BillingAccountId", "SubAccountId"):  # built inside out: the first match wins
        if by_account:
            out = pl.when(pl.col(col).is_in(list(by_account))).then(pl.col(col).replace_strict(by_account, default=None)).otherwise(out)
    for key in reversed(config.tag_keys):
        k = key.strip().lower()
        raw = pl.col("x_Tags").str.json_path_match(f"$[{json.dumps(k, ensure_ascii=False)}]")
        if config.teams:
            team = raw.str.strip_chars().str.to_lowercase().replace_strict(by_value, default=None)
            out = pl.when(team.is_not_null()).then(team).otherwise(out)
        else:
            out = pl.when(raw.is_not_null() & (raw != "")).then(raw).otherwise(out)
    return out.alias("_team")
