"""FOCUS: column spec (from the packaged spec JSON), reading exports, dialect clean-up, conformance.

``scan`` reads one file as-is, ``normalize`` turns it into the canonical lake columns (every FOCUS 1.2
column plus ``x_ChargeDate``, ``x_Tags`` and ``x_Conformance``) and flags every row that breaks the
spec instead of fixing or dropping it; ``conformance`` counts the flags. Everything is lazy and runs
on polars' streaming engine; the only Python work is done once per distinct JSON value.
"""

from __future__ import annotations

import gzip
import os
import json
import re
import zlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl

from costguard import focus_versions
from costguard.discovery import Discovered, _s3_client, discover, discover_files  # noqa: F401  (part of this module's API)
from costguard.errors import DataError, first_line

SPEC_VERSIONS = ("1.0", "1.1", "1.2")
LAKE_VERSION = "1.2"
DECIMAL = pl.Decimal(38, 10)
DATETIME = pl.Datetime("us", "UTC")
NULL_TOKENS = ("NULL", "null", "")
REJECT = "x_Reject"              # why a row cannot be stored (null: usable)
REJECT_VALUE = "x_RejectValue"   # the offending raw value, as text (for the samples)
LINE = "x_Line"                  # where the row sits in its file (CSV line or 1-based row)
REJECTABLE_COSTS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")
_SAMPLE_ID_COLUMNS = ("ProviderName", "BillingAccountId", "SubAccountId", "x_ChargeDate", "ServiceName", "ResourceId")


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    name: str
    data_type: str
    nullable: bool
    feature_level: str
    allowed_values: tuple[str, ...] | None
    introduced: str


@cache
def _columns(version: str) -> dict[str, ColumnSpec]:
    if version not in SPEC_VERSIONS:
        raise ValueError(f"unknown FOCUS version {version!r}; known: {', '.join(SPEC_VERSIONS)}")
    text = resources.files("costguard").joinpath("spec", f"focus_columns_v{version}.json").read_text(encoding="utf-8")
    out = {}
    for c in json.loads(text)["columns"]:
        allowed = c.get("AllowedValues")
        out[c["ColumnId"]] = ColumnSpec(
            name=c["ColumnId"],
            data_type=c["Data type"],
            nullable=str(c["Allows nulls"]).strip().lower() == "true",
            feature_level=c["Feature level"],
            allowed_values=tuple(allowed) if allowed else None,
            introduced=str(c.get("Introduced", "")),
        )
    return out


def columns(version: str = "1.2") -> dict[str, ColumnSpec]:
    """The FOCUS columns of ``version``, by ColumnId (spec order)."""
    return dict(_columns(version))


def mandatory(version: str = "1.2") -> tuple[str, ...]:
    return tuple(n for n, c in _columns(version).items() if c.feature_level == "Mandatory")


_PL_TYPES = {"Decimal": DECIMAL, "Date/Time": DATETIME, "String": pl.String, "JSON": pl.String}


#: Columns of FOCUS 1.3/1.4 the lake carries beside the 1.2 columns (split-cost allocation,
#: contract links, the provider names that replace ProviderName/PublisherName): name -> type.
#: (The set is ``focus_versions.CARRIED_COLUMNS``; the types are those of the spec pages it cites.)
CARRIED: dict[str, str] = {
    "ServiceProviderName": "String",
    "HostProviderName": "String",
    "AllocatedMethodId": "String",
    "AllocatedMethodDetails": "JSON",
    "AllocatedResourceId": "String",
    "AllocatedResourceName": "String",
    "AllocatedTags": "JSON",
    "ContractApplied": "JSON",
    "InvoiceDetailId": "String",
    "CommitmentProgramEligibilityDetails": "JSON",
}


@cache
def _lake_specs() -> dict[str, ColumnSpec]:
    """The spec of every FOCUS column the lake stores: the 1.2 columns, then :data:`CARRIED`."""
    out = dict(_columns(LAKE_VERSION))
    for n, t in CARRIED.items():
        out[n] = ColumnSpec(n, t, True, "Conditional", None, "1.3")
    return out


@cache
def _lake_schema() -> dict[str, pl.DataType]:
    out: dict[str, Any] = {n: _PL_TYPES[c.data_type] for n, c in _lake_specs().items()}
    # x_Conformance: a bit mask of failed checks (bit i = CHECK_IDS[i]), null when the row is clean
    out.update({"x_ChargeDate": pl.Date, "x_Tags": pl.String, "x_Conformance": pl.UInt64})
    return out


def row_schema() -> dict[str, pl.DataType]:
    """What :func:`normalize` yields: the lake columns plus ``x_Reject``, ``x_RejectValue``, ``x_Line``."""
    return {**_lake_schema(), REJECT: pl.String(), REJECT_VALUE: pl.String(), LINE: pl.Int64()}


def lake_schema() -> dict[str, pl.DataType]:
    """Canonical lake columns in order: FOCUS 1.2 columns, then ``x_ChargeDate``, ``x_Tags``, ``x_Conformance``."""
    return dict(_lake_schema())


# ------------------------------------------------------------------------------------------- scan


def _read_bytes(path: str, storage_options: dict | None) -> bytes:
    if path.startswith("s3://"):
        bucket, _, key = path[len("s3://") :].partition("/")
        try:
            return _s3_client(storage_options).get_object(Bucket=bucket, Key=key)["Body"].read()
        except DataError:
            raise
        except Exception as e:
            raise DataError(f"{path}: cannot download: {e}") from None
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None


def _clean_header(name: str) -> str:
    return name.lstrip("\ufeff").strip()




def _check_csv_shape(data: bytes, ncols: int, path: str) -> bool:
    """polars pads short rows with nulls silently; catch ragged rows and a cut-off last line.
    Returns True when a quoted field spans lines (so line numbers are not row numbers + 1)."""
    lines = pl.read_lines(data)["line"].str.strip_chars_end("\r")
    quotes = lines.str.count_matches('"', literal=True)
    multiline = bool((quotes % 2 == 1).any())
    if multiline:  # a quoted field spans lines: only the last line can be checked
        lines = lines.tail(1) if data.rstrip(b"\r\n") == data else lines.clear()
    fields = lines.str.replace_all(r'"[^"]*"', "").str.count_matches(",", literal=True) + 1
    bad = ((fields != ncols) & (lines.str.len_bytes() > 0)).arg_true()
    if len(bad):
        i = int(bad[0])
        n = len(lines) if len(lines) == 1 else i + 1
        raise DataError(
            f"{path}: line {n} has {int(fields[i])} fields but the header has {ncols}; "
            "the file is ragged or truncated (re-export or re-download it)"
        )
    return multiline


STREAM_CSV_ABOVE = 64 * 1024 * 1024  # bytes: a local .csv larger than this is scanned lazily


def _fields(line: pl.Expr) -> pl.Expr:
    return line.str.replace_all(r'"[^"]*"', "").str.count_matches(",", literal=True) + 1


def _check_csv_shape_streaming(path: str, ncols: int) -> bool:
    """:func:`_check_csv_shape` for a file too big to hold: one streaming pass over its lines."""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 1))
        ends_with_newline = fh.read(1) in (b"\n", b"\r")
    line = pl.col("line").str.strip_chars_end("\r")
    got = (
        pl.scan_lines(path)
        .with_row_index("i")
        .select(
            (line.str.count_matches('"', literal=True) % 2 == 1).any().alias("multiline"),
            pl.col("i").filter((_fields(line) != ncols) & (line.str.len_bytes() > 0)).first().alias("bad"),
            _fields(line).filter(pl.col("i") == pl.col("i").max()).first().alias("last_fields"),
            pl.len().alias("n"),
        )
        .collect(engine="streaming")
        .row(0, named=True)
    )
    if got["multiline"]:  # a quoted field spans lines: only a cut-off last line can be checked
        if not ends_with_newline and got["last_fields"] != ncols:
            raise DataError(f"{path}: line {got['n']} has {got['last_fields']} fields but the header has {ncols}; "
                            "the file is ragged or truncated (re-export or re-download it)")
        return True
    if got["bad"] is not None:
        with open(path, "rb") as fh:  # the offending line's field count, for the message
            for n, raw in enumerate(fh):
                if n == got["bad"]:
                    fields = pl.select(_fields(pl.lit(raw.decode("utf-8", "replace").rstrip("\r\n")))).item()
                    break
        raise DataError(f"{path}: line {got['bad'] + 1} has {fields} fields but the header has {ncols}; "
                        "the file is ragged or truncated (re-export or re-download it)")
    return False


def _scan_csv_streaming(path: str, any_format: bool = False) -> "Scanned":
    try:
        lf = pl.scan_csv(path, infer_schema=False, null_values=list(NULL_TOKENS))
        names = lf.collect_schema().names()
    except Exception as e:
        raise DataError(f"{path}: cannot parse CSV: {first_line(e)}") from None
    if not any_format:
        _refuse_other_formats(path, names)
    multiline = _check_csv_shape_streaming(path, len(names))
    renames = {n: _clean_header(n) for n in names if _clean_header(n) != n}
    return Scanned(lf.rename(renames) if renames else lf, *_csv_numbering(multiline))


@dataclass(frozen=True, slots=True)
class Scanned:
    """A raw file and how to name a row's place in it: ``line`` N of a CSV (header = line 1, when
    no quoted field spans lines) or ``row`` N (1-based) otherwise."""

    frame: pl.LazyFrame
    line_kind: str = "row"
    first_line: int = 1


def _csv_numbering(multiline: bool) -> tuple[str, int]:
    return ("row", 1) if multiline else ("line", 2)


def scan(path: str, storage_options: dict | None = None, *, stream_csv_above: int = STREAM_CSV_ABOVE) -> pl.LazyFrame:
    """Raw read of one export file (see :func:`scan_file`)."""
    return scan_file(path, storage_options, stream_csv_above=stream_csv_above).frame


def scan_file(path: str, storage_options: dict | None = None, *, stream_csv_above: int = STREAM_CSV_ABOVE,
              any_format: bool = False) -> Scanned:
    """Raw read of one export file (.parquet, .csv, .csv.gz/.gz). Read problems raise DataError.
    A known non-FOCUS billing format is refused unless ``any_format`` (a reader that maps it, e.g.
    the aws provider's CUR 2.0 reader).

    Parquet and large local CSV files are scanned lazily (memory does not grow with the file);
    gzip, remote and small CSV files are read whole, which also lets every problem surface here.
    """
    lower = path.lower()
    if lower.endswith(".csv") and "://" not in path:
        try:
            big = os.path.getsize(path) > stream_csv_above
        except OSError:
            big = False  # reported as "file not found" below
        if big:
            return _scan_csv_streaming(path, any_format)
    if lower.endswith(".parquet"):
        try:
            lf = pl.scan_parquet(path, storage_options=storage_options, hive_partitioning=False)
            names = lf.collect_schema().names()  # reads the footer: catches truncated / non-parquet files
        except FileNotFoundError:
            raise DataError(f"{path}: file not found") from None
        except Exception as e:
            raise DataError(f"{path}: not a readable parquet file (truncated or corrupt; re-export it): {first_line(e)}") from None
        if not any_format:
            _refuse_other_formats(path, names)
        renames = {n: _clean_header(n) for n in names if _clean_header(n) != n}
        return Scanned(lf.rename(renames) if renames else lf)
    if not (lower.endswith(".csv") or lower.endswith(".gz")):
        raise DataError(f"{path}: unsupported file type (expected .parquet, .csv or .csv.gz)")
    data = _read_bytes(path, storage_options)
    if lower.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: gzip data is truncated or corrupt ({e}); re-download the file") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data.strip():
        raise DataError(f"{path}: file is empty (no header row)")
    try:
        df = pl.read_csv(data, infer_schema=False, null_values=list(NULL_TOKENS))
    except Exception as e:
        msg = first_line(e)
        if "more fields" in msg:
            msg = "a row has more fields than the header (ragged CSV); re-export the file"
        elif "utf-8" in msg.lower() or "utf8" in msg.lower():
            msg = f"not UTF-8 text: {msg}"
        raise DataError(f"{path}: cannot parse CSV: {msg}") from None
    if not any_format:
        _refuse_other_formats(path, df.columns)
    multiline = _check_csv_shape(data, df.width, path)
    return Scanned(df.rename({n: _clean_header(n) for n in df.columns}).lazy(), *_csv_numbering(multiline))


# -------------------------------------------------------------------------------------- normalize

_JSON_CACHE: dict[str, tuple[str | None, str | None]] = {}
_INVALID = (None, None)


def _json_info(raw: str) -> tuple[str | None, str | None]:
    """(value as a JSON-object string or None if invalid, normalised tags JSON or None)."""
    hit = _JSON_CACHE.get(raw)
    if hit is not None:
        return hit
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        obj = None
    text: str | None = raw
    if isinstance(obj, list) and all(isinstance(x, dict) and set(x) == {"key", "value"} for x in obj):
        obj = {x["key"]: x["value"] for x in obj}  # parquet MAP columns arrive as [{key, value}]
        text = json.dumps(obj, ensure_ascii=False)
    if not isinstance(obj, dict):
        res = _INVALID
    else:
        norm = {}
        for k, v in obj.items():
            norm[str(k).strip().lower()] = v if v is None or isinstance(v, str) else json.dumps(v, ensure_ascii=False) if not isinstance(v, bool) else str(v).lower()
        res = (text, json.dumps(norm, sort_keys=True, ensure_ascii=False, separators=(",", ":")) if norm else None)
    if len(_JSON_CACHE) > 500_000:
        _JSON_CACHE.clear()
    _JSON_CACHE[raw] = res
    return res


def normalize_tags(raw: str) -> str | None:
    """A Tags JSON object with keys stripped and lower-cased, sorted (the lake's ``x_Tags``)."""
    return _json_info(raw)[1]


_JSON_FIELDS = pl.Struct({"valid": pl.String, "norm": pl.String})


def _json_batch(s: pl.Series) -> pl.Series:
    """One batch of raw JSON texts → a struct of (``valid``: the text when it is a JSON object, else
    null; ``norm``: the normalised tags). Exports have 10^7 rows but a few thousand distinct tag
    sets, so the Python JSON work runs once per distinct text (cached across batches and files) and
    rows are mapped with a vectorised ``replace_strict`` of the batch's own distinct texts; ``valid``
    is the batch itself unless a text is invalid or rewritten (a key/value list).

    Applied with ``map_batches`` inside the row query, it needs no pass of its own over the file
    and streams (a join on a per-file mapping copied every other column of the rows; a
    ``replace_strict`` with thousands of literal keys in the plan made the streaming engine hold
    the whole file)."""
    uniq = s.drop_nulls().unique()
    if not len(uniq):
        nulls = pl.repeat(None, len(s), dtype=pl.String, eager=True)
        return pl.DataFrame({"valid": nulls, "norm": nulls}).to_struct(s.name)
    texts = uniq.to_list()
    info = [_json_info(v) for v in texts]
    norm = s.replace_strict(uniq, pl.Series([i[1] for i in info], dtype=pl.String), default=None, return_dtype=pl.String)
    changed = [j for j, (text, i) in enumerate(zip(texts, info)) if i[0] != text]
    if changed:
        valid = s.replace_strict(uniq, pl.Series([i[0] for i in info], dtype=pl.String), default=None,
                                 return_dtype=pl.String)
    else:
        valid = s.cast(pl.String)
    return pl.DataFrame({"valid": valid, "norm": norm}).to_struct(s.name)


def _as_json_text(c: pl.Expr, dtype: pl.DataType) -> pl.Expr | None:
    if dtype == pl.String or dtype == pl.Null:
        return c.cast(pl.String)
    if isinstance(dtype, pl.Struct):
        return c.struct.json_encode()
    if isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.Struct):
        return pl.concat_str([pl.lit("["), c.list.eval(pl.element().struct.json_encode()).list.join(","), pl.lit("]")])
    return None


def _clean_raw(name: str, dtype: pl.DataType, spec: ColumnSpec) -> pl.Expr:
    """The raw value as it will be parsed: strings stripped of null tokens; None type -> all null."""
    c = pl.col(name)
    if spec.data_type == "JSON":
        c = _as_json_text(c, dtype)
        if c is None:
            return pl.col(name).is_not_null().alias(name)  # unusable type: marker, parsed below as null
    elif dtype == pl.Null:
        return c.cast(pl.String)
    elif isinstance(dtype, (pl.Categorical, pl.Enum)):
        c = c.cast(pl.String)
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum) or spec.data_type == "JSON":
        if spec.data_type != "String":
            c = c.str.strip_chars()
        c = pl.when(c.is_in(list(NULL_TOKENS))).then(None).otherwise(c)
    return c


def _cleaned_dtype(dtype: pl.DataType, spec: ColumnSpec) -> pl.DataType:
    if spec.data_type == "JSON":
        return pl.String if _as_json_text(pl.col("_"), dtype) is not None else pl.Boolean
    if isinstance(dtype, (pl.Categorical, pl.Enum)):
        return pl.String
    return dtype


def _parse(name: str, dtype: pl.DataType, spec: ColumnSpec, json_cols: Collection[str] = (),
           timestamp_formats: Sequence[str] = ()) -> pl.Expr:
    """Parse the cleaned raw column ``name`` into the lake type; unparseable -> null."""
    c = pl.col(name)
    if dtype.is_nested() or dtype == pl.Null:
        return pl.lit(None, _PL_TYPES[spec.data_type])
    stringy = dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum)
    if spec.data_type == "String":
        return c.cast(pl.String, strict=False)
    if spec.data_type == "JSON":
        if dtype == pl.Boolean:  # marker from _clean_raw: the source type can never be JSON
            return pl.lit(None, pl.String)
        if name in json_cols:
            return pl.col(f"{name}_json").struct.field("valid")
        return pl.lit(None, pl.String)
    if spec.data_type == "Decimal":
        if stringy:
            return c.cast(DECIMAL, strict=False)
        if dtype.is_numeric():
            return c.cast(DECIMAL, strict=False)
        return pl.lit(None, DECIMAL)
    # Date/Time
    if isinstance(dtype, pl.Datetime):
        c = c.dt.replace_time_zone("UTC") if dtype.time_zone is None else c.dt.convert_time_zone("UTC")
        return c.cast(DATETIME)
    if dtype == pl.Date:
        return c.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if not stringy:
        return pl.lit(None, DATETIME)
    formats = tuple(timestamp_formats)
    return c.cast(pl.String).map_batches(lambda s: _parse_timestamps(s, formats), return_dtype=DATETIME, is_elementwise=True)


def _parse_timestamps(s: pl.Series, formats: Sequence[str] = ()) -> pl.Series:
    """Try the common dialect first; only a batch with leftovers pays for the other formats.
    ``formats`` (a provider's ``timestamp_format``) are tried after ISO 8601."""
    out = s.str.to_datetime("%Y-%m-%d %H:%M:%S", time_unit="us", strict=False).dt.replace_time_zone("UTC")
    if out.null_count() == s.null_count():
        return out
    t = s.str.replace(" ", "T", literal=True).str.replace(r"[Zz]$", "+00:00")
    attempts = (
        lambda: t.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%#z", time_unit="us", time_zone="UTC", strict=False),
        lambda: t.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", time_unit="us", strict=False).dt.replace_time_zone("UTC"),
        lambda: t.str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        *(_strptime(s, f) for f in formats),
    )
    for attempt in attempts:
        out = out.fill_null(attempt())
        if out.null_count() == s.null_count():
            break
    return out


def detect_version(columns: Sequence[str]) -> tuple[str, str]:
    """The FOCUS version a header follows (a lower bound) and why: see ``focus_versions``."""
    return focus_versions.detect_version(columns)


def _prepare(raw: pl.LazyFrame, file: str) -> tuple[pl.LazyFrame, Any]:
    """Check the header has what costguard needs (after mapping 1.3/1.4 names onto the lake's,
    e.g. ProviderName from ServiceProviderName) and add the mapped columns."""
    try:
        schema = raw.collect_schema()
    except Exception as e:
        raise DataError(f"{file}: cannot read the file's columns: {first_line(e)}") from None
    names = schema.names()
    version, _why = focus_versions.detect_version(names)
    missing = focus_versions.missing_mandatory(names, version)
    if missing:
        raise _missing_columns_error(file, names, missing)
    aliases = {lake: src for lake, src in focus_versions.lake_sources(names).items() if lake != src}
    if aliases:
        raw = raw.with_columns(pl.col(src).alias(lake) for lake, src in aliases.items())
        schema = raw.collect_schema()
    return raw, schema


def _refuse_other_formats(path: str, columns: Sequence[str]) -> None:
    """A header that is another billing format (and not FOCUS) is named as such right away."""
    names = [_clean_header(c) for c in columns]
    version, _ = focus_versions.detect_version(names)
    if focus_versions.missing_mandatory(names, version):
        known = known_export(names)
        if known:
            raise DataError(f"{path}: this is not a FOCUS file but {known}")


def _missing_columns_error(file: str, columns: Sequence[str], missing: Sequence[str]) -> DataError:
    known = known_export(columns)
    if known:
        return DataError(f"{file}: this is not a FOCUS file but {known}")
    return DataError(f"{file}: missing mandatory FOCUS column(s): {', '.join(missing)}")


def _strptime(s: pl.Series, fmt: str) -> Callable[[], pl.Series]:
    def attempt() -> pl.Series:
        if "%H" in fmt or "%M" in fmt:
            return s.str.strip_chars().str.to_datetime(fmt, time_unit="us", strict=False).dt.replace_time_zone("UTC")
        return s.str.strip_chars().str.to_date(fmt, strict=False).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    return attempt


def normalize(raw: pl.LazyFrame, *, file: str, timestamp_formats: Sequence[str] = ()) -> pl.LazyFrame:
    """Canonical lake columns (``lake_schema()``, in order), every spec violation flagged per
    row, plus ``x_Reject``/``x_RejectValue`` (why a row cannot be stored: a missing or unreadable
    ChargePeriodStart, an unreadable amount) and ``x_Line`` (passed through from ``raw`` when
    present). Rows are never dropped here; the lake stores, rejects or skips each one."""
    raw, schema = _prepare(raw, file)
    specs = _lake_specs()
    present = {n: schema[n] for n in specs if n in schema}
    nested = [n for n, dt in present.items() if dt.is_nested() and specs[n].data_type != "JSON"]
    if nested:
        raise DataError(
            f"{file}: column(s) {', '.join(f'{n} ({present[n]})' for n in nested)} hold nested values; "
            "FOCUS defines them as plain String/Decimal/Date-Time"
        )
    raw_name = {n: f"__raw_{n}" for n in present}

    stage_a = [_clean_raw(n, dt, specs[n]).alias(raw_name[n]) for n, dt in present.items()]
    if LINE in schema:
        stage_a.append(pl.col(LINE).cast(pl.Int64))
    json_cols = {raw_name[n] for n, dt in present.items()
                 if specs[n].data_type == "JSON" and _as_json_text(pl.col(n), dt) is not None}
    cleaned = raw.select(stage_a)
    if json_cols:
        cleaned = cleaned.with_columns(
            pl.col(rn).map_batches(_json_batch, return_dtype=_JSON_FIELDS, is_elementwise=True).alias(f"{rn}_json")
            for rn in sorted(json_cols))
    stage_b = []
    for n, dt in present.items():
        stage_b.append(_parse(raw_name[n], _cleaned_dtype(dt, specs[n]), specs[n], json_cols, timestamp_formats).alias(n))
    if "Tags" in present and raw_name["Tags"] in json_cols:
        x_tags = pl.col(f"{raw_name['Tags']}_json").struct.field("norm")
    else:
        x_tags = pl.lit(None, pl.String)
    stage_b.append(x_tags.alias("x_Tags"))

    bits: list[pl.Expr] = []
    for n in present:
        spec, r, v = specs[n], pl.col(raw_name[n]), pl.col(n)
        if spec.data_type != "String" and not _lossless(present[n], spec):
            bits.append(_bit(f"{n}:type", r.is_not_null() & v.is_null()))
        if not spec.nullable:
            bits.append(_bit(f"{n}:nullability", r.is_null()))
        if spec.allowed_values:
            bits.append(_bit(f"{n}:allowed_values", v.is_not_null() & ~v.is_in(list(spec.allowed_values))))
    if "BillingCurrency" in present:
        bits.append(_bit("BillingCurrency:iso4217", pl.col("BillingCurrency").is_not_null() & ~pl.col("BillingCurrency").is_in(iso4217())))
    if "ChargePeriodEnd" in present:
        bits.append(_bit("ChargePeriodEnd:after_start", pl.col("ChargePeriodEnd") <= pl.col("ChargePeriodStart")))
    mask = pl.sum_horizontal(bits) if bits else pl.lit(0, pl.UInt64)

    final = []
    for n, dt in _lake_schema().items():
        if n in present:
            final.append(pl.col(n).cast(dt))
        elif n == "x_ChargeDate":
            final.append(pl.col("ChargePeriodStart").dt.date().alias(n))
        elif n == "x_Tags":
            final.append(pl.col("x_Tags"))
        elif n == "x_Conformance":
            final.append(pl.when(pl.col("__mask") != 0).then(pl.col("__mask")).alias(n))
        else:
            final.append(pl.lit(None, dt).alias(n))
    reason, value = _reject_exprs(present, raw_name)
    final += [reason.alias(REJECT), value.alias(REJECT_VALUE),
              (pl.col(LINE) if LINE in schema else pl.lit(None, pl.Int64)).alias(LINE)]
    return cleaned.with_columns(stage_b).with_columns(mask.alias("__mask")).select(final)


def _reject_exprs(present: dict[str, pl.DataType], raw_name: dict[str, str]) -> tuple[pl.Expr, pl.Expr]:
    """(reason, offending raw value) of the first problem that makes a row unstorable, else null.

    A row without a readable ChargePeriodStart has no day to be stored under; a row whose amount
    cannot be read would put a wrong number in every total. Both are rejected, never guessed.
    A typed column that always converts (a parquet timestamp, a Decimal(38, 10)) is not tested
    for being unreadable: every branch of the expression is computed for every row."""
    cases: list[tuple[pl.Expr, str, pl.Expr]] = []
    r = pl.col(raw_name["ChargePeriodStart"])
    cases.append((r.is_null(), "ChargePeriodStart is null", pl.lit(None, pl.String)))
    if not _always_converts(present["ChargePeriodStart"], "Date/Time"):
        cases.append((pl.col("ChargePeriodStart").is_null(), "ChargePeriodStart is not a date/time (ISO 8601 expected)", r.cast(pl.String)))
    for m in REJECTABLE_COSTS:
        if m in present and not _always_converts(present[m], "Decimal"):
            rm = pl.col(raw_name[m])
            cases.append((rm.is_not_null() & pl.col(m).is_null(), f"{m} is not a decimal number", rm.cast(pl.String)))
    reason: Any = None
    value: Any = None
    for cond, why, val in cases:
        reason = (pl.when(cond) if reason is None else reason.when(cond)).then(pl.lit(why))
        value = (pl.when(cond) if value is None else value.when(cond)).then(val)
    if len(cases) == 1:  # typed columns: only a missing ChargePeriodStart, which has no value to show
        return reason.otherwise(pl.lit(None, pl.String)), pl.lit(None, pl.String)
    return reason.otherwise(pl.lit(None, pl.String)), value.otherwise(pl.lit(None, pl.String))


def file_days(raw: pl.LazyFrame, *, file: str, timestamp_formats: Sequence[str] = ()) -> set[date | None]:
    """The distinct UTC days of ChargePeriodStart; ``None`` stands for rows whose ChargePeriodStart
    is missing or unreadable.

    A typed (parquet) column is answered from its minimum, maximum and null count, which polars
    reads from the file's statistics where it has them: a daily export's file holds one day, so
    only a file spanning several days pays for a pass over the column."""
    raw, schema = _prepare(raw, file)
    spec = _columns(LAKE_VERSION)["ChargePeriodStart"]
    dt = schema["ChargePeriodStart"]
    if isinstance(dt, pl.Datetime) or dt == pl.Date:
        c = pl.col("ChargePeriodStart")
        lo, hi, nulls = raw.select(c.min(), c.max().alias("hi"), c.null_count().alias("n")).collect().row(0)
        if lo is None or _utc_day(lo) == _utc_day(hi):
            return ({_utc_day(lo)} if lo is not None else set()) | ({None} if nulls else set())
    parsed = _parse("__raw", _cleaned_dtype(dt, spec), spec, (), timestamp_formats)
    got = (
        raw.select(_clean_raw("ChargePeriodStart", dt, spec).alias("__raw"))
        .select(parsed.dt.date().alias("x_ChargeDate"))
        .unique()
        .collect(engine="streaming")
    )
    return set(got["x_ChargeDate"].to_list())


def _utc_day(v: datetime | date) -> date:
    """The UTC day of a value as the lake stores it (a naive timestamp is UTC)."""
    if isinstance(v, datetime):
        return (v.astimezone(timezone.utc) if v.tzinfo is not None else v).date()
    return v


# Columns that identify other billing formats (lower-cased; a localised header such as
# "Kategorie der Verbrauchseinheit (MeterCategory)" counts by the name in parentheses), what must
# be there, one of which must be there, and the provider type that reads the format.
_KNOWN_EXPORTS: tuple[tuple[str, frozenset[str], frozenset[str], str], ...] = (
    ("an AWS Cost and Usage Report 2.0 (Data Exports)", frozenset({"line_item_unblended_cost", "line_item_usage_start_date"}),
     frozenset(), "use a provider of type aws with costs: {source: cur2_export}, or export FOCUS 1.2 instead"),
    ("a legacy AWS Cost and Usage Report (CUR)", frozenset({"lineitem/unblendedcost", "lineitem/usagestartdate"}),
     frozenset(), "re-export it with AWS Data Exports (FOCUS 1.2 or CUR 2.0) and use a provider of type aws"),
    ("an Azure cost details export (EA / MCA / pay-as-you-go)", frozenset({"metercategory"}),
     frozenset({"cost", "costinbillingcurrency", "pretaxcost"}),
     "use a provider of type azure, or export the FocusCost dataset from Cost Management instead"),
    ("a Google Cloud billing export", frozenset({"billing_account_id", "cost"}),
     frozenset({"usage_start_time", "usage_start_time_utc"}), "use a provider of type gcp with billing_export_table"),
    ("an OCI cost report", frozenset({"lineitem/referenceno", "cost/mycost"}), frozenset(),
     "use OCI's FOCUS cost reports instead (FOCUS CSV); the focus type reads them"),
)


def _header_key(name: str) -> str:
    name = name.strip().lstrip("\ufeff")
    m = re.search(r"\(([^()]+)\)\s*$", name)
    return (m.group(1) if m else name).strip().lower()


def known_export(columns: Sequence[str]) -> str | None:
    """``"looks like an AWS Cost and Usage Report …: use a provider of type aws …"`` when
    ``columns`` look like a known non-FOCUS billing export, else None."""
    have = {_header_key(c) for c in columns}
    for what, needs, one_of, fix in _KNOWN_EXPORTS:
        if needs <= have and (not one_of or one_of & have):
            return f"looks like {what}: {fix}"
    return None


@cache
def iso4217() -> list[str]:
    """ISO 4217 currency codes (active, plus ones withdrawn since 2015 that old bills still carry)."""
    text = resources.files("costguard").joinpath("spec", "iso4217.txt").read_text(encoding="utf-8")
    return sorted({w for line in text.splitlines() if not line.startswith("#") for w in line.split()})


def _all_checks() -> list[str]:
    """Every per-row check id the 1.2 spec implies, in a fixed order: each gets one bit."""
    out = []
    for n, spec in _lake_specs().items():
        if spec.data_type != "String":
            out.append(f"{n}:type")
        if not spec.nullable:
            out.append(f"{n}:nullability")
        if spec.allowed_values:
            out.append(f"{n}:allowed_values")
    return out + list(EXTRA_CHECKS)


#: Checks beyond type / nullability / allowed values, each with what it means.
EXTRA_CHECKS = {
    "BillingCurrency:iso4217": "not an ISO 4217 currency code",
    "ChargePeriodEnd:after_start": "ChargePeriodEnd is not after ChargePeriodStart",
}
CHECK_IDS: tuple[str, ...] = tuple(_all_checks())
_CHECK_BIT = {cid: i for i, cid in enumerate(CHECK_IDS)}
assert len(CHECK_IDS) <= 64, "conformance checks no longer fit a 64-bit mask"


def _lossless(dtype: pl.DataType, spec: ColumnSpec) -> bool:
    """True when every value of ``dtype`` converts to the spec type, so no type check is needed
    (typed parquet: decimals, integers and datetimes). Strings, floats (NaN) and others are checked."""
    if spec.data_type == "Decimal":
        return isinstance(dtype, pl.Decimal) or dtype.is_integer()
    if spec.data_type == "Date/Time":
        return isinstance(dtype, pl.Datetime) or dtype == pl.Date
    return False


def _always_converts(dtype: pl.DataType, data_type: str) -> bool:
    """True when every non-null value of ``dtype`` converts to the lake type exactly."""
    if data_type == "Decimal":
        return dtype == DECIMAL or dtype.is_integer()
    if data_type == "Date/Time":
        return isinstance(dtype, pl.Datetime) or dtype == pl.Date
    return False


def _bit(check_id: str, cond: pl.Expr) -> pl.Expr:
    return pl.when(cond).then(pl.lit(1 << _CHECK_BIT[check_id], pl.UInt64)).otherwise(pl.lit(0, pl.UInt64))


def decode_mask(mask: int | None) -> list[str]:
    """The check ids set in one ``x_Conformance`` value (empty for a clean row)."""
    if not mask:
        return []
    return [cid for cid, b in _CHECK_BIT.items() if (mask >> b) & 1]


def flags(s: pl.Series) -> pl.Series:
    """``x_Conformance`` masks → readable "Check:a;Check:b" strings (null when clean)."""
    return _decode_masks(s)


def _decode_masks(s: pl.Series) -> pl.Series:
    """Bit masks → "Check:a;Check:b" strings (null when clean), decoded once per distinct mask."""
    uniq = s.unique().drop_nulls()
    uniq = uniq.filter(uniq != 0)
    if uniq.len() == 0:
        return pl.Series(s.name, [None] * len(s), dtype=pl.String)
    text = [";".join(cid for cid, b in _CHECK_BIT.items() if (m >> b) & 1) for m in uniq.to_list()]
    return s.replace_strict(uniq, pl.Series(text, dtype=pl.String), default=None, return_dtype=pl.String)


# ------------------------------------------------------------------------------------ conformance


@dataclass
class CheckResult:
    check: str
    column: str
    rule: str
    count: int
    samples: list[dict] = field(default_factory=list)


def _jsonable(v: Any) -> Any:
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, Decimal):
        return str(v.normalize()) if v == v else str(v)
    return v


@dataclass
class ConformanceReport:
    rows: int
    checks: dict[str, CheckResult] = field(default_factory=dict)
    _flagged_rows: int = 0

    def merge(self, other: "ConformanceReport") -> "ConformanceReport":
        checks = {k: CheckResult(v.check, v.column, v.rule, v.count, list(v.samples)) for k, v in self.checks.items()}
        for k, v in other.checks.items():
            if k in checks:
                mine = checks[k]
                mine.count += v.count
                mine.samples = (mine.samples + v.samples)[: max(3, len(mine.samples))]
            else:
                checks[k] = CheckResult(v.check, v.column, v.rule, v.count, list(v.samples))
        return ConformanceReport(self.rows + other.rows, dict(sorted(checks.items())), self._flagged_rows + other._flagged_rows)

    @property
    def flagged_rows(self) -> int:
        return self._flagged_rows

    def to_dict(self) -> dict:
        return {
            "rows": self.rows,
            "flagged_rows": self.flagged_rows,
            "checks": {k: {"column": v.column, "rule": v.rule, "count": v.count, "samples": v.samples} for k, v in self.checks.items()},
        }

    def summary_lines(self) -> list[str]:
        specs = _lake_specs()
        out = []
        for k, v in self.checks.items():
            spec = specs.get(v.column)
            if v.rule == "allowed_values" and spec and spec.allowed_values:
                vals = list(dict.fromkeys(repr(s["value"]) for s in v.samples if s.get("value") is not None))
                allowed = list(spec.allowed_values)
                shown = ", ".join(allowed[:3]) + (f", … ({len(allowed)} allowed values)" if len(allowed) > 3 else "")
                what = f"value{'s' if len(vals) > 1 else ''} {', '.join(vals)} not in {shown}"
            elif v.rule == "nullability":
                what = "null, but the spec does not allow nulls here"
            elif k in EXTRA_CHECKS:
                vals = list(dict.fromkeys(repr(s["value"]) for s in v.samples if s.get("value") is not None))
                what = EXTRA_CHECKS[k] + (f": {', '.join(vals)}" if vals and v.rule == "iso4217" else "")
            elif v.rule == "type":
                what = f"value is not a valid {spec.data_type if spec else 'value'}{' object' if spec and spec.data_type == 'JSON' else ''}; stored as null"
            else:
                what = v.rule
            out.append(f"{k}  {v.count} rows  ({what})")
        return out


SAMPLE_KEYS = ("ProviderName", "BillingAccountId", "SubAccountId", "x_ChargeDate", "ServiceName", "ResourceId")


def sample_aggs(group_keys: Sequence[str]) -> list[pl.Expr]:
    """``first()`` of every column with an allowed-values check that is not a group key: added to
    an aggregation grouped by ``x_Conformance`` they give each flagged combination a sample value
    at no measurable cost (unlike a second pass or ``head``)."""
    return [pl.col(n).first() for n, sp in _lake_specs().items() if sp.allowed_values and n not in group_keys]


def flagged_groups(rows: pl.LazyFrame, keys: Sequence[str]) -> pl.LazyFrame:
    """The rows that fail a check, grouped by ``keys`` and ``x_Conformance``, with their count
    (``x_RowCount``) and a sample value of every checked column: what :func:`groups_from_partial`
    needs, at the cost of one null test for a clean row (nearly all of them)."""
    gk = [*keys, "x_Conformance"]
    return (rows.filter(pl.col("x_Conformance").is_not_null())
            .group_by(gk).agg(pl.len().cast(pl.Int64).alias("x_RowCount"), *sample_aggs(gk)))


def groups_from_partial(partial: pl.DataFrame, count: str, *, clean_rows: int | None = None) -> pl.DataFrame:
    """An aggregation grouped by (keys…, ``x_Conformance``) → rows per mask (``__n``) plus up to
    two sample rows per mask, as columns ``<col>\x1f0`` / ``<col>\x1f1``. ``clean_rows``: the
    aggregation holds flagged rows only (:func:`flagged_groups`) and this many rows were clean."""
    lake = _lake_schema()
    cols = [c for c in partial.columns if c not in ("x_Conformance", count) and c in lake]
    schema: dict[str, pl.DataType] = {"x_Conformance": pl.UInt64, "__n": pl.Int64}
    for i in range(2):
        for c in cols:
            schema[f"{c}\x1f{i}"] = lake[c]
    out = []
    for (mask,), grp in partial.group_by("x_Conformance", maintain_order=True):
        row: dict[str, Any] = {"x_Conformance": mask, "__n": int(grp[count].sum())}
        for i in range(2):
            j = min(i, grp.height - 1)
            for c in cols:
                row[f"{c}\x1f{i}"] = grp[c][j] if mask is not None else None
        out.append(row)
    if clean_rows:
        out.append({"x_Conformance": None, "__n": clean_rows})
    return pl.DataFrame(out, schema=schema, orient="row") if out else pl.DataFrame(schema=schema)


def report_from_groups(groups: pl.DataFrame, *, sample_size: int = 3) -> ConformanceReport:
    """A :class:`ConformanceReport` from one or more :func:`groups_from_partial` frames."""
    ids = [c for c in _SAMPLE_ID_COLUMNS if f"{c}\x1f0" in groups.columns]
    rows = int(groups["__n"].sum() or 0)
    flagged = groups.filter(pl.col("x_Conformance").is_not_null())
    report = ConformanceReport(rows, {}, int(flagged["__n"].sum() or 0))
    checks: dict[str, CheckResult] = {}
    for g in flagged.sort("__n", descending=True).iter_rows(named=True):
        for cid in decode_mask(g["x_Conformance"]):
            column, _, rule = cid.partition(":")
            res = checks.setdefault(cid, CheckResult(cid, column, rule, 0, []))
            res.count += g["__n"]
            for i in range(2 if g["__n"] > 1 else 1):
                if len(res.samples) >= sample_size:
                    break
                sample = {c: _jsonable(g[f"{c}\x1f{i}"]) for c in ids}
                sample["column"] = column
                sample["value"] = _jsonable(g.get(f"{column}\x1f{i}"))
                if sample not in res.samples:
                    res.samples.append(sample)
    report.checks = dict(sorted(checks.items()))
    return report


def conformance(normalized: pl.LazyFrame, *, sample_size: int = 3) -> ConformanceReport:
    """Count rows per check from ``x_Conformance`` in one streaming pass, with a few sample rows."""
    keys = [*SAMPLE_KEYS, "x_Conformance"]
    partial = normalized.group_by(keys).agg(pl.len().alias("__rows"), *sample_aggs(keys)).collect(engine="streaming")
    return report_from_groups(groups_from_partial(partial, "__rows"), sample_size=sample_size)
