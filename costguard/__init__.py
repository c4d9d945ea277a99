"""costguard: FinOps cost governance on the FOCUS schema.

Pull billing data into a FOCUS cost lake, check policy-as-code rules, track findings
across runs and deliver them to their owners.
"""

from costguard.errors import ConfigError, CostguardError, DataError, ProviderError
from costguard.model import Finding, Window

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "CostguardError",
    "DataError",
    "Finding",
    "ProviderError",
    "Window",
    "__version__",
]
