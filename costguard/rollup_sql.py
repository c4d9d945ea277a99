"""The daily rollup of ``rollup.py`` as SQL, for engines that hold the export (Athena/Trino,
BigQuery, DuckDB), generated with sqlglot from the same ``ROLLUP_KEYS`` and ``SUMMED``.

The query groups a FOCUS table by every rollup key (``x_ChargeDate`` is the UTC day of
``ChargePeriodStart``; ``x_Tags`` is the raw ``Tags`` as text, normalised locally afterwards, where
groups whose tags differ only in key case or spaces merge) plus the mandatory FOCUS columns the
rollup does not keep (billing period, issuer, publisher, charge class), so that each result row is a
valid FOCUS row for ``focus.normalize``. Amounts are summed as ``DECIMAL(38,10)``, the lake's type,
so the engine adds exactly what the local path adds. ``x_SourceRows`` counts the export rows each
result row stands for.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date

import sqlglot
from sqlglot import exp

from costguard.rollup import ROLLUP_KEYS, SUMMED

#: Mandatory FOCUS columns outside the rollup keys, grouped so result rows stay valid FOCUS rows.
CARRIED = ("BillingPeriodStart", "BillingPeriodEnd", "InvoiceIssuerName", "PublisherName", "ChargeClass")
SOURCE_ROWS = "x_SourceRows"
DAY = "x_ChargeDate"
TAGS = "Tags"
DIALECTS = ("athena", "trino", "duckdb", "bigquery")


def _col(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


def _tags_text(tags: exp.Column, dialect: str, tags_is_text: bool) -> exp.Expression:
    if tags_is_text:
        return tags
    if dialect in ("athena", "trino"):
        return exp.Anonymous(this="json_format", expressions=[exp.cast(tags, "JSON")])
    if dialect == "duckdb":
        return exp.cast(exp.Anonymous(this="to_json", expressions=[tags]), "VARCHAR")
    if dialect == "bigquery":
        return exp.Anonymous(this="TO_JSON_STRING", expressions=[tags])
    raise ValueError(f"unknown dialect {dialect!r}; known: {', '.join(DIALECTS)}")


def rollup_query(
    table: str,
    columns: Collection[str],
    *,
    start: date,
    end: date,
    dialect: str,
    partition_column: str | None = None,
    partitions: Sequence[str] = (),
    tags_is_text: bool = False,
) -> str:
    """SELECT … GROUP BY … for the days ``[start, end)`` of ``table`` (``db.table``), pruned to
    ``partitions`` of ``partition_column`` when given. ``columns`` are the table's columns: keys it
    lacks are selected as NULL (and not grouped)."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}; known: {', '.join(DIALECTS)}")
    named = {c.lower(): c for c in columns}  # Glue lower-cases column names; FOCUS names are CamelCase
    have = set(named)

    def col(name: str) -> exp.Column:
        return _col(named[name.lower()])

    if "chargeperiodstart" not in have:
        raise ValueError(f"{table} has no ChargePeriodStart column: is it a FOCUS table?")
    selects: list[exp.Expression] = []
    groups: list[exp.Expression] = []
    for key in (*ROLLUP_KEYS, *CARRIED):
        if key == DAY:
            e: exp.Expression = exp.cast(col("ChargePeriodStart"), "DATE")
            selects.append(exp.alias_(e, DAY, quoted=True))
            groups.append(e)
        elif key == "x_Tags":
            if TAGS.lower() in have:
                e = _tags_text(col(TAGS), dialect, tags_is_text)
                selects.append(exp.alias_(e, TAGS, quoted=True))
                groups.append(e)
            else:
                selects.append(exp.alias_(exp.cast(exp.null(), "VARCHAR"), TAGS, quoted=True))
        elif key.lower() in have:
            selects.append(exp.alias_(col(key), key, quoted=True) if named[key.lower()] != key else col(key))
            groups.append(col(key))
        else:
            selects.append(exp.alias_(exp.cast(exp.null(), "VARCHAR"), key, quoted=True))
    for m in SUMMED:
        if m.lower() in have:
            s: exp.Expression = exp.Sum(this=exp.cast(col(m), exp.DataType.build("DECIMAL(38, 10)")))
        else:
            s = exp.cast(exp.null(), exp.DataType.build("DECIMAL(38, 10)"))
        selects.append(exp.alias_(s, m, quoted=True))
    selects.append(exp.alias_(exp.Count(this=exp.Star()), SOURCE_ROWS, quoted=True))

    ts = exp.DataType.build("TIMESTAMP")
    where: exp.Expression = exp.and_(
        exp.GTE(this=col("ChargePeriodStart"), expression=exp.cast(exp.Literal.string(f"{start.isoformat()} 00:00:00"), ts)),
        exp.LT(this=col("ChargePeriodStart"), expression=exp.cast(exp.Literal.string(f"{end.isoformat()} 00:00:00"), ts)),
    )
    if partition_column and partitions:
        where = exp.and_(exp.In(this=_col(named.get(partition_column.lower(), partition_column)), expressions=[exp.Literal.string(p) for p in partitions]), where)
    db, _, name = table.partition(".")
    source = exp.table_(name, db=db or None, quoted=True) if name else exp.table_(db, quoted=True)
    query = exp.select(*selects).from_(source).where(where).group_by(*groups)
    return query.sql(dialect=dialect)


def parse(sql: str, dialect: str) -> exp.Expression:
    """Parse generated SQL back (tests use it to check the query reads like the dialect)."""
    return sqlglot.parse_one(sql, read=dialect)
