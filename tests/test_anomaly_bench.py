"""The anomaly benchmark's generator and scorer (bench/anomaly/), small: labels are where the data
says, the partial last day and restatements are what the lake would hold, and the default pack
finds the planted one-day spikes the day after, with the planted resource as root cause."""

from __future__ import annotations

import importlib.util
import sys
from datetime import date, timedelta
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench" / "anomaly"


def _load(name: str):
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"anomaly_{name}", BENCH / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod  # dataclasses look their module up by name
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(BENCH))


def test_generator_labels_partial_days_and_restatements():
    gen = _load("generate")
    spec = gen.Spec(seed=5, days=70, groups=12, accounts=4, per_shape=2)
    rows, labels = gen.generate(spec)
    assert [lab.shape for lab in labels].count("spike") == 2 and {lab.shape for lab in labels} == set(gen.SHAPES)
    day = date.fromisoformat(labels[0].start)
    same = (pl.col("ResourceId") == labels[0].resource) & (pl.col("x_ChargeDate") == day)
    on_the_day = gen.view(rows, day).filter(same).collect()["EffectiveCost"].sum()
    after = gen.view(rows, day + timedelta(days=5)).filter(same).collect()["EffectiveCost"].sum()
    assert 0 < on_the_day < after                      # still arriving on its own day
    versions = rows.group_by("ResourceId", "x_ChargeDate").len().filter(pl.col("len") == 3)
    assert versions.height > 0                         # partial, first and restated versions
    for as_of in (spec.start + timedelta(days=40), spec.start + timedelta(days=69)):
        v = gen.view(rows, as_of).collect()
        assert v.group_by("ResourceId", "x_ChargeDate", "ChargeCategory", "SubAccountId").len()["len"].max() == 1


def test_scorer_on_the_default_pack():
    score = _load("score")
    r = score.score(score.Spec(seed=5, days=70, groups=12, accounts=4, per_shape=2), REPO / "rules")
    spikes = r["per_shape"]["spike"]
    assert (spikes["planted"], spikes["detected"], spikes["median_delay_days"], spikes["root_cause_right"]) == (2, 2, 1, 2)
    assert r["planted"] == 10 and 0 <= r["precision"] <= 1 and r["recall"] >= 0.8
    assert r["as_of_days"] == 70 - 35 and "| **all** | 10 |" in score.markdown(r)
