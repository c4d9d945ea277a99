"""Engine construction (SQLite pragmas, transaction control, JSON codec) and URL redaction."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.pool import StaticPool

from .types import dumps, loads

SQLITE_BUSY_TIMEOUT_MS = 30_000
WRITE_OPTION = "costguard_write"  # execution option: this transaction will write


def redact_url(url: str | URL) -> str:
    """The URL with any password hidden, safe for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # unparseable: hide anything between "user:" and "@" ourselves
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", str(url))


def is_sqlite_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def sqlite_file(url: URL) -> Path | None:
    """The database file of a plain SQLite file URL (None for memory or ``file:`` URIs)."""
    if url.get_backend_name() != "sqlite" or is_sqlite_memory(url):
        return None
    if url.query.get("uri") or str(url.database).startswith("file:"):
        return None
    return Path(str(url.database))


def make_engine(url: str | URL) -> Engine:
    url = make_url(url)
    kwargs: dict[str, Any] = {"json_serializer": dumps, "json_deserializer": loads}
    if url.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        if is_sqlite_memory(url):
            kwargs["poolclass"] = StaticPool
            kwargs["connect_args"]["check_same_thread"] = False
        engine = create_engine(url, **kwargs)
        _setup_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _setup_sqlite(engine: Engine) -> None:
    """WAL, busy timeout and foreign keys on every connection; SQLAlchemy emits BEGIN itself so a
    transaction covers reads too (pysqlite would defer it to the first write), and writers take
    the write lock up front (BEGIN IMMEDIATE) instead of failing on a lock upgrade."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.execute("PRAGMA foreign_keys = ON")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
