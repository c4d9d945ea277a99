"""The digest as files: the JSON data (every Decimal printed exactly, never through a float), the
HTML page with its PNG charts beside it, and their names (``digest-<YYYY-Www>[-<team>]``)."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from costguard import jsonout
from costguard.digest.charts import Chart
from costguard.digest.model import Digest
from costguard.digest.render import render_html

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def slug(team: str) -> str:
    """A team name as a file-name part: ``Data Platform/EU`` → ``Data-Platform-EU``."""
    return _UNSAFE.sub("-", team).strip("-.") or "team"


def base_name(d: Digest) -> str:
    return f"digest-{d.week}" + (f"-{slug(d.team)}" if d.team else "")


def chart_file(d: Digest, chart: Chart) -> str:
    return f"{base_name(d)}-{chart.name}.png"


def to_json(value: Any, *, indent: int | None = 2) -> str:
    """JSON where each Decimal is a number written from the Decimal itself; dates are ISO strings."""
    return jsonout.dumps(value, indent=indent)


@dataclass(frozen=True)
class Written:
    html: Path
    json: Path
    charts: list[Path]

    def all(self) -> list[Path]:
        return [self.html, self.json, *self.charts]


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_digest(d: Digest, charts: Sequence[Chart], folder: Path) -> Written:
    """Write ``<base>.html``, ``<base>.json`` and ``<base>-<chart>.png`` into ``folder`` (each file
    replaced atomically, so a reader never sees half a file; re-writing a week replaces it)."""
    folder.mkdir(parents=True, exist_ok=True)
    base = base_name(d)
    paths = []
    for c in charts:
        p = folder / chart_file(d, c)
        _atomic_write(p, c.png)
        paths.append(p)
    html = render_html(d, charts, {c.name: chart_file(d, c) for c in charts})
    html_path, json_path = folder / f"{base}.html", folder / f"{base}.json"
    _atomic_write(json_path, (to_json(d.to_data()) + "\n").encode("utf-8"))
    _atomic_write(html_path, html.encode("utf-8"))
    return Written(html_path, json_path, paths)


def publish(digests: Sequence[Digest], folder: Path, *, scale: float = 2.0) -> list[Written]:
    """Charts and files for each digest, into ``folder``."""
    from costguard.digest.charts import digest_charts

    return [write_digest(d, digest_charts(d, scale=scale), folder) for d in digests]
