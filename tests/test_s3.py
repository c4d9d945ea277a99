"""FOCUS exports in S3: the real boto3 and polars object store against moto's server."""

from __future__ import annotations

import gzip
import io

import boto3
import polars as pl
import pytest

from conftest import SAMPLE, write_config

moto_server = pytest.importorskip("moto.server")


@pytest.fixture
def s3_endpoint(monkeypatch):
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    srv = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    srv.start()
    host, port = srv.get_host_and_port()
    yield f"http://{host}:{port}"
    srv.stop()


def test_parquet_and_gzip_csv_from_s3(cli, tmp_path, s3_endpoint):
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="billing")
    df = pl.read_csv(SAMPLE, infer_schema=False, null_values=["NULL"])
    aws = df.filter(pl.col("ProviderName") == "AWS")
    rest = df.filter(pl.col("ProviderName") != "AWS")
    buf = io.BytesIO()
    aws.write_parquet(buf)
    s3.put_object(Bucket="billing", Key="focus/data/BILLING_PERIOD=2024-09/part-0.parquet", Body=buf.getvalue())
    s3.put_object(Bucket="billing", Key="focus/data/BILLING_PERIOD=2024-09/other.csv.gz",
                  Body=gzip.compress(rest.write_csv(null_value="NULL").encode()))
    s3.put_object(Bucket="billing", Key="focus/README.txt", Body=b"not billing data")
    cfg = write_config(tmp_path, f"""
        state: {{url: "sqlite:///state.db", lake: lake}}
        providers:
          - name: s3-export
            type: focus
            paths: ["s3://billing/focus/data/**/*.parquet", "s3://billing/focus/data/**/*.csv.gz"]
            endpoint_url: "{s3_endpoint}"
            storage_options: {{aws_region: us-east-1}}
        rules: []
        """)
    cli("run", "--once", "-c", cfg, "--as-of", "2024-09-30")
    rows = cli.json("costs", "-c", cfg, "--by", "ProviderName")
    assert {r["ProviderName"]: r["BilledCost"] for r in rows} == {"AWS": 18.006639, "Microsoft": 1.976514, "Oracle": 0.537074}


def test_missing_bucket_is_a_provider_failure_not_a_crash(cli, tmp_path, s3_endpoint):
    cfg = write_config(tmp_path, f"""
        state: {{url: "sqlite:///state.db", lake: lake}}
        providers:
          - {{name: gone, type: focus, paths: ["s3://no-such-bucket/x/*.parquet"], endpoint_url: "{s3_endpoint}"}}
        rules: []
        """)
    r = cli("run", "--once", "-c", cfg, "--as-of", "2024-09-30", expect=3)
    assert "no-such-bucket" in r.stdout and "FAILED" in r.stdout
