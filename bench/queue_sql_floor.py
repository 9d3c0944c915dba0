"""Diagnostic for target 2: the SQL alone of claim + complete, one transaction per message.

What any Python code on this schema pays at least per message: complete the previous message and its
attempt row, claim the next with UPDATE ... RETURNING (SQLite >= 3.35) and insert its attempt row, all
in a single BEGIN IMMEDIATE ... COMMIT (the product uses two). No handler, no Context, no events.

    .venv/bin/python bench/queue_sql_floor.py [N]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from cronjobs.queue import insert_message
from cronjobs.runs import _RUN_COLUMNS
from cronjobs.store import connect_store


def drain(path: str, count: int, level: str) -> float:
    database, _ = connect_store(path, synchronous=level)
    db = database.connection()
    db.execute("BEGIN IMMEDIATE")
    for index in range(count):
        insert_message(db, "bench.noop", {"n": index})
    db.execute("COMMIT")
    claim = (
        f"UPDATE message SET status = 'pending', started_at = COALESCE(started_at, ?) WHERE id = ("
        "SELECT id FROM message INDEXED BY message_claim WHERE kind = 'message' AND status = 'new' "
        f"AND run_at <= ? ORDER BY priority DESC, id LIMIT 1) RETURNING {_RUN_COLUMNS}"
    )
    began, previous, done = time.perf_counter(), None, 0
    while True:
        now = time.time()
        db.execute("BEGIN IMMEDIATE")
        if previous:
            db.execute("UPDATE message SET status = 'completed', progress = 100, finished_at = ? "
                       "WHERE id = ? AND status = 'pending'", (now, previous[0]))
            db.execute("UPDATE attempt SET finished_at = ?, outcome = 'completed' WHERE id = ?", (now, previous[1]))
        row = db.execute(claim, (now, now)).fetchone()
        if row is None:
            db.execute("COMMIT")
            break
        attempt = db.execute("INSERT INTO attempt (message_id, number, started_at, seq_start) VALUES (?, ?, ?, ?)",
                             (row[0], row[5] + 1, now, row[9])).lastrowid
        db.execute("COMMIT")
        previous, done = (row[0], attempt), done + 1
    seconds = time.perf_counter() - began
    assert done == count
    database.close()
    return seconds


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    with tempfile.TemporaryDirectory(prefix="bench-sqlfloor-") as directory:
        for level in ("FULL", "NORMAL"):
            seconds = drain(os.path.join(directory, f"{level}.sqlite3"), count, level)
            print(f"synchronous={level}: SQL floor {count / seconds:8.0f} msg/s  {seconds / count * 1e6:6.1f} us/msg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
