"""Parent and child messages: `ctx.enqueue_child(...)` and `queue.enqueue(..., parent=UUID)`.

A parent whose handler has finished waits for its children: it stays `new` with `run_at` at
`WAITING` (so no claim takes it and no idle check counts it), and once every child has finished it
completes, or fails when a child failed for good or was cancelled and that child was queued with
`on_child_failure="fail"` (the default; "ignore" lets the parent complete anyway). The relation is
in a table of its own, created on first use (portable SQL): the main schema does not change. A
worker knows of that table from its claim on; a message given a child while it runs is marked
(`run_at` at `WAITING` already, see `add_child`), so its completion waits even when the table did not
exist at its claim (runs.py). Children are ordinary messages: checkpoints, retries, kills and
recovery treat them as any other.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from ..constants import WAITING  # `run_at` of a parent waiting for its children
from ..store.transaction import immediate

ON_CHILD_FAILURE = ("fail", "ignore")
#: How many generations below a message `show` and the status page read, and how many descendants at
#: most (beyond a message's own children): enough for any real split of work, bounded against a
#: handler that keeps queuing children of children.
MAX_DEPTH = 5
BUDGET = 2000
_CHUNK = 500  # IN lists stay below every engine's limit on parameters

# VARCHAR keys: MySQL indexes no TEXT column without a prefix length. The UNIQUE constraint is the
# index of the lookups by parent, made with the table on every engine: MySQL has no CREATE INDEX IF NOT
# EXISTS, and on PostgreSQL that statement waits for any open transaction that added a child.
_CREATE = (
    "CREATE TABLE IF NOT EXISTS message_child (child_uuid VARCHAR(64) NOT NULL PRIMARY KEY, "
    "parent_uuid VARCHAR(64) NOT NULL, on_failure VARCHAR(16) NOT NULL DEFAULT 'fail', "
    "UNIQUE (parent_uuid, child_uuid))",
)


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


def create(db: sqlite3.Connection) -> None:
    """Create the table if needed. Outside a transaction: DDL commits the open one on MariaDB and MySQL."""
    for statement in _CREATE:
        db.execute(statement)


def add_child(db: sqlite3.Connection, parent: str, child: str, on_failure: str) -> None:
    """Inside the child's insert transaction, after `create`: tie it to `parent`, which must be new or
    running."""
    from ..errors import InvalidState, MessageNotFound

    # The parent's row lock: on a server, its completion on another host waits for this child to commit
    # (and then holds it), or has committed and this child is refused. SQLite's BEGIN IMMEDIATE serializes.
    # A running parent is marked (run_at WAITING, unused while it runs): the worker running it may have
    # looked for this table before it existed, and its completion holds a marked message all the same.
    if not db.execute("UPDATE message SET run_at = CASE WHEN status = 'pending' THEN ? ELSE run_at END "
                      "WHERE uuid = ? AND status IN ('new', 'pending')", (WAITING, parent)).rowcount:
        row = db.execute("SELECT status FROM message WHERE uuid = ?", (parent,)).fetchone()
        if row is None:
            raise MessageNotFound(parent)
        raise InvalidState(f"message {parent} is {row[0]}; children can be added while it is new or running")
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
    moved: list[tuple[str, str]] = []
    with immediate(db):
        settled = -1
        while settled < len(moved):  # again while a pass settled one: it may be the last child of another
            settled = len(moved)
            _settle(db, now, moved)
    return moved


def _settle(db: sqlite3.Connection, now: float, moved: list[tuple[str, str]]) -> None:
    """One pass over the waiting parents: complete or fail those whose children have all finished."""
    waiting = [uuid for (uuid,) in db.execute(
        "SELECT uuid FROM message WHERE status = 'new' AND run_at = ? ORDER BY id", (WAITING,))]
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
            cursor = db.execute("UPDATE message SET status = 'failed', error = ?, finished_at = ? WHERE uuid = ? "
                                "AND status = 'new' AND run_at = ?", (error, now, parent, WAITING))
            outcome = "failed"
        else:
            cursor = db.execute("UPDATE message SET status = 'completed', progress = 100, finished_at = ? "
                                "WHERE uuid = ? AND status = 'new' AND run_at = ?", (now, parent, WAITING))
            outcome = "completed"
        if cursor.rowcount:  # not settled meanwhile by another host's worker (a server engine)
            moved.append((parent, outcome))


@dataclass
class Family:
    """The children of one message as read (oldest first), and counts over all of them."""

    children: list[Node]
    counts: dict[str, int]  # every child by status, read or not
    total: int  # more than len(children) when the depth or the budget stopped the reading
    unread: float = 0.0  # the progress the children not read add, each counted as itself (see progress_of)


@dataclass
class Node:
    """A descendant of a message: its own columns, and its family if it has one (and it was read)."""

    uuid: str
    type: str
    status: str
    progress: float  # its own, as stored
    error: Optional[str]
    attempts: int  # attempts used; queue.shown_attempts numbers them with `latest`
    latest: Optional[str]
    max_attempts: int
    owner: Optional[str]
    created_at: Optional[float]
    run_at: Optional[float]
    started_at: Optional[float]
    finished_at: Optional[float]
    on_child_failure: str
    family: Optional[Family] = None
    aggregate: float = 0.0  # its progress with its family's (progress_of)

    @property
    def waiting(self) -> bool:
        """Its handler returned and it waits for its children."""
        return self.status == "new" and self.run_at == WAITING

    @property
    def live(self) -> bool:
        return self.status in ("new", "pending")


def progress_of(own: float, waiting: bool, family: Optional[Family]) -> float:
    """A parent's progress: the average of its own (100 once its handler returned) and each child's,
    a finished child counting 100 and an unfinished one its own aggregate (its children's included)."""
    if family is None or not family.total:
        return own
    read = sum(kid.aggregate if kid.live else 100.0 for kid in family.children)
    return ((100.0 if waiting else own) + read + family.unread) / (1 + family.total)


def _raw(status: str, progress: Optional[float]) -> float:
    return (progress or 0.0) if status in ("new", "pending") else 100.0


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


_NODE_COLUMNS = (
    "message_child.parent_uuid, message.uuid, message.type, message.status, message.progress, message.error, "
    "message.attempts, (SELECT number || ' ' || COALESCE(outcome, '') FROM attempt "
    "WHERE attempt.message_id = message.id ORDER BY attempt.id DESC LIMIT 1), message.max_attempts, "
    "message.owner, message.created_at, message.run_at, message.started_at, message.finished_at, "
    "message_child.on_failure"
)


def families(db: sqlite3.Connection, uuids: Iterable[str], depth: int = MAX_DEPTH, budget: int = BUDGET,
             all_children: bool = False) -> dict[str, Family]:
    """The families below `uuids` (only those that have children), `depth` generations deep.

    At most `budget` descendants are read, oldest first, generation by generation; with
    `all_children` a message's own children are read whatever their number (as `show` lists them)
    and only the generations below count against the budget. Counts, totals and progress cover
    what was not read as well. A relation that loops back is read once.
    """
    level = list(dict.fromkeys(uuids))
    if not level or not exists(db):
        return {}
    found: dict[str, Family] = {}
    holders: dict[str, Optional[Node]] = dict.fromkeys(level)  # whose family each uuid of the level is
    seen: set[str] = set()  # not `uuids`: one of them may be a descendant of another, read there too
    for generation in range(depth + 1):
        read = _families(db, level)
        for uuid, family in read.items():
            holder = holders[uuid]
            if holder is None:
                found[uuid] = family
            else:
                holder.family = family
        unlimited = all_children and generation == 0
        if generation == depth or not read or (budget <= 0 and not unlimited):
            break
        nodes: dict[str, Optional[Node]] = {}
        for chunk in _chunks(list(read)):
            if budget <= 0 and not unlimited:
                break
            marks = ", ".join("?" * len(chunk))
            limit = "" if unlimited else f" LIMIT {int(budget)}"
            for (parent, uuid, type_, status, progress, error, attempts, latest, max_attempts, owner, created_at,
                 run_at, started_at, finished_at, on_failure) in db.execute(
                    f"SELECT {_NODE_COLUMNS} FROM message_child JOIN message ON message.uuid = "
                    f"message_child.child_uuid WHERE message_child.parent_uuid IN ({marks}) "
                    f"ORDER BY message.id{limit}", chunk).fetchall():
                node = Node(uuid, type_, status, float(progress or 0.0), error, attempts, latest, max_attempts, owner,
                            created_at, run_at, started_at, finished_at, on_failure)
                if node.uuid in seen:
                    continue
                seen.add(node.uuid)
                family = read[parent]
                family.children.append(node)
                family.unread -= _raw(node.status, node.progress)
                nodes[node.uuid] = node
                if not unlimited:
                    budget -= 1
        level, holders = list(nodes), nodes
    for family in found.values():
        _aggregate(family)
    return found


def _families(db: sqlite3.Connection, parents: list[str]) -> dict[str, Family]:
    """Counts by status and the summed progress of the children of each of `parents` that has any."""
    read: dict[str, Family] = {}
    for chunk in _chunks(parents):
        marks = ", ".join("?" * len(chunk))
        for parent, status, count, raw in db.execute(
                "SELECT message_child.parent_uuid, message.status, COUNT(*), SUM(COALESCE(message.progress, 0)) "
                "FROM message_child JOIN message ON message.uuid = message_child.child_uuid "
                f"WHERE message_child.parent_uuid IN ({marks}) GROUP BY message_child.parent_uuid, message.status",
                chunk):
            family = read.setdefault(parent, Family([], {}, 0))
            family.counts[status] = int(count)
            family.total += int(count)
            family.unread += float(raw or 0.0) if status in ("new", "pending") else 100.0 * int(count)
    return read


def _aggregate(family: Family) -> None:
    for kid in family.children:
        if kid.family is not None:
            _aggregate(kid.family)
        kid.aggregate = progress_of(kid.progress, kid.waiting, kid.family)


def ancestors(db: sqlite3.Connection, uuids: Iterable[str], depth: int = MAX_DEPTH) -> dict[str, list[str]]:
    """Each of `uuids`' parent, its parent and so on (nearest first, at most `depth`); [] for a root."""
    chains: dict[str, list[str]] = {uuid: [] for uuid in uuids}
    if not chains or not exists(db):
        return chains
    tips = {uuid: uuid for uuid in chains}  # the oldest ancestor found so far of each
    for _ in range(depth):
        parents: dict[str, str] = {}
        for chunk in _chunks(sorted(set(tips.values()))):
            parents.update(db.execute(
                "SELECT child_uuid, parent_uuid FROM message_child "
                f"WHERE child_uuid IN ({', '.join('?' * len(chunk))})", chunk).fetchall())
        tips = {uuid: parents[tip] for uuid, tip in tips.items()
                if tip in parents and parents[tip] not in chains[uuid] and parents[tip] != uuid}
        if not tips:
            break
        for uuid, tip in tips.items():
            chains[uuid].append(tip)
    return chains


def family_progress(db: sqlite3.Connection, uuids: Iterable[str]) -> dict[str, float]:
    """The aggregate progress (progress_of) of each of `uuids` that has children, and of each of their
    ancestors: what changes on a status page when these messages move."""
    chains = ancestors(db, uuids)
    targets = set(chains) | {uuid for chain in chains.values() for uuid in chain}
    read = families(db, sorted(targets))
    found = {}
    for chunk in _chunks(sorted(read)):
        for uuid, status, progress, run_at in db.execute(
                f"SELECT uuid, status, progress, run_at FROM message WHERE uuid IN ({', '.join('?' * len(chunk))})",
                chunk):
            found[uuid] = progress_of(float(progress or 0.0), status == "new" and run_at == WAITING, read[uuid])
    return found
