"""Cron expressions read and matched as Debian's cron daemon (Vixie cron 3.0pl1) reads and matches them.

Wall-clock matching only; what happens around DST changes is decided in `schedule`. Our own matcher
because the libraries differ from cron where users notice: croniter runs `0 0 * * 7-7` every day and
ORs the day fields of `0 16 */2 * sat`, and python-crontab renders `7-7` as `0,*` and `1-7` as `*`.
The rules, from cron's entry.c and crontab(5):

- five fields: minute 0-59, hour 0-23, day of month 1-31, month 1-12 or jan-dec, day of week 0-7
  or sun-sat, where 0 and 7 both mean Sunday (`7-7` is Sunday, `1-7` every day);
- a field is a comma list of `*`, `N` or `N-M`, the last two with an optional `/STEP`;
- day of month and day of week: when either field starts with `*` a day must match both,
  otherwise either (`0 16 */2 * sat`: odd-numbered days that are Saturdays; `0 0 1,15 * mon`: the
  1st, the 15th and every Monday);
- a job whose minute or hour field starts with `*` is a wildcard job (`*/5 * * * *`, `0 * * * *`,
  `*/15 2 * * *`, `@hourly`); any other is a fixed-time job (`30 2 * * *`, `0,30 2 * * *`, `@daily`);
- the macros: @yearly and @annually `0 0 1 1 *`, @monthly `0 0 1 * *`, @weekly `0 0 * * 0`,
  @daily and @midnight `0 0 * * *`, @hourly `0 * * * *`.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import date, datetime, timedelta
from functools import lru_cache

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")

#: (name, lowest, highest, names counted from `lowest`) of the five fields.
_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)

#: Long enough for any date that exists: February 29th falls on each weekday within 28 years.
_SEARCH_DAYS = 28 * 366 + 7


class CronSpec:
    """A parsed five-field cron expression: the values each field allows, and cron's star flags."""

    __slots__ = ("minutes", "hours", "days", "months", "weekdays", "day_and", "wildcard")

    def __init__(self, fields: list[str]) -> None:
        values = [_parse_field(text, *spec) for text, spec in zip(fields, _FIELDS)]
        if 7 in values[4]:  # cron's "make Sundays equivalent"
            values[4] = sorted(set(values[4]) - {7} | {0})
        self.minutes, self.hours, self.days, self.months, self.weekdays = values
        #: Either day field starts with `*`: a day must match both (cron's DOM_STAR/DOW_STAR flags).
        self.day_and = fields[2].startswith("*") or fields[4].startswith("*")
        #: The minute or hour field starts with `*` (cron's MIN_STAR/HR_STAR flags).
        self.wildcard = fields[0].startswith("*") or fields[1].startswith("*")

    def day_matches(self, day: date) -> bool:
        in_month = day.day in self.days
        in_week = (day.weekday() + 1) % 7 in self.weekdays  # cron counts from Sunday = 0
        return (in_month and in_week) if self.day_and else (in_month or in_week)

    def matches(self, wall: datetime) -> bool:
        return (wall.minute in self.minutes and wall.hour in self.hours and wall.month in self.months
                and self.day_matches(wall.date()))

    def next_match(self, after: datetime) -> datetime:
        """The first wall-clock minute strictly after the naive `after` that matches."""
        start = after.replace(second=0, microsecond=0, fold=0) + timedelta(minutes=1)
        day, hour, minute = start.date(), start.hour, start.minute
        for _ in range(_SEARCH_DAYS):
            if day.month not in self.months:
                day = date(day.year + day.month // 12, day.month % 12 + 1, 1)
                hour = minute = 0
                continue
            if self.day_matches(day):
                index = bisect_left(self.hours, hour)
                while index < len(self.hours):
                    h = self.hours[index]
                    m = bisect_left(self.minutes, minute if h == hour else 0)
                    if m < len(self.minutes):
                        return datetime(day.year, day.month, day.day, h, self.minutes[m])
                    index += 1
            day += timedelta(days=1)
            hour = minute = 0
        raise ValueError("it never fires (no such date)")


@lru_cache(maxsize=256)
def parse(expression: str) -> CronSpec:
    """The CronSpec of five fields or a macro; ValueError says what is wrong."""
    text = " ".join(expression.split())
    if text.startswith("@"):
        if text.lower() == "@reboot":
            raise ValueError("@reboot is not a schedule")
        if text.lower() not in MACROS:
            raise ValueError(f"unknown macro {text!r}")
        text = MACROS[text.lower()]
    fields = text.split(" ")
    if len(fields) != 5:
        raise ValueError(f"{len(fields)} fields, cron has 5 (minute hour day-of-month month day-of-week)")
    return CronSpec(fields)


def _number(text: str, field: str, low: int, high: int, names: tuple[str, ...]) -> int:
    if text.lower() in names:
        return names.index(text.lower()) + low
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"{text!r} is not a number or name in the {field} field")
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{value} is not in {low}-{high} in the {field} field")
    return value


def _parse_field(text: str, field: str, low: int, high: int, names: tuple[str, ...]) -> list[int]:
    chosen: set[int] = set()
    for item in text.split(","):
        span, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not (step_text.isascii() and step_text.isdigit()) or int(step_text) == 0:
                raise ValueError(f"bad step {step_text!r} in the {field} field")
            step = int(step_text)
        if span == "*":
            first, last = low, high
        elif "-" in span:
            first_text, _, last_text = span.partition("-")
            first = _number(first_text, field, low, high, names)
            last = _number(last_text, field, low, high, names)
            if first > last:
                raise ValueError(f"range {span!r} runs backwards in the {field} field")
        else:
            if slash:  # cron reads a step only after `*` or a range
                raise ValueError(f"a step needs `*` or a range, not {span!r}, in the {field} field")
            first = last = _number(span, field, low, high, names)
        chosen.update(range(first, last + 1, step))
    return sorted(chosen)
