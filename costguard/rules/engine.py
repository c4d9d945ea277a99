"""Run rule instances over one context. Pure: no I/O, inputs untouched; one rule failing never stops the others."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from costguard.model import Finding
from costguard.rules.base import RuleContext, RuleInstance


@dataclass
class EvaluationResult:
    findings: list[Finding] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # rule id -> "ExcType: message"
    evaluated: set[str] = field(default_factory=set)  # rule ids that ran without error

    @property
    def ok(self) -> bool:
        return not self.errors


def evaluate(rules: Sequence[RuleInstance], ctx: RuleContext) -> EvaluationResult:
    """Evaluate every rule; a rule that raises is recorded in ``errors`` (the caller logs and counts it).
    A kind may define ``prepare(rule, ctx)``, called for every rule before any evaluates, to note
    in ``ctx.memo`` what it will read (results several rules share are then computed once)."""
    result = EvaluationResult()
    for rule in rules:  # a kind may say first what it will read, so rules share one query (resources.want_all_lake_costs)
        prepare = getattr(rule.impl, "prepare", None)
        if prepare is not None:
            try:
                prepare(rule, ctx)
            except Exception as e:  # job boundary, as evaluate below
                result.errors[rule.id] = f"{type(e).__name__}: {e}"
    for rule in rules:
        if rule.id in result.errors:
            continue
        try:
            found = rule.impl.evaluate(rule, ctx)
        except Exception as e:  # job boundary: record, never swallow silently
            result.errors[rule.id] = f"{type(e).__name__}: {e}"
            continue
        result.findings.extend(found)
        result.evaluated.add(rule.id)
    return result
