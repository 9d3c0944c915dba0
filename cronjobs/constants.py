"""Names shared by the declarations (registry), the scheduling rules (schedule) and the idle path.

A leaf module with no imports, so none of them needs another just for these names: schedule no longer
imports registry, and the idle tick pays for one tiny module.
"""

from __future__ import annotations

#: Interval schedules, longest period first: the order in which one tick runs them.
INTERVALS = ("yearly", "monthly", "weekly", "daily", "hourly", "minutely")

#: The schedule of a job that runs only when named (`@cronjobs.manual`).
MANUAL = "manual"

#: `run_at` of a parent that waits for its children (see messages.family): year 3000, never due. A running
#: message carries it once another process gave it a child, so that its completion waits for that child.
WAITING = 32503680000.0

#: Outcomes of a run that count as failures: retried with backoff, reported, exit code 1.
FAILED_OUTCOMES = frozenset({"failed", "timeout", "crashed"})


#: Version of the scheduling rules. Due times cached under other rules (0.1.0 had no version in the key)
#: are computed again: cron's day-field, weekday and DST rules can move a job's next fire time earlier.
RULES = 2


def schedule_key(schedule: str, tz_name: str) -> str:
    """What a job's cached next-due time depends on: a change of any part invalidates it."""
    return f"{schedule}|{tz_name}|{RULES}"


def soft_margin(time_limit: float) -> float:
    """How long before the hard limit the worker stops starting work: 10 %, at most 3 s."""
    return min(time_limit * 0.1, 3.0)
