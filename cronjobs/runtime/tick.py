"""One tick: take the lock, skip out fast when idle, else supervise a worker and record the outcome.

The CLI, the HTTP trigger and the long-running worker mode all call `run_tick`; only the time budget,
the trigger name and what they do with the returned `TickResult` differ.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import Any, Callable, Optional

from ..constants import FAILED_OUTCOMES, soft_margin
from ..errors import StoreError
from ..host.config import Config, Record
from ..registry import Job, Registry
from .idle import TICK_KEYS, is_idle, last_tick_started, open_fast, record_tick
from .lock import SupervisorLock

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # kept equal to store.SCHEMA_VERSION (checked by a test) without importing peewee


# Plain classes, not dataclasses: this module is imported by every tick, idle ones included, and each
# dataclass costs 0.3-0.6 ms at import. Same constructors, attributes, equality and repr as before.


class Item(Record):
    """One job or message run in a tick, as the summary reports it."""

    def __init__(self, kind: str, name: str, uuid: Optional[str] = None, outcome: Optional[str] = None,
                 error: Optional[str] = None, duration: Optional[float] = None, attempt: Optional[int] = None,
                 reason: Optional[str] = None) -> None:
        self.kind = kind
        self.name = name
        self.uuid = uuid
        self.outcome = outcome
        self.error = error
        self.duration = duration
        self.attempt = attempt
        self.reason = reason

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if value is not None}


class TickResult(Record):
    """What one tick did. `status` is "locked", "too_soon" (see `min_interval`), "idle" or "ran"."""

    def __init__(self, status: str, trigger: str = "cli", started_at: float = 0.0, duration: float = 0.0,
                 timed_out: bool = False, items: Optional[list[Item]] = None,
                 skipped: Optional[list[dict[str, Any]]] = None, recovered: Optional[list[dict[str, Any]]] = None,
                 error: Optional[str] = None) -> None:
        self.status = status
        self.trigger = trigger
        self.started_at = started_at
        self.duration = duration
        self.timed_out = timed_out
        self.items: list[Item] = [] if items is None else items
        self.skipped: list[dict[str, Any]] = [] if skipped is None else skipped
        self.recovered: list[dict[str, Any]] = [] if recovered is None else recovered
        self.error = error
        self.retry_after: Optional[float] = None  # with status "too_soon": seconds until allowed
        self.interrupted: Optional[int] = None  # the stop signal that ended it early (interrupt.py)

    @property
    def failed(self) -> list[Item]:
        return [item for item in self.items if item.outcome in FAILED_OUTCOMES]

    @property
    def outcome(self) -> str:
        if self.status != "ran":
            return self.status
        if self.interrupted:
            return "interrupted"
        if self.error:
            return "error"
        return "failed" if self.failed else "ok"

    @property
    def exit_code(self) -> int:
        """0 all went well (or idle, or locked out); 1 a job or message failed or timed out;
        2 the worker itself failed (for example the database could not be opened); 128 + N stopped
        early by signal N (SIGHUP 129, SIGINT 130, SIGTERM 143)."""
        if self.interrupted:
            return 128 + self.interrupted
        if self.error:
            return 2
        return 1 if self.failed else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "outcome": self.outcome,
            "trigger": self.trigger,
            "duration": round(self.duration, 3),
            "timed_out": self.timed_out,
            "ran": [item.to_json() for item in self.items],
            "skipped": self.skipped,
            "recovered": self.recovered,
            "error": self.error,
            **({"interrupted": _signal_name(self.interrupted)} if self.interrupted else {}),
        }


def _signal_name(signum: int) -> str:
    from .interrupt import name

    return name(signum)


def _apply(event: dict[str, Any], result: TickResult, open_items: dict[str, Item]) -> None:
    kind = event.get("event")
    if kind == "start":
        item = Item(event["kind"], event["name"], event.get("uuid"), attempt=event.get("attempt"),
                    reason=event.get("reason"))
        result.items.append(item)
        open_items[item.uuid or item.name] = item
    elif kind == "end":
        key = event.get("uuid") or event["name"]
        item = open_items.pop(key) if key in open_items else Item(event["kind"], event["name"])
        item.outcome, item.error, item.duration = event.get("outcome"), event.get("error"), event.get("duration")
    elif kind == "skipped":
        result.skipped.append({k: v for k, v in event.items() if k != "event"})
    elif kind == "recovered":
        result.recovered.append({k: v for k, v in event.items() if k != "event"})


def run_tick(
    config: Config,
    registry: Registry,
    *,
    time_limit: Optional[float] = None,
    force: Optional[list[Job]] = None,
    trigger: str = "cli",
    started: Optional[float] = None,
    on_event: Callable[[dict[str, Any]], None] = lambda event: None,
    clock: Callable[[], float] = time.time,
    min_interval: Optional[float] = None,
) -> TickResult:
    """Run one tick under the supervisor lock. `started` is a time.monotonic() value for the deadline.

    With `min_interval`, a tick is refused ("too_soon") when the last one, from any trigger, started
    less than that many seconds ago; checked under the lock, so no tick can slip in between.
    """
    began = time.monotonic() if started is None else started
    limit = config.time_limit if time_limit is None else time_limit
    hard_deadline = began + limit if limit > 0 else None
    soft_deadline = hard_deadline - soft_margin(limit) if hard_deadline is not None else None
    result = TickResult(status="locked", trigger=trigger, started_at=clock())

    lock = SupervisorLock(config.lock_file)
    if not lock.acquire():
        log.debug("another tick holds %s; nothing to do", config.lock_file)
        return result
    server = "://" in config.database
    try:
        fast = _open_fast(config)
        try:
            # Several hosts: the one whose session gets the cluster-wide lock runs the periodic jobs in
            # this tick. The session is this connection, held until the tick ends (or its process dies).
            periodic = _scheduler_lock(fast) if server else True
            if min_interval:
                last = last_tick_started(config.database, result.started_at, fast)
                wait = last + min_interval - result.started_at if last is not None else 0.0
                if wait > 0:
                    result.status, result.retry_after = "too_soon", wait
                    return result
            tz_key = config.tz_key  # the schedule key's zone: str(config.tz), without loading the zone
            cli = trigger != "http"  # an HTTP tick never runs cli_only jobs or handlers: they cannot make it busy
            jobs = [(job.name, job.key(tz_key)) for job in registry.jobs.values()
                    if periodic and not job.manual and (cli or not job.cli_only)]
            skip = () if cli else tuple(h.type for h in registry.handlers.values() if h.cli_only)
            rates = [(type_, handler.rate) for type_, handler in registry.handlers.items() if handler.rate]
            if force is None and fast is not None and is_idle(fast, jobs, result.started_at, SCHEMA_VERSION, skip,
                                                               rates):
                result.status = "idle"
            else:
                if fast is not None and not server:
                    fast.close()
                    fast = None  # never carry an open SQLite connection across fork()
                result.status = "ran"
                from . import interrupt

                with interrupt.handling():  # a stop signal ends the tick cleanly (only here: idle ticks stay lean)
                    _supervise(config, registry, result, config.tz, force, trigger, soft_deadline,
                               hard_deadline, on_event, lock, clock, periodic, fast if server else None)
                    late = interrupt.received()
                if result.interrupted is None and late is not None:  # after the worker had finished
                    result.interrupted = late
                    log.warning("stopped by %s as the tick ended; its work was done", interrupt.name(late))
                if not server:
                    fast = _open_fast(config)
                elif fast is not None and fast.lost:  # type: ignore[attr-defined]
                    log.warning("this tick's database session was lost (%s); the worker was asked to stop at its "
                                "next checkpoint", fast.lost)  # type: ignore[attr-defined]
                    fast.close()
                    fast = None
                    fast = _open_fast(config)  # for the tick's facts
            result.duration = time.monotonic() - began
            if fast is not None:
                record_tick(config.database, dict(zip(TICK_KEYS, (
                    result.started_at, clock(), round(result.duration, 3), result.outcome, trigger))), fast)
        except (sqlite3.Error, OSError) as exc:  # OSError: the tick file beside it cannot be written
            raise StoreError(config.database, exc) from exc
        finally:
            if fast is not None:
                fast.close()
    finally:
        lock.release()
    if config.ping_url and result.status in ("idle", "ran"):  # a heartbeat, after the lock is released
        from .ping import after_tick

        after_tick(config.ping_url, result.outcome)
    return result


def _scheduler_lock(connection: Any) -> bool:
    """True if this tick's session got the cluster-wide scheduler lock; else another host runs the
    periodic jobs now and this one only drains the queue."""
    from ..store.server import SCHEDULER_LOCK

    if connection.try_lock(SCHEDULER_LOCK):
        return True
    log.debug("another host runs the periodic jobs in this tick")
    return False


def _open_fast(config: Config) -> Optional[sqlite3.Connection]:
    try:
        return open_fast(config.database, config.busy_timeout, config.synchronous)
    except sqlite3.Error as exc:
        raise StoreError(config.database, exc) from exc


def _supervise(
    config: Config,
    registry: Registry,
    result: TickResult,
    tz: Any,
    force: Optional[list[Job]],
    trigger: str,
    soft_deadline: Optional[float],
    hard_deadline: Optional[float],
    on_event: Callable[[dict[str, Any]], None],
    lock: SupervisorLock,
    clock: Callable[[], float],
    periodic: bool = True,
    session: Any = None,
) -> None:
    from ..store import has_schema
    from .board import Board
    from .runs import Runs

    registry.validate()  # a bad cron expression is a configuration error, before any work starts
    server = "://" in config.database
    if not has_schema(config.database, session):
        _prepare_store(config)  # create the schema here, so the worker is never cut mid-migration
    runner = None
    if server:
        from ..store.server_runs import new_runner

        runner = new_runner()  # the worker's token: the supervisor waits for its session to end after a kill

    def work(emit: Any) -> None:
        from ..store import connect_store, translate_errors
        from .worker import Worker

        database, _ = connect_store(config.database, config.busy_timeout, config.synchronous)
        if server:
            from ..store.server_runs import ServerRuns
            from ..store.session import keep_worker_session

            runs: Runs = ServerRuns(database.connection(), config.retry_backoff, board, runner)
            keep_worker_session(runs.db, timing, board)  # alive while the handlers run; dead before it is lost
        else:
            runs = Runs(database.connection(), config.retry_backoff, board)
        with translate_errors(config.database):  # "database is locked" names the file, as elsewhere
            Worker(runs, registry, tz, retry_backoff=config.retry_backoff, deadline=soft_deadline,
                   trigger=trigger, force=force, emit=emit, clock=clock, abandoned=abandoned,
                   stop_requested=board.stop_requested, periodic=periodic).run()

    # Shared with the worker: what it runs, what it only claimed, what it has not committed yet. In a
    # file, so that after a kill -9 of this process the next tick still knows (see board.py).
    board = Board(path=board_file(config))
    abandoned = board.leftover()  # what a tick that died wholesale left behind
    board.reset()
    board.set_started(result.started_at)  # `why` says since when the lock is held
    watch = None
    try:
        if server:
            from ..store.session import Timing, Watch, keep_supervisor_session

            timing = Timing(config.session_timeout)
            own = keep_supervisor_session(session, timing, board) if session is not None else None
            watch = Watch(board, timing, own)
        _supervise_worker(config, registry, result, tz, board=board, work=work, on_event=on_event,
                          lock=lock, clock=clock, hard_deadline=hard_deadline, runner=runner,
                          keep_out=session.fileno() if session is not None else None, watch=watch)
    finally:
        board.set_started(0.0)
        if watch is not None:
            watch.stop()
        board.close()


def board_file(config: Config) -> str:
    """The worker's board, beside the lock file: per host, like the lock."""
    from .board import path_beside

    return path_beside(config.lock_file)


def _supervise_worker(config: Config, registry: Registry, result: TickResult, tz: Any, *, board: Any,
                      work: Callable[[Any], None], on_event: Callable[[dict[str, Any]], None],
                      lock: SupervisorLock, clock: Callable[[], float], hard_deadline: Optional[float],
                      runner: Optional[str] = None, keep_out: Optional[int] = None, watch: Any = None) -> None:
    """Fork the worker, hear its events, and settle what it left if it did not end cleanly.

    `keep_out`: the socket of the session holding the cluster-wide lock, which no process a job
    leaves behind may keep. `watch`: a server's store.session.Watch, which has the worker killed
    when its database session is lost.
    """
    from . import interrupt
    from .supervisor import supervise

    open_items: dict[str, Item] = {}
    limits = {job.name: job.time_limit for job in registry.jobs.values() if job.time_limit}
    job_deadline: list[Optional[float]] = [None]  # the hard end of the run of a job with its own time_limit

    def handle(event: dict[str, Any]) -> None:
        _apply(event, result, open_items)
        if event.get("kind") == "job" and event.get("name") in limits:
            if event.get("event") == "start":
                job_deadline[0] = time.monotonic() + limits[event["name"]]
            elif event.get("event") == "end":
                job_deadline[0] = None
        on_event(event)

    def deadline() -> Optional[float]:
        return min((at for at in (hard_deadline, job_deadline[0]) if at is not None), default=None)

    for hook in registry.fork_hooks:
        hook()
    fds = tuple(fd for fd in (lock.fileno, keep_out) if fd is not None)
    with interrupt.tick_running():
        outcome = supervise(work, deadline, handle, close_in_child=fds,
                            ask_to_stop=board.request_stop, watch=watch or (lambda: None))
        if watch is not None and not (outcome.lost or outcome.clean or outcome.timed_out or outcome.interrupted):
            outcome.lost = watch.verdict()  # the worker killed itself when its session failed
        result.timed_out = outcome.timed_out
        result.interrupted = outcome.interrupted
        if outcome.error:
            result.error = outcome.error
        if outcome.clean:
            if outcome.interrupted:
                log.warning("stopped by %s: the worker stopped at a checkpoint; the rest continues next tick",
                            interrupt.name(outcome.interrupted))
            return
        # Killed at the deadline, by a stop signal, or died: settle what it left running, as the next
        # tick would. A signal is the host's doing, not the run's: its run in flight is settled as at
        # the time limit (continued when its checkpoint advanced, else one attempt used, so that a
        # run the host kills every time still ends), but the error says what happened.
        reason = "timeout" if outcome.timed_out else "crashed"
        why = None
        if outcome.lost:
            why = "the worker lost its database session"
            log.error("worker killed: %s; the server ends that session after %g s of silence, then the next "
                      "tick of any host continues its runs from their checkpoints", outcome.lost,
                      watch.timing.release)
        elif outcome.interrupted:
            why = f"stopped by {interrupt.name(outcome.interrupted)}"
            log.warning("%s: the worker was killed; what it ran is settled, checkpoints kept", why)
        elif not outcome.timed_out and not outcome.error:
            log.error("worker died (exit %s, signal %s)", outcome.exit_status, outcome.signal)
        settled, ended = _settle(config, registry, tz, reason, clock, board.read(), list(open_items),
                                 result.started_at, why, runner)
        _report_settled(result, open_items, settled, ended, why or (
            "stopped at the time limit" if reason == "timeout" else "the worker died"))


def _report_settled(result: TickResult, open_items: dict[str, Item], settled: list[tuple[str, str, str, str]],
                    ended: dict[str, tuple[str, Optional[str]]], error: str) -> None:
    reported = {item.uuid for item in result.items}
    for uuid, kind, name, settled_outcome in settled:
        if settled_outcome == "released":  # claimed but never started: back in the queue, nothing ran
            _drop(result, open_items.pop(uuid, None))
            continue
        item = open_items.pop(uuid, None)
        if item is None:
            if settled_outcome == "completed" and uuid in reported:
                continue  # its success was reported; only its commit was missing
            item = Item(kind, name, uuid)
            result.items.append(item)
        item.outcome = settled_outcome
        if settled_outcome != "completed":
            item.error = error
    # Started, not left running, and their end never reached us: the store says how they ended.
    for uuid, item in open_items.items():
        item.outcome, item.error = ended.get(uuid, (None, None))
        if item.outcome is None:
            _drop(result, item)


def _drop(result: TickResult, item: Optional[Item]) -> None:
    if item is not None and item in result.items:
        result.items.remove(item)


def _prepare_store(config: Config) -> None:
    from ..store import connect_store

    database, _ = connect_store(config.database, config.busy_timeout, config.synchronous)
    database.close()


def _settle(config: Config, registry: Registry, tz: Any, reason: str, clock: Callable[[], float],
            board: Any, uuids: list[str], since: float, why: Optional[str] = None, runner: Optional[str] = None,
            ) -> tuple[list[tuple[str, str, str, str]], dict[str, tuple[str, Optional[str]]]]:
    """Settle what the worker left pending; also how each run of `uuids` ended since `since`."""
    from .runs import Runs
    from .scheduler import settle

    connection = open_fast(config.database, config.busy_timeout, config.synchronous)
    if connection is None:
        return [], {}
    try:
        runs = Runs(connection, config.retry_backoff)
        if runner is not None:  # a server: settle only what sessions that are gone left behind
            from ..store.server_runs import ServerRuns, wait_for_runner_gone

            wait_for_runner_gone(connection, runner)  # type: ignore[arg-type]
            runs = ServerRuns(connection, config.retry_backoff)
        settled = settle(runs, registry.jobs, clock(), reason, tz, config.retry_backoff, board, why)
        return [(run.uuid, run.kind, run.type, outcome) for run, outcome in settled], _ended(connection, uuids, since)
    finally:
        connection.close()


def _ended(connection: sqlite3.Connection, uuids: list[str], since: float) -> dict[str, tuple[str, Optional[str]]]:
    """(outcome, error) of the last attempt of each run that ended since `since`; a run that was
    cancelled meanwhile without an attempt row says "cancelled"; runs back in the queue are left out."""
    ended: dict[str, tuple[str, Optional[str]]] = {}
    for start in range(0, len(uuids), 500):
        chunk = uuids[start:start + 500]
        rows = connection.execute(
            "SELECT message.uuid, message.status, attempt.outcome, attempt.error FROM message "
            "LEFT JOIN attempt ON attempt.id = (SELECT MAX(id) FROM attempt WHERE attempt.message_id = message.id "
            f"AND finished_at >= ?) WHERE message.uuid IN ({', '.join('?' * len(chunk))})",
            (since, *chunk),
        )
        for uuid, status, outcome, error in rows:
            if outcome is not None:
                ended[uuid] = (outcome, error if outcome != "completed" else None)
            elif status in ("completed", "failed", "cancelled"):
                ended[uuid] = (status, None if status != "failed" else "the worker died")
    return ended
