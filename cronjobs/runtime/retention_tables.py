"""Retention of the tables created on first use: families, batches and chains, the slot ledger.

`retention.prune` calls this after it deleted the old messages. What goes:

* a parent-child link (`message_child`) once both its messages are gone or finished before the
  cutoff: a live family keeps its links whatever its age, one that finished within the retention
  window keeps them for `show`;
* a batch or chain (`flow`, then its `flow_member` rows) closed before the cutoff whose messages are
  all gone or finished before it: an open one stays whatever its age;
* ledger slots (`slot_ledger`) older than the cutoff, except each job's newest, from which its next
  catch-up decision starts: `history` and `why` show the missed runs of the retention window.

Each batch is one short transaction of bounded statements (see below). Tables never created are
skipped.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Callable, Sequence

from ..messages.family import table_exists
from ..store.transaction import immediate


def _settled(column: str) -> str:
    """The message named by `column` is gone, or finished before the cutoff (one `?`)."""
    return (f"NOT EXISTS (SELECT 1 FROM message WHERE message.uuid = {column} AND (message.status IN "
            "('new', 'pending') OR message.finished_at IS NULL OR message.finished_at >= ?))")


_LINKS = f"{_settled('message_child.child_uuid')} AND {_settled('message_child.parent_uuid')}"
_FLOWS = (
    "state != 'open' AND finished_at < ? AND NOT EXISTS (SELECT 1 FROM flow_member JOIN message "
    "ON message.uuid = flow_member.message_uuid WHERE flow_member.flow_uuid = flow.uuid "
    "AND (message.status IN ('new', 'pending') OR message.finished_at IS NULL OR message.finished_at >= ?))"
)
_ORPHANS = "NOT EXISTS (SELECT 1 FROM flow WHERE flow.uuid = flow_member.flow_uuid)"


def _delete(db: sqlite3.Connection, statements: list[tuple[str, Sequence[Any]]]) -> int:
    """Run DELETE statements in one short write transaction; how many rows went."""
    with immediate(db):
        return sum(db.execute(sql, params).rowcount for sql, params in statements)


def prune_tables(db: sqlite3.Connection, cutoff: float, batch: int,
                 should_stop: Callable[[], bool]) -> tuple[int, bool]:
    """Delete what is described above; (rows deleted, done), done False when it stopped early."""
    steps: list[Callable[[], tuple[int, bool]]] = []
    if table_exists(db, "message_child"):
        steps.append(lambda: _by_key(db, "message_child", "child_uuid", _LINKS, (cutoff, cutoff), batch,
                                     should_stop))
    if table_exists(db, "flow"):
        steps.append(lambda: _by_key(db, "flow", "uuid", _FLOWS, (cutoff, cutoff), batch, should_stop))
        steps.append(lambda: _orphan_members(db, batch, should_stop))
    if table_exists(db, "slot_ledger"):
        steps.append(lambda: _ledger(db, cutoff, batch, should_stop))
    total = 0
    for step in steps:
        count, done = step()
        total += count
        if not done:
            return total, False
    return total, True


# Each batch reads its keys first, outside the write transaction (in WAL a read blocks no writer, and a
# table's rows the retention keeps are read once per run, from the last key on), then deletes them in
# a short one, the condition asked again: what came back to life in between stays.


def _by_key(db: sqlite3.Connection, table: str, key: str, where: str, params: tuple[Any, ...], batch: int,
            should_stop: Callable[[], bool]) -> tuple[int, bool]:
    total, after = 0, ""
    while True:
        keys = [str(k) for (k,) in db.execute(
            f"SELECT {key} FROM {table} WHERE {key} > ? AND {where} ORDER BY {key} LIMIT {int(batch)}",
            (after, *params)).fetchall()]
        if keys:
            total += _delete(db, [(f"DELETE FROM {table} WHERE {key} IN ({', '.join('?' * len(keys))}) "
                                   f"AND {where}", (*keys, *params))])
        if len(keys) < batch:
            return total, True
        after = keys[-1]
        if should_stop():
            return total, False


def _orphan_members(db: sqlite3.Connection, batch: int, should_stop: Callable[[], bool]) -> tuple[int, bool]:
    """The member rows of deleted flows (by `_by_key` just before, or by a run cut between the two)."""
    total, after = 0, ""
    while True:
        rows = db.execute(f"SELECT flow_uuid, position FROM flow_member WHERE flow_uuid >= ? AND {_ORPHANS} "
                          f"ORDER BY flow_uuid, position LIMIT {int(batch)}", (after,)).fetchall()
        # Each flow read is read whole, but the last one when the LIMIT cut it: that one up to its last position.
        flows = list(dict.fromkeys(str(flow) for flow, _ in rows))
        whole = flows if len(rows) < batch else flows[:-1]
        statements: list[tuple[str, Sequence[Any]]] = []
        if whole:
            statements.append((f"DELETE FROM flow_member WHERE flow_uuid IN ({', '.join('?' * len(whole))}) "
                               f"AND {_ORPHANS}", whole))
        if len(whole) < len(flows):
            statements.append((f"DELETE FROM flow_member WHERE flow_uuid = ? AND position <= ? AND {_ORPHANS}",
                               (flows[-1], rows[-1][1])))
        if statements:
            total += _delete(db, statements)
        if len(rows) < batch:
            return total, True
        after = flows[-1]
        if should_stop():
            return total, False


def _ledger(db: sqlite3.Connection, cutoff: float, batch: int, should_stop: Callable[[], bool]) -> tuple[int, bool]:
    """Slots before the cutoff, job by job, oldest first, each job's newest kept (`ledger.last_handled`)."""
    total = 0
    jobs = db.execute("SELECT job, MAX(slot) FROM slot_ledger GROUP BY job ORDER BY job").fetchall()
    for index, (job, newest) in enumerate(jobs):
        bound = min(cutoff, float(newest))
        last = False
        while not last:
            # The slot `batch` rows in: up to it this time (a slot has a row per action, at most three).
            row = db.execute(f"SELECT slot FROM slot_ledger WHERE job = ? AND slot < ? ORDER BY slot "
                             f"LIMIT 1 OFFSET {int(batch) - 1}", (job, bound)).fetchone()
            last = row is None
            total += _delete(db, [("DELETE FROM slot_ledger WHERE job = ? AND slot < ?", (job, bound)) if last
                                  else ("DELETE FROM slot_ledger WHERE job = ? AND slot <= ?", (job, row[0]))])
            if (not last or index + 1 < len(jobs)) and should_stop():
                return total, False
    return total, True
