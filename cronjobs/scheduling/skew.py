"""Clock skew: a time in the store that lies in the future means the wall clock stepped back.

A last run, first sighting or enqueue time that the clock has not reached yet was written before the
clock stepped back (or during a jump forward that was corrected since). Taken at face value it would
keep an hourly job silent, or a message waiting, until the clock catches up, up to a day. The worker
treats such a time as now: it logs one warning and rewrites it, so what was due runs on schedule.
"""

from __future__ import annotations

import logging
import sqlite3

log = logging.getLogger(__name__)

#: Times less than this far ahead are ordinary races (a message enqueued as the tick starts) or small
#: clock differences between hosts, not a clock step.
SKEW_TOLERANCE = 60.0

_JOBS = "last_run > :limit OR last_finished > :limit OR first_seen > :limit"
_MESSAGES = "status = 'new' AND run_at > :limit AND created_at > :limit"


def correct_skew(db: sqlite3.Connection, now: float, tolerance: float = SKEW_TOLERANCE) -> int:
    """Rewrite future times in `job_state` and in waiting messages as `now`; returns the rows changed.

    A job's last run in the future becomes now (it ran in the current period, as far as the clock
    knows) and its cached next due time is dropped, to be computed again from the corrected times. A
    waiting message enqueued in the future keeps its delay, counted from now.
    """
    values = {"now": now, "limit": now + tolerance}
    (jobs, job_ahead), = db.execute(
        f"SELECT COUNT(*), MAX(MAX(COALESCE(last_run, 0), COALESCE(last_finished, 0), first_seen)) - :now "
        f"FROM job_state WHERE {_JOBS}", values).fetchall()
    (messages, message_ahead), = db.execute(
        f"SELECT COUNT(*), MAX(created_at) - :now FROM message WHERE {_MESSAGES}", values).fetchall()
    if not jobs and not messages:
        return 0
    log.warning("clock skew: the store holds times up to %.0f s in the future (%d job(s), %d waiting "
                "message(s)); the clock stepped back: treating them as now",
                max(job_ahead or 0, message_ahead or 0), jobs, messages)
    db.execute("BEGIN IMMEDIATE")
    try:
        # CASE, not MIN(column, :now): the same on every engine (a NULL time stays NULL), each parameter
        # typed by its comparison (PostgreSQL gives none to a parameter it only sees in MIN's rewrite)
        db.execute(
            "UPDATE job_state SET last_run = CASE WHEN last_run > :now THEN :now ELSE last_run END, "
            "last_finished = CASE WHEN last_finished > :now THEN :now ELSE last_finished END, "
            f"first_seen = CASE WHEN first_seen > :now THEN :now ELSE first_seen END, next_due = NULL WHERE {_JOBS}",
            values)
        db.execute(f"UPDATE message SET run_at = :now + (run_at - created_at), created_at = :now WHERE {_MESSAGES}",
                   values)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return jobs + messages
