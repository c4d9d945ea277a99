"""Policy-as-code rules: the kind registry, the YAML loader and the engine.

Importing this package registers every built-in kind in :data:`RULES`.
"""

from costguard.rules import budget as _budget  # noqa: F401  (registers "budget")
from costguard.rules import tag_coverage as _tag_coverage  # noqa: F401  (registers "tag-coverage")
from costguard.rules.base import RULES, Params, Rule, RuleContext, RuleInstance, apply_filter, docstring_example
from costguard.rules.engine import EvaluationResult, evaluate
from costguard.rules.loader import load_rules
from costguard.registry import Registry, UnknownName

__all__ = [
    "RULES",
    "EvaluationResult",
    "Params",
    "Registry",
    "Rule",
    "RuleContext",
    "RuleInstance",
    "UnknownName",
    "apply_filter",
    "docstring_example",
    "evaluate",
    "load_rules",
]
