"""Retention: the built-in daily job that prunes old finished runs, and `run-cron purge`.

Completed and cancelled messages, and finished runs of periodic jobs, are deleted once they finished
more than `retention_days` ago, with their attempts (the history), warnings and attachments (foreign
keys cascade); then the records of families, batches, chains and missed slots that only concern what
is gone or finished before then (`retention_tables`). Failed messages stay until a person retries
them or deletes them with `run-cron purge --failed`. Deletes go in small batches, each its own short
transaction, so a web request that enqueues meanwhile waits milliseconds, and a run stops early when
its tick runs out of time and continues in the next tick. Only the standard library: this module is
imported on every tick.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any, Callable, Optional

from ..errors import Retry, StoreError
from .idle import no_schema, open_fast

NAME = "run-cron.prune"
BATCH = 200
#: A prune run gives way after this long even with time left, so the jobs and messages after it run.
MAX_SECONDS = 10.0
DAY = 86400.0

# What may go, oldest first. A job's unfinished run (job_state.current) is never finished, so never here.
_PRUNABLE = (
    ("finished messages", "kind = 'message' AND status IN ('completed', 'cancelled') AND finished_at < ?"),
    ("finished job runs", "kind = 'job' AND status IN ('completed', 'cancelled', 'failed') AND finished_at < ? "
                          "AND uuid NOT IN (SELECT current FROM job_state WHERE current IS NOT NULL)"),
)


class Pruned:
    """How many rows of `message` went (their attempts, warnings and attachments with them), and how
    many `records` of the tables created on first use (parent-child links, batches and chains with
    their members, ledger slots).

    A plain class, not a dataclass: this module is imported by every tick, idle ones included.
    """

    def __init__(self, messages: int = 0, job_runs: int = 0, done: bool = True, records: int = 0) -> None:
        self.messages = messages
        self.job_runs = job_runs
        self.done = done
        self.records = records

    @property
    def total(self) -> int:
        return self.messages + self.job_runs


def connect(database: str, busy_timeout: float = 10.0) -> Optional[sqlite3.Connection]:
    """A connection that cascades deletes (open_fast leaves foreign keys off); None without a database."""
    connection = open_fast(database, busy_timeout)
    if connection is not None:
        connection.execute("PRAGMA foreign_keys = 1")
    return connection


def _delete_batch(connection: sqlite3.Connection, where: str, params: tuple[Any, ...], batch: int) -> int:
    from ..store.transaction import immediate  # this module is imported on every tick; pruning is rare

    with immediate(connection):
        return int(connection.execute(
            f"DELETE FROM message WHERE id IN (SELECT id FROM message WHERE {where} ORDER BY id LIMIT ?)",
            (*params, batch),
        ).rowcount)


def prune(
    connection: sqlite3.Connection,
    now: float,
    retention_days: float,
    *,
    batch: int = BATCH,
    should_stop: Callable[[], bool] = lambda: False,
) -> Pruned:
    """Delete what finished before `now - retention_days`; `done` is False if it stopped early."""
    cutoff = now - retention_days * DAY
    result = Pruned()
    for label, where in _PRUNABLE:
        while True:
            count = _delete_batch(connection, where, (cutoff,), batch)
            if label == "finished messages":
                result.messages += count
            else:
                result.job_runs += count
            if count < batch:
                break
            if should_stop():
                result.done = False
                return result
    from .retention_tables import prune_tables  # not on the path of a tick that prunes nothing

    result.records, result.done = prune_tables(connection, cutoff, batch, should_stop)
    return result


def purge_failed(connection: sqlite3.Connection, *, batch: int = BATCH) -> int:
    """Delete every failed message with its history and attachments; returns how many."""
    total = 0
    while True:
        count = _delete_batch(connection, "kind = 'message' AND status = 'failed'", (), batch)
        total += count
        if count < batch:
            return total


class PruneJob:
    """The body of the built-in daily job `run-cron.prune`, bound to one configuration's store."""

    def __init__(self, database: str, busy_timeout: float, retention_days: float,
                 max_seconds: float = MAX_SECONDS) -> None:
        self.database = database
        self.busy_timeout = busy_timeout
        self.retention_days = retention_days
        self.max_seconds = max_seconds

    def __call__(self, ctx: Any) -> None:
        began = time.monotonic()
        connection = connect(self.database, self.busy_timeout)
        if connection is None:
            return
        try:
            result = prune(connection, time.time(), self.retention_days,
                           should_stop=lambda: ctx.should_stop() or time.monotonic() - began > self.max_seconds)
        finally:
            connection.close()
        ctx.log.info("pruned %d message(s) and %d job run(s) older than %g days, and %d record(s) of families, "
                     "batches, chains and missed slots", result.messages, result.job_runs, self.retention_days,
                     result.records)
        if not result.done:
            raise Retry(0, "more to prune: continuing in the next tick")


def register(registry: Any, config: Any) -> None:
    """Declare `run-cron.prune` (daily, after the user's daily jobs) unless it is declared already."""
    from ..registry import Job

    if NAME not in registry.jobs:
        registry.add_job(Job(NAME, PruneJob(config.database, config.busy_timeout, config.retention_days),
                             "daily", module=__name__))


def run_now(config: Any, failed: bool = False, now: Optional[float] = None) -> tuple[Pruned, int]:
    """`run-cron purge`: prune by age to the end now; with `failed`, also delete every failed message
    (first, so that the records of families and flows that only concern them go in the same run)."""
    try:
        connection = connect(config.database, config.busy_timeout)
        if connection is None:
            return Pruned(), 0
        try:
            purged = purge_failed(connection) if failed else 0
            return prune(connection, time.time() if now is None else now, config.retention_days), purged
        finally:
            connection.close()
    except sqlite3.Error as exc:
        if no_schema(exc):  # a server store before its first tick: there, not an absent file, but as empty
            return Pruned(), 0
        raise StoreError(config.database, exc) from exc
