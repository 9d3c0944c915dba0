"""Paused periodic jobs and message types: `run-cron pause NAME`, `run-cron resume NAME`.

A table of its own, created on the first pause (CREATE TABLE IF NOT EXISTS, portable SQL), so the
main schema does not change; readers treat a missing table as "nothing paused". Standard library
sqlite3 only: the idle tick reads it.
"""

from __future__ import annotations

import sqlite3
from typing import Collection, Optional

JOB, TYPE = "job", "type"

# Types every engine reads alike (VARCHAR keys for MySQL, DOUBLE PRECISION for epoch seconds).
_CREATE = (
    "CREATE TABLE IF NOT EXISTS pause (kind VARCHAR(16) NOT NULL, name VARCHAR(191) NOT NULL, "
    "paused_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (kind, name))"
)


def paused(db: sqlite3.Connection) -> dict[tuple[str, str], float]:
    """{(kind, name): paused_at} of everything paused; {} before the first pause."""
    try:
        return {(kind, name): at for kind, name, at in db.execute("SELECT kind, name, paused_at FROM pause")}
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return {}
        raise


def paused_names(db: sqlite3.Connection, kind: str) -> set[str]:
    return {name for (k, name) in paused(db) if k == kind}


def pause(db: sqlite3.Connection, kind: str, name: str, now: float) -> bool:
    """Pause `name`; False if it was paused already (its pause time stays)."""
    db.execute(_CREATE)
    if (kind, name) in paused(db):
        return False
    try:
        db.execute("INSERT INTO pause (kind, name, paused_at) VALUES (?, ?, ?)", (kind, name, now))
    except sqlite3.IntegrityError:  # paused by someone else meanwhile
        return False
    return True


def resume(db: sqlite3.Connection, kind: str, name: str) -> bool:
    """Resume `name`; False if it was not paused."""
    try:
        return db.execute("DELETE FROM pause WHERE kind = ? AND name = ?", (kind, name)).rowcount > 0
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return False
        raise


def since(db: sqlite3.Connection, kind: str, name: str) -> Optional[float]:
    return paused(db).get((kind, name))


def kinds_of(name: str, jobs: Collection[str], types: Collection[str]) -> list[str]:
    """What `name` names: a periodic job, a message type, or both; raises UnknownNameError for neither."""
    found = [kind for kind, names in ((JOB, jobs), (TYPE, types)) if name in names]
    if not found:
        from ..errors import UnknownNameError

        raise UnknownNameError(name)
    return found
