"""Delivery: the pipeline (outbox → route → dedup → group → send → ledger) and the receivers
(one module per transport) behind the :class:`Notifier` seam.

Importing this package registers the built-in receiver types in :data:`RECEIVERS`.
"""

from costguard.notify.base import RECEIVERS, Change, Notifier, ReceiverConfig
from costguard.notify import console as _console  # noqa: F401,E402  (registers "console")
from costguard.notify import webhook as _webhook  # noqa: F401,E402
from costguard.notify import slack as _slack  # noqa: F401,E402
from costguard.notify import teams as _teams  # noqa: F401,E402
from costguard.notify import jira as _jira  # noqa: F401,E402
from costguard.notify import github as _github  # noqa: F401,E402
from costguard.notify import email as _email  # noqa: F401,E402
from costguard.notify import pagerduty as _pagerduty  # noqa: F401,E402
from costguard.notify import servicenow as _servicenow  # noqa: F401,E402

__all__ = ["RECEIVERS", "Change", "Notifier", "ReceiverConfig"]
