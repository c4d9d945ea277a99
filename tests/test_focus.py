"""FOCUS module: spec loading, reading exports, dialect clean-up and per-row conformance."""

from __future__ import annotations

import csv
import gzip
import json
from datetime import date, datetime, timezone
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import polars as pl
import pytest

from costguard import focus
from costguard.errors import DataError

SAMPLE = Path(__file__).parent / "fixtures" / "focus" / "focus_sample.csv"
EXPECTED = {"AWS": Decimal("18.006639"), "Microsoft": Decimal("1.976514"), "Oracle": Decimal("0.537074")}


def _load(path: Path | str) -> pl.DataFrame:
    return focus.normalize(focus.scan(str(path)), file=str(path)).collect(engine="streaming")


def _totals(df: pl.DataFrame) -> dict[str, Decimal]:
    out = df.group_by("ProviderName").agg(pl.col("BilledCost").sum())
    return dict(zip(out["ProviderName"], out["BilledCost"]))


def _raw_rows() -> list[dict[str, str]]:
    with SAMPLE.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def sample() -> pl.DataFrame:
    return _load(SAMPLE)


def _write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


# ------------------------------------------------------------------------------------------ spec


@pytest.mark.parametrize("version", focus.SPEC_VERSIONS)
def test_spec_versions_load_with_21_mandatory_columns(version: str) -> None:
    cols = focus.columns(version)
    assert len(focus.mandatory(version)) == 21
    assert {"BilledCost", "ChargePeriodStart", "ProviderName"} <= set(focus.mandatory(version))
    assert cols["BilledCost"] == focus.ColumnSpec("BilledCost", "Decimal", False, "Mandatory", None, "0.5")
    assert cols["ChargeCategory"].allowed_values and "Usage" in cols["ChargeCategory"].allowed_values
    assert set(focus.mandatory("1.0")) == set(focus.mandatory("1.2"))


def test_lake_schema_is_focus_1_2_plus_extras() -> None:
    schema = focus.lake_schema()
    n = len(focus.CARRIED)
    assert list(schema)[: -3 - n] == list(focus.columns("1.2"))
    assert list(schema)[-3 - n : -3] == list(focus.CARRIED)  # FOCUS 1.3/1.4 columns carried as-is
    assert list(schema)[-3:] == ["x_ChargeDate", "x_Tags", "x_Conformance"]
    assert schema["BilledCost"] == pl.Decimal(38, 10)
    assert schema["ChargePeriodStart"] == pl.Datetime("us", "UTC")
    assert schema["Tags"] == pl.String and schema["x_ChargeDate"] == pl.Date
    with pytest.raises(ValueError):
        focus.columns("0.9")


# -------------------------------------------------------------------------------- sample: reading


def test_sample_totals_are_exact(sample: pl.DataFrame) -> None:
    assert sample.height == 1000
    assert sample.schema == pl.Schema(focus.row_schema())
    totals = _totals(sample)
    exact: dict[str, Decimal] = {}
    for r in _raw_rows():
        value = Decimal(r["BilledCost"]).quantize(Decimal("1e-10"), ROUND_HALF_EVEN)  # the lake's scale is 10
        exact[r["ProviderName"]] = exact.get(r["ProviderName"], Decimal(0)) + value
    assert totals == exact  # exactly the sum of the source strings, no float on the way
    for provider, expected in EXPECTED.items():
        assert totals[provider].quantize(Decimal("0.000001")) == expected
        assert totals[provider].quantize(Decimal("0.01")) == expected.quantize(Decimal("0.01"))


def test_sample_conformance_flags_without_dropping_rows(sample: pl.DataFrame) -> None:
    report = focus.conformance(focus.normalize(focus.scan(str(SAMPLE)), file=str(SAMPLE)))
    assert report.rows == 1000
    assert report.checks["ChargeFrequency:allowed_values"].count == 7
    assert report.checks["ContractedCost:nullability"].count == 7
    assert report.flagged_rows == sample["x_Conformance"].is_not_null().sum()
    freq = report.checks["ChargeFrequency:allowed_values"]
    assert (freq.column, freq.rule) == ("ChargeFrequency", "allowed_values")
    assert 1 <= len(freq.samples) <= 3 and all(s["value"] == "Usage-based" for s in freq.samples)
    # flagged, not fixed: the wrong-case value is still there
    assert sample.filter(pl.col("ChargeFrequency") == "Usage-based").height == 7
    assert sample["x_Reject"].is_null().all()  # nothing in the sample is unstorable
    d = report.to_dict()
    assert json.loads(json.dumps(d)) == d and d["rows"] == 1000
    line = next(s for s in report.summary_lines() if s.startswith("ChargeFrequency:allowed_values"))
    assert "7 rows" in line and "'Usage-based'" in line and "Usage-Based" in line


def test_timestamps_parse_to_utc_and_charge_date(sample: pl.DataFrame) -> None:
    first = sample.row(0, named=True)
    assert first["ChargePeriodStart"] == datetime(2024, 9, 18, 22, tzinfo=timezone.utc)
    assert first["ChargePeriodEnd"] == datetime(2024, 9, 18, 23, tzinfo=timezone.utc)
    assert first["BillingPeriodStart"] == datetime(2024, 9, 1, tzinfo=timezone.utc)
    assert first["x_ChargeDate"] == date(2024, 9, 18)
    assert sample["ChargePeriodStart"].null_count() == 0
    assert (sample["x_ChargeDate"] == sample["ChargePeriodStart"].dt.date()).all()


def test_timestamp_dialects(tmp_path: Path) -> None:
    rows = _raw_rows()[:6]
    stamps = ["2024-09-18 22:00:00", "2024-09-18T22:00:00Z", "2024-09-18T22:00:00.250Z", "2024-09-18T23:00:00+01:00", "2024-09-18", "2024-09-18T22:00:00.5"]
    for r, s in zip(rows, stamps):
        r["ChargePeriodStart"] = s
    df = _load(_write_csv(tmp_path / "ts.csv", rows))
    got = df["ChargePeriodStart"].to_list()
    base = datetime(2024, 9, 18, 22, tzinfo=timezone.utc)
    assert got == [base, base, base.replace(microsecond=250000), base, base.replace(hour=0), base.replace(microsecond=500000)]
    assert df["x_Conformance"].is_null().all() or not focus.flags(df["x_Conformance"]).str.contains("ChargePeriodStart").any()


def test_tags_normalised(tmp_path: Path, sample: pl.DataFrame) -> None:
    raw_tags = [t for t in sample["Tags"].drop_nulls().to_list() if any(k != k.strip() for k in json.loads(t))]
    assert raw_tags, "the sample has tag keys with a leading space"
    rows = _raw_rows()[:4]
    rows[0]["Tags"] = '{" Team": "Data", "CostCenter": 42, "env": "prod"}'
    rows[1]["Tags"] = "{}"
    rows[2]["Tags"] = "NULL"
    rows[3]["Tags"] = "not json"
    df = _load(_write_csv(tmp_path / "tags.csv", rows))
    assert df["Tags"][0] == rows[0]["Tags"]  # Tags keeps the original string
    assert json.loads(df["x_Tags"][0]) == {"team": "Data", "costcenter": "42", "env": "prod"}
    assert df["x_Tags"][0] == '{"costcenter":"42","env":"prod","team":"Data"}'
    assert df["x_Tags"][1:].to_list() == [None, None, None]
    assert df["Tags"][1] == "{}" and df["Tags"][2] is None and df["Tags"][3] is None
    assert df["x_Conformance"][3] is not None and "Tags:type" in focus.decode_mask(df["x_Conformance"][3])
    for t, x in sample.select("Tags", "x_Tags").drop_nulls().iter_rows():
        assert all(k == k.strip().lower() for k in json.loads(x))


# ---------------------------------------------------------------------------------- file formats


def test_gzip_parquet_and_bom_give_identical_totals(tmp_path: Path, sample: pl.DataFrame) -> None:
    data = SAMPLE.read_bytes()
    (tmp_path / "s.csv.gz").write_bytes(gzip.compress(data))
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + data)
    focus.scan(str(SAMPLE)).collect().write_parquet(tmp_path / "s.parquet")
    expected = _totals(sample)
    for name in ("s.csv.gz", "s.parquet", "bom.csv"):
        df = _load(tmp_path / name)
        assert df.height == 1000, name
        assert _totals(df) == expected, name
        assert df["x_Conformance"].equals(sample["x_Conformance"]), name
    assert "AvailabilityZone" in focus.scan(str(tmp_path / "bom.csv")).collect_schema()


def test_typed_parquet_with_naive_timestamps_and_floats(tmp_path: Path) -> None:
    df = focus.scan(str(SAMPLE)).collect().head(3)
    df = df.with_columns(
        pl.col("ChargePeriodStart").str.to_datetime("%Y-%m-%d %H:%M:%S"),  # naive -> UTC
        pl.col("ChargePeriodEnd").str.to_datetime("%Y-%m-%d %H:%M:%S").dt.replace_time_zone("Europe/Berlin"),
        pl.col("BilledCost").cast(pl.Float64),
        pl.col("ListCost").cast(pl.Decimal(20, 12)),
    )
    df.write_parquet(tmp_path / "typed.parquet")
    out = _load(tmp_path / "typed.parquet")
    assert out.schema == pl.Schema(focus.row_schema())
    assert out["ChargePeriodStart"][0] == datetime(2024, 9, 18, 22, tzinfo=timezone.utc)
    assert out["ChargePeriodEnd"][0] == datetime(2024, 9, 18, 21, tzinfo=timezone.utc)
    assert out["BilledCost"][0] == Decimal("0.0000008")


@pytest.mark.parametrize(("zone", "starts", "nulls", "expected"), [
    # one instant 23:30 in New York is the next day in UTC: answered from min/max alone
    ("America/New_York", [datetime(2026, 3, 1, 23, 30)] * 3, 0, {date(2026, 3, 2)}),
    # naive timestamps are UTC; a null ChargePeriodStart is reported as None
    (None, [datetime(2026, 3, 1, 0, 0), datetime(2026, 3, 1, 23, 59)], 1, {date(2026, 3, 1), None}),
    # several days: every distinct day, none in between that has no rows
    ("UTC", [datetime(2026, 3, 1, 5), datetime(2026, 3, 4, 5), datetime(2026, 3, 4, 6)], 0,
     {date(2026, 3, 1), date(2026, 3, 4)}),
    (None, [], 2, {None}),
])
def test_file_days_of_typed_parquet(tmp_path: Path, zone: str | None, starts: list, nulls: int, expected: set) -> None:
    base = focus.scan(str(SAMPLE)).collect().head(len(starts) + nulls)
    col = pl.Series("ChargePeriodStart", [*starts, *([None] * nulls)], dtype=pl.Datetime("us"))
    if zone:
        col = col.dt.replace_time_zone(zone)
    base.with_columns(col).write_parquet(tmp_path / "typed.parquet")
    got = focus.file_days(focus.scan(str(tmp_path / "typed.parquet")), file="typed.parquet")
    assert got == expected
    # the same days as the full normalisation gives the rows
    rows = _load(tmp_path / "typed.parquet")
    assert set(rows["x_ChargeDate"].to_list()) == expected


def test_streaming_sink(tmp_path: Path) -> None:
    lf = focus.normalize(focus.scan(str(SAMPLE)), file=str(SAMPLE))
    lf.sink_parquet(tmp_path / "lake.parquet")
    back = pl.read_parquet(tmp_path / "lake.parquet")
    assert back.height == 1000 and back.schema == pl.Schema(focus.row_schema())


def test_discover_local_globs(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    for p in ("x.csv", "a/y.csv", "a/b/z.csv", "a/b/z.parquet"):
        (tmp_path / p).write_text("h\n")
    got = focus.discover(["**/*.csv", "a/b/*.csv", str(tmp_path / "a" / "b" / "z.parquet")], tmp_path)
    assert got == sorted({str(tmp_path / p) for p in ("x.csv", "a/y.csv", "a/b/z.csv", "a/b/z.parquet")})
    with pytest.raises(DataError, match=r"nothing/\*\.parquet"):
        focus.discover(["nothing/*.parquet"], tmp_path)


# --------------------------------------------------------------------------------------- failures


def test_missing_mandatory_column(tmp_path: Path) -> None:
    df = focus.scan(str(SAMPLE)).collect().drop("BilledCost", "ServiceName")
    path = tmp_path / "nocost.csv"
    df.write_csv(path)
    with pytest.raises(DataError) as e:
        focus.normalize(focus.scan(str(path)), file=str(path))
    assert str(path) in str(e.value) and "BilledCost" in str(e.value) and "ServiceName" in str(e.value)


def test_extra_and_missing_optional_columns(tmp_path: Path) -> None:
    df = focus.scan(str(SAMPLE)).collect().drop("AvailabilityZone", "Tags").with_columns(pl.lit("x").alias("MyColumn"))
    path = tmp_path / "extra.csv"
    df.write_csv(path)
    out = _load(path)
    assert out.columns == list(focus.row_schema())
    assert out["AvailabilityZone"].is_null().all() and out["x_Tags"].is_null().all()


def test_truncated_parquet(tmp_path: Path) -> None:
    good = tmp_path / "good.parquet"
    focus.scan(str(SAMPLE)).collect().write_parquet(good)
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match="bad.parquet"):
        focus.normalize(focus.scan(str(bad)), file=str(bad)).collect()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b[: len(b) - 200],  # cut off mid-row
        lambda b: b.replace(b'"Usage-Based","2024-09-18 23:00:00"', b'"Usage-Based"', 1),  # a short row
        lambda b: b.replace(b'"Usage-Based","2024-09-18 23:00:00"', b'"Usage-Based",1,"2024-09-18 23:00:00"', 1),  # a long row
    ],
    ids=["truncated", "short-row", "long-row"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["read-whole", "streamed"])
def test_ragged_or_truncated_csv(tmp_path: Path, mutate, stream: bool) -> None:
    bad = tmp_path / "ragged.csv"
    bad.write_bytes(mutate(SAMPLE.read_bytes()))
    with pytest.raises(DataError, match="ragged.csv"):
        focus.normalize(focus.scan(str(bad), stream_csv_above=0 if stream else focus.STREAM_CSV_ABOVE), file=str(bad)).collect()


def test_large_csv_is_streamed_with_the_same_result(tmp_path: Path) -> None:
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + SAMPLE.read_bytes())
    for f in (SAMPLE, bom):
        whole = focus.normalize(focus.scan(str(f)), file=str(f))
        streamed = focus.normalize(focus.scan(str(f), stream_csv_above=0), file=str(f))
        a = whole.collect().sort("ChargePeriodStart", "BilledCost", "ResourceId", nulls_last=True)
        b = streamed.collect(engine="streaming").sort("ChargePeriodStart", "BilledCost", "ResourceId", nulls_last=True)
        assert a.equals(b), f
        rs, rw = focus.conformance(streamed), focus.conformance(whole)
        assert (rs.rows, rs.flagged_rows) == (rw.rows, rw.flagged_rows) == (1000, 7)
        assert {k: v.count for k, v in rs.checks.items()} == {k: v.count for k, v in rw.checks.items()}


def test_truncated_gzip_and_missing_file(tmp_path: Path) -> None:
    gz = gzip.compress(SAMPLE.read_bytes())
    bad = tmp_path / "cut.csv.gz"
    bad.write_bytes(gz[: len(gz) // 2])
    with pytest.raises(DataError, match="cut.csv.gz"):
        focus.scan(str(bad))
    with pytest.raises(DataError, match="nope.csv"):
        focus.scan(str(tmp_path / "nope.csv"))


def test_unreadable_cost_or_date_marks_the_row_rejected_with_its_value(tmp_path: Path) -> None:
    rows = _raw_rows()
    rows[5]["BilledCost"] = "12,50 EUR"
    rows[6]["ChargePeriodStart"] = "yesterday"
    rows[7]["ChargePeriodStart"] = "NULL"
    rows[8]["EffectiveCost"] = "n/a"
    df = _load(_write_csv(tmp_path / "badcost.csv", rows))
    assert df.height == 1000  # nothing dropped here: the lake stores, rejects or skips each row
    assert df["BilledCost"][5] is None and focus.decode_mask(df["x_Conformance"][5]) == ["BilledCost:type"]
    got = df.select("x_Reject", "x_RejectValue").slice(5, 4).rows()
    assert got == [("BilledCost is not a decimal number", "12,50 EUR"),
                   ("ChargePeriodStart is not a date/time (ISO 8601 expected)", "yesterday"),
                   ("ChargePeriodStart is null", None),
                   ("EffectiveCost is not a decimal number", "n/a")]
    assert df["x_Reject"].is_not_null().sum() == 4


def test_report_merge() -> None:
    a = focus.ConformanceReport(10, {"X:type": focus.CheckResult("X:type", "X", "type", 2, [{"value": 1}])}, 2)
    b = focus.ConformanceReport(5, {"X:type": focus.CheckResult("X:type", "X", "type", 1, [{"value": 2}]), "Y:nullability": focus.CheckResult("Y:nullability", "Y", "nullability", 3, [])}, 3)
    m = a.merge(b)
    assert (m.rows, m.flagged_rows) == (15, 5)
    assert m.checks["X:type"].count == 3 and len(m.checks["X:type"].samples) == 2
    assert m.checks["Y:nullability"].count == 3
    assert a.checks["X:type"].count == 2  # inputs untouched


def test_s3_discover_and_csv_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    moto = pytest.importorskip("moto")
    import boto3

    for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    with moto.mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="billing")
        data = SAMPLE.read_bytes()
        s3.put_object(Bucket="billing", Key="focus/2024/09/part-1.csv.gz", Body=gzip.compress(data))
        s3.put_object(Bucket="billing", Key="focus/2024/09/notes.txt", Body=b"x")
        s3.put_object(Bucket="billing", Key="focus/part-0.csv", Body=data)
        opts = {"aws_region": "us-east-1"}
        got = focus.discover(["s3://billing/focus/**/*.csv*"], Path("."), opts)
        assert got == ["s3://billing/focus/2024/09/part-1.csv.gz", "s3://billing/focus/part-0.csv"]
        for uri in got:
            assert _totals(focus.normalize(focus.scan(uri, opts), file=uri).collect()) == _totals(_load(SAMPLE))
        with pytest.raises(DataError, match=r"s3://billing/other/\*\.parquet"):
            focus.discover(["s3://billing/other/*.parquet"], Path("."), opts)
