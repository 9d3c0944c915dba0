"""Every run of a periodic job and every message attempt, newest first: attempt JOIN message."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any, Optional

from ..errors import StoreError
from ..messages.queue import iso
from ..runtime.idle import no_schema, open_fast
from ..scheduling import ledger

DEFAULT_LIMIT = 50


@dataclass
class Entry:
    kind: str  # "job" or "message"
    name: str  # job name or message type
    uuid: Optional[str]  # None for a missed slot of the catch-up ledger
    attempt: int
    started_at: float
    finished_at: Optional[float]
    outcome: Optional[str]  # None while it runs
    error: Optional[str]
    message_id: int = 0
    warnings: list[str] = field(default_factory=list)  # what ctx.warn said during this attempt

    @property
    def duration(self) -> Optional[float]:
        return None if self.finished_at is None else max(self.finished_at - self.started_at, 0.0)

    def to_json(self) -> dict[str, Any]:
        """The fields of `run-cron history --json`."""
        return {
            "kind": self.kind,
            "name": self.name,
            "uuid": self.uuid,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "outcome": self.outcome,
            "error": self.error,
            "attempt": self.attempt,
            "warnings": list(self.warnings),
        }


def read(connection: sqlite3.Connection, name: Optional[str] = None, limit: int = DEFAULT_LIMIT) -> list[Entry]:
    """The newest `limit` attempts, of the job or message type `name` if given."""
    sql = (
        "SELECT message.kind, message.type, message.uuid, attempt.number, attempt.started_at, "
        "attempt.finished_at, attempt.outcome, attempt.error, attempt.message_id "
        "FROM attempt JOIN message ON message.id = attempt.message_id"
    )
    params: list[Any] = []
    if name is not None:
        sql += " WHERE message.type = ?"
        params.append(name)
    sql += " ORDER BY attempt.started_at DESC, attempt.id DESC LIMIT ?"
    params.append(int(limit))
    try:
        entries = [Entry(*row) for row in connection.execute(sql, params)]
    except sqlite3.OperationalError as exc:
        if no_schema(exc):
            return []
        raise
    _add_warnings(connection, entries)
    missed = [Entry("job", job, None, 0, slot, None, f"missed ({action})", _MISSED.get(action), 0)
              for job, slot, action, _ in ledger.missed(connection, name, limit)]
    if missed:
        entries = sorted(entries + missed, key=lambda entry: entry.started_at, reverse=True)[:limit]
    return entries


#: Why the catch-up ledger gave a slot up (see `catchup`).
_MISSED = {
    "skipped": "catch_up=skip: no tick came within 5 minutes of this fire time",
    "dropped": "catch_up=all: older than the newest max_catch_up missed fire times",
}


def _add_warnings(connection: sqlite3.Connection, entries: list[Entry]) -> None:
    """Give each attempt the warnings its message recorded between the attempt's start and end."""
    ids = sorted({entry.message_id for entry in entries})
    if not ids:
        return
    by_message: dict[int, list[Entry]] = {}
    for entry in entries:
        by_message.setdefault(entry.message_id, []).append(entry)
    rows = connection.execute(
        f"SELECT message_id, at, text FROM warning WHERE message_id IN ({', '.join('?' * len(ids))}) ORDER BY id",
        ids)
    for message_id, at, text in rows:
        for entry in by_message[message_id]:
            if entry.started_at <= at and (entry.finished_at is None or at <= entry.finished_at + 0.001):
                entry.warnings.append(text)
                break


def history(config: Any, name: Optional[str] = None, limit: int = DEFAULT_LIMIT) -> list[Entry]:
    """`read` on the configured database; empty when there is no database yet.

    Raises StoreError when the database cannot be read (unreadable, corrupt, truncated, full disk).
    """
    connection = open_fast(config.database, config.busy_timeout)
    if connection is None:
        return []
    try:
        return read(connection, name, limit)
    except sqlite3.Error as exc:
        raise StoreError(config.database, exc) from exc
    finally:
        connection.close()


def table_rows(entries: list[Entry], tz: Any) -> list[dict[str, Any]]:
    """Rows for `render_table`: local start time, duration in seconds, "running" while unfinished."""
    from .views import local_iso

    return [
        {
            "started": local_iso(entry.started_at, tz),
            "kind": entry.kind,
            "name": entry.name,
            "uuid": entry.uuid,
            "attempt": entry.attempt,
            "outcome": entry.outcome or "running",
            "duration": None if entry.duration is None else f"{entry.duration:.2f} s",
            "error": entry.error,
            "warnings": "; ".join(entry.warnings) or None,
        }
        for entry in entries
    ]
