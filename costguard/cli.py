"""The command line. It parses arguments, then calls ``app.py``; it builds nothing itself.

Exit codes: 0 done · 1 failed · 2 bad usage, config or rules (nothing was done) ·
3 done, but at least one provider failed.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from costguard.errors import ConfigError, CostguardError, StoreError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3
MICRO = Decimal("0.000001")

app = typer.Typer(
    name="costguard",
    help=(
        "FinOps cost governance on the FOCUS schema.\n\n"
        "costguard pulls billing exports into a FOCUS cost lake, checks policy-as-code rules (tag "
        "coverage, budgets, …) and tracks each finding across runs until it is fixed.\n\n"
        "Start here:  costguard demo   (no cloud account needed)\n\n"
        "Every command takes -c FILE, or reads the config path from $COSTGUARD_CONFIG.\n"
        "Exit codes: 0 done, 1 failed, 2 bad usage/config/rules (nothing done), 3 done but a provider failed."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

ConfigOpt = Annotated[
    Optional[str],
    typer.Option("-c", "--config", help="Config file (YAML). Defaults to $COSTGUARD_CONFIG.", show_default=False),
]


class Fmt(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


class Status(str, Enum):
    open = "open"
    snoozed = "snoozed"
    resolved = "resolved"
    all = "all"


class Metric(str, Enum):
    BilledCost = "BilledCost"
    EffectiveCost = "EffectiveCost"
    ListCost = "ListCost"
    ContractedCost = "ContractedCost"


def _err(msg: str) -> None:
    sys.stderr.write(msg.rstrip() + "\n")


def _date(value: str | None, flag: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        _err(f"error: {flag} {value!r} is not a date; use YYYY-MM-DD, e.g. {flag} 2026-01-31")
        raise typer.Exit(EXIT_USAGE) from None


def _setup_logging(*, daemon: bool = False) -> None:
    """Info-level events for machines (the daemon, CI, log collectors); warnings only for a person
    at a terminal, who sees the progress lines instead. COSTGUARD_LOG_LEVEL overrides both."""
    import os

    from costguard.logs import configure_logging

    default = "info" if daemon or not sys.stderr.isatty() else "warning"
    level = os.environ.get("COSTGUARD_LOG_LEVEL", default)
    try:
        configure_logging(level=level)
    except ValueError:
        _err(f"error: COSTGUARD_LOG_LEVEL={level!r} is not a level; use debug, info, warning or error")
        raise typer.Exit(EXIT_USAGE) from None


def _load(config: str | None):  # -> LoadedConfig
    from costguard.config import config_path, load_config

    return load_config(config_path(config))


def _progress(msg: str) -> None:
    sys.stderr.write(f"· {msg}\n")
    sys.stderr.flush()


def _build_app(config: str | None, **kw: Any):
    from costguard.app import App

    return App(_load(config), out=sys.stdout, progress=_progress, **kw)


def _guard(fn):  # maps costguard errors to exit codes, for every command
    import functools

    @functools.wraps(fn)
    def wrapper(*a: Any, **k: Any) -> Any:
        try:
            return fn(*a, **k)
        except ConfigError as e:
            _err("error: bad configuration (nothing was done):\n" + "\n".join(f"  {i}" for i in e.issues))
            raise typer.Exit(EXIT_USAGE) from None
        except StoreError as e:
            _err(f"error: state store: {e}")
            raise typer.Exit(EXIT_FAILED) from None
        except CostguardError as e:
            _err(f"error: {e}")
            raise typer.Exit(EXIT_FAILED) from None

    return wrapper


def _jsonable(v: Any) -> Any:
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def _print_rows(rows: list[dict], columns: list[str], fmt: Fmt) -> None:
    if fmt is Fmt.json:
        sys.stdout.write(json.dumps([_jsonable(r) for r in rows], indent=None) + "\n")
        return
    if fmt is Fmt.csv:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (json.dumps(_jsonable(v)) if isinstance(v, (dict, list)) else _jsonable(v)) for k, v in r.items()})
        sys.stdout.write(buf.getvalue())
        return
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    out = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(columns)),
           "  ".join("-" * widths[i] for i in range(len(columns)))]
    for row in cells:
        out.append("  ".join(row[i].rjust(widths[i]) if _numeric(row[i]) else row[i].ljust(widths[i]) for i in range(len(columns))))
    sys.stdout.write("\n".join(out) + "\n")


def _numeric(s: str) -> bool:
    return bool(s) and s.replace(",", "").replace(".", "", 1).lstrip("-").isdigit()


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, Decimal):
        return f"{v.quantize(Decimal('0.01')):,}"
    if isinstance(v, float):
        return f"{v:,.2f}"
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M")
    if isinstance(v, date):
        return v.isoformat()
    s = str(v)
    return s if len(s) <= 70 else s[:67] + "..."


# ---- commands -----------------------------------------------------------------------------------

@app.command()
@_guard
def run(
    config: ConfigOpt = None,
    once: Annotated[bool, typer.Option("--once", help="Run one full cycle and exit (the daemon is `costguard serve`).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Deliver nothing and leave findings untouched; print what would be sent.")] = False,
    as_of: Annotated[Optional[str], typer.Option("--as-of", metavar="DATE", help="Evaluate as if the run happened at the end of DATE (YYYY-MM-DD), to backtest rules on history.")] = None,
    trigger: Annotated[str, typer.Option("--trigger", hidden=True, help="Who started the run (the daemon passes schedule/startup).")] = "cli",
    run_id: Annotated[Optional[str], typer.Option("--run-id", hidden=True, help="Run id chosen by the daemon.")] = None,
) -> None:
    """Run one cycle: ingest → evaluate rules → track findings → deliver.

    Example:  costguard run --once -c costguard.yaml --as-of 2026-01-31 --dry-run
    """
    if not once:
        _err("error: `run` needs --once (for the long-running daemon use `costguard serve -c FILE`)")
        raise typer.Exit(EXIT_USAGE)
    import signal
    import threading

    day = _date(as_of, "--as-of")
    _setup_logging()
    stop = threading.Event()
    a = _build_app(config, stop=stop)

    def handle(signum: int, _frame: object) -> None:  # finish the current step, record "cancelled"
        _progress(f"{signal.Signals(signum).name}: stopping at the next safe point")
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        outcome = a.run_cycle(as_of=day, dry_run=dry_run, trigger=trigger, run_id=run_id)
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)
        a.close()
    if outcome.status == "cancelled":
        _err("stopped before the cycle finished; days already written are complete and kept")
    raise typer.Exit(outcome.exit_code)


@app.command()
@_guard
def serve(config: ConfigOpt = None) -> None:
    """Run the daemon: scheduled cycles plus HTTP /healthz, /readyz and /metrics.

    The schedule (cron + timezone) and the listen address come from the config's `schedule:` and
    `server:` sections. At start a cycle runs at once if the last successful one is older than the
    schedule period. SIGTERM/SIGINT stop it cleanly: a running cycle stops at the next safe point
    and its run record says so.
    """
    from costguard.daemon import serve as run_daemon

    _setup_logging(daemon=True)
    raise typer.Exit(run_daemon(_load(config)))


@app.command()
def validate(config: ConfigOpt = None) -> None:
    """Check the config, the rule files and the owners file; every error names file, line and key.

    Exit 0 when clean, 2 on any error. Nothing is ingested or stored.
    """
    from costguard.app import check_config

    try:
        loaded = _load(config)
        issues, warnings = check_config(loaded)
    except ConfigError as e:
        issues, warnings = e.issues, []
        loaded = None
    for w in warnings:
        _err(f"warning: {w}")
    if issues:
        _err(f"{len(issues)} error(s):")
        for i in issues:
            _err(f"  {i}")
        raise typer.Exit(EXIT_USAGE)
    from costguard.rules import load_rules

    n = len(load_rules(loaded.config.rules, base_dir=loaded.base_dir))
    sys.stdout.write(f"{loaded.path}: OK ({len(loaded.config.providers)} provider(s), {n} rule(s))\n")


FINDING_COLUMNS = ["fingerprint", "severity", "kind", "status", "rule", "owner", "monthly_cost", "monthly_savings", "currency", "title"]


@app.command()
@_guard
def findings(
    config: ConfigOpt = None,
    status: Annotated[Status, typer.Option("--status", help="Which findings to list.")] = Status.open,
    kind: Annotated[Optional[str], typer.Option("--kind", help="Only this kind: tag, budget, rightsizing, idle, anomaly, commitment, data.")] = None,
    fmt: Annotated[Fmt, typer.Option("--format", help="table for people; json (one array on stdout) or csv for scripts.")] = Fmt.table,
) -> None:
    """List findings from the state store (most severe and most expensive first).

    Example:  costguard findings -c costguard.yaml --status all --format json | jq '.[].title'
    """
    from costguard.app import list_findings

    rows = list_findings(_load(config), status=status.value, kind=kind)
    if fmt is Fmt.table:  # short fingerprint for people; json/csv keep the full one
        rows_t = [{**r, "fingerprint": r["fingerprint"][:12]} for r in rows]
        if not rows_t:
            sys.stdout.write(f"no {status.value if status is not Status.all else ''} findings\n".replace("  ", " "))
            return
        _print_rows(rows_t, FINDING_COLUMNS, fmt)
        return
    cols = list(rows[0].keys()) if rows else FINDING_COLUMNS
    _print_rows(rows, cols, fmt)


@app.command()
@_guard
def costs(
    config: ConfigOpt = None,
    by: Annotated[str, typer.Option("--by", help="Comma-separated FOCUS columns and/or tag:KEY, e.g. ProviderName,ServiceName or tag:team.")] = "ProviderName",
    from_: Annotated[Optional[str], typer.Option("--from", metavar="DATE", help="First day included (YYYY-MM-DD).")] = None,
    to: Annotated[Optional[str], typer.Option("--to", metavar="DATE", help="First day NOT included (YYYY-MM-DD); periods are half-open like FOCUS.")] = None,
    metric: Annotated[Metric, typer.Option("--metric", help="Which FOCUS cost to sum.")] = Metric.BilledCost,
    fmt: Annotated[Fmt, typer.Option("--format", help="table, json or csv.")] = Fmt.table,
) -> None:
    """Sum costs from the lake, grouped by FOCUS columns or tags.

    Example:  costguard costs -c costguard.yaml --by ServiceName,tag:team --from 2026-01-01 --to 2026-02-01
    """
    start, end = _date(from_, "--from"), _date(to, "--to")
    cols = [c.strip() for c in by.split(",") if c.strip()]
    if not cols:
        _err("error: --by needs at least one column")
        raise typer.Exit(EXIT_USAGE)
    from costguard.app import costs_query

    df = costs_query(_load(config), cols, start=start, end=end, metric=metric.value)
    rows = df.to_dicts()
    if not rows and fmt is Fmt.table:
        sys.stdout.write("no costs in the lake for this selection (ingest first with `costguard run --once`, or widen --from/--to)\n")
        return
    if fmt is not Fmt.table:  # a millionth of the currency unit; the lake keeps 10 places
        for r in rows:
            if r[metric.value] is not None:
                r[metric.value] = r[metric.value].quantize(MICRO)
    _print_rows(rows, df.columns, fmt)


@app.command()
@_guard
def snooze(
    fingerprint: Annotated[str, typer.Argument(help="The finding's fingerprint (or a unique prefix of at least 6 characters).")],
    until: Annotated[str, typer.Option("--until", metavar="DATE", help="Silenced through this day (YYYY-MM-DD).")],
    reason: Annotated[str, typer.Option("--reason", help="Why: recorded with the finding for the audit trail.")],
    config: ConfigOpt = None,
) -> None:
    """Silence one finding until a date (it comes back on its own afterwards if still present).

    Example:  costguard snooze 3f2a9c1b77e0 --until 2026-03-01 --reason "migration in Q1" -c costguard.yaml
    """
    day = _date(until, "--until")
    from costguard.app import snooze_finding

    f = snooze_finding(_load(config), fingerprint, until=day, reason=reason)
    sys.stdout.write(f"snoozed {f['fingerprint'][:12]} until {day.isoformat()}: {f['title']}\n")


@app.command()
@_guard
def sim(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the synthetic export into.")],
    rows: Annotated[str, typer.Option("--rows", help="Approximate row count: 100k, 1M, 10M, …")] = "100k",
    days: Annotated[int, typer.Option("--days", help="Days of data, ending yesterday (or --end).")] = 30,
    end: Annotated[Optional[str], typer.Option("--end", metavar="DATE", help="Exclusive end day (default: today).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same data.")] = 42,
) -> None:
    """Generate a realistic synthetic FOCUS 1.2 export (parquet, one folder per day) for tests and benchmarks."""
    from costguard.app import utcnow
    from costguard.sim import SimSpec, generate, parse_rows

    end_day = _date(end, "--end") or utcnow().date()
    manifest = generate(SimSpec(rows=parse_rows(rows), days=days, end=end_day, seed=seed), out, progress=_progress)
    sys.stdout.write(f"wrote {manifest.get('rows', 0):,} rows to {out}\n")


@app.command()
@_guard
def demo(
    folder: Annotated[Path, typer.Option("--dir", help="Where to put the demo config, data and state.")] = Path("costguard-demo"),
) -> None:
    """First run, no cloud account needed: writes a demo config and 45 days of synthetic billing data, then runs one cycle.

    Afterwards try the commands it prints, e.g. `costguard findings -c costguard-demo/demo.yaml`.
    """
    from costguard.demo import run_demo

    _setup_logging()
    raise typer.Exit(run_demo(folder, out=sys.stdout, progress=_progress))


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
