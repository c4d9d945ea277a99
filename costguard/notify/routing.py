"""Which receivers a finding goes to, and in which group (Alertmanager's routing tree, flattened).

Routes are tried in order; a route whose ``match`` (and ``match_re``) fits the finding sends it to
its receiver, and stops the walk unless ``continue: true``. When no route stopped the walk, the
owner's team receivers from ``owners.yaml`` get it, and an unowned finding (or a team that names
no receivers) goes to every receiver. Receivers marked ``catch_all`` (the console) get everything.

A group key always holds the owner, so two owners never share a message; the rest of it is the
receiver's (or the route's) ``group_by``. ``[fingerprint]`` means one message per finding.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

# Finding fields a route may match on or group by (a finding's "labels"); `account` is account_id.
FIELDS = (
    "fingerprint", "rule", "kind", "severity", "status", "owner", "provider", "billing_account_id",
    "account_id", "region", "service", "resource_type", "resource_id", "source", "currency",
)  # fmt: skip
ALIASES = {"account": "account_id", "billing_account": "billing_account_id"}
ALL = "all"  # the group key of a receiver that takes everything in one message (the console)


def field_name(key: str) -> str:
    """The finding field a ``match``/``group_by`` key names; ValueError naming the allowed ones."""
    name = ALIASES.get(key, key)
    if name not in FIELDS:
        raise ValueError(f"unknown finding field {key!r}; use one of: {', '.join(FIELDS)} (or account)")
    return name


def _text(v: Any) -> str:
    return "" if v is None else str(v)


@dataclass(frozen=True)
class Route:
    receiver: str
    match: Mapping[str, frozenset[str]] = field(default_factory=dict)
    match_re: Mapping[str, re.Pattern[str]] = field(default_factory=dict)
    continue_: bool = False
    group_by: tuple[str, ...] | None = None
    repeat_interval: timedelta | None = None

    def matches(self, finding: Mapping[str, Any]) -> bool:
        if any(_text(finding.get(k)) not in vs for k, vs in self.match.items()):
            return False
        return all(p.fullmatch(_text(finding.get(k))) for k, p in self.match_re.items())


@dataclass(frozen=True)
class Target:
    """One receiver a finding goes to, with the options of the route that sent it there."""

    receiver: str
    group_by: tuple[str, ...] | None
    repeat_interval: timedelta
    via: str  # "route N", "team X", "everyone", "catch-all"


@dataclass(frozen=True)
class Router:
    routes: Sequence[Route]
    team_receivers: Mapping[str, Sequence[str]]
    receivers: Sequence[str]            # every configured receiver, in config order
    repeat_interval: timedelta          # the default
    catch_all: frozenset[str] = frozenset()
    # targets by the finding fields they depend on (a cycle routes thousands of findings that
    # share an owner and the few fields routes match on)
    _memo: dict[tuple[Any, ...], tuple[Target, ...]] = field(default_factory=dict, init=False, repr=False, compare=False)
    _matched: tuple[str, ...] = field(default=(), init=False, repr=False, compare=False)
    _MEMO_MAX: ClassVar[int] = 50_000

    def __post_init__(self) -> None:
        object.__setattr__(self, "_matched", tuple(sorted({k for r in self.routes for k in (*r.match, *r.match_re)})))

    def targets(self, finding: Mapping[str, Any]) -> list[Target]:
        """The receivers of ``finding`` (decided by its owner and the fields routes match on)."""
        key = (finding.get("owner"), *[_text(finding.get(k)) for k in self._matched])
        hit = self._memo.get(key)
        if hit is None:
            if len(self._memo) >= self._MEMO_MAX:
                self._memo.clear()
            hit = self._memo[key] = tuple(self._targets(finding))
        return list(hit)

    def _targets(self, finding: Mapping[str, Any]) -> list[Target]:
        out: dict[str, Target] = {}

        def add(name: str, group_by: tuple[str, ...] | None, repeat: timedelta | None, via: str) -> None:
            if name in self.receivers and name not in out:
                out[name] = Target(name, group_by, repeat or self.repeat_interval, via)

        stopped = False
        for i, r in enumerate(self.routes):
            if r.matches(finding):
                add(r.receiver, r.group_by, r.repeat_interval, f"route {i}")
                if not r.continue_:
                    stopped = True
                    break
        if not stopped:
            owner = finding.get("owner")
            named = list(self.team_receivers.get(owner, ())) if owner else []
            if named:
                for n in named:
                    add(n, None, None, f"team {owner}")
            else:
                for n in self.receivers:
                    if n not in self.catch_all:
                        add(n, None, None, "everyone")
        for n in self.catch_all:
            add(n, None, None, "catch-all")
        return list(out.values())


def group_labels(finding: Mapping[str, Any], group_by: Sequence[str] | None) -> dict[str, str]:
    """The labels of a finding's group: the owner always, then ``group_by`` fields.
    ``group_by=None`` means one group for everything (the console)."""
    if group_by is None:
        return {}
    labels = {"owner": _text(finding.get("owner")) or "-"}
    for k in group_by:
        labels[k] = _text(finding.get(k)) or "-"
    return labels


def group_key(labels: Mapping[str, str]) -> str:
    if not labels:
        return ALL
    return "|".join(f"{k}={v}" for k, v in labels.items())
