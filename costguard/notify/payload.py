"""The canonical JSON of a message (the webhook body and the shadow file's lines).

Each finding is exactly the object ``costguard findings --format json`` prints for it (at the
time of the change), plus ``event``. Decimals are printed exactly (``costguard.jsonout``).
"""

from __future__ import annotations

from typing import Any

from costguard import jsonout
from costguard.notify.model import Message

VERSION = 1


def findings(message: Message) -> list[dict[str, Any]]:
    return [{**dict(i.finding), "event": i.event} for i in message.items]


def body(message: Message) -> dict[str, Any]:
    return {"version": VERSION, "receiver": message.receiver, "group": dict(message.group), "findings": findings(message)}


def dumps(value: Any) -> str:
    """JSON with exact decimals and ISO dates: the same text `costguard findings --format json` uses."""
    return jsonout.dumps(value)
