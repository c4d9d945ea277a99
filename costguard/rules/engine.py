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
    """Evaluate every rule; a rule that raises is recorded in ``errors`` (the caller logs and counts it)."""
    result = EvaluationResult()
    for rule in rules:
        try:
            found = rule.impl.evaluate(rule, ctx)
        except Exception as e:  # job boundary: record, never swallow silently
            result.errors[rule.id] = f"{type(e).__name__}: {e}"
            continue
        result.findings.extend(found)
        result.evaluated.add(rule.id)
    return result
