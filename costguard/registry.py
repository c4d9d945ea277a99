"""A name → class registry filled by a decorator (Cloud Custodian's registry, minus the magic)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownName(LookupError):
    """``Registry.get`` was asked for a name nobody registered; the message lists the known names."""


class Registry(Generic[T]):
    """Maps names (as written in YAML) to classes.

    ``name_attr``, when given, is set on each registered class to its name, so the name is written
    once: ``@RULES.register("budget")`` gives ``Budget.kind_name == "budget"``.
    """

    def __init__(self, label: str, *, name_attr: str | None = None) -> None:
        self.label = label
        self.name_attr = name_attr
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.label}: {name!r} is already registered to {self._items[name]!r}")
            if self.name_attr:
                setattr(item, self.name_attr, name)
            self._items[name] = item
            return item

        return deco

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(self.names()) or "(none)"
            raise UnknownName(f"unknown {self.label} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        return [(n, self._items[n]) for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
