"""Durable state changes of runs: claim, checkpoint, finish, recover. One record for jobs and messages.

A periodic job's run is a row of the `message` table with kind "job", so checkpoints, progress,
warnings, attachments, attempts and recovery after a kill work the same for both. These statements are
the hot path of the queue, so they use the connection directly rather than building peewee queries;
the tables are still the models' tables.

Group commit: a claim marks a small batch of messages `pending` in one transaction, and the
completions of fast handlers are written together with the next claim. The batch is bounded in size
and time, and shrinks to one message as soon as a handler is slow, so what a kill can cost is at most
a fraction of a second of fast messages run again (they were completed, not yet committed). Every
other outcome, and every checkpoint, is committed at once. An attempt's row in `attempt` is written
when the attempt ends; while it runs, `message.attempt_started_at` and `attempt_seq` describe it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Iterable, Optional

from ..constants import WAITING
from ..errors import Cancelled
from ..messages.insert import insert_message, new_uuid  # noqa: F401 (new_uuid re-exported)
from .board import Board, BoardState

#: Statuses of a message (and of a periodic job's run).
NEW, PENDING, COMPLETED, FAILED, CANCELLED = "new", "pending", "completed", "failed", "cancelled"
STATUSES = (NEW, PENDING, COMPLETED, FAILED, CANCELLED)
#: Outcome of an attempt that stopped partway and continues from its checkpoint (not a status).
CONTINUED = "continued"
MAX_BACKOFF = 3600.0

_RUN_COLUMNS = "id, uuid, kind, type, payload, attempts, max_attempts, offset_json, state_json, seq, started_at"
#: The SET of a completion. A message that another process gave a child while it ran was marked (run_at
#: WAITING, see family.add_child): it waits for its children instead, as `family.hold_parents` has it, even
#: when the worker found no table of children at its claim. No statement more for anyone.
_COMPLETED = f"status = CASE WHEN run_at = {WAITING!r} THEN 'new' ELSE 'completed' END, progress = 100"


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
    attempt_started_at: float = 0.0
    seq_start: int = 0

    @classmethod
    def from_row(cls, row: tuple[Any, ...], now: float) -> Run:
        """A Run from a `SELECT {_RUN_COLUMNS}` row; a run never started counts as started `now`."""
        return cls(*row[:10], row[10] or now, now, row[9])  # type: ignore[misc, call-arg]

    @property
    def attempt(self) -> int:
        """Number of this attempt, counting only attempts that were used up before it."""
        return self.attempts + 1

    @property
    def payload(self) -> Any:
        return None if self.payload_json is None else json.loads(self.payload_json)


def claim_sql(excluded_types: int = 0, limit: int = 1, excluded_ids: int = 0) -> str:
    """The claim query: runnable messages by priority, then FIFO, skipping some types and messages."""
    # INDEXED BY: without statistics the planner may pick message_due and sort; walking
    # message_claim in order keeps the claim cheap however long the queue grows.
    sql = (
        f"SELECT {_RUN_COLUMNS} FROM message INDEXED BY message_claim "
        "WHERE kind = 'message' AND status = 'new' AND run_at <= ?"
    )
    if excluded_types:
        sql += f" AND type NOT IN ({', '.join('?' * excluded_types)})"
    if excluded_ids:
        sql += f" AND id NOT IN ({', '.join('?' * excluded_ids)})"
    return sql + f" ORDER BY priority DESC, id LIMIT {int(limit)}"


#: Writes something more in a run's finishing transaction; called with the attempt's outcome.
Also = Callable[[str], None]


def _also(also: Optional[Also], outcome: str) -> str:
    if also is not None:
        also(outcome)
    return outcome


def backoff_delay(attempts: int, base: float) -> float:
    """Exponential backoff after `attempts` used-up attempts: base, 2*base, 4*base ... at most 1 h."""
    return min(base * 2 ** max(attempts - 1, 0), MAX_BACKOFF)


class Runs:
    """Run state changes on one SQLite connection (autocommit mode, explicit BEGIN IMMEDIATE).

    The statements a server engine needs in its own form (the claim's row locks, the runner's
    token, which pending runs are orphans) are the hooks `store.server_runs.ServerRuns` overrides.
    """

    _mark_claimed = (
        "UPDATE message SET status = 'pending', started_at = ?, attempt_started_at = ?, attempt_seq = seq WHERE id = ?"
    )
    _mark_started = "UPDATE message SET status = 'pending', attempt_started_at = ?, attempt_seq = seq WHERE id = ?"
    # A message that waits keeps its finished_at, NULL while it runs: not a literal NULL, beside which
    # PostgreSQL would read the parameter as text.
    _complete_one = (f"UPDATE message SET {_COMPLETED}, finished_at = CASE WHEN run_at = {WAITING!r} "
                     "THEN finished_at ELSE ? END, attempt_started_at = NULL WHERE id = ? AND status = 'pending'")

    def __init__(self, connection: sqlite3.Connection, retry_backoff: float = 60.0,
                 board: Optional[Board] = None) -> None:
        self.db = connection
        self.retry_backoff = retry_backoff
        self.board = board or Board()
        self._completed: list[tuple[Run, float]] = []  # completions not yet committed
        self._families = False  # the table of child messages exists: completions check for children

    def _look_for_families(self) -> None:
        """Once the table of child messages exists, completions check for children (see `family`).

        Asked after a claim has committed, never inside a transaction (on PostgreSQL a failed statement
        ends it): a child added before the claim is seen here, and one added to the claimed message
        since then marks it (`family.add_child`), which its completion sees without asking.
        """
        if not self._families and not self.db.in_transaction:
            from ..messages.family import exists

            self._families = exists(self.db)

    def _claim_sql(self, excluded_types: int, limit: int, excluded_ids: int) -> str:
        return claim_sql(excluded_types, limit, excluded_ids)

    def rate_window(self) -> ContextManager[None]:
        """Held while a worker reads its rate-limit budgets and claims. Nothing to hold on SQLite: the
        tick's lock file lets one worker at a time use the store (ServerRuns locks across hosts)."""
        return contextlib.nullcontext()

    def _mark_claimed_rows(self, claimed: list[Run], now: float) -> None:
        self.db.executemany(self._mark_claimed, [(run.started_at, now, run.id) for run in claimed])

    def _complete_rows(self, rows: list[tuple[float, int]]) -> None:
        """Mark runs completed: (finished_at, id) each, if still pending (not cancelled meanwhile); one
        given a child by another process while it ran waits for its children instead (`_COMPLETED`)."""
        self.db.executemany(self._complete_one, rows)

    def _pending_rows(self) -> list[tuple[Any, ...]]:
        """Runs left pending by a dead worker (here: all, as the supervisor lock proves)."""
        return self.db.execute(  # type: ignore[no-any-return]
            f"SELECT {_RUN_COLUMNS}, attempt_started_at, attempt_seq FROM message "
            "WHERE status = 'pending' ORDER BY id"
        ).fetchall()

    # -- transactions -------------------------------------------------------------------------

    def _rollback(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    def _insert_attempt(self, run: Run, now: float, outcome: str, error: Optional[str], tb: Optional[str]) -> None:
        self.db.execute(
            "INSERT INTO attempt (message_id, number, started_at, finished_at, outcome, error, traceback, "
            "seq_start) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (run.id, run.attempt, run.attempt_started_at, now, outcome, error, tb, run.seq_start),
        )

    # -- claiming -------------------------------------------------------------------------------

    def claim_messages(self, now: float, limit: int = 1, exclude_types: Iterable[str] = (),
                       exclude_ids: Iterable[int] = ()) -> list[Run]:
        """Mark up to `limit` runnable messages pending, committing deferred completions with them."""
        excluded = tuple(exclude_types)
        ids = tuple(exclude_ids)

        def write() -> list[Run]:
            sql = self._claim_sql(len(excluded), limit, len(ids))
            rows = self.db.execute(sql, (now, *excluded, *ids)).fetchall()
            claimed = [Run.from_row(row, now) for row in rows]
            self.board.set_claimed(run.id for run in claimed)
            if claimed:
                self._mark_claimed_rows(claimed, now)
            return claimed

        claimed = self._finish(write)
        if claimed:
            self._look_for_families()
        return claimed

    def claim_message(self, now: float, exclude_types: Iterable[str] = ()) -> Optional[Run]:
        """The next runnable message, marked pending; None when none is runnable."""
        claimed = self.claim_messages(now, 1, exclude_types)
        return claimed[0] if claimed else None

    def release(self, runs: Iterable[Run]) -> None:
        """Give claimed messages that never started back to the queue, unchanged."""
        ids = [(run.id,) for run in runs]
        if ids:
            self._finish(lambda: self.db.executemany(
                # started_at equal to this claim's time was set by this claim: the message never ran.
                # started_at and run_at first: MariaDB assigns left to right and reads the new values after.
                # A message given a child meanwhile (run_at WAITING) is due again, not waiting.
                "UPDATE message SET status = 'new', started_at = CASE "
                "WHEN started_at = attempt_started_at THEN NULL ELSE started_at END, "
                f"run_at = CASE WHEN run_at = {WAITING!r} THEN attempt_started_at ELSE run_at END, "
                "attempt_started_at = NULL WHERE id = ? AND status = 'pending'",
                ids,
            ))

    def start_job_run(self, job_name: str, now: float, resume: Optional[str] = None) -> Run:
        """Open a run of a periodic job: resume its unfinished run `resume`, or create one."""

        def write() -> Run:
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
                    "VALUES (?, 'job', ?, 'new', 0, ?, 0, 1, 0, 0, ?, ?)",
                    (uuid, job_name, now, now, now),
                )
                row = self.db.execute(f"SELECT {_RUN_COLUMNS} FROM message WHERE uuid = ?", (uuid,)).fetchone()
                self.db.execute("UPDATE job_state SET current = ? WHERE name = ?", (uuid, job_name))
            run = Run.from_row(row, now)
            self.board.set_claimed([run.id])
            self.db.execute(self._mark_started, (now, run.id))
            return run

        run = self._finish(write)
        self._look_for_families()
        return run

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
        self.db.execute("INSERT INTO warning (message_id, at, text) VALUES (?, ?, ?)", (run.id, now, text))

    def attach(self, run: Run, name: str, chunks: Iterable[bytes], now: float) -> int:
        """Store an attachment in chunks (replacing one of the same name); returns its size."""

        def write() -> int:
            self.db.execute("DELETE FROM attachment WHERE message_id = ? AND name = ?", (run.id, name))
            attachment_id = self.db.execute(
                "INSERT INTO attachment (message_id, name, size, created_at) VALUES (?, ?, 0, ?)",
                (run.id, name, now),
            ).lastrowid
            size = 0
            for seq, chunk in enumerate(chunks):
                size += len(chunk)
                self.db.execute(
                    "INSERT INTO attachment_chunk (attachment_id, seq, data) VALUES (?, ?, ?)",
                    (attachment_id, seq, chunk),
                )
            self.db.execute("UPDATE attachment SET size = ? WHERE id = ?", (size, attachment_id))
            return size

        return self._finish(write)

    def enqueue(self, **fields: Any) -> str:
        if fields.get("parent") is not None:
            self._families = True  # its completion must now look for children
        return insert_message(self.db, **fields)

    # -- finishing ------------------------------------------------------------------------------

    def _committed(self) -> None:
        self._completed.clear()
        self.board.clear_done()

    def defer_complete(self, run: Run, now: float) -> None:
        """Complete `run` with the next commit (group commit for fast handlers)."""
        if not self.board.add_done(run.id):
            self.flush()
            self.board.add_done(run.id)
        self._completed.append((run, now))

    @property
    def deferred(self) -> int:
        return len(self._completed)

    def flush(self) -> None:
        """Commit deferred completions now."""
        if self._completed:
            self._finish(lambda: None)

    def _write_completions(self) -> None:
        """Inside a transaction: write deferred completions; a run cancelled meanwhile stays cancelled."""
        if not self._completed:
            return
        ids = [run.id for run, _ in self._completed]
        cancelled: set[int] = set()
        for start in range(0, len(ids), 500):  # SQLite allows 999 parameters in old versions
            chunk = ids[start:start + 500]
            cancelled.update(row[0] for row in self.db.execute(
                f"SELECT id FROM message WHERE id IN ({', '.join('?' * len(chunk))}) AND status != 'pending'",
                chunk,
            ))
        self._complete_rows([(now, run.id) for run, now in self._completed if run.id not in cancelled])
        self.db.executemany(
            "INSERT INTO attempt (message_id, number, started_at, finished_at, outcome, seq_start) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(run.id, run.attempt, run.attempt_started_at, now, CANCELLED if run.id in cancelled else COMPLETED,
              run.seq_start) for run, now in self._completed],
        )
        if self._families:
            from ..messages.family import hold_parents

            hold_parents(self.db, [run.uuid for run, _ in self._completed if run.id not in cancelled])

    def _mark_completed(self, run: Run, now: float) -> str:
        cursor = self.db.execute(self._complete_one, (now, run.id))
        outcome = COMPLETED if cursor.rowcount else CANCELLED
        self._insert_attempt(run, now, outcome, None, None)
        if outcome == COMPLETED and self._families:
            from ..messages.family import hold_parents

            hold_parents(self.db, [run.uuid])
        return outcome

    def _finish(self, write: Any) -> Any:
        """Run `write()` in one write transaction together with the deferred completions.

        Every state change of a run goes through here, so no commit leaves a completion behind.
        """
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self._write_completions()
            result = write()
            self.db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        self._committed()
        return result

    def complete(self, run: Run, now: float, also: Optional[Also] = None) -> str:
        """Mark the run completed now; returns "cancelled" if it was cancelled while it ran.

        `also(outcome)`, if given, writes in the same transaction (a periodic job's state).
        """
        return self._finish(lambda: _also(also, self._mark_completed(run, now)))

    def fail(
        self,
        run: Run,
        now: float,
        error: str,
        tb: Optional[str],
        permanent: bool = False,
        outcome: str = FAILED,
        also: Optional[Also] = None,
    ) -> str:
        """Use up an attempt; the message fails for good after max_attempts, else waits for a retry.

        `also(outcome)`, if given, writes in the same transaction.
        """

        def write() -> str:
            attempts = run.attempts + 1
            if permanent or attempts >= run.max_attempts:
                self.db.execute(
                    "UPDATE message SET status = 'failed', attempts = ?, error = ?, finished_at = ?, "
                    "attempt_started_at = NULL WHERE id = ? AND status = 'pending'",
                    (attempts, error, now, run.id),
                )
                status = FAILED
            else:
                self.db.execute(
                    "UPDATE message SET status = 'new', attempts = ?, error = ?, run_at = ?, "
                    "attempt_started_at = NULL WHERE id = ? AND status = 'pending'",
                    (attempts, error, now + backoff_delay(attempts, self.retry_backoff), run.id),
                )
                status = NEW
            self._insert_attempt(run, now, outcome, error, tb)
            _also(also, outcome)
            return status

        return self._finish(write)

    def reschedule(self, run: Run, now: float, delay: float, reason: str) -> str:
        """`Retry` raised: run again after `delay` without using up an attempt."""

        def write() -> str:
            self.db.execute(
                "UPDATE message SET status = 'new', run_at = ?, attempt_started_at = NULL "
                "WHERE id = ? AND status = 'pending'",
                (now + max(delay, 0.0), run.id),
            )
            self._insert_attempt(run, now, "retry", reason or None, None)
            return NEW

        return self._finish(write)

    def suspend(self, run: Run, now: float) -> str:
        """The handler stopped at the soft deadline: continue from its checkpoint next tick.

        No attempt is used and no error is written; the attempt's row says "continued".
        """

        def write() -> str:
            self.db.execute(
                "UPDATE message SET status = 'new', run_at = ?, attempt_started_at = NULL "
                "WHERE id = ? AND status = 'pending'",
                (now, run.id),
            )
            self._insert_attempt(run, now, CONTINUED, None, None)
            return CONTINUED

        return self._finish(write)

    def close_cancelled(self, run: Run, now: float, also: Optional[Also] = None) -> str:
        """The run was cancelled while it ran (its status says so already): record the attempt."""

        def write() -> str:
            self._insert_attempt(run, now, CANCELLED, None, None)
            return _also(also, CANCELLED)

        return self._finish(write)

    # -- recovery -----------------------------------------------------------------------------

    def recover(
        self,
        now: float,
        reason: str,
        board: Optional[BoardState] = None,
        also: Optional[Callable[[Run, str], None]] = None,
        why: Optional[str] = None,
    ) -> list[tuple[Run, str]]:
        """Settle runs left `pending` by a worker that was killed or died.

        Only called while holding the supervisor lock, which proves that no worker runs them now.
        `board` is what the dead worker left on its board (the supervisor's after a kill, the board
        file's when the supervisor died too): its uncommitted successes are committed, and runs it
        had only claimed go back to the queue untouched. The run in flight, and any pending run the
        board does not know of (no board: all of them), is the one the kill cut: if its checkpoint
        advanced during the cut attempt it continues without using an attempt; without progress it
        uses one up, so a message that always kills its worker ends `failed`. Returns each settled
        run with "completed", "released", "continued" or `reason`. `also(run, outcome)` writes in
        the transaction that completes or charges a run. `why` is the error recorded instead of the
        one `reason` implies.
        """
        self._look_for_families()  # the successes it commits are parents' completions too
        current = board.current if board is not None else None
        done_ids = set(board.done) if board is not None else set()
        claimed_ids = set(board.claimed) if board is not None else set()
        settled: list[tuple[Run, str]] = []
        rows = self._pending_rows()
        message = why or f"stopped: {'the time limit was reached' if reason == 'timeout' else 'the worker died'}"
        for row in rows:
            run = Run.from_row(row, now)
            run.attempt_started_at = row[11] or run.started_at
            run.seq_start = run.seq if row[12] is None else row[12]
            finish = None if also is None else functools.partial(also, run)
            if run.id in done_ids:
                settled.append((run, self.complete(run, now, finish)))
            elif run.id in claimed_ids and run.id != current:
                self.release([run])
                settled.append((run, "released"))
            elif run.seq > run.seq_start:

                def write(run: Run = run) -> None:
                    self.db.execute(
                        "UPDATE message SET status = 'new', run_at = ?, attempt_started_at = NULL WHERE id = ?",
                        (now, run.id),
                    )
                    self._insert_attempt(run, now, CONTINUED, message, None)

                self._finish(write)
                settled.append((run, CONTINUED))
            else:
                self.fail(run, now, message, None, outcome=reason, also=finish)
                settled.append((run, reason))
        return settled
