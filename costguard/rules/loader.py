"""Rule files → validated :class:`RuleInstance` objects, or one ConfigError listing every problem.

Each file holds a YAML list of rules. The common keys (id, kind, severity, description, filter) are
checked here; every other key belongs to the kind and is checked by its ``Params`` model. Issues
read ``rules/budgets.yaml:12: rule "team-x": amount: Input should be a valid decimal``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from costguard import yamlsrc
from costguard.errors import ConfigError, ConfigIssue
from costguard.rules.base import RULES, RuleInstance, Severity, check_filter
from costguard.registry import UnknownName

SUFFIXES = (".yaml", ".yml")
COMMON_KEYS = ("id", "kind", "severity", "description", "filter")


class CommonKeys(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
    kind: str
    severity: Severity
    description: str | None = None
    filter: dict[str, Any] = Field(default_factory=dict)


def load_rules(paths: Sequence[str | Path], *, base_dir: Path) -> list[RuleInstance]:
    """Load rule files and folders (``*.yaml``/``*.yml``, sorted, not recursive), relative to ``base_dir``.

    ``paths == []`` (the config says ``rules: []``) means no rules. Paths that exist but hold no rule
    at all, taken together, are an error: an empty or misplaced folder would otherwise silently check nothing."""
    issues: list[ConfigIssue] = []
    rules: list[RuleInstance] = []
    seen: dict[str, tuple[str, int | None]] = {}  # id -> (file, line) of its first definition
    for path, shown in _rule_files(paths, base_dir, issues):
        try:
            src = yamlsrc.load(path)
        except ConfigError as e:
            issues.extend(replace(i, file=shown) for i in e.issues)
            continue
        src.file = shown
        rules.extend(_rules_in(src, seen, issues))
    if issues:
        raise ConfigError(issues)
    if paths and not rules:
        names = [_shown(base_dir / p, base_dir) + ("/" if (base_dir / p).is_dir() else "") for p in paths]
        if len(names) > 1:
            what = "these rule files and folders hold"
        else:
            what = "this rules folder holds" if names[0].endswith("/") else "this rule file holds"
        raise ConfigError.single(
            ", ".join(names), None, "",
            f"{what} no rules (a rules folder holds *.yaml files, each a YAML list of rules); "
            "write some, or set `rules: []` in the config to run without rules",
        )
    return rules


def _rule_files(paths: Sequence[str | Path], base_dir: Path, issues: list[ConfigIssue]) -> list[tuple[Path, str]]:
    out = []
    for p in paths:
        full = base_dir / p
        if full.is_dir():
            out.extend((f, _shown(f, base_dir)) for f in sorted(full.iterdir()) if f.suffix in SUFFIXES and f.is_file())
        elif full.is_file():
            out.append((full, _shown(full, base_dir)))
        else:
            issues.append(ConfigIssue(_shown(full, base_dir), None, "", "rule file or folder not found"))
    return out


def _shown(path: Path, base_dir: Path) -> str:
    try:
        return path.relative_to(base_dir).as_posix()
    except ValueError:
        return str(path)


def _rules_in(src: yamlsrc.Sourced, seen: dict[str, tuple[str, int | None]], issues: list[ConfigIssue]) -> list[RuleInstance]:
    if src.data is None:
        return []
    if not isinstance(src.data, list):
        issues.append(ConfigIssue(src.file, src.line(()), "", "a rule file holds a YAML list of rules (each starting with '- id: ...')"))
        return []
    out = []
    for i, item in enumerate(src.data):
        n = len(issues)
        rule = _rule(src, i, item, seen, issues)
        issues[n:] = [src.redact(iss, (i,)) for iss in issues[n:]]  # a rule id or kind may come from ${ENV}
        if rule is not None:
            out.append(rule)
    return out


def _rule(
    src: yamlsrc.Sourced, i: int, item: Any, seen: dict[str, tuple[str, int | None]], issues: list[ConfigIssue]
) -> RuleInstance | None:
    line = src.line((i,))
    if not isinstance(item, dict):
        issues.append(ConfigIssue(src.file, line, f"rule #{i + 1}", "a rule is a mapping with id, kind, severity and the kind's keys"))
        return None
    rid = item.get("id")
    label = f'rule "{rid}"' if isinstance(rid, str) and rid else f"rule #{i + 1}"
    sub = src.sub((i,))
    n_before = len(issues)
    if isinstance(rid, str) and rid:
        if rid in seen:
            file, ln = seen[rid]
            issues.append(ConfigIssue(src.file, sub.line(("id",)), f"{label}: id", f"duplicate id, also defined in {file}, line {ln}"))
        else:
            seen[rid] = (src.file, sub.line(("id",)))

    def add(err: ValidationError) -> None:
        for iss in yamlsrc.issues_from_validation(err, sub):
            issues.append(replace(iss, key=f"{label}: {iss.key}" if iss.key else label))

    common: CommonKeys | None = None
    try:
        common = CommonKeys.model_validate({k: item[k] for k in COMMON_KEYS if k in item})
    except ValidationError as e:
        add(e)
    for col, msg in check_filter(item.get("filter") or {}) if isinstance(item.get("filter"), dict) else []:
        issues.append(ConfigIssue(src.file, sub.line(("filter", col)), f"{label}: filter.{col}", msg))

    kind = item.get("kind")
    if not isinstance(kind, str):
        return None
    try:
        cls = RULES.get(kind)
    except UnknownName as e:
        issues.append(ConfigIssue(src.file, sub.line(("kind",)), f"{label}: kind", str(e)))
        return None
    kind_filter = getattr(cls, "check_filter", None)  # kinds over the inventory understand fewer columns
    if kind_filter is not None and isinstance(item.get("filter"), dict):
        for col, msg in kind_filter(item["filter"]):
            issues.append(ConfigIssue(src.file, sub.line(("filter", col)), f"{label}: filter.{col}", msg))
    params = None
    try:
        params = cls.Params.model_validate({k: v for k, v in item.items() if k not in COMMON_KEYS})
    except ValidationError as e:
        add(e)
    if common is None or params is None or len(issues) != n_before:
        return None
    return RuleInstance(
        id=common.id,
        kind=kind,
        severity=common.severity,
        description=common.description,
        filter=dict(common.filter),
        params=params,
        impl=cls(),
        file=src.file,
        line=line,
    )
