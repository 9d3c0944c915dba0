"""Rate limits per message type: `@cronjobs.handler("mail.send", rate="200/h")`.

A sliding window: a message may start when fewer than N messages of its type started in the last
minute, hour or day. Messages over the limit stay `new` and use no attempt. Standard library only:
the idle tick asks whether anything under its limit is runnable.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Iterable, Optional

_UNITS = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400}
_RATE = re.compile(r"\s*([0-9]+)\s*/\s*([a-z]+)\s*\Z", re.ASCII)

Rate = tuple[int, float]  # (how many, per how many seconds)


def parse_rate(text: str) -> Rate:
    """`"200/h"` -> (200, 3600.0); also /min and /d. Raises ValueError saying what was expected."""
    match = _RATE.match(str(text).lower())
    if not match or match.group(2) not in _UNITS or int(match.group(1)) < 1:
        raise ValueError(f"rate={text!r}: expected a count per minute, hour or day such as \"200/h\" "
                         "(units: /min, /h, /d)")
    return int(match.group(1)), float(_UNITS[match.group(2)])


def started_since(db: sqlite3.Connection, type: str, since: float) -> list[float]:
    """Start times of the attempts of `type` since `since` (finished or still running), oldest first."""
    finished = [at for (at,) in db.execute(
        "SELECT attempt.started_at FROM attempt JOIN message ON message.id = attempt.message_id "
        "WHERE message.type = ? AND message.kind = 'message' AND attempt.started_at >= ? "
        "AND (attempt.outcome IS NULL OR attempt.outcome != 'continued')", (type, since))]
    running = [at for (at,) in db.execute(
        "SELECT attempt_started_at FROM message WHERE type = ? AND kind = 'message' AND status = 'pending' "
        "AND attempt_started_at >= ?", (type, since))]
    return sorted(finished + running)


def budget(db: sqlite3.Connection, type: str, rate: Rate, now: float) -> tuple[int, Optional[float]]:
    """How many more messages of `type` may start now, and, at 0, when the next one may."""
    count, window = rate
    starts = started_since(db, type, now - window)
    left = count - len(starts)
    if left > 0:
        return left, None
    return 0, starts[len(starts) - count] + window  # when the oldest start in the full window leaves it


def exhausted(db: sqlite3.Connection, rates: Iterable[tuple[str, Rate]], now: float) -> dict[str, float]:
    """{type: when it may start again} of the types at their limit now."""
    found = {}
    for type, rate in rates:
        left, until = budget(db, type, rate, now)
        if left <= 0 and until is not None:
            found[type] = until
    return found


def describe(rate: Rate) -> str:
    count, window = rate
    unit = {60.0: "min", 3600.0: "h", 86400.0: "d"}.get(window, f"{window:g}s")
    return f"{count}/{unit}"
