"""Catch-up policies of periodic jobs: what to do with fire times (slots) that passed without a run.

Pure functions of (schedule, the last slot handled, now, time zone). "latest" (the default) is the
rule of `schedule.decide`: missed slots collapse into one run. "skip" runs a slot only when a tick
comes within `MISSED_AFTER` seconds of it; slots no tick reached in time are dropped (written to the
ledger as skipped) and the job waits for its next slot. "all" runs each missed slot once, oldest
first, one per tick; slots beyond the newest `max_catch_up` are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Optional

from .schedule import next_regular

#: A slot no tick reached within this many seconds counts as missed (catch_up="skip").
MISSED_AFTER = 300.0
#: The most slots looked at in one decision: a minutely job down for a year is not walked slot by slot.
SCAN_LIMIT = 2000


@dataclass(frozen=True)
class CatchUp:
    """The decision for one job at one tick."""

    slot: Optional[datetime]  # the slot to run now; None: nothing runs
    skipped: list[datetime] = field(default_factory=list)  # slots dropped by "skip"
    dropped: list[datetime] = field(default_factory=list)  # slots beyond max_catch_up ("all")
    next_due: Optional[datetime] = None  # when to look again if nothing runs now (None: next slot)


def slots(spec: str, after: datetime, until: datetime, tz: tzinfo, jitter: float = 0.0,
          limit: int = SCAN_LIMIT) -> list[datetime]:
    """Fire times in (after, until], oldest first; at most the newest `limit` (older ones are cut)."""
    found: list[datetime] = []
    moment = after
    while True:
        moment = next_regular(spec, moment, tz, jitter)
        if moment.timestamp() > until.timestamp():
            return found
        found.append(moment)
        if len(found) > limit:
            del found[0]


def decide_catch_up(policy: str, spec: str, handled: datetime, now: datetime, tz: tzinfo,
                    max_catch_up: int = 10, jitter: float = 0.0) -> CatchUp:
    """What `policy` does at `now` with the slots after `handled` (the last slot run or dropped)."""
    missed = slots(spec, handled, now, tz, jitter)
    if not missed:
        return CatchUp(None)
    if policy == "skip":
        latest = missed[-1]
        if now.timestamp() - latest.timestamp() <= MISSED_AFTER:
            return CatchUp(latest, skipped=missed[:-1])
        return CatchUp(None, skipped=missed, next_due=next_regular(spec, now, tz, jitter))
    if policy == "all":
        keep = max(int(max_catch_up), 1)
        return CatchUp(missed[-keep:][0], dropped=missed[:-keep])
    return CatchUp(missed[-1])  # "latest": one run for them all


def after_run(spec: str, slot: datetime, tz: tzinfo, jitter: float = 0.0) -> datetime:
    """When the job is next due after running `slot`: its next slot (at once, if that passed too)."""
    return next_regular(spec, slot, tz, jitter)


