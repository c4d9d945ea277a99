"""The command line. It parses arguments, then calls ``app.py``; it builds nothing itself.

Exit codes: 0 done · 1 failed · 2 bad usage, config or rules (nothing was done) ·
3 done, but at least one provider (or receiver) failed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from costguard import __version__
from costguard.errors import ConfigError, CostguardError, StoreError
from costguard.jsonout import decimal_text, dumps

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3
MICRO = Decimal("0.000001")


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"costguard {__version__}\n")
        raise typer.Exit(EXIT_OK)


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


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """FinOps cost governance on the FOCUS schema."""


ConfigOpt = Annotated[
    str | None,
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


class SafeOut:
    """stdout that survives its reader going away (``costguard run --once | head -1``): after a
    BrokenPipeError further output is dropped and the command finishes its work."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.broken = False

    def write(self, s: str) -> int:
        if not self.broken:
            try:
                self.stream.write(s)
                self.stream.flush()
            except BrokenPipeError:
                self._broke()
        return len(s)

    def flush(self) -> None:
        if not self.broken:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._broke()

    def _broke(self) -> None:
        self.broken = True
        _silence_stdout()


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null so the interpreter's final flush cannot fail either."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _err(msg: str) -> None:
    sys.stderr.write(msg.rstrip() + "\n")


def _usage(msg: str) -> typer.Exit:
    _err(f"error: {msg}")
    return typer.Exit(EXIT_USAGE)


def _date(value: str | None, flag: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _usage(f"{flag} {value!r} is not a date; use YYYY-MM-DD, e.g. {flag} 2026-01-31") from None


def _setup_logging(*, daemon: bool = False) -> None:
    """Info-level events for machines (the daemon, CI, log collectors); warnings only for a person
    at a terminal, who sees the progress lines instead. COSTGUARD_LOG_LEVEL overrides both."""
    from costguard.logs import configure_logging

    default = "info" if daemon or not sys.stderr.isatty() else "warning"
    level = os.environ.get("COSTGUARD_LOG_LEVEL", default)
    try:
        configure_logging(level=level)
    except ValueError:
        raise _usage(f"COSTGUARD_LOG_LEVEL={level!r} is not a level; use debug, info, warning or error") from None


def _load(config: str | None):  # -> LoadedConfig
    from costguard.config import config_path, load_config

    return load_config(config_path(config))


def _progress(msg: str) -> None:
    sys.stderr.write(f"· {msg}\n")
    sys.stderr.flush()


def _guard(fn):  # maps costguard errors to exit codes and one line each, for every command
    import functools

    @functools.wraps(fn)
    def wrapper(*a: Any, **k: Any) -> Any:
        try:
            return fn(*a, **k)
        except ConfigError as e:
            where = "usage" if all(i.file == "<command line>" for i in e.issues) else "configuration"
            _err(f"error: bad {where} (nothing was done):\n" + "\n".join(f"  {i}" for i in e.issues))
            raise typer.Exit(EXIT_USAGE) from None
        except StoreError as e:
            _err(f"error: state store: {e}")
            raise typer.Exit(EXIT_FAILED) from None
        except CostguardError as e:
            _err(f"error: {e}")
            raise typer.Exit(EXIT_FAILED) from None
        except BrokenPipeError:
            _silence_stdout()
            raise typer.Exit(EXIT_OK) from None

    return wrapper


# ---- output ---------------------------------------------------------------------------------------


def _plain(v: Any) -> Any:
    if isinstance(v, Decimal):
        return decimal_text(v) if v.is_finite() else ""
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, (dict, list)):
        return dumps(v)
    return v


def _print_rows(rows: list[dict], columns: list[str], fmt: Fmt) -> None:
    if fmt is Fmt.json:
        sys.stdout.write(dumps(rows) + "\n")
        return
    if fmt is Fmt.csv:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: _plain(v) for k, v in r.items()})
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


# ---- commands -------------------------------------------------------------------------------------

@app.command()
@_guard
def run(
    config: ConfigOpt = None,
    once: Annotated[bool, typer.Option("--once", help="Run one full cycle and exit (the daemon is `costguard serve`).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Ingest into a scratch area, evaluate, and print what would change and be sent; the lake, the findings store and the receivers are left alone.")] = False,
    as_of: Annotated[str | None, typer.Option("--as-of", metavar="DATE", help="Evaluate as if the run happened at the end of DATE (YYYY-MM-DD). Earlier than the last recorded run: a backtest, which stores and sends nothing (see --record).")] = None,
    record: Annotated[bool, typer.Option("--record", help="With an --as-of earlier than the last recorded run: land the data and update the findings store anyway.")] = False,
    trigger: Annotated[str, typer.Option("--trigger", hidden=True, help="Who started the run (the daemon passes schedule/startup).")] = "cli",
    run_id: Annotated[str | None, typer.Option("--run-id", hidden=True, help="Run id chosen by the daemon.")] = None,
) -> None:
    """Run one cycle: ingest → evaluate rules → track findings → deliver.

    Examples:
      costguard run --once -c costguard.yaml
      costguard run --once -c costguard.yaml --dry-run
      costguard run --once -c costguard.yaml --as-of 2026-01-31     (a backtest when older than the last run)
    """
    if not once:
        raise _usage("`run` needs --once (for the long-running daemon use `costguard serve -c FILE`)")
    import signal
    import threading

    from costguard.app import build_cycle
    from costguard.daemon import watch_parent

    day = _date(as_of, "--as-of")
    _setup_logging()
    stop = threading.Event()
    watch_parent(stop)
    out = SafeOut(sys.stdout)
    cycle = build_cycle(_load(config), out=out, progress=_progress, stop=stop)

    def handle(signum: int, _frame: object) -> None:  # finish the current step, record "cancelled"
        _progress(f"{signal.Signals(signum).name}: stopping at the next safe point")
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        outcome = cycle.run(as_of=day, dry_run=dry_run, record=record, trigger=trigger, run_id=run_id)
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)
        cycle.close()
    if outcome.status == "cancelled":
        _err("stopped before the cycle finished; sources already landed are complete and kept")
    raise typer.Exit(outcome.exit_code)


@app.command()
@_guard
def serve(config: ConfigOpt = None) -> None:
    """Run the daemon: scheduled cycles plus HTTP /healthz, /readyz and /metrics.

    The schedule (cron + timezone) and the listen address come from the config's `schedule:` and
    `server:` sections. At start a cycle runs at once if the last successful one is older than the
    schedule period. SIGTERM/SIGINT stop it cleanly: a running cycle stops at the next safe point
    and its run record says so. One daemon per state: a second `serve` on the same lake refuses to start.
    """
    from costguard.app import build_daemon

    _setup_logging(daemon=True)
    raise typer.Exit(build_daemon(_load(config)).run())


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


FINDING_COLUMNS = ["fingerprint", "severity", "kind", "status", "rule", "owner", "monthly_cost", "monthly_savings", "currency", "delivery", "title"]

findings_app = typer.Typer(
    help="List findings from the state store, or show one with its history (`findings show FP`).",
    no_args_is_help=False, rich_markup_mode=None, add_completion=False,
)
app.add_typer(findings_app, name="findings")


@findings_app.callback(invoke_without_command=True)
@_guard
def findings(
    ctx: typer.Context,
    config: ConfigOpt = None,
    status: Annotated[Status, typer.Option("--status", help="Which findings to list.")] = Status.open,
    kind: Annotated[str | None, typer.Option("--kind", help="Only this kind: tag, budget, rightsizing, idle, anomaly, commitment, data.")] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="Only findings owned by this team (use - for unowned).")] = None,
    severity: Annotated[str | None, typer.Option("--severity", help="Only this severity or worse: info, warning, critical.")] = None,
    rule: Annotated[str | None, typer.Option("--rule", help="Only findings of this rule id.")] = None,
    fmt: Annotated[Fmt, typer.Option("--format", help="table for people; json (one array on stdout) or csv for scripts.")] = Fmt.table,
    delivery: Annotated[bool, typer.Option("--delivery", help="json/csv: add each finding's `delivery` (per receiver: sent, pending, failed, muted, suppressed). The table always shows it.")] = False,
) -> None:
    """List findings from the state store (most severe and most expensive first).

    The table's `delivery` column says where each finding's notifications stand: sent, pending
    (not delivered yet), failed (a receiver refused it; retried next cycle), muted (an exception),
    suppressed (nothing new to tell) or none.

    Examples:
      costguard findings -c costguard.yaml --owner payments --severity warning
      costguard findings -c costguard.yaml --status all --format json | jq '.[].title'
      costguard findings show 3f2a9c1b77e0 -c costguard.yaml
    """
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"config": config}
        return
    from costguard.app import list_findings
    from costguard.model import SEVERITIES

    if severity is not None and severity not in SEVERITIES:
        raise _usage(f"--severity {severity!r}: use one of {', '.join(SEVERITIES)}")
    rows = list_findings(_load(config), status=status.value, kind=kind, owner=owner, min_severity=severity, rule=rule,
                         delivery=delivery or fmt is Fmt.table)
    if rows is None:
        if fmt is Fmt.table:
            sys.stdout.write("no findings yet: no cycle has run (try `costguard run --once -c FILE`)\n")
        else:
            _print_rows([], FINDING_COLUMNS, fmt)
        return
    if fmt is Fmt.table:  # short fingerprint for people; json/csv keep the full one
        if not rows:
            sys.stdout.write(f"no {status.value if status is not Status.all else ''} findings\n".replace("  ", " "))
            return
        _print_rows([{**r, "fingerprint": r["fingerprint"][:12], "delivery": _delivery_cell(r["delivery"])} for r in rows],
                    FINDING_COLUMNS, fmt)
        return
    _print_rows(rows, list(rows[0].keys()) if rows else [c for c in FINDING_COLUMNS if delivery or c != "delivery"], fmt)


def _delivery_cell(d: dict) -> str:
    """``sent 2/2`` · ``failed: jira`` · ``pending`` · ``muted`` · ``-``."""
    receivers = d.get("receivers") or {}
    if d["state"] == "failed":
        return "failed: " + ",".join(sorted(n for n, r in receivers.items() if r["outcome"] == "failed"))
    if d["state"] == "sent":
        sent = sum(1 for r in receivers.values() if r["outcome"] == "sent")
        return f"sent {sent}/{len(receivers)}"
    return "-" if d["state"] == "none" else d["state"]


@findings_app.command("show")
@_guard
def findings_show(
    ctx: typer.Context,
    fingerprint: Annotated[str, typer.Argument(help="The finding's fingerprint (or a unique prefix of at least 6 characters).")],
    config: ConfigOpt = None,
    fmt: Annotated[Fmt, typer.Option("--format", help="table for people; json for scripts.")] = Fmt.table,
) -> None:
    """One finding with everything it carries and its event history (new, updated, resolved, …)."""
    from costguard.app import finding_detail

    config = config or (ctx.obj or {}).get("config")
    got = finding_detail(_load(config), fingerprint)
    if got is None:
        _err(f"error: no finding with fingerprint {fingerprint!r}; see `costguard findings --status all`")
        raise typer.Exit(EXIT_FAILED)
    f, events = got
    if fmt is not Fmt.table:
        sys.stdout.write(dumps([{**f, "events": events}]) + "\n")
        return
    w = sys.stdout.write
    w(f"{f['title']}\n\n")
    for k, v in f.items():
        if k not in ("title", "evidence"):
            w(f"  {k:<20} {_plain(v) if v is not None else '-'}\n")
    w("  evidence\n")
    for k, v in (f.get("evidence") or {}).items():
        w(f"    {k:<18} {_plain(v)}\n")
    from costguard.app import delivery_detail

    d = delivery_detail(_load(config), f["fingerprint"])
    if d and d["receivers"]:
        w("\ndelivery\n")
        for name, r in sorted(d["receivers"].items()):
            at = f"  {r['at']:%Y-%m-%d %H:%M}" if r.get("at") else ""
            err = f"  {r['error']}" if r.get("error") else ""
            w(f"  {name:<20} {r['outcome']:<10} {r.get('event') or '':<10}{at}{err}\n")
    w("\nhistory\n")
    for e in events:
        detail = f"  {dumps(e['detail'])}" if e.get("detail") else ""
        w(f"  {e['at']:%Y-%m-%d %H:%M}  {e['event']:<10} run {e.get('run_id') or '-'}{detail}\n")


notify_app = typer.Typer(help="Check delivery: `notify test RECEIVER` sends one sample message.",
                         no_args_is_help=True, rich_markup_mode=None, add_completion=False)
app.add_typer(notify_app, name="notify")


@notify_app.command("test")
@_guard
def notify_test(
    receiver: Annotated[str, typer.Argument(help="The receiver's name under notify.receivers in the config.")],
    config: ConfigOpt = None,
) -> None:
    """Send one sample message (an obviously fake "info" finding) to RECEIVER, to check its setup:
    URL, token, channel, project, permissions. The state store is not touched. Ticket receivers
    (jira, github, servicenow) create a real sample ticket you can close.

    Exit 0 when the receiver accepted it; 1 when it failed (the error says why: HTTP status, the
    service's own error code; never the secret); 2 for an unknown receiver or a bad config.

    Example:  costguard notify test slack-payments -c costguard.yaml
    """
    from costguard.app import notify_test as send_test
    from costguard.notify.errors import DeliveryError

    _setup_logging()
    loaded = _load(config)
    try:
        send_test(loaded, receiver, out=SafeOut(sys.stdout))
    except DeliveryError as e:
        _err(f"error: receiver {receiver} failed: {e}")
        raise typer.Exit(EXIT_FAILED) from None
    sys.stdout.write(f"receiver {receiver}: sample message delivered\n")


@app.command()
@_guard
def costs(
    config: ConfigOpt = None,
    by: Annotated[str, typer.Option("--by", help="Comma-separated FOCUS columns, source, day, week, month and/or tag:KEY, e.g. ServiceName,tag:team or month,ProviderName.")] = "ProviderName",
    from_: Annotated[str | None, typer.Option("--from", metavar="DATE", help="First day included (YYYY-MM-DD).")] = None,
    to: Annotated[str | None, typer.Option("--to", metavar="DATE", help="First day NOT included (YYYY-MM-DD); periods are half-open like FOCUS.")] = None,
    metric: Annotated[Metric, typer.Option("--metric", help="Which FOCUS cost to sum.")] = Metric.BilledCost,
    fmt: Annotated[Fmt, typer.Option("--format", help="table, json or csv.")] = Fmt.table,
    exact: Annotated[bool, typer.Option("--exact", help="json/csv: every stored decimal place (10) instead of a millionth of the currency unit.")] = False,
) -> None:
    """Sum costs from the lake, grouped by FOCUS columns, tags or time, always per BillingCurrency.

    json and csv amounts are decimal numbers printed from the exact sum (never through a float),
    to a millionth of the currency unit (all 10 stored places with --exact).

    Examples:
      costguard costs -c costguard.yaml --by ServiceName,tag:team --from 2026-01-01 --to 2026-02-01
      costguard costs -c costguard.yaml --by month --metric EffectiveCost --format csv
    """
    start, end = _date(from_, "--from"), _date(to, "--to")
    if start and end and end <= start:
        raise _usage(f"--to {end} is not after --from {start} (--to is the first day NOT included)")
    cols = [c.strip() for c in by.split(",") if c.strip()]
    if not cols:
        raise _usage("--by needs at least one column")
    from costguard.app import costs_query

    answer = costs_query(_load(config), cols, start=start, end=end, metric=metric.value)
    for w in answer.warnings:
        _err(f"warning: {w}")
    df = answer.frame
    rows = df.to_dicts()
    for r in rows:
        for c in ("day", "week", "month"):
            if c in cols and isinstance(r.get(c), date):
                r[c] = r[c].isoformat()
        if fmt is not Fmt.table and not exact and r[metric.value] is not None:
            r[metric.value] = r[metric.value].quantize(MICRO)
    if not rows and fmt is Fmt.table:
        sys.stdout.write("no costs in the lake for this selection (ingest first with `costguard run --once`, or widen --from/--to)\n")
        return
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
    from costguard.app import snooze_finding, utcnow

    day = _date(until, "--until")
    assert day is not None
    today = utcnow().date()
    if day < today:
        raise _usage(f"--until {day} is in the past (today is {today}); give the last day the finding should stay silent")
    f = snooze_finding(_load(config), fingerprint, until=day, reason=reason)
    sys.stdout.write(f"snoozed {f['fingerprint'][:12]} until {day.isoformat()}: {f['title']}\n")


@app.command()
@_guard
def sim(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the synthetic export into.")],
    rows: Annotated[str, typer.Option("--rows", help="Approximate row count: 100k, 1M, 10M, …")] = "100k",
    days: Annotated[int, typer.Option("--days", help="Days of data, ending yesterday (or --end).")] = 30,
    end: Annotated[str | None, typer.Option("--end", metavar="DATE", help="Exclusive end day (default: today).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same data.")] = 42,
) -> None:
    """Generate a realistic synthetic FOCUS 1.2 export (parquet, one folder per day) for tests and benchmarks."""
    from costguard.app import utcnow
    from costguard.sim import SimSpec, generate, parse_rows

    end_day = _date(end, "--end") or utcnow().date()
    try:
        n = parse_rows(rows)
    except ValueError as e:
        raise _usage(f"--rows {rows!r}: {e}") from None
    manifest = generate(SimSpec(rows=n, days=days, end=end_day, seed=seed), out, progress=_progress)
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
    raise typer.Exit(run_demo(folder, out=SafeOut(sys.stdout), progress=_progress))


# ---- rule authoring: rules test, schema, explain ---------------------------------------------------

rules_app = typer.Typer(
    help="Rule authoring: run the test cases that ship with rule files (`costguard rules test`).",
    no_args_is_help=True, rich_markup_mode=None, add_completion=False,
)
app.add_typer(rules_app, name="rules")


@rules_app.command("test")
@_guard
def rules_test(
    folders: Annotated[list[Path] | None, typer.Argument(metavar="[DIR]...", help="Rules folders whose cases/ to run (default: the config's rule folders with -c, else ./rules).", show_default=False)] = None,
    config: ConfigOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also list the cases that pass.")] = False,
) -> None:
    """Run rule test cases: given cost and inventory rows, the rules must find exactly the expected findings.

    Cases live in DIR/cases/<rule file name>.yaml beside the rules they test (docs/rules.md,
    "Testing rules"). A failing case prints what was expected, the closest finding and each field
    that differs. With -c the config's price catalogue is used; otherwise the bundled one.
    Exit 0 when every case passes, 1 when one fails (or there are none), 2 on a bad rule or case file.

    \b
    Examples:
      costguard rules test                      (./rules)
      costguard rules test rules/ my-rules/ -v
      costguard rules test -c costguard.yaml    (the config's rule folders and catalogue)
    """
    from costguard.app import run_rule_cases

    loaded = _load(config) if (config or os.environ.get("COSTGUARD_CONFIG")) else None
    if not folders:
        if loaded is not None:
            folders = [Path(loaded.resolve(r)) for r in loaded.config.rules if Path(loaded.resolve(r)).is_dir()]
        else:
            folders = [Path("rules")]
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise _usage(f"not a rules folder: {', '.join(missing)} (give folders that hold rule files and a cases/ folder)")
    results = run_rule_cases(folders, loaded)
    if not results:
        _err(f"error: no test cases in {', '.join(str(f / 'cases') for f in folders)}; "
             "write some (docs/rules.md, \"Testing rules\") so the rules are tested like code")
        raise typer.Exit(EXIT_FAILED)
    w = sys.stdout.write
    failed = [r for r in results if not r.passed]
    for r in results:
        if r.passed and not verbose:
            continue
        w(f"{'PASS' if r.passed else 'FAIL'}  {r.file}:{r.line or '?'}  {r.name}  ({r.findings} finding(s))\n")
        for line in r.problems:
            w(f"        {line}\n")
    w(f"{len(results)} case(s): {len(results) - len(failed)} passed, {len(failed)} failed\n")
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


class SchemaFor(str, Enum):
    all = "all"
    config = "config"
    rules = "rules"


@app.command()
@_guard
def schema(
    kind: Annotated[str | None, typer.Option("--kind", help="Only the schema of one rule of this kind (e.g. idle).")] = None,
    for_: Annotated[SchemaFor, typer.Option("--for", help="config: the config file; rules: a rule file; all: both, as {config, rules}.")] = SchemaFor.all,
) -> None:
    """Print JSON Schema generated from the code: the config file, rule files, or one rule kind.

    Point your editor at it for completion and checking, e.g. with the YAML language server:

    \b
      costguard schema --for rules > rules/schema.json
      # yaml-language-server: $schema=schema.json      (first line of a rule file)
      costguard schema --for config > costguard.schema.json
      costguard schema --kind rightsizing | jq .properties
    """
    from costguard.rules import RULES
    from costguard.schema import config_schema, kind_schema, rules_schema

    if kind is not None:
        if kind not in RULES:
            raise _usage(f"--kind {kind!r}: unknown rule kind; known: {', '.join(RULES.names())}")
        out: Any = kind_schema(kind)
    elif for_ is SchemaFor.config:
        out = config_schema()
    elif for_ is SchemaFor.rules:
        out = rules_schema()
    else:
        out = {"config": config_schema(), "rules": rules_schema()}
    sys.stdout.write(json.dumps(out, indent=2, ensure_ascii=False) + "\n")


@app.command()
@_guard
def explain(
    fingerprint: Annotated[str, typer.Argument(help="The finding's fingerprint (or a unique prefix of at least 6 characters).")],
    config: ConfigOpt = None,
    fmt: Annotated[Fmt, typer.Option("--format", help="table for people; json for scripts.")] = Fmt.table,
) -> None:
    """Why a finding says what it says: the rule, the inputs it saw, the numbers and the formula behind its $.

    Example:  costguard explain 3f2a9c1b77e0 -c costguard.yaml
    """
    from costguard.app import explain_finding
    from costguard.explain import render

    got = explain_finding(_load(config), fingerprint)
    if got is None:
        _err(f"error: no finding with fingerprint {fingerprint!r}; see `costguard findings --status all`")
        raise typer.Exit(EXIT_FAILED)
    if fmt is Fmt.table:
        sys.stdout.write(render(got))
    else:
        sys.stdout.write(dumps([got]) + "\n")

@app.command()
@_guard
def digest(
    config: ConfigOpt = None,
    week: Annotated[str | None, typer.Option("--week", metavar="YYYY-Www", help="ISO week, e.g. 2026-W05 (Monday to Sunday). Default: the last complete week in schedule.timezone.")] = None,
    team: Annotated[str | None, typer.Option("--team", help="One owner team's digest (its spend by tags and accounts, its budgets and findings) instead of the organisation's.")] = None,
    out: Annotated[Path | None, typer.Option("--out", metavar="DIR", help="Write digest-<week>[-<team>].html with its PNG charts and .json data here (instead of printing the text version).")] = None,
    send: Annotated[bool, typer.Option("--send", help="Also send it to its receivers (digest.receivers for the organisation, the team's receivers in owners.yaml for a team), once per receiver and week, and keep a copy in digest.archive.")] = False,
    scheduled: Annotated[bool, typer.Option("--scheduled", hidden=True, help="The daemon's weekly job: organisation and teams, into digest.archive, sent.")] = False,
) -> None:
    """The weekly digest: spend vs last week and the 4-week average, top movers with their root
    cause, budgets with forecast and days to breach, tag-coverage trend, findings and savings.

    Every total equals what `costguard costs` returns for the same days (per currency). A week
    with days that have no data yet says so and compares like for like instead of showing a drop.
    --send goes through the receivers of notify.receivers (email with the charts inline, Slack
    with the chart in the thread, Teams): a receiver that already has this week's digest is not
    sent it again. Exit 3: a receiver failed (the others were sent).

    \b
    Examples:
      costguard digest -c costguard.yaml                          (last week, as text)
      costguard digest -c costguard.yaml --week 2026-W05 --out digests/
      costguard digest -c costguard.yaml --team payments --send
    """
    from costguard.digest import IsoWeek

    chosen = None
    if week is not None:
        try:
            chosen = IsoWeek.parse(week)
        except ValueError as e:
            raise _usage(f"--week {e}") from None
    from costguard.app import (
        build_digests,
        digest_archive,
        digest_audience_receivers,
        send_digests,
        utcnow,
    )

    _setup_logging(daemon=scheduled)
    loaded = _load(config)
    if chosen is not None:
        from costguard.digest.weeks import local_today

        if chosen.start > local_today(utcnow(), loaded.config.schedule.timezone):
            raise _usage(f"--week {chosen} has not started yet; pick a past or the current week")
    if scheduled:
        raise typer.Exit(_scheduled_digest(loaded, chosen))
    if send and not digest_audience_receivers(loaded, team):
        where = ("list receivers under digest.receivers in the config" if team is None else
                 f"name email, slack or teams receivers under teams.{team}.receivers in the owners file "
                 "(and keep digest.teams: true)")
        raise _usage(f"--send: the {'organisation' if team is None else 'team ' + team} digest has no receivers: {where}")
    digests = build_digests(loaded, week=chosen, team=team)
    for w in digests[0].data.warnings:
        _err(f"warning: {w}")
    if out is None and not send:
        from costguard.digest.render import render_text

        SafeOut(sys.stdout).write(render_text(digests[0]))
        _err("(write the HTML with charts and the JSON data with --out DIR; send it with --send)")
        return
    from costguard.digest.charts import digest_charts
    from costguard.digest.files import write_digest

    d = digests[0]
    charts = digest_charts(d)
    for folder in [f for f in (out, digest_archive(loaded) if send else None) if f is not None]:
        for p in write_digest(d, charts, folder).all():
            sys.stdout.write(f"{p}\n")
    if send:
        results = send_digests(loaded, [_bundle(loaded, d, charts)])
        for r in results:
            (sys.stdout.write if r.outcome != "failed" else _err)(r.line() + "\n")
        if any(r.outcome == "failed" for r in results):
            raise typer.Exit(EXIT_PARTIAL)


def _bundle(loaded, d, charts):
    from costguard.digest.files import base_name
    from costguard.digest.send import bundle

    base = loaded.config.digest.link
    return bundle(d, charts, link=f"{base.rstrip('/')}/{base_name(d)}.html" if base else None)


def _scheduled_digest(loaded, week) -> int:
    """The daemon's weekly job: every audience's digest into the archive, then sent to its
    receivers. One audience (or receiver) failing never stops the others; exit 1 if a digest
    could not be made, 3 if a receiver failed."""
    from costguard.app import digest_archive, scheduled_digests, send_digests
    from costguard.digest.charts import digest_charts
    from costguard.digest.files import write_digest
    from costguard.logs import get_logger

    log = get_logger("costguard.digest")
    batch = scheduled_digests(loaded, week=week)
    folder, files, bundles = digest_archive(loaded), 0, []
    for d in batch.digests:
        try:
            charts = digest_charts(d)
            files += len(write_digest(d, charts, folder).all())
            bundles.append(_bundle(loaded, d, charts))
        except Exception as e:
            log.exception("digest_failed", audience=d.audience)
            batch.failed[d.audience] = f"{type(e).__name__}: {e}"
    log.info("digest_written", week=batch.week, audiences=[b.digest.audience for b in bundles],
             skipped_teams=batch.skipped, failed=sorted(batch.failed), folder=str(folder), files=files)
    results = send_digests(loaded, bundles)
    if results:
        log.info("digest_delivered", week=batch.week, sent=sum(r.outcome == "sent" for r in results),
                 already_sent=sum(r.outcome == "already_sent" for r in results),
                 failed=[f"{r.audience} -> {r.receiver}" for r in results if r.outcome == "failed"])
    if batch.failed:
        return EXIT_FAILED
    return EXIT_PARTIAL if any(r.outcome == "failed" for r in results) else EXIT_OK


@app.command()
@_guard
def doctor(
    config: ConfigOpt = None,
) -> None:
    """Check that every provider can do its job, with the fix for each failure.

    Per provider: credentials, each account's role, the export (present and fresh), each API the
    rules need (one cheap read each; paid ones are marked, e.g. Cost Explorer $0.01), and for FOCUS
    files their paths, readability and FOCUS version. Prints PASS / FAIL / SKIP per check; a FAIL
    names the IAM action or set-up step that fixes it.

    Exit 0 when every check passes, 1 when any fails, 2 on a config error.

    Example:  costguard doctor -c costguard.yaml
    """
    from costguard.app import doctor_checks

    _setup_logging()
    loaded = _load(config)
    out = SafeOut(sys.stdout)
    out.write(f"costguard doctor · {loaded.path}\n")
    failed = paid = total = 0
    current = None
    for name, kind, check in doctor_checks(loaded):
        if name != current:
            out.write(f"{name} (type {kind})\n")
            current = name
        total += 1
        mark = {True: "PASS", False: "FAIL", None: "SKIP"}[check.ok]
        label = check.name[len(name) + 2:] if check.name.startswith(name + ": ") else check.name
        out.write(f"  {mark}  {label}" + (f": {check.detail}" if check.detail else "") + "\n")
        if check.ok is False:
            failed += 1
            if check.fix:
                out.write(f"        fix: {check.fix}\n")
        paid += 1 if check.paid else 0
    if total == 0:
        out.write("no providers configured\n")
    out.write(f"{total - failed} of {total} check(s) passed" + (f", {failed} failed" if failed else "")
              + (f" ({paid} paid request(s) made)" if paid else "") + "\n")
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


def main() -> None:
    try:
        app()
    except BrokenPipeError:  # a reader that went away is not an error of ours
        _silence_stdout()
        sys.exit(EXIT_OK)


if __name__ == "__main__":  # pragma: no cover
    main()
