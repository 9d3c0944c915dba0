"""Visibility and tags of queued messages: `enqueue(..., public=True, tags=["export", "user:7"])`.

A table of its own, created on first use (portable SQL) and tied to `message` by a cascading
foreign key, so the main schema does not change and retention deletes a message's labels with it;
readers treat a missing table as "no labels". Tags are stored between commas (`,export,user:7,`)
so one indexed-free LIKE finds a tag; a tag therefore holds no comma.
"""

from __future__ import annotations

import sqlite3
from typing import Iterable, Optional

from ..errors import InvalidPayload

# The foreign key as a table constraint: MySQL 8.0 parses a column's inline REFERENCES and ignores it.
_CREATE = (
    "CREATE TABLE IF NOT EXISTS message_label (message_id INTEGER PRIMARY KEY, public INTEGER NOT NULL DEFAULT 0, "
    "tags TEXT, FOREIGN KEY (message_id) REFERENCES message (id) ON DELETE CASCADE)"
)


def check_tags(tags: Optional[Iterable[str]]) -> list[str]:
    """The tags as a list, each a non-empty string without commas; InvalidPayload otherwise."""
    if tags is None:
        return []
    if isinstance(tags, str):
        raise InvalidPayload(f"tags must be a list of strings such as [\"export\"], not the string {tags!r}")
    found = []
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip() or "," in tag:
            raise InvalidPayload(f"tag {tag!r}: expected a non-empty string without commas")
        if tag.strip() not in found:
            found.append(tag.strip())
    return found


def exists(db: sqlite3.Connection) -> bool:
    """Whether the table exists (outside a transaction: on PostgreSQL a failed statement ends it)."""
    from .family import table_exists

    return table_exists(db, "message_label")


def create(db: sqlite3.Connection) -> None:
    """Create the table if needed. Outside a transaction: DDL commits the open one on MariaDB and MySQL."""
    db.execute(_CREATE)


def label(db: sqlite3.Connection, message_id: int, public: bool, tags: list[str]) -> None:
    """Store a new message's labels (nothing to store for a private message without tags); `create` first."""
    if not public and not tags:
        return
    db.execute("INSERT INTO message_label (message_id, public, tags) VALUES (?, ?, ?)",
               (message_id, 1 if public else 0, "," + ",".join(tags) + "," if tags else None))


def read(db: sqlite3.Connection, message_ids: list[int]) -> dict[int, tuple[bool, list[str]]]:
    """{message id: (public, tags)} of those that have labels."""
    if not message_ids or not exists(db):
        return {}
    found = {}
    for start in range(0, len(message_ids), 500):
        chunk = message_ids[start:start + 500]
        for message_id, public, tags in db.execute(
            f"SELECT message_id, public, tags FROM message_label WHERE message_id IN ({', '.join('?' * len(chunk))})",
            chunk,
        ):
            found[message_id] = (bool(public), [tag for tag in (tags or "").split(",") if tag])
    return found


def _like(tag: str) -> str:
    # "!" escapes: a backslash would be a string escape in MySQL's literals.
    escaped = tag.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return f"%,{escaped},%"


def where(db: sqlite3.Connection, owner: Optional[str], tag: Optional[str]) -> tuple[list[str], list[object]]:
    """SQL conditions on `message` for an owner-scoped listing (the owner's messages and everyone's
    public ones) and a tag, with their parameters."""
    conditions: list[str] = []
    params: list[object] = []
    labelled = exists(db)
    if owner is not None:
        if labelled:
            conditions.append("(owner = ? OR id IN (SELECT message_id FROM message_label WHERE public = 1))")
        else:
            conditions.append("owner = ?")
        params.append(owner)
    if tag is not None:
        if labelled:
            conditions.append("id IN (SELECT message_id FROM message_label WHERE tags LIKE ? ESCAPE '!')")
            params.append(_like(tag))
        else:
            conditions.append("0 = 1")
    return conditions, params
