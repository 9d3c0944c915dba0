"""Pure scheduling decisions: functions of (schedule, last run, now, timezone), no I/O, no clock.

Cron expressions fire as Debian's cron daemon fires them (cron(8), "Special considerations exist
when the clock is changed by less than 3 hours"), matched by `cronspec` against local wall-clock time:

- wildcard jobs (minute or hour field starting with `*`, `@hourly`) follow the clock as it is: both
  copies of a repeated autumn hour fire, times a spring-forward gap skipped do not;
- fixed-time jobs (any other) follow a clock that never goes back: the repeated hour fires once (in
  its first copy), and each slot the gap skipped fires right after the change, one per tick, in order.

Interval decorators are the cron expressions of `INTERVAL_EXPRESSIONS` under the same rules (so
`hourly` and `0 * * * *` agree), except that a job that never ran is due at once. A job is due when a
fire time lies after its last run and at or before now: missed fire times collapse into one run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from functools import cache
from typing import Optional

from ..constants import FAILED_OUTCOMES, INTERVALS
from .cronspec import CronSpec, parse

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


#: What each interval decorator means as a cron expression (`weekly`: ISO weeks, from Monday).
INTERVAL_EXPRESSIONS = {
    "yearly": "0 0 1 1 *",
    "monthly": "0 0 1 * *",
    "weekly": "0 0 * * 1",
    "daily": "0 0 * * *",
    "hourly": "0 * * * *",
    "minutely": "* * * * *",
}

#: Around a change of UTC offset the wall clock is not monotonic; DST moves it by at most 3 hours
#: (cron itself treats larger jumps as clock corrections).
_NEAR = timedelta(hours=3)


def check_expression(expression: str) -> Optional[str]:
    """None when `expression` is a usable cron schedule, else what is wrong with it."""
    from crontab import CronSlices

    text = " ".join(expression.split())
    try:
        if text.lower() != "@reboot":  # python-crontab accepts it; parse() says why run-cron cannot
            CronSlices(text)
        parse(text).next_match(datetime(2000, 1, 1))
    except (ValueError, KeyError) as exc:
        return f"bad cron expression {expression!r}: {exc}"
    return None


def _wall(at: datetime, tz: tzinfo) -> datetime:
    """The naive local wall-clock time of the instant `at`."""
    return at.astimezone(tz).replace(tzinfo=None, fold=0)


def _instants(wall: datetime, tz: tzinfo) -> list[datetime]:
    """The instants at which the clock shows `wall`: none in a spring gap, two in a repeated hour."""
    found = []
    for fold in (0, 1):
        instant = wall.replace(tzinfo=tz, fold=fold).astimezone(UTC)
        if _wall(instant, tz) == wall and instant not in found:
            found.append(instant)
    return sorted(found)


def _after_gap(wall: datetime, tz: tzinfo) -> datetime:
    """The instant the clock jumped over `wall`, a time the spring-forward gap skipped."""
    low = int(wall.replace(tzinfo=tz, fold=1).astimezone(UTC).timestamp())  # before the jump
    high = int(wall.replace(tzinfo=tz, fold=0).astimezone(UTC).timestamp())  # after it
    low, high = min(low, high), max(low, high)
    while low < high:
        middle = (low + high) // 2
        if _wall(datetime.fromtimestamp(middle, UTC), tz) > wall:
            high = middle
        else:
            low = middle + 1
    return datetime.fromtimestamp(low, UTC)


def _offset_change(at: datetime, before: timedelta, after: timedelta, tz: tzinfo) -> timedelta:
    """How far the UTC offset moves between `at - before` and `at + after`: zero away from DST changes."""
    offsets = [(at + delta).astimezone(tz).utcoffset() or timedelta(0) for delta in (-before, timedelta(0), after)]
    return max(offsets) - min(offsets)


def _next_wildcard(spec: CronSpec, after: datetime, tz: tzinfo) -> datetime:
    """Wildcard jobs follow the wall clock as it is: both copies of a repeated hour fire, a skipped
    hour does not (cron: "jobs specified with wildcards are run based on the new time immediately")."""
    wall = _wall(after, tz)
    shift = _offset_change(after, _NEAR, _NEAR, tz)
    candidate = wall - shift  # a repeated hour shows wall times up to `shift` earlier again
    best: Optional[datetime] = None
    while True:
        candidate = spec.next_match(candidate)
        for instant in _instants(candidate, tz):
            if instant > after and (best is None or instant < best):
                best = instant
        if best is not None and candidate > wall + shift:
            return best


def _next_fixed(spec: CronSpec, after: datetime, tz: tzinfo) -> datetime:
    """Fixed-time jobs follow a wall clock that never goes back: a repeated hour fires once (its first
    copy), and each slot a spring-forward gap skipped fires right after the change, one per minute in
    order (cron runs them all at once), ahead of the slots that follow."""
    wall = _wall(after, tz)
    near = _offset_change(after, 2 * _NEAR, timedelta(0), tz)
    candidate = wall - 2 * _NEAR if near else wall  # start before the gap whose slots may still wait
    previous: Optional[datetime] = None
    while True:
        candidate = spec.next_match(candidate)
        instants = _instants(candidate, tz)
        at = instants[0] if instants else _after_gap(candidate, tz)
        if previous is not None and at < previous + timedelta(minutes=1):
            at = previous + timedelta(minutes=1)
        if at > after:
            return at.astimezone(tz)
        previous = at


def next_fire(expression: str, after: datetime, tz: tzinfo) -> datetime:
    """First fire time of `expression` strictly after the instant `after`, by cron's DST rules."""
    spec = parse(expression)
    moment = after.astimezone(UTC)
    found = _next_wildcard(spec, moment, tz) if spec.wildcard else _next_fixed(spec, moment, tz)
    return found.astimezone(tz)


def next_regular(schedule: str, after: datetime, tz: tzinfo, jitter: float = 0.0) -> datetime:
    """The first time after `after` at which `schedule` wants a new run, each fire time moved `jitter`
    seconds later (a job's fixed share of its `jitter=`, see `jobopts.jitter_offset`)."""
    if not jitter:
        return next_fire(INTERVAL_EXPRESSIONS.get(schedule, schedule), after, tz)
    shift = timedelta(seconds=jitter)
    return next_fire(INTERVAL_EXPRESSIONS.get(schedule, schedule), after - shift, tz) + shift


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
    jitter: float = 0.0,
) -> tuple[datetime, str]:
    """When `schedule` is next due, and why; EPOCH means due since forever."""
    if last is None:
        if schedule in INTERVALS:
            return EPOCH, "never ran"
        return next_regular(schedule, first_seen, tz, jitter), "first fire time since it was declared"
    regular = next_regular(schedule, last.started_at, tz, jitter)
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
    jitter: float = 0.0,
) -> Decision:
    """Is the job due at `now`? Several missed periods still give one run."""
    at, reason = next_due(schedule, last, tz, first_seen, backoff, jitter)
    # Compare instants: aware datetimes of one zone compare by wall time, which ignores `fold`.
    return Decision(due=at.timestamp() <= now.timestamp(), at=at, reason=reason)


def count_failures(
    schedule: str, previous: Optional[LastRun], started_at: datetime, tz: tzinfo, jitter: float = 0.0
) -> int:
    """Consecutive failures including a run started at `started_at` that just failed."""
    if (
        previous is not None
        and previous.outcome in FAILED_OUTCOMES
        and next_regular(schedule, previous.started_at, tz, jitter).timestamp() > started_at.timestamp()
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
