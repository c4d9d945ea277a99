"""Providers deliver FOCUS-shaped costs, an inventory snapshot and budgets for one configured source.

The seam (protocol, config base, registry) is in ``base.py``. Each provider type registers its
config model in :data:`PROVIDERS`; importing this package registers the built-in types.
Cloud SDKs are imported inside the provider modules' functions, so a focus-only install never
imports them.
"""

from costguard.providers.base import (
    DEFAULT_EARLIEST,
    LINE,
    PROVIDERS,
    REJECT,
    Check,
    Horizon,
    Part,
    Provider,
    ProviderConfig,
    ProviderStatus,
)
from costguard.build import BuildContext
from costguard.providers import focus as _focus  # noqa: F401,E402  (registers "focus")
from costguard.providers import aws as _aws  # noqa: F401,E402  (registers "aws")

__all__ = [
    "DEFAULT_EARLIEST",
    "LINE",
    "PROVIDERS",
    "REJECT",
    "BuildContext",
    "Check",
    "Horizon",
    "Part",
    "Provider",
    "ProviderConfig",
    "ProviderStatus",
]
