"""One write transaction on a store connection (sqlite3's, or a server's taking the same SQL)."""

from __future__ import annotations

import contextlib
import sqlite3
from typing import Iterator


@contextlib.contextmanager
def immediate(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back if the body or the COMMIT fails.

    IMMEDIATE takes SQLite's write lock at once: a read upgraded to a write later would be refused with
    "database is locked" in WAL mode while another connection writes. The ROLLBACK only when a
    transaction is still open, so it never hides the error that ended it.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
