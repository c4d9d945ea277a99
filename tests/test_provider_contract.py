"""The contract every provider type keeps (APScheduler's one-suite-per-backend idea), plus a lint
of the provider and receiver registries.

A new provider adds one ``ProviderCase`` to ``CASES``: a function that builds the provider
against a prepared environment (files in ``tmp_path``, a moto server, a local fake) and the
window that has data. Every test below then runs against it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl
import pytest
import yaml

from costguard import focus
from costguard.app import utcnow
from costguard.build import BuildContext
from costguard.errors import ProviderError
from costguard.inventory import INVENTORY_SCHEMA
from costguard.lake import Lake
from costguard.model import NativeBudget, Window, contiguous_windows
from costguard.notify import RECEIVERS
from costguard.providers import PROVIDERS, Check, Horizon, Part, Provider, ProviderStatus
from costguard.rules.base import docstring_example

from conftest import SAMPLE
from focus_rows import days, row, write


@dataclass(frozen=True)
class ProviderCase:
    name: str
    build: Callable[[Path], Provider]       # a working provider with data in ``window``
    broken: Callable[[Path], Provider]      # one whose source is unusable (must fail with ProviderError)
    window: Window
    as_of: date


def _ctx(tmp_path: Path) -> BuildContext:
    return BuildContext(base_dir=tmp_path, clock=utcnow)


def _focus(tmp_path: Path) -> Provider:
    (tmp_path / "exports").mkdir(exist_ok=True)
    (tmp_path / "exports" / "s.csv").write_bytes(SAMPLE.read_bytes())
    write(tmp_path / "exports" / "extra.csv", [row(d, "2.00") for d in days(date(2024, 9, 1), 3)])
    (tmp_path / "inventory.csv").write_text("provider,account_id,resource_id,resource_class,sku\nAWS,1,i-1,instance,m5.large\n")
    cfg = PROVIDERS.get("focus").model_validate(
        {"name": "contract", "type": "focus", "paths": ["exports/*.csv"], "inventory": "inventory.csv"})
    return cfg.build(_ctx(tmp_path))


def _focus_broken(tmp_path: Path) -> Provider:
    cfg = PROVIDERS.get("focus").model_validate({"name": "contract", "type": "focus", "paths": ["nothing/*.csv"]})
    return cfg.build(_ctx(tmp_path))


def _aws(tmp_path: Path, *, bucket: str | None = None) -> Provider:
    """A FOCUS export of the sample in moto's S3 (a bucket of its own), read by ``type: aws``."""
    import uuid
    from datetime import datetime, timezone

    import boto3

    from aws_env import moto_server
    from aws_exports import put_export, sample_aws, typed_focus

    ep = moto_server()
    name = bucket or f"contract-{uuid.uuid4().hex[:12]}"
    if bucket is None:
        s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=ep)
        s3.create_bucket(Bucket=name)
        put_export(s3, name, "focus/", "focus", "2024-09", [typed_focus(sample_aws())])
    cfg = PROVIDERS.get("aws").model_validate({
        "name": "contract", "type": "aws", "endpoint_url": ep, "regions": ["us-east-1"], "max_attempts": 2,
        "costs": {"source": "focus_export", "uri": f"s3://{name}/focus/"}})
    return cfg.build(BuildContext(base_dir=tmp_path, clock=lambda: datetime(2024, 10, 1, 6, tzinfo=timezone.utc)))


CASES = [
    ProviderCase("focus", _focus, _focus_broken, Window(date(2024, 9, 1), date(2024, 10, 1)), date(2024, 9, 30)),
    ProviderCase("aws", _aws, lambda t: _aws(t, bucket="no-such-bucket"), Window(date(2024, 9, 1), date(2024, 10, 1)), date(2024, 9, 30)),
]


@pytest.fixture(params=CASES, ids=lambda c: c.name)
def case(request) -> ProviderCase:
    return request.param


def test_it_is_a_provider(case, tmp_path):
    p = case.build(tmp_path)
    assert isinstance(p, Provider)
    assert isinstance(p.name, str) and p.name


def test_available_days_are_dated_up_to_as_of(case, tmp_path):
    p = case.build(tmp_path)
    got = p.available_days(Horizon(case.as_of))
    assert got and all(isinstance(d, date) and d <= case.as_of for d in got)
    assert all(s is None or isinstance(s, str) for s in got.values())
    assert set(got) <= set(case.window.days())
    assert isinstance(p.status(), ProviderStatus) and p.status().state in ("ok", "partial")


def test_costs_are_parts_of_lake_rows_that_land_and_balance(case, tmp_path):
    p = case.build(tmp_path)
    h = Horizon(case.as_of)
    avail = p.available_days(h)
    windows = contiguous_windows(list(avail))
    parts = list(p.costs(windows, h))
    assert parts and all(isinstance(x, Part) and x.origin for x in parts)
    for part in parts:
        assert part.rows.collect_schema() == pl.Schema(focus.row_schema())
    lake = Lake(tmp_path / "lake", writer=True)
    ledger = lake.write(p.name, windows, parts, horizon=h, signatures=avail)
    assert ledger.rows_read == ledger.rows_stored + ledger.rows_rejected + ledger.rows_skipped
    assert ledger.rows_stored > 0 and not ledger.problems
    stored = lake.rollup().select(pl.col("x_RowCount").sum()).collect().item()
    assert stored == ledger.rows_stored
    assert set(lake.stored_days(p.name)) == set(avail)


def test_inventory_budgets_and_checks_have_their_shapes(case, tmp_path):
    p = case.build(tmp_path)
    p.available_days(Horizon(case.as_of))
    inv = p.inventory()
    assert inv is None or list(inv.columns) == list(INVENTORY_SCHEMA)
    assert all(isinstance(b, NativeBudget) for b in p.budgets())
    checks = list(p.checks())
    assert checks and all(isinstance(c, Check) for c in checks)
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]


def test_an_unusable_source_fails_with_provider_error_and_says_how_to_fix(case, tmp_path):
    p = case.broken(tmp_path)
    with pytest.raises(ProviderError) as e:
        h = Horizon(case.as_of)
        p.available_days(h)
        list(p.costs(contiguous_windows([case.as_of]), h))
    assert str(e.value) and p.status().state not in ("ok", "unknown")
    failed = [c for c in p.checks() if c.ok is False]
    assert failed and all(c.fix for c in failed)


# ---- registry lint (Cloud Custodian's PolicyMetaLint) -------------------------------------------


@pytest.mark.parametrize("name", PROVIDERS.names())
def test_every_provider_type_has_a_strict_model_and_a_docstring_example(name, tmp_path):
    cls = PROVIDERS.get(name)
    assert cls.model_config.get("extra") == "forbid" and cls.model_config.get("frozen")
    assert cls.model_fields["type"].default == name == cls.type_name
    example = docstring_example(cls)
    assert example, f"{cls.__name__} needs a ```yaml example in its docstring"
    (doc,) = yaml.safe_load(example)
    cls.model_validate(doc)


@pytest.mark.parametrize("name", RECEIVERS.names())
def test_every_receiver_type_has_a_strict_model_and_a_docstring_example(name):
    cls = RECEIVERS.get(name)
    assert cls.model_config.get("extra") == "forbid" and cls.model_config.get("frozen")
    assert cls.model_fields["type"].default == name == cls.type_name
    example = docstring_example(cls)
    assert example, f"{cls.__name__} needs a ```yaml example in its docstring"
    ((_receiver_name, doc),) = yaml.safe_load(textwrap.dedent(example)).items()
    cls.model_validate(doc)
