"""Many rows written with one prepared statement, each value converted for the database once.

SQLAlchemy's ``conn.execute(insert(t), rows)`` builds a parameter dict per row and runs every
value through its column type's bind processor (~40 µs a row for a finding's 28 columns before any
JSON is encoded: 0.4 s for 10,000 findings). Here the statement is compiled once for the
connection's dialect, each column's bind processor is looked up once, and

* a value of a date/time column is converted once per distinct value (a run writes the same
  ``now`` into thousands of rows);
* a JSON value already encoded with the engine's codec (:class:`Encoded`) is passed as it is, so a
  payload encoded to compare it with the stored one, or shared by two tables, is encoded once.

The values written are exactly those the column types would write (the same bind processors run);
only the per-row machinery is skipped. Every statement runs on the caller's connection, inside its
transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import JSON, Connection, Date, DateTime, Table, bindparam, insert, update
from sqlalchemy.types import NullType, TypeDecorator, TypeEngine

from .types import dumps


class Encoded(str):
    """A JSON column value already encoded with :func:`costguard.store.types.dumps`."""

    __slots__ = ()


def encode(value: Any) -> Encoded | None:
    """``value`` encoded for a JSON column (None stays SQL NULL: every JSON column is
    ``none_as_null``)."""
    return None if value is None else Encoded(dumps(value))


def _base(t: TypeEngine) -> TypeEngine:
    return t.impl_instance if isinstance(t, TypeDecorator) else t


def _converter(t: TypeEngine, conn: Connection) -> Callable[[Any], Any]:
    """A function giving the DB-API value of one Python value of type ``t``."""
    dialect = conn.dialect
    proc = t.dialect_impl(dialect).bind_processor(dialect)
    base = _base(t)
    if isinstance(base, JSON):
        if proc is None:  # pragma: no cover - every dialect we run on serialises JSON itself
            return lambda v: v
        return lambda v: v if v is None or isinstance(v, Encoded) else proc(v)
    if proc is None:
        return lambda v: v
    if isinstance(base, (DateTime, Date)):
        return _once_per_value(proc)
    return proc


def _once_per_value(proc: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``proc`` memoised per distinct (hashable) value."""
    memo: dict[Any, Any] = {}

    def once(v: Any) -> Any:
        try:
            return memo[v]
        except KeyError:
            out = memo[v] = proc(v)
            return out
        except TypeError:  # pragma: no cover - unhashable: let the type processor say why
            return proc(v)

    return once


_COMPILED: dict[tuple[Any, ...], tuple[str, bool, tuple[str, ...]]] = {}


def _compile(conn: Connection, key: tuple[Any, ...], build: Callable[[], Any], names: Sequence[str]) -> tuple[str, bool, tuple[str, ...]]:
    """(SQL, positional, bind order) of a statement, compiled once per shape and dialect (a send
    records its ledger rows with one small insert; compiling it each time would cost more)."""
    full = (*key, conn.dialect.name, conn.dialect.paramstyle)
    hit = _COMPILED.get(full)
    if hit is None:
        stmt = build()
        c = stmt.compile(dialect=conn.dialect, column_keys=list(names) if stmt.is_insert else None)
        hit = _COMPILED[full] = (c.string, bool(c.positional), tuple(c.positiontup or ()))
    return hit


def reader(t: TypeEngine, conn: Connection) -> Callable[[Any], Any] | None:
    """The Python value of one raw database value of a column of type ``t`` (what SQLAlchemy's
    result processing gives), converted once per distinct value: a findings table holds a few
    distinct timestamps (one per run) in thousands of rows. None: the raw value is the value."""
    dialect = conn.dialect
    proc = t.dialect_impl(dialect).result_processor(dialect, None)
    if proc is None:
        return None
    return _once_per_value(proc)


def select_rows(conn: Connection, columns: Sequence[Any], where: Any, order_by: Any = None) -> list[dict[str, Any]]:
    """``SELECT columns WHERE where [ORDER BY order_by]`` as dicts by column name, each typed
    value converted by :func:`reader` (once per distinct raw value) instead of per row."""
    from sqlalchemy import select, type_coerce

    read = [(c.name, reader(c.type, conn)) for c in columns]
    raw = [type_coerce(c, NullType()).label(c.name) if f is not None else c for c, (_, f) in zip(columns, read)]
    names = [n for n, _ in read]
    fs = [f for _, f in read]
    out = []
    q = select(*raw).where(where)
    for r in conn.execute(q if order_by is None else q.order_by(order_by)):
        out.append({n: (v if f is None or v is None else f(v)) for n, f, v in zip(names, fs, r)})
    return out


def _run(conn: Connection, key: tuple[Any, ...], build: Callable[[], Any], names: Sequence[str],
         types: Mapping[str, TypeEngine], rows: Sequence[Mapping[str, Any]],
         replace: Mapping[str, Sequence[Any]] | None = None) -> None:
    sql, positional, positiontup = _compile(conn, key, build, names)
    convert = {n: _converter(types[n], conn) for n in names}
    replace = replace or {}
    if positional:
        order = list(positiontup)
        if sorted(order) != sorted(names):  # pragma: no cover - a statement shape this module does not build
            raise RuntimeError(f"bulk write: statement binds {order}, rows carry {list(names)}")
        spec = [(convert[n], n, replace.get(n)) for n in order]
        params: list[Any] = [tuple([f(r[n]) if alt is None else f(alt[i]) for f, n, alt in spec])
                             for i, r in enumerate(rows)]
    else:
        params = [{n: convert[n](r[n] if n not in replace else replace[n][i]) for n in names}
                  for i, r in enumerate(rows)]
    conn.exec_driver_sql(sql, params)


def insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]],
                replace: Mapping[str, Sequence[Any]] | None = None) -> None:
    """INSERT every row (all rows carry the same keys: column names of ``table``). ``replace``:
    column -> one value per row, written instead of the row's own (an encoded payload), so rows
    need not be copied to change one value."""
    if not rows:
        return
    names = list(rows[0])
    _check_keys(rows, names)
    for n, values in (replace or {}).items():
        if n not in names or len(values) != len(rows):
            raise ValueError(f"bulk write: replace {n!r} needs one value per row for a column the rows carry")
    _run(conn, ("insert", table, tuple(names)), lambda: insert(table), names, {n: table.c[n].type for n in names},
         rows, replace)


def update_rows(conn: Connection, table: Table, key: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """UPDATE by ``key`` (a column name every row carries): each row sets its other keys. Rows are
    grouped by the set of columns they change, one prepared statement per group."""
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(k for k in r if k != key), []).append(r)
    for cols, group in groups.items():
        if not cols:
            continue
        kb, vb = f"_k_{key}", {c: f"_v_{c}" for c in cols}

        def build(kb: str = kb, vb: dict[str, str] = vb, cols: tuple[str, ...] = cols) -> Any:
            return (update(table).where(table.c[key] == bindparam(kb, type_=table.c[key].type))
                    .values({c: bindparam(vb[c], type_=table.c[c].type) for c in cols}))

        types = {kb: table.c[key].type, **{vb[c]: table.c[c].type for c in cols}}
        renamed = [{kb: r[key], **{vb[c]: r[c] for c in cols}} for r in group]
        _run(conn, ("update", table, key, cols), build, list(types), types, renamed)


def _check_keys(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> None:
    want = set(names)
    for i, r in enumerate(rows):
        if r.keys() != want:
            raise ValueError(f"bulk write: row {i} has keys {sorted(r)}, the first row {sorted(want)}")
