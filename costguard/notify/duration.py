"""Durations in config: ``7d``, ``12h``, ``30m``, ``45s``, ``1d12h``, or a number of seconds."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_PART = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")
_UNIT = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text like 7d, 12h, 30m")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=value)
    text = str(value).strip().lower().replace(" ", "")
    if text and _PART.sub("", text) == "" :
        return timedelta(seconds=sum(float(n) * _UNIT[u] for n, u in _PART.findall(text)))
    raise ValueError(f"{value!r} is not a duration: use e.g. 7d, 12h, 30m, 45s, 1d12h or a number of seconds")


def format_duration(td: timedelta) -> str:
    s = int(td.total_seconds())
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s and s % n == 0:
            return f"{s // n}{unit}"
    return f"{s}s"


Duration = Annotated[timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration)]
