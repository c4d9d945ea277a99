"""The state store: runs, ingested windows, findings and their lifecycle, the delivery ledger."""

from .lifecycle import FINDING_KEYS, ReconcileResult
from .store import ABANDONED, FindingLookupError, Store

__all__ = ["ABANDONED", "FINDING_KEYS", "FindingLookupError", "ReconcileResult", "Store"]
