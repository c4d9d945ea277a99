"""``costguard demo``: a first run that needs no cloud account.

Writes the demo config, rules and owners (only if missing, so your edits survive), generates 45
days of synthetic FOCUS data ending today (today is a partial day, as real exports are), and runs
one cycle.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TextIO

from costguard.app import build_cycle, utcnow
from costguard.config import load_config
from costguard.sim import SimSpec, generate

DEMO_ROWS = 60_000
DEMO_DAYS = 45


TEMPLATE_DIRS = ("", "rules", "rules/cases")  # under costguard/demo: the config, owners, rules and their test cases


def template_files() -> list[str]:
    """The demo's files, relative to ``costguard/demo`` (and to the folder they are copied to)."""
    root = resources.files("costguard") / "demo"
    out = []
    for d in TEMPLATE_DIRS:
        node = root.joinpath(*d.split("/")) if d else root
        out += sorted(f"{d}/{c.name}".lstrip("/") for c in node.iterdir() if c.is_file() and c.name.endswith(".yaml"))
    return out


def _copy_templates(folder: Path) -> None:
    root = resources.files("costguard") / "demo"
    for rel in template_files():
        dest = folder / rel
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(root.joinpath(*rel.split("/")).read_text(encoding="utf-8"), encoding="utf-8")


def run_demo(folder: Path, *, out: TextIO, progress: Callable[[str], None]) -> int:
    today = utcnow().date()
    folder.mkdir(parents=True, exist_ok=True)
    _copy_templates(folder)
    data = folder / "data"
    manifest = data / "manifest.json"
    fresh = manifest.exists() and json.loads(manifest.read_text()).get("partial_day") == today.isoformat()
    if not fresh:
        shutil.rmtree(data, ignore_errors=True)
        progress(f"generating {DEMO_DAYS} days of synthetic FOCUS billing data (seed 42) into {data}")
        spec = SimSpec(rows=DEMO_ROWS, days=DEMO_DAYS, end=today.fromordinal(today.toordinal() + 1), seed=42,
                       dialect_quirks=0.002,  # a few real-world FOCUS deviations, to show the conformance report
                       spike=(1.0, 0.8),  # a GPU spike on the last complete day: the anomaly rule finds it today
                       commitment_coverage=0.15, commitment_unused=0.3)  # a savings plan used at 70%
        generate(spec, data, progress=progress)
    cfg_path = folder / "demo.yaml"
    out.write(
        "costguard demo: 45 days of synthetic AWS billing (FOCUS 1.2), one cycle, findings below.\n"
        f"config: {cfg_path}  ·  data: {data}  ·  nothing leaves this machine\n\n"
    )
    loaded = load_config(cfg_path)
    cycle = build_cycle(loaded, out=out, progress=progress, hints=False)
    try:
        outcome = cycle.run(as_of=today, trigger="cli")
    finally:
        cycle.close()
    page = _write_digest(loaded, progress)
    out.write(f"\nWeekly digest (last week, with charts): {page}\n")
    out.write(
        "\nWhat to try next:\n"
        f"  costguard findings -c {cfg_path}                     # open findings, most expensive first\n"
        f"  costguard costs -c {cfg_path} --by SubAccountId,ServiceName --metric EffectiveCost\n"
        f"  costguard costs -c {cfg_path} --by tag:application --format csv\n"
        f"  costguard run --once -c {cfg_path} --dry-run         # again: nothing new, nothing re-sent\n"
        f"  costguard serve -c {cfg_path}                        # the daemon: http://127.0.0.1:9464/healthz\n"
        f"  costguard digest -c {cfg_path} --team payments       # one team's weekly digest, as text\n"
    )
    return outcome.exit_code


def _write_digest(loaded, progress: Callable[[str], None]) -> Path:  # noqa: ANN001 - a LoadedConfig
    """Last week's digest of the demo data, into the config's ``digest.archive``; its HTML page."""
    from costguard.app import build_digests, digest_archive
    from costguard.digest.files import publish

    folder = digest_archive(loaded)
    progress(f"writing last week's digest into {folder}")
    [written] = publish(build_digests(loaded), folder)
    return written.html
