"""CloudWatch GetMetricData, batched: up to 500 metric queries a request, pages followed.

CPU and memory are read as hourly ``Maximum`` over the lookback; ``cpu_p95`` (and ``cpu_p90``,
``cpu_p99``) is the 95th percentile (linear interpolation, as numpy computes it) of those hourly
maxima and ``cpu_max`` their maximum, so a short peak inside an hour is never averaged away (rightsizing stays on the
safe side). NAT gateway bytes are daily ``Sum`` values added up over 30 days.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

BATCH = 500  # GetMetricData's limit of queries per request


@dataclass(frozen=True, slots=True)
class MetricQuery:
    key: tuple[str, str]               # (resource_id, what: cpu | mem | nat_out_dst | nat_out_src)
    namespace: str
    metric: str
    dimensions: tuple[tuple[str, str], ...]
    stat: str = "Maximum"
    period: int = 3600


@dataclass
class Series:
    timestamps: list[datetime]
    values: list[float]


class MetricError(Exception):
    """CloudWatch answered a query with an error status (``StatusCode`` InternalError / Forbidden)."""


def get_metric_data(cw: Any, queries: Sequence[MetricQuery], start: datetime, end: datetime) -> dict[tuple[str, str], Series]:
    """Every query's datapoints between ``start`` and ``end`` (requests: one per 500 queries and page)."""
    out: dict[tuple[str, str], Series] = {}
    for b in range(0, len(queries), BATCH):
        batch = list(queries[b:b + BATCH])
        ids = {f"q{i}": q for i, q in enumerate(batch)}
        params: dict[str, Any] = {
            "MetricDataQueries": [
                {"Id": qid, "ReturnData": True,
                 "MetricStat": {"Metric": {"Namespace": q.namespace, "MetricName": q.metric,
                                           "Dimensions": [{"Name": n, "Value": v} for n, v in q.dimensions]},
                                "Period": q.period, "Stat": q.stat}}
                for qid, q in ids.items()
            ],
            "StartTime": start, "EndTime": end, "ScanBy": "TimestampAscending",
        }
        while True:
            resp = cw.get_metric_data(**params)
            for r in resp.get("MetricDataResults") or []:
                q = ids.get(r.get("Id", ""))
                if q is None:
                    continue
                if r.get("StatusCode") in ("InternalError", "Forbidden"):
                    raise MetricError(f"{q.namespace}/{q.metric}: {r.get('StatusCode')}: "
                                      + "; ".join(m.get("Value", "") for m in r.get("Messages") or []))
                s = out.setdefault(q.key, Series([], []))
                s.timestamps.extend(r.get("Timestamps") or [])
                s.values.extend(float(v) for v in r.get("Values") or [])
            token = resp.get("NextToken")
            if not token:
                break
            params["NextToken"] = token
    return out


@dataclass(frozen=True)
class Summary:
    """Percentiles (linear interpolation, as numpy computes them) and max of a series."""

    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None
    days: int | None = None  # distinct UTC days with datapoints


def summarise(s: Series | None) -> Summary:
    """The :class:`Summary` of a series; all None without datapoints."""
    if s is None or not s.values:
        return Summary()
    v = np.asarray(s.values, dtype=float)
    p90, p95, p99 = (round(float(x), 6) for x in np.percentile(v, [90, 95, 99]))
    return Summary(p90, p95, p99, round(float(v.max()), 6), len({t.date() for t in s.timestamps}) if s.timestamps else None)


def total(*series: Series | None) -> float | None:
    """Sum of every datapoint of the given series (None when none has data)."""
    vals = [x for s in series if s is not None for x in s.values]
    return float(sum(vals)) if vals else None
