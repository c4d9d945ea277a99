"""When cycles run. The only module that imports apscheduler (pinned ``>=3.11,<4``).

Cron expressions mean what crontab(5) says. APScheduler 3.x numbers weekdays from Monday
(0 = Monday) where crontab numbers them from Sunday (0 or 7 = Sunday), and it ANDs
day-of-month with day-of-week where cron ORs them; ``cron_trigger`` therefore rewrites the
weekday field into names (``"0 8 * * 1"`` is Monday, as in cron) and rejects expressions that
restrict both day fields.

The catch-up run at start is the cron job itself, given an immediate first run time; its first
execution is reported with trigger ``"startup"``. One job means cycles never overlap
(``max_instances=1``) and there is no one-off job whose removal could race with ``shutdown``
(APScheduler 3 raises ``JobLookupError`` in its own thread if a date job is removed while
the scheduler is stopping). A lock also guards direct calls.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from costguard.errors import ConfigError
from costguard.logs import get_logger

__all__ = [
    "CycleScheduler",
    "cron_trigger",
    "is_overdue",
    "previous_fire_time",
    "schedule_period",
    "utcnow",
    "validate_schedule",
]

log = get_logger(__name__)

CYCLE_JOB = "cycle"
DIGEST_JOB = "digest"

_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DAY_INDEX = {name: i for i, name in enumerate(_DAY_NAMES)}


def utcnow() -> datetime:
    return datetime.now(UTC)


def _zone(timezone: str) -> tzinfo:
    if not isinstance(timezone, str) or not timezone.strip():
        raise ValueError("time zone is empty; use an IANA name such as UTC or Europe/Berlin")
    try:
        return ZoneInfo(timezone.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown time zone {timezone!r}; use an IANA name such as UTC or Europe/Berlin"
        ) from None


def _weekday(token: str, field: str) -> int:
    t = token.strip().lower()
    if t.isdigit():
        n = int(t)
        if 0 <= n <= 7:
            return n
    elif t[:3] in _DAY_INDEX and len(t) == 3:
        return _DAY_INDEX[t]
    raise ValueError(f"day-of-week {field!r}: {token!r} is not 0-7 or sun..sat")


def _day_of_week(field: str) -> str:
    """crontab day-of-week (0/7 = Sunday, names, ranges, lists, steps) → APScheduler names."""
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        base, slash, step_s = part.partition("/")
        step = 1
        if slash:
            if not step_s.isdigit() or int(step_s) < 1:
                raise ValueError(f"day-of-week {field!r}: bad step {step_s!r}")
            step = int(step_s)
        if base in ("*", "?"):
            lo, hi = 0, 6
        elif "-" in base:
            a, _, b = base.partition("-")
            lo, hi = _weekday(a, field), _weekday(b, field)
            if hi < lo:
                raise ValueError(f"day-of-week {field!r}: range {base!r} runs backwards")
        else:
            lo = _weekday(base, field)
            hi = 7 if slash else lo
        days.update(d % 7 for d in range(lo, hi + 1, step))
    if not days:
        raise ValueError(f"day-of-week {field!r} selects no day")
    return ",".join(_DAY_NAMES[d] for d in sorted(days))


def cron_trigger(cron: str, timezone: str) -> CronTrigger:
    """A ``CronTrigger`` for a 5-field crontab expression; ``ValueError`` with a readable message."""
    tz = _zone(timezone)
    if not isinstance(cron, str):
        raise ValueError(f"cron expression must be a string, got {type(cron).__name__}")
    fields = cron.split()
    if len(fields) != 5:
        raise ValueError(
            f"cron expression {cron!r} has {len(fields)} fields; expected 5 "
            "(minute hour day-of-month month day-of-week), e.g. '0 6 * * *'"
        )
    minute, hour, day, month, dow = fields
    if day not in ("*", "?") and dow not in ("*", "?"):
        raise ValueError(
            f"cron expression {cron!r} restricts both day-of-month and day-of-week; "
            "cron would run on either, costguard supports only one of them"
        )
    try:
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=_day_of_week(dow),
            timezone=tz,
        )
    except ValueError as exc:
        raise ValueError(f"cron expression {cron!r} is invalid: {exc}") from None


def validate_schedule(cron: str, timezone: str) -> str | None:
    """The problem with a cron expression / time zone pair, or None when both are fine."""
    try:
        cron_trigger(cron, timezone)
    except ValueError as exc:
        return str(exc)
    return None


def _config_error(cron: str, timezone: str, *, key: str = "schedule.cycle") -> ConfigError:
    try:
        _zone(timezone)
    except ValueError as exc:
        return ConfigError.single(file="<config>", line=None, key="schedule.timezone", message=str(exc))
    message = validate_schedule(cron, timezone) or "invalid schedule"
    return ConfigError.single(file="<config>", line=None, key=key, message=message)


def _trigger(cron: str, timezone: str, *, key: str = "schedule.cycle") -> CronTrigger:
    try:
        return cron_trigger(cron, timezone)
    except ValueError:
        raise _config_error(cron, timezone, key=key) from None


def _aware(dt: datetime) -> datetime:
    """Naive means UTC; the result is in UTC."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _utc(dt: datetime | None) -> datetime | None:
    # Arithmetic between datetimes sharing one ZoneInfo is wall-clock arithmetic (a DST day
    # would be "24 h"), so everything compared or subtracted here is converted to UTC first.
    return None if dt is None else dt.astimezone(UTC)


def _next_fire(trigger: CronTrigger, previous: datetime | None, now: datetime) -> datetime | None:
    return _utc(trigger.get_next_fire_time(previous, now))


def _next_two(trigger: CronTrigger, now: datetime) -> tuple[datetime, datetime]:
    first = _next_fire(trigger, None, now)
    second = _next_fire(trigger, first, first) if first is not None else None
    if first is None or second is None:  # only possible with an end date, which we never set
        raise ValueError("schedule never fires")
    return first, second


def schedule_period(cron: str, timezone: str, now: datetime) -> timedelta:
    """The gap between the schedule's next two fire times after ``now`` (naive = UTC).

    Raises ``ConfigError`` (key ``schedule.cycle`` or ``schedule.timezone``) when invalid.
    """
    first, second = _next_two(_trigger(cron, timezone), _aware(now))
    return second - first


def previous_fire_time(cron: str, timezone: str, now: datetime) -> datetime:
    """The latest time ``<= now`` at which the schedule fired (or would have)."""
    trigger = _trigger(cron, timezone)
    now = _aware(now)
    first, second = _next_two(trigger, now)
    lookback = second - first
    limit = timedelta(days=366 * 30)
    while True:
        start = now - lookback
        fire = _next_fire(trigger, None, start)
        if fire is not None and fire <= now:
            break
        if lookback > limit:
            raise ValueError(f"schedule {cron!r} did not fire in the last {limit.days} days")
        lookback *= 2
    while True:
        nxt = _next_fire(trigger, fire, fire)
        if nxt is None or nxt > now:
            return fire
        fire = nxt


def is_overdue(last_success: datetime | None, cron: str, timezone: str, now: datetime) -> bool:
    """True when a catch-up cycle should run now.

    That is: never succeeded; or the last success is older than one schedule period; or a
    scheduled run came due after the last success (e.g. the pod restarted during the 06:00
    cycle), so the next regular run would be a whole period late.
    """
    if last_success is None:
        return True
    now = _aware(now)
    last = _aware(last_success)
    if now - last > schedule_period(cron, timezone, now):
        return True
    return last < previous_fire_time(cron, timezone, now)


class CycleScheduler:
    """Runs ``cycle(trigger)`` on a cron schedule, plus a catch-up run at start when overdue.

    ``trigger`` is ``"schedule"`` or ``"startup"``. Jobs use ``max_instances=1``,
    ``coalesce=True`` (missed runs collapse into one) and no misfire limit (a late run still
    runs: a daily cost check must not silently skip a day because the host was suspended).
    """

    def __init__(
        self,
        cycle: Callable[[str], None],
        *,
        cron: str,
        timezone: str,
        digest: Callable[[], None] | None = None,
        digest_cron: str | None = None,
        last_success: Callable[[], datetime | None],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        # here, not at the top: ``validate`` needs only the triggers
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        if (digest is None) != (digest_cron is None):
            raise ValueError("digest and digest_cron go together")
        self._cycle = cycle
        self._cron = cron
        self._timezone = timezone
        self._trigger = _trigger(cron, timezone, key="schedule.cycle")
        self._digest = digest
        self._digest_trigger = (
            _trigger(digest_cron, timezone, key="schedule.digest") if digest_cron is not None else None
        )
        self._last_success = last_success
        self._clock = clock
        self._cycle_lock = threading.Lock()
        self._startup_pending = threading.Event()
        self._started = False
        self._scheduler = BackgroundScheduler(
            timezone=_zone(timezone),
            executors={"default": ThreadPoolExecutor(max_workers=2)},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
        )

    # -- jobs ---------------------------------------------------------------------------------

    def _run_cycle(self, trigger: str) -> None:
        if not self._cycle_lock.acquire(blocking=False):
            log.warning("cycle_skipped", trigger=trigger, reason="another cycle is running")
            return
        try:
            self._cycle(trigger)
        except Exception:
            # The job boundary: the cycle records its own failures; this catches the rest so
            # the scheduler keeps running and the error is logged once, with its traceback.
            log.exception("cycle_crashed", trigger=trigger)
        finally:
            self._cycle_lock.release()

    def _run_scheduled(self) -> None:
        if self._startup_pending.is_set():
            self._startup_pending.clear()
            self._run_cycle("startup")
        else:
            self._run_cycle("schedule")

    def _run_digest(self) -> None:
        assert self._digest is not None
        try:
            self._digest()
        except Exception:
            log.exception("digest_crashed")

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the schedule; when ``is_overdue`` the first cycle runs right away ("startup")."""
        if self._started:
            return
        now = _aware(self._clock())
        last = self._last_success()
        overdue = is_overdue(last, self._cron, self._timezone, now)
        self._scheduler.start()
        self._started = True
        first_run: dict[str, datetime] = {}
        if overdue:
            self._startup_pending.set()
            first_run["next_run_time"] = utcnow()
        self._scheduler.add_job(
            self._run_scheduled, self._trigger, id=CYCLE_JOB, name="cycle", **first_run
        )
        if self._digest_trigger is not None:
            self._scheduler.add_job(
                self._run_digest, self._digest_trigger, id=DIGEST_JOB, name="digest"
            )
        log.info(
            "scheduler_started",
            cron=self._cron,
            timezone=self._timezone,
            last_success=last.isoformat() if last else None,
            startup_run=overdue,
            next_run=(n.isoformat() if (n := self.next_run_time()) else None),
        )

    def job_ids(self) -> list[str]:
        """Ids of the scheduled jobs (``cycle`` and, if configured, ``digest``)."""
        return sorted(job.id for job in self._scheduler.get_jobs())

    def next_run_time(self) -> datetime | None:
        """When the next cycle (scheduled or start-up) will run; None before start / after shutdown."""
        if not self._started:
            return None
        times = [
            job.next_run_time
            for job in self._scheduler.get_jobs()
            if job.id == CYCLE_JOB and getattr(job, "next_run_time", None)
        ]
        return min(times) if times else None

    def shutdown(self, wait: bool = True) -> None:
        """Stop scheduling; with ``wait`` the running cycle is allowed to finish."""
        if not self._started:
            return
        self._started = False
        if self._scheduler.running:
            self._scheduler.shutdown(wait=wait)
        log.info("scheduler_stopped")
