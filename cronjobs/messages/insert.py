"""Writing one message row: the INSERT every producer goes through (the Queue, a handler's
`ctx.enqueue`, batches and chains), with the JSON and delay rules it enforces."""

from __future__ import annotations

import json
import math
import sqlite3
import time
import uuid as uuidlib
from datetime import datetime
from typing import Any, Collection, Optional, Union

from ..errors import InvalidPayload


def new_uuid() -> str:
    return str(uuidlib.uuid4())


def to_json(value: Any, what: str = "payload") -> Optional[str]:
    """Serialise strictly (no NaN, no objects): payloads are JSON, never pickle."""
    if value is None:
        return None
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidPayload(f"{what}: {exc}") from None


def run_at_from_delay(delay: Union[float, int, datetime, None], now: float) -> float:
    if delay is None:
        return now
    if isinstance(delay, datetime):
        return delay.timestamp()  # a naive datetime is local time, as datetime.timestamp() has it
    seconds = float(delay)
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"delay must be >= 0 seconds, got {delay!r}")
    return now + seconds


def insert_message(
    db: sqlite3.Connection,
    type: str,
    payload: Any = None,
    *,
    priority: int = 0,
    delay: Union[float, int, datetime, None] = 0,
    key: Optional[str] = None,
    max_attempts: int = 3,
    owner: Optional[str] = None,
    now: Optional[float] = None,
    public: bool = False,
    tags: Optional[Collection[str]] = None,
    parent: Optional[str] = None,
    on_child_failure: str = "fail",
) -> str:
    """Insert one message; with `key`, return the live message of that key instead of a second one.

    `public` and `tags` (see `labels`), and a `parent` (see `family`), are stored with a new message,
    in its transaction.
    """
    if on_child_failure not in ("fail", "ignore"):
        raise ValueError(f"on_child_failure must be 'fail' or 'ignore', got {on_child_failure!r}")
    from .labels import check_tags, label

    tag_list = check_tags(tags)
    if not type or not isinstance(type, str):
        raise ValueError("message type must be a non-empty string")
    if int(max_attempts) < 1:
        raise ValueError(f"max_attempts must be >= 1, got {max_attempts!r}")
    payload_json = to_json(payload)
    now = time.time() if now is None else now
    run_at = run_at_from_delay(delay, now)
    uuid = new_uuid()
    params = (uuid, type, payload_json, int(priority), run_at, key, owner, int(max_attempts), now)
    insert = (
        "INSERT INTO message (uuid, kind, type, payload, status, priority, run_at, key, owner, "
        "attempts, max_attempts, seq, progress, created_at) "
        "VALUES (?, 'message', ?, ?, 'new', ?, ?, ?, ?, 0, ?, 0, 0, ?)"
    )
    if key is None and not public and not tag_list and parent is None:
        db.execute(insert, params)
        return uuid
    if public or tag_list:
        from .labels import create

        create(db)
    if parent is not None:
        from .family import create as create_family

        create_family(db)
    db.execute("BEGIN IMMEDIATE")
    try:
        row = None
        if key is not None:
            row = db.execute(
                "SELECT uuid FROM message WHERE key = ? AND status IN ('new', 'pending')", (key,)
            ).fetchone()
        if row is None:
            label(db, int(db.execute(insert, params).lastrowid or 0), public, tag_list)
            if parent is not None:
                from .family import add_child

                add_child(db, parent, uuid, on_child_failure)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return row[0] if row else uuid
