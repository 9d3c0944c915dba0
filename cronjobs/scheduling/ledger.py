"""The slot ledger of periodic jobs with a catch-up policy: which fire times ran, were skipped or dropped.

A table of its own, created on first use (portable SQL), so the main schema does not change; readers
treat a missing table as empty. `history` shows the skipped and dropped slots as missed runs.
"""

from __future__ import annotations

import sqlite3
from typing import Iterable, Optional

RAN, SKIPPED, DROPPED = "ran", "skipped", "dropped"

# Types every engine reads alike (VARCHAR keys for MySQL, DOUBLE PRECISION for epoch seconds).
_CREATE = (
    "CREATE TABLE IF NOT EXISTS slot_ledger (job VARCHAR(191) NOT NULL, slot DOUBLE PRECISION NOT NULL, "
    "action VARCHAR(16) NOT NULL, recorded_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (job, slot, action))",
)


def _missing(exc: sqlite3.OperationalError) -> bool:
    return "no such table" in str(exc)


def last_handled(db: sqlite3.Connection, job: str) -> Optional[float]:
    """The newest slot of `job` that ran or was given up; None before the first."""
    try:
        row = db.execute("SELECT MAX(slot) FROM slot_ledger WHERE job = ?", (job,)).fetchone()
    except sqlite3.OperationalError as exc:
        if _missing(exc):
            return None
        raise
    return None if row is None else row[0]


def record(db: sqlite3.Connection, job: str, slots: Iterable[float], action: str, now: float) -> int:
    """Add `slots` of `job` with `action`; returns how many."""
    rows = [(job, slot, action, now) for slot in slots]
    if rows:
        for statement in _CREATE:
            db.execute(statement)
        db.executemany("INSERT INTO slot_ledger (job, slot, action, recorded_at) VALUES (?, ?, ?, ?)", rows)
    return len(rows)


def missed(db: sqlite3.Connection, job: Optional[str] = None, limit: int = 50) -> list[tuple[str, float, str, float]]:
    """(job, slot, action, recorded_at) of skipped and dropped slots, newest slot first."""
    sql = "SELECT job, slot, action, recorded_at FROM slot_ledger WHERE action != 'ran'"
    params: list[object] = []
    if job is not None:
        sql += " AND job = ?"
        params.append(job)
    try:
        # By job within a slot: without it, jobs that missed the same slot come in any order (MariaDB).
        return list(db.execute(sql + f" ORDER BY slot DESC, job LIMIT {int(limit)}", params))
    except sqlite3.OperationalError as exc:
        if _missing(exc):
            return []
        raise
