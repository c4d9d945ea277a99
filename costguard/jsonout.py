"""JSON as costguard prints it: every Decimal a number written from the Decimal itself (never via
a float, never in exponent notation), dates and datetimes ISO strings. Used by the CLI's
``--format json``, the webhook payloads and the digest's data file, so all three agree."""

from __future__ import annotations

import json
import re
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any


def decimal_text(d: Decimal) -> str:
    """An exact decimal without exponent or padding: ``Decimal('9.4E-5')`` → ``0.000094``."""
    if d == d.to_integral_value():
        return f"{d.quantize(Decimal(1)):f}"
    return f"{d.normalize():f}"


def dumps(value: Any, *, indent: int | None = None) -> str:
    marker = f"@@dec-{uuid.uuid4().hex}:"

    def enc(v: Any) -> Any:
        if isinstance(v, Decimal):
            return f"{marker}{decimal_text(v)}" if v.is_finite() else None
        if isinstance(v, (datetime, date)):
            return v.isoformat()
        if isinstance(v, dict):
            return {str(k): enc(x) for k, x in v.items()}
        if isinstance(v, (list, tuple, set)):
            return [enc(x) for x in v]
        return v

    text = json.dumps(enc(value), ensure_ascii=False, indent=indent)
    return re.sub(f'"{re.escape(marker)}(-?[0-9.]+)"', r"\1", text) if marker in text else text
