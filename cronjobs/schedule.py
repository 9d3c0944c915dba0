"""Pure scheduling decisions: functions of (schedule, last run, now, timezone), no I/O, no clock.

Interval jobs run once per calendar period in the configured time zone. Cron expressions are matched
against local wall-clock time; a fire time that falls into the spring-forward gap maps to the instant
one gap later (PEP 495 `fold=0`, so the day is never lost), and a fire time must lie strictly after the
last run as an instant, so the repeated autumn hour never fires one slot twice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from functools import cache, lru_cache
from typing import Optional

from .constants import FAILED_OUTCOMES, INTERVALS

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@cache
def get_timezone(name: Optional[str] = None) -> tzinfo:
    """The IANA zone `name`, or the system's zone; raises ValueError for an unknown name."""
    import zoneinfo

    if not name:
        name = os.environ.get("TZ", "").lstrip(":") or None
    if not name:
        try:
            return zoneinfo.ZoneInfo.from_file(open("/etc/localtime", "rb"), key="localtime")
        except OSError:
            return UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def _local_midnight(year: int, month: int, day: int, tz: tzinfo) -> datetime:
    return datetime(year, month, day, tzinfo=tz).astimezone(UTC).astimezone(tz)


def period_start(interval: str, at: datetime, tz: tzinfo) -> datetime:
    """Start of the calendar period (`hourly`, `daily`, ...) that contains the instant `at`."""
    local = at.astimezone(tz)
    if interval == "minutely":
        start = local.replace(second=0, microsecond=0)  # keeps `fold` in the repeated hour
    elif interval == "hourly":
        start = local.replace(minute=0, second=0, microsecond=0)
    elif interval == "daily":
        start = datetime(local.year, local.month, local.day, tzinfo=tz)
    elif interval == "weekly":
        monday = local.date() - timedelta(days=local.weekday())
        start = datetime(monday.year, monday.month, monday.day, tzinfo=tz)
    elif interval == "monthly":
        start = datetime(local.year, local.month, 1, tzinfo=tz)
    elif interval == "yearly":
        start = datetime(local.year, 1, 1, tzinfo=tz)
    else:
        raise ValueError(f"unknown interval {interval!r}")
    return start.astimezone(UTC).astimezone(tz)


def next_period_start(interval: str, at: datetime, tz: tzinfo) -> datetime:
    """Start of the calendar period after the one that contains `at`."""
    start = period_start(interval, at, tz)
    if interval in ("minutely", "hourly"):
        step = timedelta(minutes=1) if interval == "minutely" else timedelta(hours=1)
        return period_start(interval, start.astimezone(UTC) + step, tz)
    if interval == "daily":
        day = start.date() + timedelta(days=1)
        return _local_midnight(day.year, day.month, day.day, tz)
    if interval == "weekly":
        day = start.date() + timedelta(days=7)
        return _local_midnight(day.year, day.month, day.day, tz)
    if interval == "monthly":
        year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
        return _local_midnight(year, month, 1, tz)
    return _local_midnight(start.year + 1, 1, 1, tz)


@lru_cache(maxsize=256)
def cron_fields(expression: str) -> str:
    """The five-field form of a cron expression python-crontab accepts (`@daily` -> `0 0 * * *`)."""
    from crontab import CronSlices

    slices = CronSlices(" ".join(expression.split()))
    if slices.special == "@reboot":
        raise ValueError("@reboot is not a schedule")
    return slices.clean_render()


def check_expression(expression: str) -> Optional[str]:
    """None when `expression` is a usable cron schedule, else what is wrong with it."""
    try:
        fields = cron_fields(expression)
        from croniter import croniter

        croniter(fields, datetime(2000, 1, 1)).get_next(datetime)
    except (ValueError, KeyError) as exc:
        return f"bad cron expression {expression!r}: {exc}"
    except Exception as exc:  # croniter's own errors: for example a date that never exists
        return f"bad cron expression {expression!r}: {type(exc).__name__}: {exc}"
    return None


def next_fire(expression: str, after: datetime, tz: tzinfo) -> datetime:
    """First fire time of `expression` strictly after the instant `after`."""
    from croniter import croniter

    after_ts = after.timestamp()
    wall = after.astimezone(tz).replace(tzinfo=None)
    times = croniter(cron_fields(expression), wall)
    while True:
        candidate = times.get_next(datetime).replace(tzinfo=tz)  # fold=0: first of a repeated hour
        if candidate.timestamp() > after_ts:
            return candidate.astimezone(UTC).astimezone(tz)


def next_regular(schedule: str, after: datetime, tz: tzinfo) -> datetime:
    """The first time after `after` at which `schedule` wants a new run."""
    if schedule in INTERVALS:
        return next_period_start(schedule, after, tz)
    return next_fire(schedule, after, tz)


@dataclass(frozen=True)
class LastRun:
    """What the scheduler needs of a job's most recent run."""

    started_at: datetime
    outcome: str
    failures: int = 0  # consecutive failed runs, counted within one period


@dataclass(frozen=True)
class Decision:
    due: bool
    at: datetime  # when the job is (or was) due
    reason: str


def retry_delay(failures: int, backoff: float) -> timedelta:
    """Backoff before retrying a job that failed `failures` times in a row: 1, 2, 4... x `backoff`."""
    return timedelta(seconds=backoff * 2 ** max(failures - 1, 0))


def next_due(
    schedule: str,
    last: Optional[LastRun],
    tz: tzinfo,
    first_seen: datetime,
    backoff: float = 60.0,
) -> tuple[datetime, str]:
    """When `schedule` is next due, and why; EPOCH means due since forever."""
    if last is None:
        if schedule in INTERVALS:
            return EPOCH, "never ran"
        return next_fire(schedule, first_seen, tz), "first fire time since it was declared"
    regular = next_regular(schedule, last.started_at, tz)
    if last.outcome in FAILED_OUTCOMES:
        retry = last.started_at + retry_delay(last.failures, backoff)
        if retry.timestamp() < regular.timestamp():
            return retry, f"retry {last.failures} after the last run {last.outcome}"
    if schedule in INTERVALS:
        return regular, f"a new {_PERIOD_NAME[schedule]} began since the last run"
    return regular, "a fire time passed since the last run"


def decide(
    schedule: str,
    last: Optional[LastRun],
    now: datetime,
    tz: tzinfo,
    first_seen: datetime,
    backoff: float = 60.0,
) -> Decision:
    """Is the job due at `now`? Several missed periods still give one run."""
    at, reason = next_due(schedule, last, tz, first_seen, backoff)
    # Compare instants: aware datetimes of one zone compare by wall time, which ignores `fold`.
    return Decision(due=at.timestamp() <= now.timestamp(), at=at, reason=reason)


def count_failures(
    schedule: str, previous: Optional[LastRun], started_at: datetime, tz: tzinfo
) -> int:
    """Consecutive failures including a run started at `started_at` that just failed."""
    if (
        previous is not None
        and previous.outcome in FAILED_OUTCOMES
        and next_regular(schedule, previous.started_at, tz).timestamp() > started_at.timestamp()
    ):
        return previous.failures + 1
    return 1


_PERIOD_NAME = {
    "yearly": "year",
    "monthly": "month",
    "weekly": "week",
    "daily": "day",
    "hourly": "hour",
    "minutely": "minute",
}
