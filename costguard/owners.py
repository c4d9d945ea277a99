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
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from costguard import yamlsrc
from costguard.errors import ConfigError
from costguard.model import Finding

if TYPE_CHECKING:
    import polars as pl


class TeamBudget(BaseModel):
    """A team's own budget: evaluated by a ``budget`` rule with ``teams: true``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    amount: Decimal = Field(gt=0)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    period: Literal["month", "quarter", "week", "year"] = "month"


class TeamConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    tag_values: list[str] = Field(default_factory=list)
    accounts: list[str] = Field(default_factory=list)
    contact: str | None = None
    receivers: list[str] = Field(default_factory=list)
    budget: TeamBudget | None = None


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
        """Every finding with its owner; a finding a rule already gave an owner (a team's own
        budget) keeps it."""
        return [f if f.owner else f.with_owner(*self.resolve(f, tags_of)) for f in findings]


def owner_expr(cfg: OwnersConfig) -> pl.Expr:
    """The owning team of each cost-rollup row, in the resolver's order: the first ``tag_keys``
    tag whose value names a team (any value, when no teams are configured), then the account
    (``SubAccountId``, then ``BillingAccountId``), then ``default``. Null when nothing claims it."""
    import polars as pl

    by_value: dict[str, str] = {}
    for team, t in cfg.teams.items():
        by_value[team.strip().lower()] = team
        for v in t.tag_values:
            by_value[v.strip().lower()] = team
    choices: list[pl.Expr] = []
    for key in cfg.tag_keys:
        raw = pl.col("x_Tags").str.json_path_match(f"$[{json.dumps(key.strip().lower(), ensure_ascii=False)}]")
        if cfg.teams:
            choices.append(raw.str.strip_chars().str.to_lowercase().replace_strict(by_value, default=None, return_dtype=pl.String))
        else:
            choices.append(pl.when(raw.str.strip_chars() != "").then(raw))
    accounts = {a: team for team, t in cfg.teams.items() for a in t.accounts}
    for col in ("SubAccountId", "BillingAccountId"):
        if accounts:
            choices.append(pl.col(col).replace_strict(accounts, default=None, return_dtype=pl.String))
    choices.append(pl.lit(cfg.default, pl.String))
    return pl.coalesce(choices)
