"""The hot path on a server engine: claims that skip rows other hosts hold, a runner token per worker.

See store/server.py for the locks: a worker holds the lock named after its runner token on the
connection it writes with while its session lives; recovery settles only the runs of runners whose
lock can be taken, i.e. whose session is gone.
"""

from __future__ import annotations

import contextlib
import time
import uuid as uuidlib
from typing import Any, Iterator, Optional, cast

from ..constants import WAITING
from ..errors import StoreError
from ..runtime.runs import _COMPLETED, _RUN_COLUMNS, Run, Runs
from .server import RATES_LOCK, RUNNER_PREFIX, ServerConnection


def new_runner() -> str:
    return uuidlib.uuid4().hex


class ServerRuns(Runs):
    """Runs on a server engine: claims skip rows other hosts have locked, and carry this runner's token.

    The runner's lock is taken on this connection when it is created and held for its lifetime.
    """

    def __init__(self, connection: Any, retry_backoff: float = 60.0, board: Any = None,
                 runner: Optional[str] = None) -> None:
        super().__init__(connection, retry_backoff, board)
        self.runner = runner or new_runner()
        if not connection.try_lock(RUNNER_PREFIX + self.runner):
            raise StoreError(connection.label, f"runner {self.runner} is held by another session")
        token = self.runner  # hex only: safe in the statement text, which is then cached once
        self._mark_claimed = ("UPDATE message SET status = 'pending', started_at = ?, attempt_started_at = ?, "
                              f"attempt_seq = seq, runner = '{token}' WHERE id = ?")
        self._mark_started = (f"UPDATE message SET status = 'pending', attempt_started_at = ?, attempt_seq = seq, "
                              f"runner = '{token}' WHERE id = ?")

    def _claim_sql(self, excluded_types: int, limit: int, excluded_ids: int) -> str:
        return super()._claim_sql(excluded_types, limit, excluded_ids) + " FOR UPDATE SKIP LOCKED"

    @contextlib.contextmanager
    def rate_window(self) -> Iterator[None]:
        """A cluster-wide lock while this worker reads its rate budgets and claims: the workers of two
        hosts never both spend the same budget (each claim is committed before the next budget is read)."""
        connection = cast(ServerConnection, self.db)
        deadline = time.monotonic() + 30.0
        while not connection.try_lock(RATES_LOCK):
            if time.monotonic() > deadline:  # held for milliseconds, and released if its session dies
                raise StoreError(connection.label, "another worker has held the rate-limit lock for 30 s")
            time.sleep(0.005)
        try:
            yield
        finally:
            connection.unlock(RATES_LOCK)

    # A statement per batch, not per row: each statement is a round trip to the server.

    def _mark_claimed_rows(self, claimed: list[Run], now: float) -> None:
        ids = [run.id for run in claimed]
        self.db.execute(  # a run never started gets this claim's time, as Run.from_row has it
            "UPDATE message SET status = 'pending', started_at = COALESCE(started_at, ?), attempt_started_at = ?, "
            f"attempt_seq = seq, runner = '{self.runner}' WHERE id IN ({', '.join('?' * len(ids))})",
            (now, now, *ids),
        )

    def _complete_rows(self, rows: list[tuple[float, int]]) -> None:
        when = f"WHEN ? THEN CAST(? AS {self.db.engine.DOUBLE})"  # type: ignore[attr-defined]
        for start in range(0, len(rows), 500):
            chunk = rows[start:start + 500]
            self.db.execute(
                f"UPDATE message SET {_COMPLETED}, finished_at = CASE WHEN run_at = {WAITING!r} THEN NULL "
                f"ELSE CASE id {' '.join(when for _ in chunk)} END END, attempt_started_at = NULL "
                f"WHERE id IN ({', '.join('?' * len(chunk))}) AND status = 'pending'",
                (*[value for finished, run_id in chunk for value in (run_id, finished)],
                 *[run_id for _, run_id in chunk]),
            )

    def _pending_rows(self) -> list[tuple[Any, ...]]:
        """Pending runs whose runner's session is gone (its lock could be taken), this one's excluded.

        The locks taken here are held until the connection closes, so that runner cannot come back.
        """
        runners = [runner for (runner,) in self.db.execute(
            "SELECT DISTINCT runner FROM message WHERE status = 'pending'").fetchall()]
        dead = [runner for runner in runners
                if runner != self.runner and (runner is None or self.db.try_lock(RUNNER_PREFIX + runner))]  # type: ignore[attr-defined]
        if not dead:
            return []
        rows = []
        for runner in dead:
            where = "runner IS NULL" if runner is None else "runner = ?"
            rows += self.db.execute(
                f"SELECT {_RUN_COLUMNS}, attempt_started_at, attempt_seq FROM message "
                f"WHERE status = 'pending' AND {where} ORDER BY id", () if runner is None else (runner,)
            ).fetchall()
        return sorted(rows, key=lambda row: row[0])


def wait_for_runner_gone(connection: ServerConnection, runner: str, timeout: float = 3.0) -> bool:
    """After killing its worker: wait until the server has noticed the worker's session is gone."""
    deadline = time.monotonic() + timeout
    while True:
        if connection.try_lock(RUNNER_PREFIX + runner):
            connection.unlock(RUNNER_PREFIX + runner)
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
