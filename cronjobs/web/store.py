"""What the web app reads from the store, and the locks that keep a tick's fork safe in a threaded server.

Standard library only: /health and the 429 check read the `meta` and `message` tables with sqlite3.
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator, Optional

from ..errors import StoreError
from ..host.config import Config
from ..reports.metrics import collect as collect_metrics
from ..runtime.idle import last_tick_started, no_schema, open_fast, read_tick
from ..runtime.lock import LockError

# Forking (the tick's worker) while another thread is inside SQLite could copy a held SQLite mutex into
# the child, which would then hang until the hard limit. Threads that touch the database hold this lock,
# and a fork waits for it. Lock files this module holds are closed in the child, so a process a job
# leaves behind can never keep the HTTP trigger locked.
db_guard = threading.Lock()
_held_fds: set[int] = set()
_fork_hooks = threading.Lock()
_fork_hooks_registered = False


def _after_fork_in_child() -> None:
    for fd in list(_held_fds):
        try:
            os.close(fd)
        except OSError:
            pass
    _held_fds.clear()
    db_guard.release()


def register_fork_hooks() -> None:
    global _fork_hooks_registered
    with _fork_hooks:
        if not _fork_hooks_registered and hasattr(os, "register_at_fork"):
            os.register_at_fork(before=db_guard.acquire, after_in_parent=db_guard.release,
                                after_in_child=_after_fork_in_child)
            _fork_hooks_registered = True


@contextmanager
def trigger_lock(path: str) -> Iterator[bool]:
    """A non-blocking flock that makes "too soon?" and "start the tick" one step across processes."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    except FileNotFoundError as exc:
        raise LockError(path, "its directory does not exist") from exc
    except OSError as exc:
        raise LockError(path, exc.strerror or exc) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        _held_fds.add(fd)
        try:
            yield True
        finally:
            _held_fds.discard(fd)
    finally:
        os.close(fd)


def _float(value: Optional[str]) -> Optional[float]:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _read_queue(config: Config, now: float, failing_jobs: bool) -> tuple[dict[str, int], list[str], dict[str, Any]]:
    """Message counts by status, the failing jobs' names (if asked) and the metrics, in one connection.

    A store created but not migrated yet reads as empty; any other error raises StoreError.
    """
    from ..constants import FAILED_OUTCOMES

    counts: dict[str, int] = {}
    failing: list[str] = []
    metrics: dict[str, Any] = {}
    with db_guard:
        connection = open_fast(config.database, config.busy_timeout)
        if connection is not None:
            try:
                counts.update(connection.execute(
                    "SELECT status, COUNT(*) FROM message WHERE kind = 'message' GROUP BY status"))
                if failing_jobs:
                    marks = ", ".join("?" * len(FAILED_OUTCOMES))
                    failing = [name for (name,) in connection.execute(
                        f"SELECT name FROM job_state WHERE last_outcome IN ({marks}) ORDER BY name",
                        sorted(FAILED_OUTCOMES))]
                metrics = collect_metrics(connection, now)
            except sqlite3.Error as exc:
                if not no_schema(exc):
                    raise StoreError(config.database, exc) from exc
            finally:
                connection.close()
    return counts, failing, metrics


def read_health(config: Config, now: Optional[float] = None) -> tuple[bool, dict[str, Any]]:
    """(healthy, report): a tick finished within `stale_after`; counts and names only, no payloads.

    Raises StoreError when the database or the tick file cannot be read (the app answers 503).
    """
    from ..runtime.runs import STATUSES

    now = time.time() if now is None else now
    counts = dict.fromkeys(STATUSES, 0)
    found, failing, metrics = _read_queue(config, now, failing_jobs=True)
    counts.update(found)
    meta = read_tick(config.database)
    finished = _float(meta.get("tick.finished"))
    age = None if finished is None else max(now - finished, 0.0)
    healthy = age is not None and age <= config.stale_after
    return healthy, {
        "status": "ok" if healthy else "stale",
        "last_tick": {
            "finished_ago": None if age is None else round(age, 1),
            "outcome": meta.get("tick.outcome"),
            "trigger": meta.get("tick.trigger"),
            "duration": _float(meta.get("tick.duration")),
        },
        "stale_after": config.stale_after,
        "queue": counts,
        "failing_jobs": failing,
        "metrics": metrics,
    }


def read_metrics(config: Config, now: Optional[float] = None) -> str:
    """The Prometheus text of `/metrics` (see `metrics.prometheus`); raises StoreError as read_health."""
    from ..reports.metrics import prometheus

    now = time.time() if now is None else now
    counts, _, metrics = _read_queue(config, now, failing_jobs=False)
    return prometheus(metrics, counts)


def seconds_until_allowed(config: Config, now: Optional[float] = None) -> Optional[int]:
    """Whole seconds until `[http] min_interval` has passed since the last tick started; None if it has."""
    if config.http.min_interval <= 0:
        return None
    now = time.time() if now is None else now
    started = last_tick_started(config.database, now)
    if started is None:
        return None
    wait = started + config.http.min_interval - now
    return max(1, math.ceil(wait)) if wait > 0 else None


#: How far ahead the page looks for a change worth refreshing for, and how long it waits for an overdue one.
HORIZON = 120.0
OVERDUE = 120.0
POLL_RUNNING = 2.0


def refresh_after(now: float, running: bool, soonest: Optional[float]) -> Optional[float]:
    """Seconds until the page should look again, or None when nothing will change soon.

    While a tick runs: every POLL_RUNNING s. Else shortly after the soonest due time (a waiting message,
    a periodic job), if it is within HORIZON; an overdue one is looked for every 10 s for OVERDUE s
    (no cron tick coming would otherwise poll forever).
    """
    if running:
        return POLL_RUNNING
    if soonest is None:
        return None
    wait = soonest - now
    if wait > HORIZON:
        return None
    if wait >= 0:
        return wait + 3.0
    return 10.0 if wait > -OVERDUE else None


def _with_families(connection: sqlite3.Connection, running: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The running messages' progress, a parent's as its family's (family.progress_of), and the family
    progress of each of their ancestors."""
    from ..messages.family import family_progress

    merged = {item["uuid"]: item["progress"] for item in running}
    merged.update((uuid, round(progress, 1)) for uuid, progress in family_progress(connection, merged).items())
    return [{"uuid": uuid, "progress": progress} for uuid, progress in merged.items()]


def live_state(config: Config, now: Optional[float] = None) -> dict[str, Any]:
    """What changes while the page is open, read cheaply: whether a tick runs and on which run, progress
    of running messages and jobs, the soonest due time, and `state`, a fingerprint that changes when
    anything the page shows besides progress does (the page reloads then)."""
    import hashlib

    from ..runtime.board import peek_current
    from ..runtime.lock import SupervisorLock
    from ..runtime.tick import board_file

    now = time.time() if now is None else now
    running = SupervisorLock(config.lock_file).held_elsewhere()
    current_id = peek_current(board_file(config)) if running else None
    report: dict[str, Any] = {"running": running, "current": None, "progress": [], "soonest": None}
    summary: list[Any] = [running, current_id, read_tick(config.database).get("tick.finished")]
    with db_guard:
        connection = open_fast(config.database, config.busy_timeout)
        if connection is not None:
            try:
                summary += connection.execute(
                    "SELECT status, COUNT(*), MAX(id), SUM(attempts) FROM message GROUP BY status").fetchall()
                summary += connection.execute("SELECT COUNT(*), MAX(last_run) FROM job_state").fetchall()
                report["progress"] = [
                    {"uuid": uuid, "progress": round(progress or 0.0, 1)} for uuid, progress in connection.execute(
                        "SELECT uuid, progress FROM message WHERE status = 'pending' LIMIT 500")]
                if report["progress"]:  # a parent's bar shows its family's progress, which these move
                    report["progress"] = _with_families(connection, report["progress"])
                if current_id is not None:
                    row = connection.execute("SELECT uuid, kind, type, progress, started_at FROM message "
                                             "WHERE id = ?", (current_id,)).fetchone()
                    if row is not None:
                        report["current"] = dict(zip(("uuid", "kind", "type", "progress", "started_at"), row))
                (message_due,) = connection.execute(
                    "SELECT MIN(run_at) FROM message WHERE status = 'new' AND kind = 'message'").fetchone()
                (job_due,) = connection.execute("SELECT MIN(next_due) FROM job_state").fetchone()
                dues = [due for due in (message_due, job_due) if due is not None]
                report["soonest"] = min(dues) if dues else None
            except sqlite3.Error as exc:
                if not no_schema(exc):
                    raise StoreError(config.database, exc) from exc
            finally:
                connection.close()
    report["state"] = hashlib.sha256(repr(summary).encode()).hexdigest()[:16]
    report["poll"] = refresh_after(now, running, report["soonest"])
    return report
