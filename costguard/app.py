"""The composition root: the one place where real objects are built and wired together.

The CLI calls the functions here; they build the store, the lake, the providers, the receivers,
the HTTP client and the daemon's parts from a loaded config and hand them to the classes that
use them (``cycle.Cycle``, ``daemon.Daemon``, ``queries``). Nothing else calls a constructor with
real values.

Modules with heavy imports (the lake and polars, the store and SQLAlchemy/Alembic, the transports'
HTTP client) are imported by the functions that build them, so ``validate`` and ``--help`` start
without them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from costguard.build import BuildContext
from costguard.catalog import Catalog, load_catalog
from costguard.config import LoadedConfig
from costguard.errors import ConfigError, ConfigIssue, StoreError
from costguard.owners import OwnerResolver, load_owners
from costguard.rules import load_rules

if TYPE_CHECKING:
    from costguard.lake import Lake
    from costguard.store import Store

HTTP_TIMEOUT_SECONDS = 30.0


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def check_config(loaded: LoadedConfig) -> tuple[list[ConfigIssue], list[str]]:
    """Everything ``validate`` checks without touching data: rules, owners, schedule. (issues, warnings)"""
    from costguard.discovery import discover
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
    for name, r in cfg.notify.receivers.items():
        for tname, tpath in (getattr(r, "templates", None) or {}).items():
            issues.extend(_check_template(loaded, name, tname, tpath))
    if cfg.notify.exceptions:
        from costguard.notify.silences import load_exceptions

        try:
            _, expired = load_exceptions(loaded.resolve(cfg.notify.exceptions), today=utcnow().date())
            warnings.extend(expired)
        except ConfigError as e:
            issues.extend(e.issues)
    for key, cron in (("cycle", cfg.schedule.cycle), ("digest", cfg.schedule.digest)):
        msg = validate_schedule(cron, cfg.schedule.timezone)
        if msg:
            k = "timezone" if "timezone" in msg.lower() else key
            issues.append(ConfigIssue(str(loaded.path), loaded.line("schedule", k), f"schedule.{k}", msg))
    try:
        if cfg.catalog:  # the bundled catalogue is tested; reading it costs a validate 0.1 s
            load_catalog([loaded.resolve(c) for c in cfg.catalog])
    except ConfigError as e:
        issues.extend(e.issues)
    if "://" in cfg.state.lake:
        issues.append(ConfigIssue(str(loaded.path), loaded.line("state", "lake"), "state.lake",
                                  "object-storage lakes are not supported by this version; use a local or mounted path"))
    for i, name in enumerate(cfg.digest.receivers):
        from costguard.digest.deliver import DIGEST_TYPES

        r = cfg.notify.receivers.get(name)
        if r is None:
            issues.append(ConfigIssue(str(loaded.path), loaded.line("digest", "receivers", i), f"digest.receivers[{i}]",
                                      f"unknown receiver {name!r}; define it under notify.receivers"))
        elif r.type not in DIGEST_TYPES:
            issues.append(ConfigIssue(str(loaded.path), loaded.line("digest", "receivers", i), f"digest.receivers[{i}]",
                                      f"receiver {name!r} is a {r.type} receiver; a digest goes to {', '.join(DIGEST_TYPES)} receivers"))
    if "://" in cfg.digest.archive:
        issues.append(ConfigIssue(str(loaded.path), loaded.line("digest", "archive"), "digest.archive",
                                  "object-storage archives are not supported by this version; use a folder (a mounted volume works)"))
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


def _check_template(loaded: LoadedConfig, receiver: str, name: str, path: str) -> list[ConfigIssue]:
    """A template override must replace a shipped template, exist and parse."""
    import jinja2

    from costguard.notify.render import TEMPLATES

    key = f"notify.receivers.{receiver}.templates.{name}"
    line = loaded.line("notify", "receivers", receiver, "templates", name)
    known = sorted(p.name for p in TEMPLATES.glob("*.j2"))
    if name not in known:
        return [ConfigIssue(str(loaded.path), line, key, f"no shipped template {name!r} to replace; templates: {', '.join(known)}")]
    file = Path(loaded.resolve(path))
    try:
        jinja2.Environment().parse(file.read_text(encoding="utf-8"))
    except OSError as e:
        return [ConfigIssue(str(loaded.path), line, key, f"cannot read {file}: {e.strerror or e}")]
    except jinja2.TemplateSyntaxError as e:
        return [ConfigIssue(str(loaded.path), line, key, f"{file}:{e.lineno}: template syntax error: {e.message}")]
    return []


def _context(loaded: LoadedConfig, *, out: TextIO | None, clock: Callable[[], datetime], http: Any,
             contacts: dict[str, str] | None = None) -> BuildContext:
    return BuildContext(base_dir=loaded.base_dir, clock=clock, http=http,
                        backfill_days=loaded.config.ingest.backfill_days, out=out, contacts=contacts or {},
                        config_path=loaded.path)


def build_notifiers(loaded: LoadedConfig, owners: Any, *, out: TextIO | None, clock: Callable[[], datetime], http: Any) -> dict[str, Any]:
    """Every configured receiver, built with the shared HTTP client and the owners' contacts."""
    contacts = {name: t.contact for name, t in owners.teams.items() if t.contact}
    ctx = _context(loaded, out=out, clock=clock, http=http, contacts=contacts)
    return {name: r.build(name, ctx) for name, r in loaded.config.notify.receivers.items()}


def build_delivery(loaded: LoadedConfig, store: Store | None, owners: Any, notifiers: dict[str, Any], *,
                   out: TextIO | None, clock: Callable[[], datetime]) -> Any:
    """The delivery stage (``notify.pipeline.Delivery``) wired to the store, routes and exceptions."""
    from costguard.notify.pipeline import Delivery, ShadowFile
    from costguard.notify.retry import RetryPolicy
    from costguard.notify.routing import Route, Router
    from costguard.notify.silences import load_exceptions
    from costguard.store.delivery import DeliveryStore
    import re

    n = loaded.config.notify
    routes = [Route(r.receiver, {k: frozenset([v] if isinstance(v, str) else v) for k, v in r.match.items()},
                    {k: re.compile(p) for k, p in r.match_re.items()}, r.continue_,
                    tuple(r.group_by) if r.group_by is not None else None, r.repeat_interval)
              for r in n.routes]
    router = Router(routes, {name: tuple(t.receivers) for name, t in owners.teams.items()}, list(notifiers),
                    n.repeat_interval, frozenset(k for k, v in notifiers.items() if getattr(v, "catch_all", False)))
    exceptions, _ = load_exceptions(loaded.resolve(n.exceptions)) if n.exceptions else (None, [])
    retry = RetryPolicy(attempts=n.retry.attempts, initial_backoff=n.retry.initial_backoff.total_seconds(),
                        max_backoff=n.retry.max_backoff.total_seconds(), max_elapsed=n.retry.max_elapsed.total_seconds())
    kwargs: dict[str, Any] = {"exceptions": exceptions} if exceptions is not None else {}
    return Delivery(store=DeliveryStore(store) if store is not None else None, notifiers=notifiers,
                    types={k: r.type for k, r in n.receivers.items()}, router=router, retry=retry,
                    deadline_seconds=n.deadline.total_seconds(), clock=clock, mode=n.mode,
                    shadow=ShadowFile(loaded.resolve(n.shadow_path), clock) if n.mode == "shadow" else None,
                    out=out, **kwargs)


def repeat_after(loaded: LoadedConfig) -> Any:
    """How often reconcile writes a "repeat" for a still-open finding: the shortest repeat interval."""
    n = loaded.config.notify
    return min([n.repeat_interval, *(r.repeat_interval for r in n.routes if r.repeat_interval is not None)])


def http_client() -> "LazyHttpClient":
    """The one HTTP client every transport and HTTP-speaking provider shares (made on first use)."""
    return LazyHttpClient()


class LazyHttpClient:
    """An ``httpx.Client`` built the first time something uses it: a cycle whose receivers and
    providers never speak HTTP (the console, local exports) does not pay for importing httpx."""

    def __init__(self) -> None:
        self._client: Any = None
        self._lock = threading.Lock()

    def _get(self) -> Any:
        with self._lock:
            if self._client is None:
                import httpx

                from costguard import __version__

                self._client = httpx.Client(timeout=HTTP_TIMEOUT_SECONDS, follow_redirects=False,
                                            headers={"User-Agent": f"costguard/{__version__}"})
            return self._client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get(), name)

    @property
    def started(self) -> bool:
        return self._client is not None

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()


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
    from costguard.lake import Lake
    from costguard.store import Store

    cfg = loaded.config
    issues, _ = check_config(loaded)
    if issues:
        raise ConfigError(issues)
    rules = load_rules(cfg.rules, base_dir=loaded.base_dir)
    owners_cfg = load_owners(loaded.resolve(cfg.owners) if cfg.owners else None)
    owners = OwnerResolver(owners_cfg)
    catalog = price_catalog(loaded)
    store = Store.open(loaded.state_url())
    http = http_client()
    try:
        lake = Lake(loaded.resolve(cfg.state.lake), keep_rows=cfg.ingest.keep_rows, writer=True)
        ctx = _context(loaded, out=out, clock=clock, http=http)
        providers = [p.build(ctx) for p in cfg.providers]
        notifiers = build_notifiers(loaded, owners_cfg, out=out, clock=clock, http=http)
        delivery = build_delivery(loaded, store, owners_cfg, notifiers, out=out, clock=clock)
    except BaseException:
        store.close()
        http.close()
        raise
    return Cycle(store=store, lake=lake, providers=providers, delivery=delivery, rules=rules, owners=owners,
                 ingest=cfg.ingest, out=out, clock=clock, progress=progress, stop=stop,
                 hint_config=loaded.path if hints else None, on_close=[http.close], repeat_after=repeat_after(loaded),
                 catalog=catalog)


def price_catalog(loaded: LoadedConfig | None) -> Catalog:
    """The bundled price catalogue with the config's ``catalog:`` files on top."""
    if loaded is None:
        return load_catalog([])
    return load_catalog([loaded.resolve(c) for c in loaded.config.catalog])


# ---- read-only access (costs, findings): never creates a database or a lake -----------------------


def read_store(loaded: LoadedConfig) -> Store | None:
    """The state store if it exists (None when no cycle has run yet: nothing is created)."""
    from costguard.store import Store
    from costguard.store.engine import sqlite_file

    from sqlalchemy import make_url

    url = loaded.state_url()
    path = sqlite_file(make_url(url))
    if path is not None and not path.exists():
        return None
    return Store.open(url)


def read_lake(loaded: LoadedConfig) -> Lake:
    from costguard.lake import Lake

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


def list_findings(loaded: LoadedConfig, *, delivery: bool = False, **filters: Any) -> list[dict] | None:
    """Findings from the store; ``delivery=True`` adds each one's ``delivery`` summary."""
    store = read_store(loaded)
    if store is None:
        return None
    try:
        rows = store.list_findings(**filters)
        if delivery:
            from costguard.store.delivery import DeliveryStore

            summary = DeliveryStore(store).summary([r["fingerprint"] for r in rows])
            rows = [{**r, "delivery": summary[r["fingerprint"]]} for r in rows]
        return rows
    finally:
        store.close()


def delivery_detail(loaded: LoadedConfig, fingerprint: str) -> dict | None:
    store = read_store(loaded)
    if store is None:
        return None
    try:
        from costguard.store.delivery import DeliveryStore

        return DeliveryStore(store).summary([fingerprint])[fingerprint]
    finally:
        store.close()


def notify_test(loaded: LoadedConfig, receiver: str, *, out: TextIO, clock: Callable[[], datetime] = utcnow) -> Any:
    """Send one sample message to one receiver (nothing is read from or written to the state store).
    Returns the ``Sent``; raises ``DeliveryError`` (after retries) or ``ConfigError``."""
    from decimal import Decimal

    from costguard.notify.model import Item, Message, message_id
    from costguard.notify.retry import Retrier, RetryPolicy
    from costguard.notify.routing import group_key

    cfg = loaded.config
    if receiver not in cfg.notify.receivers:
        known = ", ".join(cfg.notify.receivers) or "(none)"
        raise ConfigError.single(str(loaded.path), loaded.line("notify", "receivers"), "notify.receivers",
                                 f"no receiver named {receiver!r}; configured: {known}")
    owners = load_owners(loaded.resolve(cfg.owners) if cfg.owners else None)
    http = http_client()
    try:
        notifier = build_notifiers(loaded, owners, out=out, clock=clock, http=http)[receiver]
        now = clock()
        owner = next(iter(owners.teams), None) or owners.default
        fp = "c0576a0d7e57" + now.strftime("%Y%m%d%H%M")[:12]
        finding = {
            "fingerprint": fp, "rule": "costguard-notify-test", "kind": "idle", "severity": "info", "status": "open",
            "provider": "AWS", "billing_account_id": "000000000000", "account_id": "000000000000", "region": "us-east-1",
            "service": "Amazon Elastic Compute Cloud", "resource_id": "i-0costguardtest", "resource_type": "Instance",
            "owner": owner, "owner_reason": "costguard notify test (a sample, not a real finding)",
            "title": f"costguard notify test for receiver {receiver}: a sample finding, nothing to do",
            "summary": "This message checks that costguard can reach this receiver.",
            "monthly_cost": Decimal("12.34"), "monthly_savings": Decimal("12.34"), "currency": "USD",
            "first_seen": now, "last_seen": now, "evidence": {"test": True}, "source": "notify-test",
            "resolved_at": None, "snoozed_until": None, "snooze_reason": None, "times_regressed": 0,
        }
        labels = {"owner": owner or "-", **({"fingerprint": fp} if "fingerprint" in (notifier.group_by or ()) else {})}
        gk = group_key(labels) if notifier.group_by is not None else "all"
        m = Message(receiver, gk, labels if notifier.group_by is not None else {}, (Item(fp, "new", finding, (0,)),),
                    message_id(receiver, gk, [0]) + "-test")
        p = cfg.notify.retry
        retry = RetryPolicy(attempts=p.attempts, initial_backoff=p.initial_backoff.total_seconds(),
                            max_backoff=p.max_backoff.total_seconds(), max_elapsed=p.max_elapsed.total_seconds())
        return Retrier(retry).call(lambda: notifier.send(m))
    finally:
        http.close()


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
    from costguard.store import Store
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

    from costguard.digest.job import DigestWorker

    digest = DigestWorker(loaded.path, stop=stop, command=command, busy=lambda: bool(store.running_runs()))
    scheduler = CycleScheduler(worker, cron=cfg.schedule.cycle, timezone=cfg.schedule.timezone, last_success=last_success,
                               digest=digest, digest_cron=cfg.schedule.digest)
    server = HttpServer(cfg.server.host, cfg.server.port, health, metrics)
    return Daemon(providers=[p.name for p in cfg.providers], store=store, metrics=metrics, health=health,
                  server=server, scheduler=scheduler, worker=worker, lock=lock, stop=stop, clock=utcnow)


# ---- rule authoring (cases, explain) --------------------------------------------------------------------


def run_rule_cases(folders: Sequence[Path], loaded: LoadedConfig | None) -> list[Any]:
    """Run the ``cases/`` of each rules folder with the config's price catalogue (or the bundled one)."""
    from costguard.rules.cases import run_cases

    catalog = price_catalog(loaded)
    results: list[Any] = []
    for folder in folders:
        results += run_cases(folder.resolve(), catalog=catalog, base_dir=Path.cwd() if folder.resolve().is_relative_to(Path.cwd()) else folder.resolve().parent)
    return results


def explain_finding(loaded: LoadedConfig, fingerprint: str) -> dict | None:
    """The explanation of one stored finding, with the rule as the rule files define it now."""
    from costguard.explain import explanation

    got = finding_detail(loaded, fingerprint)
    if got is None:
        return None
    f, _events = got
    try:
        rules = {r.id: r for r in load_rules(loaded.config.rules, base_dir=loaded.base_dir)}
    except ConfigError:
        rules = {}
    return explanation(f, rules.get(f["rule"]))

# ---- the weekly digest -----------------------------------------------------------------------------


@dataclass
class DigestBatch:
    """Digests made together: the ones made, teams left out for having neither spend nor findings
    in the week, and audiences whose digest failed (``scheduled_digests`` only)."""

    week: str = ""
    digests: list[Any] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def build_digests(loaded: LoadedConfig, *, week: Any = None, team: str | None = None, all_teams: bool = False,
                  clock: Callable[[], datetime] = utcnow) -> list[Any]:
    """The digest of ``week`` (default: the last complete ISO week in ``schedule.timezone``) for the
    organisation, or for ``team``; ``all_teams`` adds every owner team that has spend or findings."""
    return _digests(loaded, week=week, team=team, all_teams=all_teams, clock=clock, tolerant=False).digests


def scheduled_digests(loaded: LoadedConfig, *, week: Any = None, clock: Callable[[], datetime] = utcnow) -> DigestBatch:
    """The daemon's weekly job: the organisation and (``digest.teams``) every owner team; one
    audience failing is recorded and logged, and the others are still made."""
    return _digests(loaded, week=week, team=None, all_teams=loaded.config.digest.teams, clock=clock, tolerant=True)


def _digests(loaded: LoadedConfig, *, week: Any, team: str | None, all_teams: bool, clock: Callable[[], datetime],
             tolerant: bool) -> DigestBatch:
    from costguard.digest import DigestInputs, build_digest, last_complete_week
    from costguard.digest.build import teams_of
    from costguard.digest.weeks import local_today
    from costguard.errors import DataError
    from costguard.logs import get_logger
    from costguard.queries import source_warnings
    from costguard.rules.base import RULES

    cfg = loaded.config
    issues, _ = check_config(loaded)
    if issues:
        raise ConfigError(issues)
    owners = load_owners(loaded.resolve(cfg.owners) if cfg.owners else None)
    known = teams_of(owners)
    if team is not None and owners.teams and team not in known:
        raise ConfigError.single("<command line>", None, "--team",
                                 f"unknown team {team!r}; teams in {cfg.owners}: {', '.join(known)}")
    lake = read_lake(loaded)
    if not lake.exists():
        raise DataError(f"no costs in the lake yet ({lake.root}): run `costguard run --once -c {loaded.path}` first")
    tz = cfg.schedule.timezone
    now = clock()
    week = week or last_complete_week(now, tz)
    store = read_store(loaded)
    batch = DigestBatch(week=str(week))
    try:
        inputs = DigestInputs(
            costs=lake.rollup(), days_by_source={s: set(lake.stored_days(s)) for s in lake.sources()},
            rules=load_rules(cfg.rules, base_dir=loaded.base_dir), owners=owners, store=store,
            anomaly_kind=any(getattr(cls, "finding_kind", None) == "anomaly" for _, cls in RULES.items()),
            ingested=store.ingest_times() if store is not None else {}, settle_hours=cfg.digest.settle_hours,
        )
        warnings = source_warnings(store, lake, start=week.start, end=week.end) if store is not None else []
        audiences: list[str | None] = [team] if team is not None else [None, *(known if all_teams else [])]
        if len(audiences) > 1:  # one read of the lake and the findings for every audience
            inputs = inputs.cached(week=week, metric=cfg.digest.metric, today=local_today(now, tz), timezone=tz)
        for who in audiences:
            try:
                d = build_digest(inputs, week=week, team=who, metric=cfg.digest.metric, timezone=tz, now=now,
                                 top=cfg.digest.top, warnings=warnings)
            except Exception as e:  # noqa: BLE001 - in the weekly job one audience must not stop the others
                if not tolerant:
                    raise
                audience = f"team:{who}" if who else "org"
                get_logger("costguard.digest").exception("digest_failed", audience=audience)
                batch.failed[audience] = f"{type(e).__name__}: {e}"
                continue
            if who is None or team is not None or d.totals or (d.findings and (d.findings.open or d.findings.fixed_this_week)):
                batch.digests.append(d)
            else:
                batch.skipped.append(who)
        return batch
    finally:
        if store is not None:
            store.close()


def digest_archive(loaded: LoadedConfig) -> Path:
    return Path(loaded.resolve(loaded.config.digest.archive))


def digest_audience_receivers(loaded: LoadedConfig, team: str | None) -> list[str]:
    """The receivers one audience's digest goes to (see ``costguard.digest.deliver``)."""
    from costguard.digest.deliver import receivers_for

    cfg = loaded.config
    owners = load_owners(loaded.resolve(cfg.owners) if cfg.owners else None)
    return receivers_for(team, org=cfg.digest.receivers, teams={n: t.receivers for n, t in owners.teams.items()},
                         types={n: r.type for n, r in cfg.notify.receivers.items()}, team_digests=cfg.digest.teams)


def send_digests(loaded: LoadedConfig, bundles: Sequence[Any], *, clock: Callable[[], datetime] = utcnow) -> list[Any]:
    """Send each digest bundle to its audience's receivers, once per receiver and week, through the
    delivery stage's transports, retry policy and store (``costguard.digest.deliver``)."""
    import time

    from costguard.digest import deliver
    from costguard.notify.retry import Retrier, RetryPolicy
    from costguard.store import Store
    from costguard.store.delivery import DeliveryStore

    cfg = loaded.config
    plan = [(b, digest_audience_receivers(loaded, b.digest.team)) for b in bundles]
    wanted = sorted({r for _, rs in plan for r in rs})
    if not wanted:
        return []
    owners = load_owners(loaded.resolve(cfg.owners) if cfg.owners else None)
    store = Store.open(loaded.state_url())
    http = http_client()
    try:
        notifiers = build_notifiers(loaded, owners, out=None, clock=clock, http=http)
        transports = {name: notifiers[name] for name in wanted}
        r = cfg.notify.retry
        retry = Retrier(RetryPolicy(attempts=r.attempts, initial_backoff=r.initial_backoff.total_seconds(),
                                    max_backoff=r.max_backoff.total_seconds(), max_elapsed=r.max_elapsed.total_seconds()),
                        deadline=time.monotonic() + cfg.notify.deadline.total_seconds())
        return deliver.send_digests(plan, transports, DeliveryStore(store), retry=retry, clock=clock)
    finally:
        store.close()

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
