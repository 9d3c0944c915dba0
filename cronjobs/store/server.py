"""Server engines (PostgreSQL, MariaDB/MySQL): connections, schema, tick facts and cluster-wide locks.

The store's SQL is written once, for SQLite; `ServerConnection` offers the part of
`sqlite3.Connection` the store uses and has the engine module (postgresql.py or mysql.py) rewrite
each statement once per process. Driver errors are raised as the sqlite3 exception classes the
callers already handle, so "no such table", integrity and operational errors read the same.

Locks that die with their holder, like flock: PostgreSQL advisory locks and MariaDB/MySQL GET_LOCK,
held by a database session. A tick's supervisor holds the scheduler lock on its own connection, which
the worker does not use (one host runs the periodic jobs per tick); each worker holds a lock named
after its runner token on the connection it writes with, and marks what it claims with that token.
A pending message whose runner's lock can be taken has lost its session: it is settled like a run a
kill cut. A worker that lost its session cannot commit any more either: its work is never settled twice.

That holds only if the worker is dead before its session ends on the server, which session.py keeps
true with one timing rule, T being `[run-cron] session_timeout` (default 30 s): the server ends a
session silent for T seconds (set on the lock-holding sessions: MariaDB/MySQL `wait_timeout` and
`net_read_timeout`/`net_write_timeout`, PostgreSQL 14+ `idle_session_timeout` and
`idle_in_transaction_session_timeout`; older PostgreSQL: TCP keepalives and `tcp_user_timeout`, which
only catch a host gone from the network), a live worker is never silent for T/6 (a keeper thread pings),
and a worker whose requests go unanswered is killed within T/2 + 0.5 s of the last request the server
answered. Client detects within T/2 + 0.5 s < server releases after T.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional, Sequence

from ..errors import MissingDriver, SchemaOutdated, StoreError
from . import dialect
from .url import Target, parse

if TYPE_CHECKING:
    from .models import Models

log = logging.getLogger(__name__)

#: Held by the supervisor that runs the periodic jobs in this tick, cluster-wide.
SCHEDULER_LOCK = "run-cron.scheduler"
MIGRATE_LOCK = "run-cron.migrate"
#: Held by a worker while it reads its rate-limit budgets and claims (see ServerRuns.rate_window).
RATES_LOCK = "run-cron.rates"
RUNNER_PREFIX = "run-cron.runner."

_META_DDL = (
    "CREATE TABLE IF NOT EXISTS run_cron_schema (version INTEGER NOT NULL)",
    # The facts of the last tick of any host (`status`, `/health`, the HTTP trigger's min_interval).
    "CREATE TABLE IF NOT EXISTS run_cron_tick (name VARCHAR(64) NOT NULL PRIMARY KEY, value VARCHAR(255))",
)


def engine_module(target: Target) -> ModuleType:
    if target.engine == "postgresql":
        from . import postgresql

        return postgresql
    from . import mysql

    return mysql


def open_raw(database: str, timeout: float = 10.0) -> tuple[ModuleType, Any, Target]:
    """(engine module, DB-API connection in autocommit mode, target); StoreError if it cannot connect."""
    try:
        target = parse(database)
    except ValueError as exc:
        raise StoreError(database, exc) from None
    engine = engine_module(target)
    try:
        raw = engine.connect(target, timeout)
    except ImportError as exc:
        raise MissingDriver(database, target.engine, engine.DRIVER) from exc
    except Exception as exc:  # the drivers raise their own classes, and OSError for the socket
        raise StoreError(database, f"cannot connect: {_one_line(exc)}") from None
    return engine, raw, target


def _one_line(exc: BaseException) -> str:
    if exc.args and isinstance(exc.args[0], dict):  # pg8000's server error fields
        return str(exc.args[0].get("M", exc))
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


_SINGLE_ROW_INSERT = re.compile(r"^(INSERT INTO \w+ \([\w, ]+\) VALUES )(\([?, ]+\))$")


@functools.lru_cache(maxsize=512)
def _translated(engine: ModuleType, sql: str) -> str:
    return engine.translate(sql)  # type: ignore[no-any-return]


class Cursor:
    """The results of one statement, as sqlite3's cursor gives them (rows are tuples)."""

    def __init__(self, cursor: Any, connection: ServerConnection) -> None:
        self._cursor = cursor
        self._connection = connection

    def fetchone(self) -> Optional[tuple[Any, ...]]:
        row = self._cursor.fetchone() if self._cursor.description else None
        return None if row is None else tuple(row)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._cursor.fetchall()] if self._cursor.description else []

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.fetchall())

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)

    @property
    def lastrowid(self) -> int:
        if self._connection.engine.ENGINE == "postgresql":  # the id this session's last INSERT drew
            return int(self._connection.execute("SELECT lastval()").fetchone()[0])  # type: ignore[index]
        return int(self._cursor.lastrowid)


class _Rows:
    """A result that needs no statement (PRAGMAs SQLite has and the servers do not)."""

    def __init__(self, rows: Sequence[tuple[Any, ...]] = ()) -> None:
        self.rows = list(rows)
        self.rowcount = 0

    def fetchone(self) -> Optional[tuple[Any, ...]]:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.rows)


class ServerConnection:
    """The subset of sqlite3.Connection the store uses, on a server engine's connection."""

    is_server = True

    def __init__(self, engine: ModuleType, raw: Any, label: str) -> None:
        self.engine = engine
        self.raw = raw
        self.label = label
        self.in_transaction = False
        self.keeper: Any = None  # a session.Keeper while this session holds a lock for long

    def _special(self, sql: str) -> Optional[Any]:
        word = sql.lstrip()[:6].upper()
        if word == "BEGIN ":
            self.in_transaction = True
            return self._run(self.engine.BEGIN, ())
        if word in ("COMMIT", "ROLLBA"):
            self.in_transaction = False
            return self._run(sql, ())
        if word == "PRAGMA":
            if "user_version" in sql and "=" not in sql:
                return _Rows([(schema_version_of(self),)])
            return _Rows()  # foreign_keys, synchronous, ...: always on, or not a server's business
        return None

    def _driver(self, call: Callable[..., Any], *args: Any) -> Any:
        """`call(*args)` on the driver, its errors as sqlite3's; timed and serialised while a keeper
        (session.py) keeps this session, so that it knows when the server last answered."""
        keeper = self.keeper
        if keeper is None:
            try:
                return call(*args)
            except self.engine.driver_errors() as exc:
                raise self.engine.map_error(exc) from exc
        with keeper.mutex:
            sent = time.monotonic()
            try:
                result = call(*args)
            except self.engine.driver_errors() as exc:
                if self.engine.session_lost(exc):
                    keeper.lose(f"the connection failed: {_one_line(exc)}")
                else:
                    keeper.confirmed = sent  # the server answered, with an error
                raise self.engine.map_error(exc) from exc
            keeper.confirmed = sent
            return result

    def _execute(self, sql: str, params: Sequence[Any]) -> Any:
        cursor = self.raw.cursor()
        cursor.execute(sql, tuple(params))
        return cursor

    def _run(self, sql: str, params: Sequence[Any]) -> Cursor:
        return Cursor(self._driver(self._execute, sql, params), self)

    def execute(self, sql: str, params: Any = ()) -> Any:
        special = self._special(sql) if sql[:1] in "BCRPbcrp " else None
        if special is not None:
            return special
        if isinstance(params, dict):
            sql, params = dialect.named_to_positional(sql, params)
        return self._run(_translated(self.engine, sql), params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any:
        rows = [tuple(row) for row in rows]
        values = _SINGLE_ROW_INSERT.match(sql)
        if values and rows:  # one multi-row INSERT per chunk: a round trip each, not one per row
            width = len(rows[0])
            per_statement = max(1, 30000 // max(width, 1))  # PostgreSQL takes at most 32,767 parameters
            cursor: Any = _Rows()
            for start in range(0, len(rows), per_statement):
                chunk = rows[start:start + per_statement]
                cursor = self.execute(values.group(1) + ", ".join([values.group(2)] * len(chunk)),
                                      [value for row in chunk for value in row])
            return cursor
        cursor = self.raw.cursor()
        self._driver(cursor.executemany, _translated(self.engine, sql), rows)
        return Cursor(cursor, self)

    def execute_raw(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        """A statement in the engine's own dialect (DDL rendered by peewee, lock functions)."""
        return self._run(sql, params)

    def try_lock(self, name: str) -> bool:
        return bool(self._driver(self.engine.try_lock, self.raw, self.raw.cursor(), name))

    def unlock(self, name: str) -> None:
        self._driver(self.engine.unlock, self.raw, self.raw.cursor(), name)

    def keep_session(self, timeout: float) -> None:
        """The engine's settings for a session that holds a lock for long (see session.py): the server
        ends it after `timeout` seconds of silence, and not sooner."""
        self._driver(self.engine.keep_session, self.raw, self.raw.cursor(), timeout)

    @property
    def lost(self) -> Optional[str]:
        """Why the session kept by a keeper was lost, or None."""
        return None if self.keeper is None else self.keeper.lost

    def fileno(self) -> Optional[int]:
        """The session's socket, which a forked worker must close (see tick._supervise_worker)."""
        return self.engine.socket_fd(self.raw)  # type: ignore[no-any-return]

    def commit(self) -> None:
        """Autocommit outside explicit transactions: nothing to do (sqlite3's signature)."""

    def close(self) -> None:
        keeper, self.keeper = self.keeper, None
        if keeper is not None:
            keeper.stop()
        try:
            self.raw.close()
        except Exception:  # a connection the server or the network already closed
            pass


def open_fast(database: str, busy_timeout: float = 10.0, synchronous: str = "NORMAL") -> ServerConnection:
    """A connection for the idle check, the hot path and the read paths (never None: the database
    exists on the server; a schema not created yet reads as "no such table", as on SQLite)."""
    engine, raw, target = open_raw(database, busy_timeout)
    return ServerConnection(engine, raw, target.label)


def schema_version_of(connection: ServerConnection) -> int:
    try:
        row = connection.execute_raw("SELECT MAX(version) FROM run_cron_schema").fetchone()
    except Exception as exc:
        if "no such table" in str(exc):
            return 0
        raise
    return int(row[0]) if row and row[0] is not None else 0


class ServerDatabase:
    """What `connect_store` returns for a server: the parts of a peewee database the callers use."""

    is_server = True

    def __init__(self, url: str, busy_timeout: float) -> None:
        self.url = url
        self.busy_timeout = busy_timeout
        self.database = parse(url).label  # what messages name: the URL without its password
        self._connection: Optional[ServerConnection] = None

    def bind(self, models: Any, bind_refs: bool = True, bind_backrefs: bool = True) -> None:
        """Bind models (peewee's signature): to a peewee database of the engine that never connects."""
        engine_module(parse(self.url)).peewee_database().bind(models, bind_refs, bind_backrefs)

    def connection(self) -> ServerConnection:
        if self._connection is None:
            self._connection = open_fast(self.url, self.busy_timeout)
        return self._connection

    def execute_sql(self, sql: str, params: Any = ()) -> Any:
        """A statement in the store's SQL (peewee's name for it)."""
        return self.connection().execute(sql, params)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def connect_store(database: str, busy_timeout: float = 10.0, synchronous: str = "NORMAL",
                  upgrade: bool = False) -> tuple[ServerDatabase, Models]:
    """The server database with models bound to the engine's dialect; a new database gets the schema.

    An older schema raises SchemaOutdated unless `upgrade` (`run-cron migrate`).
    """
    from .models import SCHEMA_VERSION, make_models  # peewee: not on the idle tick's path

    store = ServerDatabase(database, busy_timeout)
    connection = store.connection()
    models = make_models(store)  # type: ignore[arg-type]
    version = schema_version_of(connection)
    if 0 < version < SCHEMA_VERSION and not upgrade:
        store.close()
        raise SchemaOutdated(database, version, SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        migrate(store, models)
    return store, models


def schema_version(store: ServerDatabase) -> int:
    return schema_version_of(store.connection())


def _create_statements(models: Models) -> list[str]:
    """The models' CREATE TABLE and index statements, rendered by peewee for the engine."""
    statements = []
    for model in models.all():
        sql, _ = model._schema._create_table(safe=True).query()
        statements.append(sql)
        for index in model._schema._create_indexes(safe=True):
            statements.append(index.query()[0])
    return statements


def migrate(store: ServerDatabase, models: Models) -> int:
    """Create or upgrade the schema under a cluster-wide lock; returns the version.

    PostgreSQL runs the DDL in one transaction; MariaDB commits each DDL statement, so a statement
    that finds its work done (a column or index that exists) counts as done.
    """
    from .models import SCHEMA_VERSION

    connection = store.connection()
    engine = connection.engine
    deadline = time.monotonic() + max(store.busy_timeout, 1.0)
    while not connection.try_lock(MIGRATE_LOCK):
        if time.monotonic() > deadline:
            raise StoreError(store.url, "another process holds the migration lock")
        time.sleep(0.05)
    try:
        for statement in _META_DDL:
            connection.execute_raw(engine.create_table(statement))
        version = schema_version_of(connection)
        if version > SCHEMA_VERSION:
            raise StoreError(store.url, f"schema version {version} is newer than this run-cron understands "
                                        f"({SCHEMA_VERSION})")
        if version < SCHEMA_VERSION:
            # Version 2 is the first server schema: every table at once.
            transactional = engine.ENGINE == "postgresql"
            if transactional:
                connection.execute("BEGIN IMMEDIATE")
            try:
                for statement in [*_create_statements(models), *engine.INDEXES]:
                    _ddl(connection, engine.create_table(statement))
                connection.execute_raw("DELETE FROM run_cron_schema")
                connection.execute_raw(f"INSERT INTO run_cron_schema (version) VALUES ({SCHEMA_VERSION})")
            except BaseException:
                if transactional:
                    connection.execute("ROLLBACK")
                raise
            if transactional:
                connection.execute("COMMIT")
            log.info("store %s: schema created at version %d", store.database, SCHEMA_VERSION)
        return SCHEMA_VERSION
    finally:
        connection.unlock(MIGRATE_LOCK)


def _ddl(connection: ServerConnection, statement: str) -> None:
    try:
        connection.execute_raw(statement)
    except Exception as exc:
        cause = exc.__cause__
        code = cause.args[0] if cause is not None and cause.args else None
        if code not in getattr(connection.engine, "DDL_DONE", ()):
            raise


# -- tick facts ---------------------------------------------------------------------------------


def record_tick(connection: ServerConnection, values: dict[str, object]) -> None:
    """Store the last tick's facts in `run_cron_tick`, cluster-wide (one small upsert per fact)."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        connection.executemany(  # an upsert: hosts finishing ticks at once never collide
            "INSERT INTO run_cron_tick (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            [(key, "" if value is None else str(value)) for key, value in values.items()],
        )
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def read_tick(connection: ServerConnection) -> dict[str, str]:
    try:
        return {name: value or "" for name, value in connection.execute("SELECT name, value FROM run_cron_tick")}
    except Exception as exc:
        if "no such table" in str(exc):
            return {}
        raise


# -- cluster-wide locks -------------------------------------------------------------------------


__all__ = ["ServerConnection", "connect_store", "migrate", "open_fast"]
