"""Policy-as-code rules: the kind registry, the YAML loader and the engine.

Importing this package registers every built-in kind in :data:`RULES`.
"""

from costguard.rules import anomaly as _anomaly  # noqa: F401  (registers "anomaly")
from costguard.rules import budget as _budget  # noqa: F401  (registers "budget")
from costguard.rules import commitment as _commitment  # noqa: F401  (registers "commitment")
from costguard.rules import idle as _idle  # noqa: F401  (registers "idle")
from costguard.rules import rightsizing as _rightsizing  # noqa: F401  (registers "rightsizing")
from costguard.rules import tag_coverage as _tag_coverage  # noqa: F401  (registers "tag-coverage")
from costguard.rules import tag_policy as _tag_policy  # noqa: F401  (registers "tag-policy")
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
