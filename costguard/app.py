"""The composition root: the one place where real objects are built and wired together.

The CLI calls the functions here; they build the store, the lake, the providers, the receivers,
the HTTP client and the daemon's parts from a loaded config and hand them to the classes that
use them (``cycle.Cycle``, ``daemon.Daemon``, ``queries``). Nothing else calls a constructor with
real values.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from costguard.build import BuildContext
from costguard.config import LoadedConfig
from costguard.errors import ConfigError, ConfigIssue, StoreError
from costguard.focus import discover
from costguard.lake import Lake
from costguard.owners import OwnerResolver, load_owners
from costguard.rules import load_rules
from costguard.store import Store

HTTP_TIMEOUT_SECONDS = 30.0


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def check_config(loaded: LoadedConfig) -> tuple[list[ConfigIssue], list[str]]:
    """Everything ``validate`` checks without touching data: rules, owners, schedule. (issues, warnings)"""
    from costguard.scheduler import validate_schedule

    issues: list[ConfigIssue] = []
    warnings: list[str] = []
    cfg = loaded.config
    try:
        load_rules(cfg.rules, base_dir=loaded.base_dir)
    except ConfigError as e:
        issues.extend(e.issues)
    if cfg.owners:
        try:
            owners = load_owners(loaded.resolve(cfg.owners))
            for name, team in owners.teams.items():
                for r in team.receivers:
                    if r not in cfg.notify.receivers:
                        issues.append(ConfigIssue(loaded.resolve(cfg.owners), None, f"teams.{name}.receivers",
                                                  f"receiver {r!r} is not defined under notify.receivers in {loaded.path}"))
        except ConfigError as e:
            issues.extend(e.issues)
    for i, r in enumerate(cfg.notify.routes):
        if r.receiver not in cfg.notify.receivers:
            issues.append(ConfigIssue(str(loaded.path), loaded.line("notify", "routes", i, "receiver"),
                                      f"notify.routes[{i}].receiver", f"unknown receiver {r.receiver!r}"))
    for key, cron in (("cycle", cfg.schedule.cycle), ("digest", cfg.schedule.digest)):
        msg = validate_schedule(cron, cfg.schedule.timezone)
        if msg:
            k = "timezone" if "timezone" in msg.lower() else key
            issues.append(ConfigIssue(str(loaded.path), loaded.line("schedule", k), f"schedule.{k}", msg))
    if "://" in cfg.state.lake:
        issues.append(ConfigIssue(str(loaded.path), loaded.line("state", "lake"), "state.lake",
                                  "object-storage lakes are not supported by this version; use a local or mounted path"))
    for i, p in enumerate(cfg.providers):
        for j, pat in enumerate(p.data_paths()):
            try:
                discover([pat], loaded.base_dir)
            except Exception as e:  # noqa: BLE001 - reported as a warning, validate must go on
                warnings.append(f"{loaded.path}:{loaded.line('providers', i, 'paths', j)}: providers[{i}].paths[{j}]: {e}")
        inventory = getattr(p, "inventory", None)
        if isinstance(inventory, str) and "://" not in inventory and not (loaded.base_dir / inventory).exists():
            warnings.append(f"{loaded.path}:{loaded.line('providers', i, 'inventory')}: providers[{i}].inventory: file {inventory} does not exist (yet)")
    return issues, warnings


def _context(loaded: LoadedConfig, *, out: TextIO | None, clock: Callable[[], datetime], http: Any) -> BuildContext:
    return BuildContext(base_dir=loaded.base_dir, clock=clock, http=http,
                        backfill_days=loaded.config.ingest.backfill_days, out=out)


def http_client() -> Any:
    """The one HTTP client every transport and HTTP-speaking provider shares."""
    import httpx

    from costguard import __version__

    return httpx.Client(timeout=HTTP_TIMEOUT_SECONDS, follow_redirects=False,
                        headers={"User-Agent": f"costguard/{__version__}"})


def build_cycle(
    loaded: LoadedConfig,
    *,
    out: TextIO,
    clock: Callable[[], datetime] = utcnow,
    progress: Callable[[str], None] = lambda _m: None,
    stop: threading.Event | None = None,
    hints: bool = True,
) -> "Any":
    """A ready :class:`costguard.cycle.Cycle` with every collaborator built from the config."""
    from costguard.cycle import Cycle

    cfg = loaded.config
    issues, _ = check_config(loaded)
    if issues:
        raise ConfigError(issues)
    rules = load_rules(cfg.rules, base_dir=loaded.base_dir)
    owners = OwnerResolver(load_owners(loaded.resolve(cfg.owners) if cfg.owners else None))
    store = Store.open(loaded.state_url())
    http = http_client()
    try:
        lake = Lake(loaded.resolve(cfg.state.lake), keep_rows=cfg.ingest.keep_rows, writer=True)
        ctx = _context(loaded, out=out, clock=clock, http=http)
        providers = [p.build(ctx) for p in cfg.providers]
        receivers = {name: r.build(name, ctx) for name, r in cfg.notify.receivers.items()}
    except BaseException:
        store.close()
        http.close()
        raise
    return Cycle(store=store, lake=lake, providers=providers, receivers=receivers, rules=rules, owners=owners,
                 ingest=cfg.ingest, out=out, clock=clock, progress=progress, stop=stop,
                 hint_config=loaded.path if hints else None, on_close=[http.close])


# ---- read-only access (costs, findings): never creates a database or a lake -----------------------


def read_store(loaded: LoadedConfig) -> Store | None:
    """The state store if it exists (None when no cycle has run yet: nothing is created)."""
    from costguard.store.engine import sqlite_file

    from sqlalchemy import make_url

    url = loaded.state_url()
    path = sqlite_file(make_url(url))
    if path is not None and not path.exists():
        return None
    return Store.open(url)


def read_lake(loaded: LoadedConfig) -> Lake:
    return Lake(loaded.resolve(loaded.config.state.lake), keep_rows=loaded.config.ingest.keep_rows)


def costs_query(loaded: LoadedConfig, by: Sequence[str], *, start: date | None, end: date | None, metric: str) -> Any:
    from costguard.queries import CostsAnswer, query_costs, source_warnings

    lake = read_lake(loaded)
    df = query_costs(lake, by, start=start, end=end, metric=metric)
    store = read_store(loaded)
    try:
        warnings = source_warnings(store, lake, start=start, end=end) if store is not None else []
    finally:
        if store is not None:
            store.close()
    return CostsAnswer(df, warnings)


def list_findings(loaded: LoadedConfig, **filters: Any) -> list[dict] | None:
    store = read_store(loaded)
    if store is None:
        return None
    try:
        return store.list_findings(**filters)
    finally:
        store.close()


def finding_detail(loaded: LoadedConfig, fingerprint: str) -> tuple[dict, list[dict]] | None:
    store = read_store(loaded)
    if store is None:
        return None
    try:
        f = store.get_finding(fingerprint)
        if f is None:
            return None
        return f, store.finding_events(f["fingerprint"])
    finally:
        store.close()


def snooze_finding(loaded: LoadedConfig, fingerprint: str, *, until: date, reason: str, now: datetime | None = None) -> dict:
    store = read_store(loaded)
    if store is None:
        raise StoreError(f"no state yet at {loaded.state_url()}: run `costguard run --once -c {loaded.path}` first")
    try:
        return store.snooze(fingerprint, until=until, reason=reason, now=now or utcnow())
    finally:
        store.close()


# ---- the daemon ------------------------------------------------------------------------------------


def build_daemon(loaded: LoadedConfig, *, stop: threading.Event | None = None, command: Sequence[str] | None = None) -> Any:
    """The daemon's parts: store, metrics, health, HTTP server, scheduler and the cycle worker."""
    from costguard.daemon import CycleWorker, Daemon, ServeLock
    from costguard.metrics import Metrics
    from costguard.scheduler import CycleScheduler
    from costguard.server import HealthState, HttpServer

    issues, _ = check_config(loaded)  # fail fast: a worker would fail the same way every time
    if issues:
        raise ConfigError(issues)
    cfg = loaded.config
    stop = stop or threading.Event()
    lake_root = Path(loaded.resolve(cfg.state.lake))
    lock = ServeLock(lake_root)
    lock.acquire()
    try:
        store = Store.open(loaded.state_url())
    except BaseException:
        lock.release()
        raise
    metrics, health = Metrics(), HealthState()
    worker = CycleWorker(loaded.path, store=store, metrics=metrics, health=health, stop=stop, clock=utcnow, command=command)

    def last_success() -> datetime | None:
        run = store.last_run(statuses=("ok", "partial"))
        return run["finished_at"] if run else None

    scheduler = CycleScheduler(worker, cron=cfg.schedule.cycle, timezone=cfg.schedule.timezone, last_success=last_success)
    server = HttpServer(cfg.server.host, cfg.server.port, health, metrics)
    return Daemon(providers=[p.name for p in cfg.providers], store=store, metrics=metrics, health=health,
                  server=server, scheduler=scheduler, worker=worker, lock=lock, stop=stop, clock=utcnow)


# ---- doctor ----------------------------------------------------------------------------------------


def doctor_checks(loaded: LoadedConfig, *, clock: Callable[[], datetime] = utcnow) -> Any:
    """``(provider name, provider type, Check)`` for every set-up check of every provider, as they
    run. A provider that cannot be built, or whose checks fail unexpectedly, yields one failed check
    saying so; the other providers are still checked."""
    from costguard.errors import CostguardError
    from costguard.providers import Check

    http = http_client()
    try:
        ctx = _context(loaded, out=None, clock=clock, http=http)
        for p in loaded.config.providers:
            kind = getattr(p, "type", "?")
            try:
                provider = p.build(ctx)
                for check in provider.checks():
                    yield p.name, kind, check
            except CostguardError as e:
                yield p.name, kind, Check(f"{p.name}: set-up", False, str(e), "fix the provider's configuration")
            except Exception as e:  # noqa: BLE001 - one provider's bug must not hide the others' checks
                yield p.name, kind, Check(f"{p.name}: checks", False, f"{type(e).__name__}: {e}",
                                          "report this: the checks themselves failed")
    finally:
        http.close()
