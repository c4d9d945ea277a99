"""Providers deliver FOCUS-shaped costs, an inventory snapshot and budgets for one configured source.

The registry maps a config ``type:`` to a dotted path, imported only when used, so a focus-only
install never imports a cloud SDK (Cloud Custodian's ``resource_map`` idea).
"""

from __future__ import annotations

import importlib
from datetime import date
from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

import polars as pl

from costguard.model import ConnectionStatus, NativeBudget, Window

PROVIDERS: dict[str, str] = {
    "focus": "costguard.providers.focus:FocusProvider",
}


@runtime_checkable
class Provider(Protocol):
    """What every source implements (AWS, Azure and GCP adapters plug in here)."""

    name: str

    def available_days(self, as_of: date) -> dict[date, str | None]:
        """Days (<= as_of) this source can deliver, each with a signature of its source data
        (equal signature = unchanged data) or None when the source cannot tell (APIs)."""

    def costs(self, window: Window) -> Iterable[pl.LazyFrame]:
        """Normalised FOCUS rows (``focus.lake_schema()``) whose ChargePeriodStart falls in
        ``window``, as parts small enough to stream one at a time."""

    def inventory(self) -> pl.DataFrame | None:
        """A resource snapshot (``INVENTORY_SCHEMA``) or None when the source has none."""

    def budgets(self) -> list[NativeBudget]:
        """Budgets defined in the cloud itself (empty for sources that have none, like exports)."""

    def status(self) -> tuple[ConnectionStatus, str | None]:
        """The last known connection state and a human detail."""


def provider_class(type_name: str) -> Any:
    module, _, attr = PROVIDERS[type_name].partition(":")
    return getattr(importlib.import_module(module), attr)
