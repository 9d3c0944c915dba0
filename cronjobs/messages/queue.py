"""The queue as application code sees it: enqueue, inspect, retry and cancel messages.

    queue = cronjobs.connect("config/run-cron.ini")   # or cronjobs.connect(database="path.sqlite3")
    uuid = queue.enqueue("library.sync", {"library": 42})
    queue.get(uuid).progress
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Collection, Iterator, Optional, Union

from ..constants import FAILED_OUTCOMES
from ..errors import AttachmentNotFound, InvalidState, MessageNotFound, UnknownMessageType
from ..runtime.runs import CANCELLED, FAILED, NEW, PENDING, STATUSES
from .insert import insert_message, new_uuid, run_at_from_delay, to_json  # noqa: F401 (re-exported)


def iso(timestamp: Optional[float]) -> Optional[str]:
    """An epoch timestamp as ISO 8601 in UTC, for JSON output."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")


@dataclass
class MessageView:
    """A message (or a periodic job's run) as `get`, `jobs` and `show --json` present it."""

    uuid: str
    kind: str
    type: str
    status: str
    progress: float
    offset: Any
    state: dict[str, Any]
    attempts: int  # numbered as `history` numbers them: 1 while (or after) the first attempt runs
    max_attempts: int
    priority: int
    key: Optional[str]
    owner: Optional[str]
    payload: Any
    error: Optional[str]
    created_at: Optional[float]
    started_at: Optional[float]
    finished_at: Optional[float]
    run_at: Optional[float]
    done: Optional[float] = None
    total: Optional[float] = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    attempts_used: int = 0  # attempts that count against max_attempts (failures, not continuations)
    public: bool = False  # listed for every owner (see `labels`)
    tags: list[str] = field(default_factory=list)
    parent: Optional[str] = None  # see `family`
    children: list[dict[str, Any]] = field(default_factory=list)
    waiting_for_children: bool = False

    def to_json(self) -> dict[str, Any]:
        """The fields of `run-cron show --json`, times as ISO 8601 UTC strings."""
        return {
            "uuid": self.uuid,
            "type": self.type,
            "status": self.status,
            "progress": round(self.progress, 1),
            "offset": self.offset,
            "state": self.state,
            "attempts": self.attempts,
            "attempts_used": self.attempts_used,
            "max_attempts": self.max_attempts,
            "priority": self.priority,
            "key": self.key,
            "owner": self.owner,
            "errors": [dict(item, at=iso(item["at"])) for item in self.errors],
            "warnings": [dict(item, at=iso(item["at"])) for item in self.warnings],
            "attachments": list(self.attachments),
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "kind": self.kind,
            "payload": self.payload,
            "run_at": iso(self.run_at),
            "done": self.done,
            "total": self.total,
            "public": self.public,
            "tags": list(self.tags),
            "parent": self.parent,
            "children": list(self.children),
            "waiting_for_children": self.waiting_for_children,
        }


_VIEW_COLUMNS = (
    "id, uuid, kind, type, status, progress, offset_json, state_json, attempts, max_attempts, "
    "priority, key, owner, payload, error, created_at, started_at, finished_at, run_at, done, total, "
    "(SELECT number || ' ' || COALESCE(outcome, '') FROM attempt WHERE attempt.message_id = message.id "
    "ORDER BY attempt.id DESC LIMIT 1)"
)


def shown_attempts(used: int, latest: Optional[str], running: bool = False) -> int:
    """The attempt a message is on, as `history` numbers it (1 while or after its first attempt runs).

    `latest` is the number and outcome of its latest finished attempt (an attempt's row is written
    when it ends, so a first attempt still `running` has none). One that failed used itself up, so
    the count is `used` (also right after `retry` reset it to 0); any other (running, completed,
    continued after a cut, Retry, cancelled) is attempt `used + 1`.
    """
    if latest is None:
        return used + 1 if running else used
    number, _, outcome = latest.partition(" ")
    if outcome in FAILED_OUTCOMES:
        return used
    return min(int(number), used + 1)


class Queue:
    """Enqueue and inspect messages in one store; safe to use from a web application's requests.

    With `handlers` (a function returning the declared message types, as `connect(config)` passes),
    `enqueue` refuses a type without a handler unless called with `allow_unknown=True`.
    """

    def __init__(self, database: Any, models: Any = None,
                 handlers: Optional[Callable[[], Collection[str]]] = None) -> None:
        from ..store import make_models

        self.database = database
        self.models = models or make_models(database)
        self._handlers = handlers

    @property
    def db(self) -> sqlite3.Connection:
        return self.database.connection()

    def close(self) -> None:
        self.database.close()

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def enqueue(
        self,
        type: str,
        payload: Any = None,
        *,
        priority: int = 0,
        delay: Union[float, int, datetime, None] = 0,
        key: Optional[str] = None,
        max_attempts: int = 3,
        owner: Optional[str] = None,
        allow_unknown: bool = False,
        public: bool = False,
        tags: Optional[Collection[str]] = None,
        parent: Optional[str] = None,
        on_child_failure: str = "fail",
    ) -> str:
        """Queue a message for the next tick and return its uuid (or the live one with `key`).

        `allow_unknown=True` is for producers that cannot know the handlers (see the class).
        `public=True` lists it in every owner's listing; `tags` label it for `jobs(tag=...)`.
        `parent=UUID` makes it a child of that new or running message, which then completes only when
        its children have (see `family`; `on_child_failure="ignore"` lets it complete anyway).
        """
        from ..store import translate_errors

        if self._handlers is not None and not allow_unknown and type not in self._handlers():
            raise UnknownMessageType(type)

        with translate_errors(self.database.database):
            return insert_message(
                self.db,
                type,
                payload,
                priority=priority,
                delay=delay,
                key=key,
                max_attempts=max_attempts,
                owner=owner,
                public=public,
                tags=tags,
                parent=parent,
                on_child_failure=on_child_failure,
            )

    def _view(self, row: tuple[Any, ...], details: bool) -> MessageView:
        (row_id, uuid, kind, type_, status, progress, offset_json, state_json, attempts, max_attempts,
         priority, key, owner, payload, error, created_at, started_at, finished_at, run_at, done,
         total, latest_attempt) = row
        view = MessageView(
            uuid=uuid,
            kind=kind,
            type=type_,
            status=status,
            progress=progress or 0.0,
            offset=None if offset_json is None else json.loads(offset_json),
            state={} if state_json is None else json.loads(state_json),
            attempts=shown_attempts(attempts, latest_attempt, status == PENDING),
            attempts_used=attempts,
            max_attempts=max_attempts,
            priority=priority,
            key=key,
            owner=owner,
            payload=None if payload is None else json.loads(payload),
            error=error,
            created_at=created_at,
            started_at=started_at,
            finished_at=finished_at,
            run_at=run_at,
            done=done,
            total=total,
        )
        if details:
            db = self.db
            view.errors = [
                {"attempt": number, "at": finished, "outcome": outcome, "error": err, "traceback": tb}
                for number, finished, outcome, err, tb in db.execute(
                    "SELECT number, COALESCE(finished_at, started_at), outcome, error, traceback "
                    "FROM attempt WHERE message_id = ? AND error IS NOT NULL ORDER BY id",
                    (row_id,),
                )
            ]
            view.warnings = [
                {"at": at, "text": text}
                for at, text in db.execute(
                    "SELECT at, text FROM warning WHERE message_id = ? ORDER BY id", (row_id,)
                )
            ]
            view.attachments = [
                {"name": name, "size": size}
                for name, size in db.execute(
                    "SELECT name, size FROM attachment WHERE message_id = ? ORDER BY name", (row_id,)
                )
            ]
        return view

    def get(self, uuid: str) -> MessageView:
        """One message with its errors, warnings and attachment names; MessageNotFound if none."""
        row = self.db.execute(f"SELECT {_VIEW_COLUMNS} FROM message WHERE uuid = ?", (uuid,)).fetchone()
        if row is None:
            raise MessageNotFound(uuid)
        view = self._labelled([self._view(row, details=True)], [row[0]])[0]
        from .family import WAITING, families, parent_of, progress_of

        view.parent = parent_of(self.db, uuid)
        view.waiting_for_children = view.status == NEW and view.run_at == WAITING
        family = families(self.db, [uuid], all_children=True).get(uuid)
        if family is not None:  # progress aggregates the parent's own and its descendants'
            view.children = _child_dicts(family)
            view.progress = progress_of(view.progress, view.waiting_for_children, family)
        return view

    def _labelled(self, views: list[MessageView], ids: list[int]) -> list[MessageView]:
        from .labels import read

        found = read(self.db, ids)
        for view, row_id in zip(views, ids):
            if row_id in found:
                view.public, view.tags = found[row_id]
        return views

    def jobs(
        self,
        owner: Optional[str] = None,
        status: Optional[str] = None,
        type: Optional[str] = None,
        kind: Optional[str] = "message",
        limit: Optional[int] = None,
        details: bool = True,
        tag: Optional[str] = None,
        roots_only: bool = False,
    ) -> list[MessageView]:
        """Messages, newest first, filtered by owner, status, type, kind ("message" or "job") and tag.

        With `owner`, other owners' public messages are listed too (Contao's public jobs).
        `roots_only`: leave out children (`enqueue(..., parent=...)`): each family once, by its top.
        """
        from .family import exists as has_families
        from .labels import where as label_where

        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown status {status!r} (expected one of {', '.join(STATUSES)})")
        where, params = label_where(self.db, owner, tag)
        if roots_only and has_families(self.db):
            where.append("NOT EXISTS (SELECT 1 FROM message_child WHERE message_child.child_uuid = message.uuid)")
        for column, value in (("status", status), ("type", type), ("kind", kind)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = f"SELECT {_VIEW_COLUMNS} FROM message"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        rows = self.db.execute(sql, params).fetchall()
        return self._labelled([self._view(row, details) for row in rows], [row[0] for row in rows])

    def counts(self) -> dict[str, int]:
        """Queue depth by status (messages only)."""
        counts = dict.fromkeys(STATUSES, 0)
        for status, count in self.db.execute(
            "SELECT status, COUNT(*) FROM message WHERE kind = 'message' GROUP BY status"
        ):
            counts[status] = count
        return counts

    def _status(self, uuid: str) -> str:
        row = self.db.execute("SELECT status FROM message WHERE uuid = ?", (uuid,)).fetchone()
        if row is None:
            raise MessageNotFound(uuid)
        return str(row[0])

    def retry(self, uuid: str) -> None:
        """Put a failed or cancelled message back to `new` with fresh attempts, same uuid."""
        status = self._status(uuid)
        kind, name = self.db.execute("SELECT kind, type FROM message WHERE uuid = ?", (uuid,)).fetchone()
        if kind != "message":  # its schedule retries it; a run put back to `new` would never be claimed
            raise InvalidState(f"{uuid} is a run of the periodic job {name!r}, which retries on its schedule; "
                               f"to run it now: run-cron --force {name}")
        if status not in (FAILED, CANCELLED):
            raise InvalidState(f"message {uuid} is {status}; only failed or cancelled messages can be retried")
        self.db.execute(
            "UPDATE message SET status = 'new', attempts = 0, run_at = ?, finished_at = NULL "
            "WHERE uuid = ? AND kind = 'message' AND status IN ('failed', 'cancelled')",
            (time.time(), uuid),
        )

    def retry_failed(self) -> int:
        """Retry every failed message; returns how many."""
        cursor = self.db.execute(
            "UPDATE message SET status = 'new', attempts = 0, run_at = ?, finished_at = NULL "
            "WHERE kind = 'message' AND status = 'failed'",
            (time.time(),),
        )
        return cursor.rowcount

    def batch(self, members: list[tuple[str, Any]], then: Optional[tuple[str, Any]] = None, *,
              priority: int = 0, max_attempts: int = 3, owner: Optional[str] = None,
              allow_unknown: bool = False) -> Any:
        """Queue `members` ((type, payload) pairs) now and, once all have finished, `then` once, its
        payload given `"batch": {"uuid", "total", "completed", "failed", "cancelled"}`. Returns a
        `flows.Flow` (`.uuid`, `.members`); `queue.flow(uuid)` reads it again."""
        return self._flow("batch", members, then, priority, max_attempts, owner, allow_unknown)

    def chain(self, steps: list[tuple[str, Any]], *, priority: int = 0, max_attempts: int = 3,
              owner: Optional[str] = None, allow_unknown: bool = False) -> Any:
        """Run `steps` ((type, payload) pairs) one after another: each is queued when the one before it
        completed; a step that fails for good or is cancelled stops the chain. Returns a `flows.Flow`."""
        return self._flow("chain", steps, None, priority, max_attempts, owner, allow_unknown)

    def _flow(self, kind: str, steps: list[tuple[str, Any]], then: Optional[tuple[str, Any]], priority: int,
              max_attempts: int, owner: Optional[str], allow_unknown: bool) -> Any:
        from ..store import translate_errors
        from . import flows

        if self._handlers is not None and not allow_unknown:
            known = self._handlers()
            for step in [*steps, *([then] if then else [])]:
                if isinstance(step, (tuple, list)) and step and step[0] not in known:
                    raise UnknownMessageType(step[0])
        if int(max_attempts) < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts!r}")
        with translate_errors(self.database.database):
            return flows.create(self.db, kind, steps, then,
                                {"priority": int(priority), "max_attempts": int(max_attempts), "owner": owner})

    def flow(self, uuid: str) -> Any:
        """A batch or chain by uuid: its state ("open", "done", "failed") and member uuids."""
        from .flows import read

        found = read(self.db, uuid)
        if found is None:
            raise MessageNotFound(uuid)
        return found

    def cancel(self, uuid: str) -> None:
        """Cancel a new or running message; a running handler stops at its next checkpoint."""
        status = self._status(uuid)
        if status not in (NEW, PENDING):
            raise InvalidState(f"message {uuid} is {status}; only new or pending messages can be cancelled")
        self.db.execute(
            "UPDATE message SET status = 'cancelled', finished_at = ? "
            "WHERE uuid = ? AND status IN ('new', 'pending')",
            (time.time(), uuid),
        )

    def attachment(self, uuid: str, name: str) -> Iterator[bytes]:
        """The chunks of one attachment, in order, without loading the whole file."""
        self._status(uuid)
        row = self.db.execute(
            "SELECT attachment.id FROM attachment JOIN message ON message.id = attachment.message_id "
            "WHERE message.uuid = ? AND attachment.name = ?",
            (uuid, name),
        ).fetchone()
        if row is None:
            raise AttachmentNotFound(uuid, name)
        cursor = self.db.execute(
            "SELECT data FROM attachment_chunk WHERE attachment_id = ? ORDER BY seq", (row[0],)
        )
        return (bytes(data) for (data,) in cursor)


def _child_dicts(family: Any) -> list[dict[str, Any]]:
    """`children` of `show --json`: each child's own children nested, as far as `family` was read;
    `children_total` counts them all."""
    return [
        {"uuid": kid.uuid, "type": kid.type, "status": kid.status, "progress": round(kid.aggregate, 1),
         "error": kid.error, "on_child_failure": kid.on_child_failure,
         "waiting_for_children": kid.waiting,
         "children_total": kid.family.total if kid.family else 0,
         "children": _child_dicts(kid.family) if kid.family else []}
        for kid in family.children
    ]


def connect(config: Optional[str] = None, *, database: Optional[str] = None) -> Queue:
    """A Queue on the store named by a configuration file, or directly by a database path."""
    from ..host.config import find_config_path, load_config
    from ..store import connect_store

    if database is not None:
        db, models = connect_store(database)
        return Queue(db, models)
    settings = load_config(find_config_path(config))
    db, models = connect_store(settings.database, settings.busy_timeout, settings.synchronous)
    return Queue(db, models, handlers=lambda: configured_handlers(settings))


def configured_handlers(settings: Any) -> Collection[str]:
    """The message types the configuration's jobs modules declare (imported on first call)."""
    from ..registry import load_modules, registry

    if settings.env_file:
        from ..host.envfile import load

        load(settings.env_file, settings.path)
    load_modules(settings.jobs, settings.python_path, settings.path)
    return registry.handlers.keys()
