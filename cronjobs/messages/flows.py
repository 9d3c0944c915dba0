"""Batches and chains of messages: `queue.batch([...], then=...)` and `queue.chain([...])`.

A batch enqueues its members at once and, when every member has finished (completed, failed for
good or cancelled), enqueues its `then` message once, with the counts in its payload. A chain enqueues
its first step; each next step is enqueued when the one before it completed, and the chain stops at
a step that failed for good or was cancelled.

Tables of their own, created on first use (portable SQL): the main schema does not change. The
worker calls `advance` before and after draining the queue, so a batch's callback and a chain's next
step are queued in the tick that finished their predecessors, or the next one after a kill; the
idle check asks `waiting_flows` so such a tick is not skipped.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

from ..runtime.idle import waiting_flows
from ..runtime.runs import new_uuid
from ..store.transaction import immediate

BATCH, CHAIN = "batch", "chain"
OPEN, DONE, FAILED = "open", "done", "failed"
_LIVE = ("new", "pending")

# Types every engine reads alike: VARCHAR keys (MySQL), DOUBLE PRECISION for epoch seconds, no
# generated ids (the uuid is the key).
_CREATE = (
    "CREATE TABLE IF NOT EXISTS flow (uuid VARCHAR(64) NOT NULL PRIMARY KEY, kind VARCHAR(16) NOT NULL, "
    "state VARCHAR(16) NOT NULL, steps TEXT, then_type VARCHAR(191), then_payload TEXT, options TEXT, "
    "created_at DOUBLE PRECISION NOT NULL, finished_at DOUBLE PRECISION)",
    "CREATE TABLE IF NOT EXISTS flow_member (flow_uuid VARCHAR(64) NOT NULL, position INTEGER NOT NULL, "
    "message_uuid VARCHAR(64) NOT NULL, PRIMARY KEY (flow_uuid, position))",
)

Step = tuple[str, Any]


@dataclass
class Flow:
    """A batch or chain as `queue.batch`/`queue.chain` return it and `queue.flow(uuid)` reads it."""

    uuid: str
    kind: str
    state: str
    members: list[str]  # message uuids, in order (a chain's later steps appear once queued)
    steps: int
    then: Optional[str] = None  # uuid of a batch's callback message, once queued

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _steps(steps: Iterable[Sequence[Any]], what: str) -> list[Step]:
    found = []
    for step in steps:
        if not isinstance(step, (tuple, list)) or len(step) != 2 or not isinstance(step[0], str) or not step[0]:
            raise ValueError(f"{what}: each step is a (type, payload) pair, got {step!r}")
        found.append((step[0], step[1]))
    if not found:
        raise ValueError(f"{what}: needs at least one (type, payload)")
    return found


def create(db: sqlite3.Connection, kind: str, steps: Iterable[Sequence[Any]], then: Optional[Sequence[Any]],
           options: dict[str, Any], now: Optional[float] = None) -> Flow:
    """Store a batch (enqueueing every member) or a chain (enqueueing its first step), in one transaction."""
    from .insert import insert_message, to_json

    now = time.time() if now is None else now
    listed = _steps(steps, f"queue.{kind}")
    then_step = _steps([then], "then")[0] if then is not None else None
    for _, payload in listed + ([then_step] if then_step else []):
        to_json(payload)  # refuse a bad payload before anything is written
    if "key" in options:
        raise ValueError(f"queue.{kind}: key= is per message, not for a whole {kind}")
    uuid = new_uuid()
    for statement in _CREATE:  # before the transaction: DDL commits the open one on MariaDB and MySQL
        db.execute(statement)
    with immediate(db):
        db.execute(
            "INSERT INTO flow (uuid, kind, state, steps, then_type, then_payload, options, created_at) "
            "VALUES (?, ?, 'open', ?, ?, ?, ?, ?)",
            (uuid, kind, json.dumps(listed), then_step[0] if then_step else None,
             json.dumps(then_step[1]) if then_step else None, json.dumps(options), now))
        members = []
        for position, (type_, payload) in enumerate(listed if kind == BATCH else listed[:1]):
            member = _insert(db, insert_message, type_, payload, options, now)
            db.execute("INSERT INTO flow_member (flow_uuid, position, message_uuid) VALUES (?, ?, ?)",
                       (uuid, position, member))
            members.append(member)
    return Flow(uuid, kind, OPEN, members, len(listed))


def _insert(db: sqlite3.Connection, insert_message: Any, type_: str, payload: Any, options: dict[str, Any],
            now: float) -> str:
    # insert_message opens its own transaction only for a key or labels; inside ours, insert plainly.
    fields = {k: v for k, v in options.items() if k in ("priority", "max_attempts", "owner")}
    return str(insert_message(db, type_, payload, now=now, **fields))


def read(db: sqlite3.Connection, uuid: str) -> Optional[Flow]:
    try:
        row = db.execute("SELECT uuid, kind, state, steps FROM flow WHERE uuid = ?", (uuid,)).fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    if row is None:
        return None
    flow_key, kind, state, steps = row
    members = [m for (m,) in db.execute(
        "SELECT message_uuid FROM flow_member WHERE flow_uuid = ? AND position >= 0 ORDER BY position", (flow_key,))]
    then = db.execute("SELECT message_uuid FROM flow_member WHERE flow_uuid = ? AND position = -1",
                      (flow_key,)).fetchone()
    return Flow(uuid, kind, state, members, len(json.loads(steps)), then[0] if then else None)


def advance(db: sqlite3.Connection, now: Optional[float] = None) -> list[tuple[str, str]]:
    """Move every open flow whose live members have all finished: queue a batch's callback or a chain's
    next step, or close it. Returns (flow uuid, what happened) for each."""
    if not waiting_flows(db):
        return []
    from .family import table_exists

    if not table_exists(db, "flow"):  # waiting_flows answers for parents waiting for children too
        return []
    from .insert import insert_message

    now = time.time() if now is None else now
    moved = []
    with immediate(db):
        rows = db.execute("SELECT uuid, uuid, kind, steps, then_type, then_payload, options FROM flow "
                          "WHERE state = 'open' ORDER BY created_at, uuid").fetchall()
        for flow_key, uuid, kind, steps, then_type, then_payload, options in rows:
            # On a server another host's worker may be moving this flow now: the flow's row lock decides,
            # and what that worker queued is read after it (SQLite's BEGIN IMMEDIATE already serializes).
            if not db.execute("UPDATE flow SET state = state WHERE uuid = ? AND state = 'open'", (flow_key,)).rowcount:
                continue
            statuses = [status for (status,) in db.execute(
                "SELECT message.status FROM flow_member JOIN message ON message.uuid = flow_member.message_uuid "
                "WHERE flow_member.flow_uuid = ? AND flow_member.position >= 0 ORDER BY flow_member.position",
                (flow_key,))]
            if any(status in _LIVE for status in statuses):
                continue
            settings = json.loads(options or "{}")
            if kind == BATCH:
                counts = {name: statuses.count(name) for name in ("completed", "failed", "cancelled")}
                if then_type:
                    payload = json.loads(then_payload) if then_payload else None
                    body = dict(payload) if isinstance(payload, dict) else {"payload": payload}
                    body["batch"] = {"uuid": uuid, "total": len(statuses), **counts}
                    then = _insert(db, insert_message, then_type, body, settings, now)
                    db.execute("INSERT INTO flow_member (flow_uuid, position, message_uuid) VALUES (?, -1, ?)",
                               (flow_key, then))
                db.execute("UPDATE flow SET state = 'done', finished_at = ? WHERE uuid = ?", (now, flow_key))
                moved.append((uuid, "then queued" if then_type else "done"))
                continue
            listed = json.loads(steps)
            if statuses and statuses[-1] != "completed":
                db.execute("UPDATE flow SET state = 'failed', finished_at = ? WHERE uuid = ?", (now, flow_key))
                moved.append((uuid, f"stopped: step {len(statuses)} {statuses[-1]}"))
            elif len(statuses) >= len(listed):
                db.execute("UPDATE flow SET state = 'done', finished_at = ? WHERE uuid = ?", (now, flow_key))
                moved.append((uuid, "done"))
            else:
                type_, payload = listed[len(statuses)]
                step = _insert(db, insert_message, type_, payload, settings, now)
                db.execute("INSERT INTO flow_member (flow_uuid, position, message_uuid) VALUES (?, ?, ?)",
                           (flow_key, len(statuses), step))
                moved.append((uuid, f"step {len(statuses) + 1} queued"))
    return moved
