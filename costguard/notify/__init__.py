"""Delivery: receivers (one module per transport) behind the :class:`Notifier` seam.

Importing this package registers the built-in receiver types in :data:`RECEIVERS`.
"""

from costguard.notify.base import RECEIVERS, Change, Notifier, ReceiverConfig
from costguard.notify import console as _console  # noqa: F401,E402  (registers "console")

__all__ = ["RECEIVERS", "Change", "Notifier", "ReceiverConfig"]
