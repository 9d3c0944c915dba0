"""Parent and child messages: `ctx.enqueue_child(...)` and `queue.enqueue(..., parent=UUID)`.

A parent whose handler has finished waits for its children: it stays `new` with `run_at` at
`WAITING` (so no claim takes it and no idle check counts it), and once every child has finished it
completes, or fails when a child failed for good or was cancelled and that child was queued with
`on_child_failure="fail"` (the default; "ignore" lets the parent complete anyway). The relation is
in a table of its own, created on first use (portable SQL): the main schema does not change.
Children are ordinary messages: checkpoints, retries, kills and recovery treat them as any other.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Iterable, Optional

#: `run_at` of a parent waiting for its children: year 3000, never due.
WAITING = 32503680000.0
ON_CHILD_FAILURE = ("fail", "ignore")

# VARCHAR keys: MySQL indexes no TEXT column without a prefix length.
_CREATE = (
    "CREATE TABLE IF NOT EXISTS message_child (child_uuid VARCHAR(64) NOT NULL PRIMARY KEY, "
    "parent_uuid VARCHAR(64) NOT NULL, on_failure VARCHAR(16) NOT NULL DEFAULT 'fail')",
)
#: MySQL has no CREATE INDEX IF NOT EXISTS; there the index is left out (lookups scan the small table).
_INDEX = "CREATE INDEX IF NOT EXISTS message_child_parent ON message_child (parent_uuid)"


def exists(db: sqlite3.Connection) -> bool:
    """Whether the table exists. Ask outside a transaction: on PostgreSQL a failed statement ends it."""
    return table_exists(db, "message_child")


def table_exists(db: sqlite3.Connection, table: str) -> bool:
    """Portable (no sqlite_master): the server stores report a missing table as SQLite does."""
    try:
        db.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return False
        raise
    return True


def add_child(db: sqlite3.Connection, parent: str, child: str, on_failure: str) -> None:
    """Inside the child's insert transaction: tie it to `parent`, which must be new or running."""
    from ..errors import InvalidState, MessageNotFound

    row = db.execute("SELECT status, run_at FROM message WHERE uuid = ?", (parent,)).fetchone()
    if row is None:
        raise MessageNotFound(parent)
    if row[0] not in ("new", "pending"):
        raise InvalidState(f"message {parent} is {row[0]}; children can be added while it is new or running")
    for statement in _CREATE:
        db.execute(statement)
    try:
        db.execute(_INDEX)
    except sqlite3.OperationalError:
        pass
    db.execute("INSERT INTO message_child (child_uuid, parent_uuid, on_failure) VALUES (?, ?, ?)",
               (child, parent, on_failure))


def hold_parents(db: sqlite3.Connection, uuids: Iterable[str]) -> None:
    """Inside a completion's transaction: completed messages that have children wait for them instead."""
    listed = list(uuids)
    for start in range(0, len(listed), 500):
        chunk = listed[start:start + 500]
        marks = ", ".join("?" * len(chunk))
        db.execute(
            f"UPDATE message SET status = 'new', run_at = ?, finished_at = NULL, progress = 100 "
            f"WHERE uuid IN ({marks}) AND status = 'completed' "
            f"AND uuid IN (SELECT parent_uuid FROM message_child WHERE parent_uuid IN ({marks}))",
            (WAITING, *chunk, *chunk))


def children(db: sqlite3.Connection, parent: str) -> list[dict[str, Any]]:
    """The children of `parent`, oldest first: uuid, type, status, progress, error, on_failure."""
    if not exists(db):
        return []
    return [
        {"uuid": uuid, "type": type_, "status": status, "progress": round(progress or 0.0, 1), "error": error,
         "on_child_failure": on_failure}
        for uuid, type_, status, progress, error, on_failure in db.execute(
            "SELECT message.uuid, message.type, message.status, message.progress, message.error, "
            "message_child.on_failure FROM message_child JOIN message ON message.uuid = message_child.child_uuid "
            "WHERE message_child.parent_uuid = ? ORDER BY message.id", (parent,))
    ]


def parent_of(db: sqlite3.Connection, child: str) -> Optional[str]:
    if not exists(db):
        return None
    row = db.execute("SELECT parent_uuid FROM message_child WHERE child_uuid = ?", (child,)).fetchone()
    return None if row is None else str(row[0])


def advance(db: sqlite3.Connection, now: float) -> list[tuple[str, str]]:
    """Complete or fail each waiting parent whose children have all finished; (uuid, outcome) each."""
    if not exists(db):
        return []
    moved = []
    db.execute("BEGIN IMMEDIATE")
    try:
        waiting = [uuid for (uuid,) in db.execute(
            "SELECT uuid FROM message WHERE status = 'new' AND run_at = ?", (WAITING,))]
        for parent in waiting:
            kids = children(db, parent)
            if any(kid["status"] in ("new", "pending") for kid in kids):
                continue
            failed = [kid for kid in kids if kid["status"] in ("failed", "cancelled")
                      and kid["on_child_failure"] == "fail"]
            if failed:
                kid = failed[0]
                error = f"child {kid['uuid']} ({kid['type']}) {kid['status']}" + (
                    f": {kid['error']}" if kid["error"] else "")
                db.execute("UPDATE message SET status = 'failed', error = ?, finished_at = ? WHERE uuid = ? "
                           "AND status = 'new' AND run_at = ?", (error, now, parent, WAITING))
                moved.append((parent, "failed"))
            else:
                db.execute("UPDATE message SET status = 'completed', progress = 100, finished_at = ? "
                           "WHERE uuid = ? AND status = 'new' AND run_at = ?", (now, parent, WAITING))
                moved.append((parent, "completed"))
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return moved
