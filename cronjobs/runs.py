"""Durable state changes of runs: claim, checkpoint, finish, recover. One record for jobs and messages.

A periodic job's run is a row of the `message` table with kind "job", so checkpoints, progress,
warnings, attachments, attempts and recovery after a kill work the same for both. These statements are
the hot path of the queue (thousands per second), so they use the connection directly rather than
building peewee queries; the tables are still the models' tables.
"""

from __future__ import annotations

import json
import sqlite3
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from .errors import Cancelled

#: Statuses of a message (and of a periodic job's run).
NEW, PENDING, COMPLETED, FAILED, CANCELLED = "new", "pending", "completed", "failed", "cancelled"
STATUSES = (NEW, PENDING, COMPLETED, FAILED, CANCELLED)
MAX_BACKOFF = 3600.0

_RUN_COLUMNS = "id, uuid, kind, type, payload, attempts, max_attempts, offset_json, state_json, seq, started_at"


@dataclass
class Run:
    """A claimed run: what the handler's `ctx` is built from."""

    id: int
    uuid: str
    kind: str
    type: str
    payload_json: Optional[str]
    attempts: int
    max_attempts: int
    offset_json: Optional[str]
    state_json: Optional[str]
    seq: int
    started_at: float
    attempt_id: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: tuple[Any, ...], now: float) -> Run:
        """A Run from a `SELECT {_RUN_COLUMNS}` row; a run never started counts as started `now`."""
        return cls(*row[:10], row[10] or now)  # type: ignore[misc, call-arg]

    @property
    def attempt(self) -> int:
        """Number of this attempt, counting only attempts that were used up before it."""
        return self.attempts + 1

    @property
    def payload(self) -> Any:
        return None if self.payload_json is None else json.loads(self.payload_json)


def claim_sql(excluded_types: int = 0) -> str:
    """The claim query: next runnable message by priority, then FIFO, skipping some types."""
    # INDEXED BY: without statistics the planner may pick message_due and sort; walking
    # message_claim in order keeps the claim cheap however long the queue grows.
    sql = (
        f"SELECT {_RUN_COLUMNS} FROM message INDEXED BY message_claim "
        "WHERE kind = 'message' AND status = 'new' AND run_at <= ?"
    )
    if excluded_types:
        sql += f" AND type NOT IN ({', '.join('?' * excluded_types)})"
    return sql + " ORDER BY priority DESC, id LIMIT 1"


def new_uuid() -> str:
    return str(uuidlib.uuid4())


def backoff_delay(attempts: int, base: float) -> float:
    """Exponential backoff after `attempts` used-up attempts: base, 2*base, 4*base ... at most 1 h."""
    return min(base * 2 ** max(attempts - 1, 0), MAX_BACKOFF)


class Runs:
    """Run state changes on one SQLite connection (autocommit mode, explicit BEGIN IMMEDIATE)."""

    def __init__(self, connection: sqlite3.Connection, retry_backoff: float = 60.0) -> None:
        self.db = connection
        self.retry_backoff = retry_backoff

    # -- transactions -------------------------------------------------------------------------

    def _begin(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        self.db.execute("COMMIT")

    def _rollback(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    def _start_attempt(self, run: Run, now: float) -> None:
        cursor = self.db.execute(
            "INSERT INTO attempt (message_id, number, started_at, seq_start) VALUES (?, ?, ?, ?)",
            (run.id, run.attempt, now, run.seq),
        )
        run.attempt_id = int(cursor.lastrowid or 0)

    # -- claiming -------------------------------------------------------------------------------

    def claim_message(self, now: float, exclude_types: Iterable[str] = ()) -> Optional[Run]:
        """Mark the next runnable message pending and open an attempt; None when none is runnable."""
        excluded = tuple(exclude_types)
        sql = claim_sql(len(excluded))
        self._begin()
        try:
            row = self.db.execute(sql, (now, *excluded)).fetchone()
            if row is None:
                self._commit()
                return None
            run = Run.from_row(row, now)
            self.db.execute(
                "UPDATE message SET status = 'pending', started_at = ? WHERE id = ?",
                (run.started_at, run.id),
            )
            self._start_attempt(run, now)
            self._commit()
            return run
        except BaseException:
            self._rollback()
            raise

    def start_job_run(self, job_name: str, now: float, resume: Optional[str] = None) -> Run:
        """Open a run of a periodic job: resume its unfinished run `resume`, or create one."""
        self._begin()
        try:
            row = None
            if resume:
                row = self.db.execute(
                    f"SELECT {_RUN_COLUMNS} FROM message WHERE uuid = ? AND status IN ('new', 'pending')",
                    (resume,),
                ).fetchone()
            if row is None:
                uuid = new_uuid()
                self.db.execute(
                    "INSERT INTO message (uuid, kind, type, status, priority, run_at, attempts, "
                    "max_attempts, seq, progress, created_at, started_at) "
                    "VALUES (?, 'job', ?, 'pending', 0, ?, 0, 1, 0, 0, ?, ?)",
                    (uuid, job_name, now, now, now),
                )
                row = self.db.execute(
                    f"SELECT {_RUN_COLUMNS} FROM message WHERE uuid = ?", (uuid,)
                ).fetchone()
                self.db.execute("UPDATE job_state SET current = ? WHERE name = ?", (uuid, job_name))
            run = Run.from_row(row, now)
            self.db.execute("UPDATE message SET status = 'pending' WHERE id = ?", (run.id,))
            self._start_attempt(run, now)
            self._commit()
            return run
        except BaseException:
            self._rollback()
            raise

    # -- while running ------------------------------------------------------------------------

    def checkpoint(
        self,
        run: Run,
        offset_json: Optional[str],
        state_json: Optional[str],
        done: Optional[float],
        total: Optional[float],
        progress: Optional[float],
    ) -> None:
        """Commit offset, state and progress in one statement; raises Cancelled if cancelled meanwhile."""
        cursor = self.db.execute(
            "UPDATE message SET offset_json = COALESCE(?, offset_json), "
            "state_json = COALESCE(?, state_json), seq = seq + 1, "
            "done = COALESCE(?, done), total = COALESCE(?, total), "
            "progress = COALESCE(?, progress) WHERE id = ? AND status = 'pending'",
            (offset_json, state_json, done, total, progress, run.id),
        )
        if cursor.rowcount == 0:
            raise Cancelled(f"message {run.uuid} was cancelled")
        run.seq += 1

    def set_progress(self, run: Run, done: Optional[float], total: Optional[float], progress: float) -> None:
        self.db.execute(
            "UPDATE message SET done = ?, total = COALESCE(?, total), progress = ? WHERE id = ?",
            (done, total, progress, run.id),
        )

    def warn(self, run: Run, text: str, now: float) -> None:
        self.db.execute(
            "INSERT INTO warning (message_id, at, text) VALUES (?, ?, ?)", (run.id, now, text)
        )

    def attach(self, run: Run, name: str, chunks: Iterable[bytes], now: float) -> int:
        """Store an attachment in chunks (replacing one of the same name); returns its size."""
        self._begin()
        try:
            self.db.execute(
                "DELETE FROM attachment WHERE message_id = ? AND name = ?", (run.id, name)
            )
            cursor = self.db.execute(
                "INSERT INTO attachment (message_id, name, size, created_at) VALUES (?, ?, 0, ?)",
                (run.id, name, now),
            )
            attachment_id = cursor.lastrowid
            size = 0
            for seq, chunk in enumerate(chunks):
                size += len(chunk)
                self.db.execute(
                    "INSERT INTO attachment_chunk (attachment_id, seq, data) VALUES (?, ?, ?)",
                    (attachment_id, seq, chunk),
                )
            self.db.execute("UPDATE attachment SET size = ? WHERE id = ?", (size, attachment_id))
            self._commit()
            return size
        except BaseException:
            self._rollback()
            raise

    def enqueue(self, **fields: Any) -> str:
        from .queue import insert_message

        return insert_message(self.db, **fields)

    # -- finishing ------------------------------------------------------------------------------

    def _close_attempt(self, run: Run, now: float, outcome: str, error: Optional[str], tb: Optional[str]) -> None:
        self.db.execute(
            "UPDATE attempt SET finished_at = ?, outcome = ?, error = ?, traceback = ? WHERE id = ?",
            (now, outcome, error, tb, run.attempt_id),
        )

    def complete(self, run: Run, now: float) -> str:
        """Mark the run completed; returns "cancelled" if it was cancelled while it ran."""
        self._begin()
        try:
            cursor = self.db.execute(
                "UPDATE message SET status = 'completed', progress = 100, finished_at = ? "
                "WHERE id = ? AND status = 'pending'",
                (now, run.id),
            )
            outcome = COMPLETED if cursor.rowcount else CANCELLED
            self._close_attempt(run, now, outcome, None, None)
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return outcome

    def fail(
        self,
        run: Run,
        now: float,
        error: str,
        tb: Optional[str],
        permanent: bool = False,
        outcome: str = FAILED,
    ) -> str:
        """Use up an attempt; the message fails for good after max_attempts, else waits for a retry."""
        self._begin()
        try:
            attempts = run.attempts + 1
            if permanent or attempts >= run.max_attempts:
                self.db.execute(
                    "UPDATE message SET status = 'failed', attempts = ?, error = ?, finished_at = ? "
                    "WHERE id = ? AND status = 'pending'",
                    (attempts, error, now, run.id),
                )
                status = FAILED
            else:
                self.db.execute(
                    "UPDATE message SET status = 'new', attempts = ?, error = ?, run_at = ? "
                    "WHERE id = ? AND status = 'pending'",
                    (attempts, error, now + backoff_delay(attempts, self.retry_backoff), run.id),
                )
                status = NEW
            self._close_attempt(run, now, outcome, error, tb)
            self._commit()
            return status
        except BaseException:
            self._rollback()
            raise

    def reschedule(self, run: Run, now: float, delay: float, reason: str) -> str:
        """`Retry` raised: run again after `delay` without using up an attempt."""
        self._begin()
        try:
            self.db.execute(
                "UPDATE message SET status = 'new', run_at = ? WHERE id = ? AND status = 'pending'",
                (now + max(delay, 0.0), run.id),
            )
            self._close_attempt(run, now, "retry", reason or None, None)
            self._commit()
            return NEW
        except BaseException:
            self._rollback()
            raise

    def close_cancelled(self, run: Run, now: float) -> str:
        self._close_attempt(run, now, CANCELLED, None, None)
        return CANCELLED

    # -- recovery -----------------------------------------------------------------------------

    def recover(self, now: float, reason: str) -> list[tuple[Run, str]]:
        """Settle runs left `pending` by a worker that was killed or died.

        Only called while holding the supervisor lock, which proves that no worker runs them now.
        A run whose checkpoint advanced during the cut attempt continues without using an attempt;
        one without progress uses one up (so a message that always kills its worker ends `failed`).
        Returns each settled run with its outcome: "continued", or `reason` ("timeout", "crashed").
        """
        settled: list[tuple[Run, str]] = []
        rows = self.db.execute(
            f"SELECT {_RUN_COLUMNS} FROM message WHERE status = 'pending' ORDER BY id"
        ).fetchall()
        for row in rows:
            run = Run.from_row(row, now)
            attempt = self.db.execute(
                "SELECT id, seq_start FROM attempt WHERE message_id = ? AND finished_at IS NULL "
                "ORDER BY id DESC LIMIT 1",
                (run.id,),
            ).fetchone()
            run.attempt_id, seq_start = attempt if attempt else (0, run.seq)
            message = f"stopped: {'the time limit was reached' if reason == 'timeout' else 'the worker died'}"
            if run.seq > seq_start:
                self._begin()
                try:
                    self.db.execute(
                        "UPDATE message SET status = 'new', run_at = ? WHERE id = ?", (now, run.id)
                    )
                    self._close_attempt(run, now, "continued", message, None)
                    self._commit()
                except BaseException:
                    self._rollback()
                    raise
                settled.append((run, "continued"))
            else:
                self.fail(run, now, message, None, outcome=reason)
                settled.append((run, reason))
        return settled
