"""The idle tick's fast path: is anything due? Standard library sqlite3 only, no schedule parsing.

An idle tick runs 1,440 times a day on hosts that meter CPU, so it must not import peewee or
python-crontab. It compares the cached `next_due` of every declared job and peeks at the queue;
anything unexpected (no database yet, another schema version, a new or changed job) means "not idle"
and the worker sorts it out properly.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from typing import Iterable, Optional

from ..control.pauses import JOB, TYPE, paused
from ..errors import StoreError
from ..scheduling.skew import SKEW_TOLERANCE

TICK_KEYS = ("tick.started", "tick.finished", "tick.duration", "tick.outcome", "tick.trigger")


def open_fast(path: str, busy_timeout: float = 10.0, synchronous: str = "NORMAL") -> Optional[sqlite3.Connection]:
    """A plain sqlite3 connection in autocommit mode, or None when the database does not exist yet.

    Raises StoreError when the file cannot be opened as a database (unreadable, corrupt, read-only
    without its -shm file, full disk): the first statement is where SQLite finds out.
    """
    if "://" in path:  # a server engine: a connection through its driver, read and written the same way
        from ..store.server import open_fast as open_server

        return open_server(path, busy_timeout)  # type: ignore[return-value]
    if not os.path.exists(path):
        return None
    try:
        connection = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(path, exc) from exc
    try:
        connection.execute(f"PRAGMA synchronous = {synchronous}")
    except sqlite3.Error as exc:
        connection.close()
        raise StoreError(path, exc) from exc
    return connection


def no_schema(exc: sqlite3.Error) -> bool:
    """True for the error of a database created but not migrated yet (no tables): read as empty.

    Every other error (corrupt, truncated, disk I/O, locked) is a real one and must not read as empty.
    """
    return isinstance(exc, sqlite3.OperationalError) and str(exc).startswith("no such table")


def is_idle(
    connection: sqlite3.Connection,
    jobs: Iterable[tuple[str, str]],
    now: float,
    schema_version: int,
    skip_types: tuple[str, ...] = (),
    rates: Iterable[tuple[str, tuple[int, float]]] = (),
) -> bool:
    """True when no declared job is due and no message is runnable or left running.

    `skip_types`: message types this tick would not run (cli_only handlers on an HTTP tick), so
    their waiting messages do not fork a worker that has nothing to do. Messages of paused types,
    and of types at their rate limit (`rates`: type, (count, seconds)), are not runnable either.
    """
    if connection.execute("PRAGMA user_version").fetchone()[0] != schema_version:
        return False
    future = now + SKEW_TOLERANCE  # a time beyond it is clock skew, which the worker corrects (skew.py)
    states = {
        name: (schedule, next_due, current, last_seen)
        for name, schedule, next_due, current, last_seen in connection.execute(
            "SELECT name, schedule, next_due, current, MAX(COALESCE(last_run, 0), first_seen) FROM job_state"
        )
    }
    held = paused(connection)
    resuming = {}  # job name -> its unfinished run; the queue checks below cover a live one
    for name, schedule in jobs:
        if (JOB, name) in held:
            continue
        state = states.get(name)
        if state is None or state[0] != schedule or state[3] > future:
            return False
        if state[2] is not None:
            resuming[state[2]] = state
        elif state[1] is None or state[1] <= now:
            return False
    if resuming:
        live = {uuid for (uuid,) in connection.execute(
            f"SELECT uuid FROM message WHERE uuid IN ({', '.join('?' * len(resuming))}) "
            "AND status IN ('new', 'pending')", list(resuming))}
        for uuid, state in resuming.items():  # a run that ended without the job hearing of it
            if uuid not in live and (state[1] is None or state[1] <= now):
                return False
    if connection.execute("SELECT 1 FROM message WHERE status = 'pending' LIMIT 1").fetchone():
        return False
    if waiting_flows(connection):  # a batch's callback or a chain's next step is to be queued
        return False
    # The newest message stands for those enqueued just before the clock stepped back.
    if connection.execute("SELECT 1 FROM message WHERE id = (SELECT MAX(id) FROM message) AND status = 'new' "
                          "AND created_at > ?", (future,)).fetchone():
        return False
    skipped = set(skip_types) | {name for kind, name in held if kind == TYPE}
    limited = [(type_, rate) for type_, rate in rates if type_ not in skipped]
    types = sorted(skipped | {type_ for type_, _ in limited})
    skip = f" AND type NOT IN ({', '.join('?' * len(types))})" if types else ""
    if connection.execute(
        f"SELECT 1 FROM message WHERE status = 'new' AND run_at <= ?{skip} LIMIT 1", (now, *types)
    ).fetchone():
        return False
    for type_, rate in limited:
        from ..control.rates import budget  # only hosts with rate limits pay for it

        if connection.execute("SELECT 1 FROM message WHERE status = 'new' AND run_at <= ? AND type = ? LIMIT 1",
                              (now, type_)).fetchone() and budget(connection, type_, rate, now)[0] > 0:
            return False
    return True


def waiting_flows(connection: sqlite3.Connection) -> bool:
    """True when an open batch or chain has no live member left, or a parent waiting for its children
    has none left: `flows.advance` or `family.advance` has work to do.

    Here, not in `flows`, so that the idle check asks without importing it; False before the first.
    """
    for sql in (
        "SELECT 1 FROM flow WHERE state = 'open' AND NOT EXISTS (SELECT 1 FROM flow_member JOIN message "
        "ON message.uuid = flow_member.message_uuid WHERE flow_member.flow_uuid = flow.uuid "
        "AND message.status IN ('new', 'pending')) LIMIT 1",
        # a parent waiting for children (family.WAITING) whose children have all finished
        "SELECT 1 FROM message AS parent WHERE parent.status = 'new' AND parent.run_at = 32503680000.0 "
        "AND NOT EXISTS (SELECT 1 FROM message_child JOIN message AS child ON child.uuid = message_child.child_uuid "
        "WHERE message_child.parent_uuid = parent.uuid AND child.status IN ('new', 'pending')) LIMIT 1",
    ):
        try:
            if connection.execute(sql).fetchone() is not None:
                return True
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise
    return False


def tick_file(database: str) -> str:
    """Where the facts of the last tick live: beside the database, like its -wal and -shm files."""
    return database + "-tick"


def record_tick(database: str, values: dict[str, object], connection: object = None) -> None:
    """Store facts about the last tick (`tick.started`, `tick.finished`, ...) for health and status.

    A small file replaced atomically, not a database row: writing the database on an idle tick would
    cost it a WAL checkpoint with an fsync when the connection closes, 1,440 times a day. On a server
    engine a table instead, so every host sees every host's ticks (through `connection` if given).
    """
    if "://" in database:
        _with_server(database, connection, "record_tick", values)
        return
    path = tick_file(database)
    temporary = f"{path}.{os.getpid()}"
    try:
        # 0600 whatever the umask (the idle path does not import cronjobs.host.files)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o600)
        with open(fd, "w", encoding="utf-8") as handle:
            handle.write("".join(f"{key}={'' if value is None else value}\n" for key, value in values.items()))
        os.replace(temporary, path)
    except OSError:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def last_tick_started(database: str, now: float, connection: object = None) -> Optional[float]:
    """When the last tick started, for `[http] min_interval`; None before the first (or if unreadable).

    A start in the future is clock skew (the clock stepped back since): logged and treated as now, so
    the HTTP trigger waits `min_interval`, not until the clock catches up.
    """
    text = read_tick(database, connection).get("tick.started")
    try:
        started = float(text) if text else None
    except ValueError:
        return None
    if started is not None and started > now:
        if started > now + SKEW_TOLERANCE:
            logging.getLogger(__name__).warning(
                "clock skew: the last tick started %.0f s in the future; the clock stepped back: treating it "
                "as now", started - now)
        started = now
    return started


def read_tick(database: str, connection: object = None) -> dict[str, str]:
    """The facts `record_tick` stored last; {} before the first tick.

    Garbage in the file reads as missing values (never a decoding error); a file that exists but cannot
    be read raises StoreError.
    """
    if "://" in database:
        return _with_server(database, connection, "read_tick")  # type: ignore[return-value]
    path = tick_file(database)
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except OSError as exc:
        raise StoreError(database, f"cannot read {path}: {exc.strerror or exc}") from exc
    return dict(line.split("=", 1) for line in lines if "=" in line)


def _with_server(database: str, connection: object, name: str, *args: object) -> object:
    """Call store.server's `name` on `connection`, or on a connection of its own; StoreError on failure."""
    from ..store import server

    own = connection is None
    conn = server.open_fast(database) if own else connection
    try:
        return getattr(server, name)(conn, *args)
    except sqlite3.Error as exc:
        raise StoreError(database, exc) from exc
    finally:
        if own:
            conn.close()  # type: ignore[attr-defined]
