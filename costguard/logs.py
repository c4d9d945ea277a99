"""Logging setup: structured events on stderr, with secrets redacted.

``configure_logging()`` is called once by the CLI (calling it again just reconfigures).
Every line carries an ISO-8601 UTC timestamp, the level and whatever was bound with
``structlog.contextvars.bind_contextvars(run_id=...)``. stdout is never written to: it belongs
to command output such as ``--format json``.

Redaction (``redact_event``) runs last before rendering, on costguard's own events and on
stdlib records (alembic, apscheduler, httpx) alike:

- a value whose key names a secret (token, secret, password, ...) becomes ``"***"``;
- ``scheme://user:password@host`` keeps the user and loses the password;
- ``?token=...``/``&sig=...`` query parameters lose their values.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # structlog itself is imported on first use: the redaction helpers below
    # are used by config models that ``costguard validate`` loads without logging anything
    from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "REDACTED",
    "add_known_secrets",
    "configure_logging",
    "get_logger",
    "is_secret_key",
    "redact_event",
    "redact_text",
    "redact_value",
]

REDACTED = "***"

_SECRET_KEY_PARTS = (
    "token",
    "secret",
    "password",
    "passwd",
    "authorization",
    "api_key",
    "apikey",
    "credential",
)
# user:password@ inside a URL (userinfo never contains '/', '@' or whitespace).
_URL_PASSWORD = re.compile(r"(?P<head>://[^/\s:@]*:)(?P<pw>[^/\s@]+)@")
# ?token=...&sig=... query parameters (Azure SAS ``sig``, presigned ``X-Amz-Signature``).
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&](?:[\w.-]*(?:token|secret|password|passwd|api_key|apikey|credential)[\w.-]*"
    r"|sig|signature|x-amz-signature|x-goog-signature|key)=)(?P<val>[^&#\s]+)",
    re.IGNORECASE,
)

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

_HANDLER_MARK = "_costguard_handler"


def is_secret_key(key: object) -> bool:
    """True when a field name suggests its value is a secret (case and '-' insensitive)."""
    if not isinstance(key, str):
        return False
    k = key.lower().replace("-", "_")
    return any(part in k for part in _SECRET_KEY_PARTS)


_KNOWN_SECRETS: set[str] = set()
_MIN_SECRET_LEN = 6  # shorter values would blank out ordinary words


def add_known_secrets(values: Any) -> None:
    """Register secret values (tokens, webhook URLs, passwords read from ``${ENV}`` or
    ``*_file``) so that ``redact_text`` (and so every log line, health detail and stored error)
    replaces them wherever they appear, whole."""
    for v in values:
        if isinstance(v, str) and len(v.strip()) >= _MIN_SECRET_LEN:
            _KNOWN_SECRETS.add(v.strip())


def redact_text(text: str) -> str:
    """Remove known secret values, URL passwords and secret query parameters from a string."""
    for secret in sorted(_KNOWN_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    if "://" in text:
        text = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{REDACTED}@", text)
    if "=" in text:
        text = _QUERY_SECRET.sub(lambda m: f"{m.group('head')}{REDACTED}", text)
    return text


def redact_value(value: Any, key: object = None) -> Any:
    """Redact one value (recursively through dicts, lists and tuples).

    A non-None value under a secret-looking key becomes ``"***"``; ``None`` stays ``None`` so
    "not configured" remains visible.
    """
    if key is not None and is_secret_key(key):
        return value if value is None else REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(v) for v in value]
    if isinstance(value, tuple):
        return tuple(redact_value(v) for v in value)
    return value


def redact_event(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: redact every field of an event (``event`` itself included)."""
    for key, value in list(event_dict.items()):
        if key.startswith("_"):  # _record, _from_structlog: ProcessorFormatter internals
            continue
        if key == "event":
            if isinstance(value, str):
                event_dict[key] = redact_text(value)
            continue
        event_dict[key] = redact_value(value, key)
    return event_dict


class _Stderr:
    """A file-like object that always writes to the *current* ``sys.stderr``.

    Resolving at write time (not at configure time) keeps pytest's capsys/capfd and any
    later redirection working.
    """

    def write(self, s: str) -> int:
        return sys.stderr.write(s)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        isatty = getattr(sys.stderr, "isatty", None)
        return bool(isatty and isatty())


_STDERR = _Stderr()


@cache
def _named_write_logger() -> type:
    import structlog

    class _NamedWriteLogger(structlog.WriteLogger):
        """A ``WriteLogger`` on stderr that remembers the name given to ``get_logger``."""

        def __init__(self, name: str | None = None) -> None:
            super().__init__(_STDERR)  # type: ignore[arg-type]
            self.name = name

    return _NamedWriteLogger


def _logger_factory(*args: Any) -> Any:
    return _named_write_logger()(str(args[0]) if args and args[0] else None)


def _add_logger_name(logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    name = getattr(logger, "name", None)
    if name and "logger" not in event_dict:
        event_dict["logger"] = name
    return event_dict


def _level(level: str) -> int:
    try:
        return _LEVELS[level.strip().lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(_LEVELS)}") from None


def _shared_processors() -> list[Processor]:
    import structlog

    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


def _renderer(json: bool) -> Processor:
    import structlog

    if json:
        return structlog.processors.JSONRenderer(sort_keys=False, default=str)
    return structlog.dev.ConsoleRenderer(colors=_STDERR.isatty())


def _configure_structlog(*, json: bool, level: int) -> None:
    import structlog

    structlog.configure(
        processors=[
            *_shared_processors(),
            _add_logger_name,
            structlog.processors.format_exc_info,
            redact_event,
            _renderer(json),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        context_class=dict,
        logger_factory=_logger_factory,
        cache_logger_on_first_use=False,
    )


def configure_logging(*, json: bool | None = None, level: str = "info") -> None:
    """Configure structlog and stdlib logging; safe to call more than once.

    ``json=None`` picks JSON lines unless stderr is a terminal. Stdlib loggers (alembic,
    apscheduler, httpx, ...) go through the same processors at WARNING and above.
    """
    import structlog

    lvl = _level(level)
    use_json = (not _STDERR.isatty()) if json is None else json
    _configure_structlog(json=use_json, level=lvl)

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared_processors(), structlog.stdlib.add_logger_name],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_event,
            _renderer(use_json),
        ],
    )
    handler = logging.StreamHandler(_STDERR)  # type: ignore[arg-type]
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)

    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, _HANDLER_MARK, False):
            root.removeHandler(old)
            old.close()
    stdlib_level = max(logging.WARNING, lvl)
    handler.setLevel(stdlib_level)
    root.addHandler(handler)
    root.setLevel(stdlib_level)


def get_logger(name: str | None = None) -> Any:
    """A structlog logger; ``name`` is bound as ``logger``.

    Modules call this at import time, so it returns a stand-in that imports structlog when it
    first logs (``validate`` and ``--help`` never do). If nothing configured structlog by then, a
    minimal stderr setup is installed first so that nothing ever lands on stdout (stdlib logging
    is left alone until ``configure_logging``).
    """
    return _LazyLogger(name)


class _LazyLogger:
    """``structlog.get_logger(name)``, looked up on first use."""

    __slots__ = ("_name", "_logger")

    def __init__(self, name: str | None) -> None:
        self._name = name
        self._logger: Any = None

    def __getattr__(self, attr: str) -> Any:
        if self._logger is None:
            import structlog

            if not structlog.is_configured():
                _configure_structlog(json=not _STDERR.isatty(), level=logging.INFO)
            self._logger = structlog.get_logger(self._name) if self._name else structlog.get_logger()
        return getattr(self._logger, attr)
