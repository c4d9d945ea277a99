"""Athena push-down: the SQL generated from ``rollup.py`` gives the local rollup to the cent (run on
DuckDB over the same parquet), and the boto3 call flow (start, poll, paged results, failure states,
workgroup, output location, bytes scanned and capped) against moto and a small Athena fake."""

from __future__ import annotations

import json
import threading
from datetime import date
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import polars as pl
import pytest

pytest.importorskip("moto.server")
duckdb = pytest.importorskip("duckdb")

from aws_env import moto_endpoint, seed_athena, world  # noqa: E402,F401
from aws_exports import put_export, sample_aws, typed_focus  # noqa: E402
from conftest import write_config  # noqa: E402
from costguard import focus, rollup, rollup_sql  # noqa: E402
from costguard.model import Window  # noqa: E402
from costguard.providers.aws.athena import AthenaSource, results_frame, to_focus_rows  # noqa: E402
from costguard.providers.aws.clients import PullFailed  # noqa: E402
from costguard.providers.aws.config import AthenaCosts  # noqa: E402
from costguard.providers.aws.exports import ExportReader  # noqa: E402
from costguard.providers.base import Horizon  # noqa: E402

CENT = Decimal("0.01")
SEPT = Window(date(2024, 9, 1), date(2024, 10, 1))


def hive_export(tmp_path: Path) -> Path:
    """The sample's AWS rows as an export on disk: BILLING_PERIOD=2024-09/part-00001.parquet."""
    folder = tmp_path / "export" / "BILLING_PERIOD=2024-09"
    folder.mkdir(parents=True)
    typed_focus(sample_aws()).write_parquet(folder / "part-00001.parquet")
    return tmp_path / "export"


def duck(export: Path) -> Any:
    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions=false")
    con.execute("SET TimeZone='UTC'")
    con.execute("CREATE SCHEMA focus_db")
    con.execute(f"CREATE VIEW focus_db.focus AS SELECT *, BILLING_PERIOD AS billing_period "
                f"FROM read_parquet('{export}/*/*.parquet', hive_partitioning=true)")
    return con


def as_athena_text(con: Any, sql: str) -> tuple[list[str], list[list[str | None]]]:
    """Run the query and return what Athena would: a header and text values (timestamps without zone)."""
    rel = con.sql(sql)
    cols = [f'CAST(CAST("{c}" AS TIMESTAMP) AS VARCHAR) AS "{c}"' if "TIMESTAMP" in str(t).upper()
            else f'CAST("{c}" AS VARCHAR) AS "{c}"' for c, t in zip(rel.columns, rel.types, strict=True)]
    got = con.sql(f"SELECT {', '.join(cols)} FROM ({sql})").fetchall()
    return list(rel.columns), [list(r) for r in got]


def sums(df: pl.DataFrame) -> dict[tuple, tuple]:
    keys = [k for k in rollup.ROLLUP_KEYS]
    out = {}
    for r in df.iter_rows(named=True):
        out[tuple(r[k] for k in keys)] = tuple((r[m] or Decimal(0)).quantize(CENT) if r[m] is not None else None for m in rollup.SUMMED)
    return out


def test_generated_sql_on_duckdb_equals_the_local_rollup_to_the_cent(tmp_path):
    export = hive_export(tmp_path)
    con = duck(export)
    cols = [r[0] for r in con.execute("DESCRIBE focus_db.focus").fetchall()]
    sql = rollup_sql.rollup_query("focus_db.focus", cols, start=SEPT.start, end=SEPT.end, dialect="duckdb",
                                  partition_column="billing_period", partitions=["2024-09"])
    header, rows = as_athena_text(con, sql)
    pushed = rollup.combine(rollup.rollup(focus.normalize(to_focus_rows(results_frame(header, rows)).lazy(), file="duckdb"), "s").lazy())
    local_rows = focus.normalize(pl.scan_parquet(str(export / "*" / "*.parquet"), hive_partitioning=False), file="local")
    local = rollup.combine(rollup.rollup(local_rows, "s").lazy())
    assert pushed.height == local.height > 100
    assert sums(pushed) == sums(local)
    assert pushed["BilledCost"].sum() == local["BilledCost"].sum()  # exact, not only to the cent
    assert int(results_frame(header, rows)[rollup_sql.SOURCE_ROWS].cast(pl.Int64).sum()) == 942  # every export row counted
    # the same definition renders for Athena (Trino) and BigQuery
    for dialect in ("athena", "bigquery"):
        rendered = rollup_sql.rollup_query("focus_db.focus", cols, start=SEPT.start, end=SEPT.end, dialect=dialect,
                                           partition_column="billing_period", partitions=["2024-09"])
        assert rollup_sql.parse(rendered, dialect) is not None and "GROUP BY" in rendered


def test_athena_source_against_moto_stores_the_rollup(cli, tmp_path, world):
    export = hive_export(tmp_path)
    con = duck(export)
    cols = [r[0] for r in con.execute("DESCRIBE focus_db.focus").fetchall()]
    # the export in S3 (its manifest says which billing periods exist) and its table in Glue
    s3 = world.client("s3")
    s3.create_bucket(Bucket="billing")
    put_export(s3, "billing", "exports/focus/", "focus", "2024-09", [typed_focus(sample_aws())])
    glue = world.client("glue")
    glue.create_database(DatabaseInput={"Name": "focus_db"})
    glue.create_table(DatabaseName="focus_db", TableInput={
        "Name": "focus", "PartitionKeys": [{"Name": "billing_period", "Type": "string"}],
        "StorageDescriptor": {"Columns": [{"Name": c.lower(), "Type": "string" if c != "Tags" else "map<string,string>"}
                                          for c in cols if c not in ("BILLING_PERIOD", "billing_period")]}})
    # moto does not run SQL: it answers with what the same SQL gives on DuckDB over the same rows
    sql = rollup_sql.rollup_query("focus_db.focus", cols, start=SEPT.start, end=SEPT.end, dialect="duckdb",
                                  partition_column="billing_period", partitions=["2024-09"])
    header, rows = as_athena_text(con, sql)
    seed_athena(world.moto, [{"rows": [{"Data": [{"VarCharValue": h} for h in header]}]
                              + [{"Data": [({"VarCharValue": v} if v is not None else {}) for v in r]} for r in rows],
                              "column_info": [{"Name": h, "Label": h, "Type": "varchar", "CatalogName": "awsdatacatalog",
                                               "SchemaName": "focus_db", "TableName": "focus", "Nullable": "UNKNOWN",
                                               "Precision": 0, "Scale": 0, "CaseSensitive": True} for h in header]}])
    cfg = write_config(tmp_path, f"""
        state: {{url: "sqlite:///state.db", lake: lake}}
        providers:
          - name: aws-athena
            type: aws
            endpoint_url: "{world.endpoint}"
            regions: [us-east-1]
            costs: {{source: athena, uri: "s3://billing/exports/focus/", table: focus_db.focus,
                    workgroup: primary, output_location: "s3://athena-results/costguard/", poll_seconds: 0.01}}
            inventory: {{enabled: false}}
            budgets: false
        rules: []
        """)
    r = cli("run", "--once", "-c", cfg, "--as-of", "2024-10-15")
    assert "aws-athena: ok" in r.stdout, r.stdout
    apis = world.proxy.apis()
    assert apis["athena:StartQueryExecution"] == 1 and apis["athena:GetQueryResults"] == 1 and apis["glue:GetTable"] == 1
    assert apis["athena:GetQueryExecution"] >= 1 and "s3:GetObject" not in apis  # no export row crosses the network
    start = next(r for r in world.proxy.requests if r.api == "athena:StartQueryExecution")
    sent = json.loads(start.body)
    assert sent["WorkGroup"] == "primary" and sent["ResultConfiguration"] == {"OutputLocation": "s3://athena-results/costguard/"}
    assert "\"billing_period\" IN ('2024-09')" in sent["QueryString"] and "GROUP BY" in sent["QueryString"]
    got = {(x["ProviderName"]): Decimal(str(x["BilledCost"])) for x in cli.json("costs", "-c", cfg, "--by", "ProviderName", "--exact")}
    assert got["AWS"].quantize(CENT) == Decimal("18.01") and abs(got["AWS"] - Decimal("18.006639")) < Decimal("0.000001")


class FakeAthena:
    """A JSON 1.1 Athena that pages results and ends queries in chosen states (moto always succeeds)."""

    def __init__(self, states: list[str], *, scanned: int, rows: list[list[str]], header: list[str], page: int = 2,
                 reason: str = "") -> None:
        self.calls: list[tuple[str, dict]] = []
        fake = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                op = self.headers["X-Amz-Target"].split(".")[-1]
                fake.calls.append((op, body))
                if op == "StartQueryExecution":
                    out: dict[str, Any] = {"QueryExecutionId": f"q{len(fake.calls)}"}
                elif op == "GetQueryExecution":
                    n = sum(1 for c in fake.calls if c[0] == "GetQueryExecution")
                    state = states[min(n, len(states)) - 1]
                    out = {"QueryExecution": {"QueryExecutionId": body["QueryExecutionId"],
                                              "Status": {"State": state, "StateChangeReason": reason},
                                              "Statistics": {"DataScannedInBytes": scanned}}}
                elif op == "GetQueryResults":
                    start = int(body.get("NextToken") or 0)
                    data = ([header] if start == 0 else []) + rows[start:start + page]
                    out = {"ResultSet": {"Rows": [{"Data": [{"VarCharValue": v} for v in r]} for r in data],
                                         "ResultSetMetadata": {"ColumnInfo": [{"Name": h, "Type": "varchar"} for h in header]}}}
                    if start + page < len(rows):
                        out["NextToken"] = str(start + page)
                else:
                    out = {}
                payload = json.dumps(out).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def ops(self) -> list[str]:
        return [c[0] for c in self.calls]


ROWS_HEADER = ["x_ChargeDate", "ProviderName", "BillingAccountId", "SubAccountId", "ServiceName", "ServiceCategory",
               "ChargeCategory", "BillingCurrency", "BillingPeriodStart", "BillingPeriodEnd", "InvoiceIssuerName",
               "PublisherName", "BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "x_SourceRows"]


def fake_rows(n: int) -> list[list[str]]:
    return [[f"2024-09-{d + 1:02d}", "AWS", "999", "111", "AWS Lambda", "Compute", "Usage", "USD", "2024-09-01 00:00:00.000",
             "2024-10-01 00:00:00.000", "AWS", "AWS", "1.25", "1.25", "1.25", "1.25", "7"] for d in range(n)]


def source(world, fake: FakeAthena, *, max_gb: float = 500, timeout: float = 900, clock=None) -> AthenaSource:
    s3 = world.client("s3")
    s3.create_bucket(Bucket="billing")
    put_export(s3, "billing", "exports/focus/", "focus", "2024-09", [typed_focus(sample_aws().head(5))])
    glue = world.client("glue")
    glue.create_database(DatabaseInput={"Name": "db"})
    glue.create_table(DatabaseName="db", TableInput={"Name": "focus", "StorageDescriptor": {
        "Columns": [{"Name": c, "Type": "string"} for c in ("chargeperiodstart", "billedcost", "providername")]}})
    cfg = AthenaCosts(source="athena", uri="s3://billing/exports/focus/", table="db.focus", poll_seconds=0.001,
                      max_scanned_gb=max_gb, timeout_seconds=timeout, output_location="s3://r/")
    athena = boto3.client("athena", region_name="us-east-1", endpoint_url=fake.endpoint)
    reader = ExportReader(cfg.uri, "focus", lambda: world.client("s3"), backfill_days=90)
    kw = {"clock": clock} if clock else {}
    return AthenaSource(cfg, lambda: athena, lambda: glue, reader, sleep=lambda _s: None, **kw)


def test_athena_results_are_paged_and_polled_until_done(world):
    fake = FakeAthena(["QUEUED", "RUNNING", "RUNNING", "SUCCEEDED"], scanned=123_456, rows=fake_rows(5), header=ROWS_HEADER)
    src = source(world, fake)
    [part] = list(src.costs([SEPT], Horizon(date(2024, 10, 15))))
    assert fake.ops() == ["StartQueryExecution", *["GetQueryExecution"] * 4, *["GetQueryResults"] * 3]
    assert part.rows_read == 5 and "5 rollup rows of 35 export rows, 123456 bytes scanned" in part.origin
    df = part.rows.collect()
    assert df["BilledCost"].sum() == Decimal("6.25") and df["x_Reject"].null_count() == 5
    assert src.scanned_bytes == 123_456


@pytest.mark.parametrize("state", ["FAILED", "CANCELLED"])
def test_athena_failure_states_fail_the_pull_with_the_reason(world, state):
    fake = FakeAthena(["RUNNING", state], scanned=10, rows=[], header=ROWS_HEADER, reason="HIVE_CURSOR_ERROR: bad file")
    src = source(world, fake)
    with pytest.raises(PullFailed, match=f"{state}: HIVE_CURSOR_ERROR: bad file"):
        list(src.costs([SEPT], Horizon(date(2024, 10, 15))))
    assert "GetQueryResults" not in fake.ops()


def test_athena_bytes_scanned_cap_stops_further_queries(world):
    fake = FakeAthena(["SUCCEEDED"], scanned=2 * 1024 ** 3, rows=fake_rows(1), header=ROWS_HEADER)
    src = source(world, fake, max_gb=1.5)
    it = src.costs([Window(date(2024, 9, 1), date(2024, 9, 10)), Window(date(2024, 9, 20), date(2024, 9, 25))], Horizon(date(2024, 10, 15)))
    next(it)
    with pytest.raises(PullFailed, match=r"scanned 2.00 GB this run, over costs.max_scanned_gb \(1.5\)"):
        next(it)
    assert fake.ops().count("StartQueryExecution") == 1


def test_athena_timeout_stops_the_query(world):
    fake = FakeAthena(["RUNNING"], scanned=0, rows=[], header=ROWS_HEADER)
    ticks = iter(range(1000))  # a deterministic clock: the deadline passes on the first poll
    src = source(world, fake, timeout=0.0001, clock=lambda: float(next(ticks)))
    with pytest.raises(PullFailed, match="still RUNNING after 0 s; stopped it"):
        list(src.costs([SEPT], Horizon(date(2024, 10, 15))))
    assert fake.ops()[-1] == "StopQueryExecution"
