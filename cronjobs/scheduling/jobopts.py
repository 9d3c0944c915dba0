"""The options of periodic job decorators, checked and turned into what the scheduler works from.

`daily(at="03:00")` and `weekly(day="sun", at="04:30")` are cron expressions (`0 3 * * *`,
`30 4 * * 0`) fired by the same Debian cron DST rules as any other. Pure string work, no imports
beyond the standard library: every idle tick imports the jobs modules that call this.
"""

from __future__ import annotations

import re
from typing import Any, Optional, Union

CATCH_UP = ("latest", "skip", "all")

_DAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_MONTHS = {name: number for number, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
_AT = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])\Z", re.ASCII)
_MINUTE = re.compile(r":?([0-5]?[0-9])\Z", re.ASCII)


def _time(at: str) -> tuple[int, int]:
    match = _AT.match(str(at).strip())
    if not match:
        raise ValueError(f"at={at!r}: expected a time of day such as \"03:00\"")
    return int(match.group(1)), int(match.group(2))


def _weekday(day: Union[str, int]) -> int:
    if isinstance(day, int) and not isinstance(day, bool) and 0 <= day <= 7:
        return day % 7
    text = str(day).strip().lower()[:3]
    if text in _DAYS and str(day).strip().lower() in (text, _full_day(text)):
        return _DAYS[text]
    raise ValueError(f"day={day!r}: expected a weekday such as \"sun\" or \"monday\" (or 0-7, 0 and 7 Sunday)")


def _full_day(short: str) -> str:
    return {"sun": "sunday", "mon": "monday", "tue": "tuesday", "wed": "wednesday", "thu": "thursday",
            "fri": "friday", "sat": "saturday"}[short]


def _number(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{what}={value!r}: expected a whole number from {low} to {high}")
    return value


def interval_spec(schedule: str, at: Optional[str] = None, day: Any = None, month: Any = None) -> Optional[str]:
    """The cron expression of an interval decorator's `at`/`day`/`month`, or None when none is given.

    Raises ValueError saying which option is wrong and what was expected.
    """
    if at is None and day is None and month is None:
        return None
    allowed = {"hourly": ("at",), "daily": ("at",), "weekly": ("at", "day"), "monthly": ("at", "day"),
               "yearly": ("at", "day", "month")}.get(schedule, ())
    for option, value in (("at", at), ("day", day), ("month", month)):
        if value is not None and option not in allowed:
            raise ValueError(f"{option}= is not an option of @cronjobs.{schedule}"
                             + (f" (it takes {', '.join(o + '=' for o in allowed)})" if allowed else ""))
    if schedule == "hourly":
        match = _MINUTE.match(str(at).strip())
        if not match:
            raise ValueError(f"at={at!r}: expected the minute past the hour such as \":15\"")
        return f"{int(match.group(1))} * * * *"
    hour, minute = _time(at) if at is not None else (0, 0)
    if schedule == "daily":
        return f"{minute} {hour} * * *"
    if schedule == "weekly":
        return f"{minute} {hour} * * {_weekday(1 if day is None else day)}"
    if schedule == "monthly":
        return f"{minute} {hour} {_number(1 if day is None else day, 'day', 1, 31)} * *"
    if isinstance(month, str) and month.strip().lower()[:3] in _MONTHS:
        month = _MONTHS[month.strip().lower()[:3]]
    return f"{minute} {hour} {_number(1 if day is None else day, 'day', 1, 31)} " \
           f"{_number(1 if month is None else month, 'month', 1, 12)} *"


def check_options(time_limit: Any, catch_up: Any, max_catch_up: Any, jitter: Any) -> None:
    """Raise ValueError for a periodic job option out of range."""
    if time_limit is not None and (isinstance(time_limit, bool) or not isinstance(time_limit, (int, float))
                                   or not time_limit > 0):
        raise ValueError(f"time_limit={time_limit!r}: expected seconds > 0")
    if catch_up not in CATCH_UP:
        raise ValueError(f"catch_up={catch_up!r}: expected one of {', '.join(map(repr, CATCH_UP))}")
    _number(max_catch_up, "max_catch_up", 1, 1000)
    _number(jitter, "jitter", 0, 366 * 86400)


def jitter_offset(name: str, jitter: int) -> int:
    """Seconds (0 to jitter-1) by which `name`'s runs are spread: the same on every host and tick."""
    if jitter <= 0:
        return 0
    import zlib

    return zlib.crc32(name.encode("utf-8")) % jitter
