"""Exceptions: findings nobody should be told about (yet), reviewed like code.

``exceptions.yaml`` (named by ``notify.exceptions`` in the config) is a list::

    - id: legacy-batch-host                  # unique; shown in `costguard findings` and the ledger
      fingerprint: 3f2a9c1b77e0              # a finding (full fingerprint or a prefix of 6+ characters)
      reason: decommissioned with the Q3 migration
      approver: jane.doe@example.com
      expires: 2026-09-30                     # last day it applies (inclusive)
    - id: sandbox-accounts
      match: {account: ["123456789012"], kind: tag}   # or a matcher over finding fields
      reason: sandboxes are exempt from tagging
      approver: finops-lead@example.com
      expires: 2026-12-31

While an exception applies, the findings it matches are not sent to any receiver (the ledger
records them as ``muted`` with the exception id); a "resolved" still reaches a receiver that was
told the finding was open, so tickets close. After it expires, a still-open finding is announced
at its next repeat. ``costguard validate`` checks the file (file:line:key for every error) and
warns about exceptions that have expired.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from costguard import yamlsrc
from costguard.errors import ConfigError, ConfigIssue
from costguard.notify.routing import field_name

MIN_PREFIX = 6


class ExceptionEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str = Field(min_length=1)
    fingerprint: str | None = None
    match: dict[str, str | list[str]] = Field(default_factory=dict)
    reason: str = Field(min_length=1)
    approver: str = Field(min_length=1)
    expires: date

    @field_validator("match")
    @classmethod
    def _keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        return {field_name(k): val for k, val in v.items()}

    @field_validator("fingerprint")
    @classmethod
    def _fp(cls, v: str | None) -> str | None:
        if v is not None and len(v.strip()) < MIN_PREFIX:
            raise ValueError(f"give the fingerprint or a prefix of at least {MIN_PREFIX} characters")
        return None if v is None else v.strip()

    @model_validator(mode="after")
    def _one_matcher(self) -> "ExceptionEntry":
        if (self.fingerprint is None) == (not self.match):
            raise ValueError("give either fingerprint or match (not both, not neither)")
        return self

    def matches(self, finding: Mapping[str, Any]) -> bool:
        if self.fingerprint is not None:
            return str(finding.get("fingerprint") or "").startswith(self.fingerprint)
        for k, want in self.match.items():
            values = {want} if isinstance(want, str) else set(want)
            got = finding.get(k)
            if ("" if got is None else str(got)) not in values:
                return False
        return True


@dataclass(frozen=True)
class Exceptions:
    """The muter: which active exception (if any) covers a finding on a day."""

    entries: Sequence[ExceptionEntry] = ()

    def match(self, finding: Mapping[str, Any], today: date) -> ExceptionEntry | None:
        for e in self.entries:
            if today <= e.expires and e.matches(finding):
                return e
        return None


def load_exceptions(path: str | Path | None, *, today: date | None = None) -> tuple[Exceptions, list[str]]:
    """(exceptions, warnings). Errors (ConfigError) name file, line and key."""
    if path is None:
        return Exceptions(), []
    src = yamlsrc.load(path)
    data = src.data if src.data is not None else []
    if not isinstance(data, list):
        raise ConfigError.single(str(path), 1, "", "the exceptions file must be a YAML list of exceptions")
    issues: list[ConfigIssue] = []
    entries: list[ExceptionEntry] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(data):
        try:
            e = ExceptionEntry.model_validate(raw)
        except ValidationError as err:
            issues.extend(yamlsrc.issues_from_validation(err, src, (i,)))
            continue
        if e.id in seen:
            issues.append(ConfigIssue(str(path), src.line((i, "id")), f"[{i}].id", f"id {e.id!r} is used twice (also at [{seen[e.id]}])"))
        seen[e.id] = i
        entries.append(e)
    if issues:
        raise ConfigError(issues)
    warnings = []
    if today is not None:
        for i, e in enumerate(entries):
            if e.expires < today:
                warnings.append(f"{path}:{src.line((i, 'expires'))}: [{i}].expires: exception {e.id!r} expired on "
                                f"{e.expires.isoformat()}; it no longer applies: remove it or extend it (with a new approval)")
    return Exceptions(tuple(entries)), warnings
