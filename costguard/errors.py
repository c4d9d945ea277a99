"""The exception tree. Every costguard error says what went wrong and where.

    CostguardError
    ├── ConfigError        bad config, rule or owners file (exit 2, nothing done)
    ├── DataError          a billing/inventory file that cannot be read or is unusable
    │   └── ProviderError  a provider could not deliver (wrong credentials, outage, bad data)
    ├── StoreError         the state store cannot be opened or migrated
    └── CycleCancelled     a stop was requested (SIGTERM) while a cycle ran
"""

from __future__ import annotations

from dataclasses import dataclass, field


def first_line(e: BaseException) -> str:
    """The first line of an exception's text (library errors can run to pages)."""
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


class CostguardError(Exception):
    """Base of every error costguard raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a user-written file: file, 1-based line (if known), dotted key path."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


@dataclass(eq=False)
class ConfigError(CostguardError):
    """One or more problems in config, rule or owners files."""

    issues: list[ConfigIssue] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    @classmethod
    def single(cls, file: str, line: int | None, key: str, message: str) -> "ConfigError":
        return cls([ConfigIssue(file, line, key, message)])

    def __str__(self) -> str:
        return "\n".join(str(i) for i in self.issues)


class DataError(CostguardError):
    """A data file (billing export, inventory) is missing, truncated or unusable."""


class ProviderError(DataError):
    """A provider failed to deliver costs, inventory or budgets."""

    def __init__(self, source: str, message: str, *, status: str = "failed_connection") -> None:
        self.source = source
        self.status = status
        super().__init__(f"provider {source!r}: {message}")


class StoreError(CostguardError):
    """The state store cannot be opened, migrated or written."""


class CycleCancelled(CostguardError):
    """Raised at a checkpoint when a stop was requested while a cycle was running."""
