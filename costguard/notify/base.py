"""The receiver seam: what a delivery transport implements, its config model, and the registry.

A receiver type is one module under ``costguard/notify/`` holding a config model (a subclass of
:class:`ReceiverConfig` registered with ``@RECEIVERS.register("<type>")``, whose ``build`` makes
the notifier) and the notifier. ``config.py`` builds the ``notify.receivers`` union from the
registry, so a new transport's config errors carry file:line like any other key.

A notifier sends one :class:`~costguard.notify.model.Message` (one group of findings) at a time,
through the shared ``httpx.Client``, and returns :class:`~costguard.notify.model.Sent` with the
state to keep (Slack ts, Jira key…). It raises ``RetryableDeliveryError`` or
``PermanentDeliveryError``; the pipeline retries, records and moves on.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, field_validator

from costguard.build import BuildContext
from costguard.notify.model import Message, Sent
from costguard.notify.routing import field_name
from costguard.registry import Registry

Change = tuple[str, dict[str, Any]]  # (event, finding as `costguard findings --format json` prints it)


@runtime_checkable
class Notifier(Protocol):
    """Delivers one message (a group of finding changes) to one place."""

    name: str
    group_by: tuple[str, ...] | None   # default grouping (owner is always added); None: one message for all
    catch_all: bool                     # gets every finding whatever the routes say (the console)

    def send(self, message: Message) -> Sent:
        """Deliver ``message``; raise RetryableDeliveryError / PermanentDeliveryError on failure."""


class ReceiverConfig(BaseModel):
    """Base of every receiver type's config model: frozen, unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    type_name: ClassVar[str]  # set by RECEIVERS.register
    default_group_by: ClassVar[tuple[str, ...] | None] = ("owner",)

    def build(self, name: str, ctx: BuildContext) -> Notifier:  # pragma: no cover - every type overrides it
        raise NotImplementedError


class GroupedReceiverConfig(ReceiverConfig):
    """A receiver whose messages group findings: ``group_by`` (default ``[owner]``; the owner is
    always part of the group) and template overrides."""

    group_by: list[str] | None = Field(None, description="finding fields that split messages; [fingerprint] = one per finding")
    templates: dict[str, str] = Field(default_factory=dict, description="template name -> file (relative to the config file)")

    @field_validator("group_by")
    @classmethod
    def _fields(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else [field_name(k) for k in v]

    def grouping(self) -> tuple[str, ...]:
        keys = self.group_by if self.group_by is not None else list(self.default_group_by or ())
        return tuple(k for k in keys if k != "owner")

    def template_files(self, ctx: BuildContext) -> dict[str, str]:
        return {k: ctx.resolve(v) for k, v in self.templates.items()}


RECEIVERS: Registry[type[ReceiverConfig]] = Registry("receiver type", name_attr="type_name")
