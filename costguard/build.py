"""What the composition root (``app.py``) hands every provider and receiver factory."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BuildContext:
    """What the composition root hands a provider or receiver factory."""

    base_dir: Path
    clock: Callable[[], datetime]
    http: Any = None             # an httpx.Client shared by everything that speaks HTTP
    backfill_days: int = 90
    out: Any = None              # the console stream (receivers)
    contacts: Mapping[str, str] = field(default_factory=dict)  # owner team -> contact (owners.yaml), for email
    config_path: Path | None = None  # the config file, for the commands receivers suggest (console)

    def resolve(self, p: str) -> str:
        """A path from the config, relative to the config file; URIs are returned unchanged."""
        if "://" in p:
            return p
        q = Path(p).expanduser()
        return str(q if q.is_absolute() else self.base_dir / q)
