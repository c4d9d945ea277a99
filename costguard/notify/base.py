"""The receiver seam: what a delivery transport implements, its config model, and the registry.

A receiver type is one module under ``costguard/notify/`` holding a config model (a subclass of
:class:`ReceiverConfig` registered with ``@RECEIVERS.register("<type>")``, whose ``build`` makes
the notifier) and the notifier. ``config.py`` builds the ``notify.receivers`` union from the
registry, so a new transport's config errors carry file:line like any other key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from costguard.build import BuildContext
from costguard.registry import Registry

Change = tuple[str, dict[str, Any]]  # (event, finding as `costguard findings --format json` prints it)


@runtime_checkable
class Notifier(Protocol):
    """Delivers finding changes somewhere (a terminal, a chat channel, a ticket tracker)."""

    name: str

    def deliver(self, changes: Sequence[Change], *, dry_run: bool = False) -> int:
        """Deliver ``changes``; returns how many were delivered (or would be, on a dry run)."""


class ReceiverConfig(BaseModel):
    """Base of every receiver type's config model: frozen, unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    type_name: ClassVar[str]  # set by RECEIVERS.register

    def build(self, name: str, ctx: BuildContext) -> Notifier:  # pragma: no cover - every type overrides it
        raise NotImplementedError


RECEIVERS: Registry[type[ReceiverConfig]] = Registry("receiver type", name_attr="type_name")
