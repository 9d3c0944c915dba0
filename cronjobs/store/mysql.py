"""MariaDB and MySQL through PyMySQL: the driver, the SQL rewrites, GET_LOCK and error mapping.

PyMySQL is pure Python with no dependencies, so `pip install run-cron[mysql]` works on a shared host
without a compiler or the MySQL client library that mysqlclient needs.
"""

from __future__ import annotations

import hashlib
import math
import re
import sqlite3
from typing import Any, Optional

from . import dialect
from .url import Target

ENGINE = "mysql"
DRIVER = "PyMySQL"
DOUBLE = "DOUBLE"  # the type of the times, for a CAST
BEGIN = "START TRANSACTION"


def connect(target: Target, timeout: float) -> Any:
    """A new autocommit connection; UPDATE counts matched rows (FOUND_ROWS), as SQLite's do."""
    import pymysql
    from pymysql.constants import CLIENT

    connection = pymysql.connect(
        host=target.host, port=target.port, user=target.user or "root", password=target.password or "",
        database=target.name, autocommit=True, client_flag=CLIENT.FOUND_ROWS, connect_timeout=max(timeout, 1.0),
        charset="utf8mb4",
        # || concatenates, as in SQLite and PostgreSQL
        init_command="SET SESSION sql_mode = CONCAT(@@sql_mode, ',PIPES_AS_CONCAT')",
    )
    with connection.cursor() as cursor:
        # As PostgreSQL's default: a claim's locking read and the reads after it see the same rows,
        # and no gap locks make concurrent claims wait for each other.
        cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    return connection


_KEY = re.compile(r"(?<![\w`'.])key(?![\w`'(])")
_UPSERT = re.compile(r"ON CONFLICT \([^)]*\) DO UPDATE SET")
_EXCLUDED = re.compile(r"excluded\.(\w+)")
_DELETE_IN = re.compile(r"DELETE FROM (\w+) WHERE id IN \(SELECT id FROM \1 WHERE (.*) ORDER BY id LIMIT \?\)$",
                        re.S)


def socket_fd(raw: Any) -> Optional[int]:
    sock = getattr(raw, "_sock", None)
    return sock.fileno() if sock is not None else None


#: Text compares exactly, as on SQLite and PostgreSQL: under the server's usual default collation
#: (utf8mb4_general_ci) the keys "K" and "k" would be one live key, owners, types, tags and paused
#: names would match in any case. Every table run-cron creates says so itself, whatever the database's
#: default, so the user's own tables and database settings are left alone.
_TABLE_OPTIONS = " DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"


def create_table(sql: str) -> str:
    """A CREATE TABLE statement with this engine's table options (other statements as they are)."""
    return sql + _TABLE_OPTIONS if sql.lstrip()[:12].upper() == "CREATE TABLE" else sql


def translate(sql: str) -> str:
    sql = create_table(sql)
    sql = dialect.scalar_min_max(dialect.strip_indexed_by(sql))
    sql = _KEY.sub("`key`", sql)  # KEY is a reserved word here
    sql = _EXCLUDED.sub(r"VALUES(\1)", _UPSERT.sub("ON DUPLICATE KEY UPDATE", sql))
    # No LIMIT in an IN subquery, nor a subquery on the table being deleted from: DELETE ... LIMIT.
    sql = _DELETE_IN.sub(r"DELETE FROM \1 WHERE \2 ORDER BY id LIMIT ?", sql)
    return dialect.placeholders(sql)


def lock_name(database: str, name: str) -> str:
    """GET_LOCK names are server-wide (and at most 64 characters): qualify them by the database."""
    return "rc:" + hashlib.sha1(f"{database}\0{name}".encode()).hexdigest()


def try_lock(raw: Any, cursor: Any, name: str) -> bool:
    cursor.execute("SELECT GET_LOCK(%s, 0)", (lock_name(raw.db.decode(), name),))
    return cursor.fetchone()[0] == 1


def unlock(raw: Any, cursor: Any, name: str) -> None:
    cursor.execute("SELECT RELEASE_LOCK(%s)", (lock_name(raw.db.decode(), name),))
    cursor.fetchall()


def keep_session(raw: Any, cursor: Any, timeout: float) -> None:
    """A session that holds a lock for long (session.py): the server ends it after `timeout` seconds of
    silence, also mid-packet or while a vanished client does not read, and not sooner (a shared host's
    `wait_timeout` of 30-60 s would otherwise drop a worker whose handler does not touch the database).
    PyMySQL waits for an answer without a limit: here a statement unanswered that long fails."""
    seconds = math.ceil(timeout)
    cursor.execute(f"SET SESSION wait_timeout = {seconds}, SESSION net_read_timeout = {seconds}, "
                   f"SESSION net_write_timeout = {seconds}")
    raw._read_timeout = raw._write_timeout = timeout


def ping(raw: Any, timeout: float) -> None:
    """One round trip (COM_PING) that fails if unanswered within `timeout` seconds."""
    saved = raw._read_timeout, raw._write_timeout
    raw._read_timeout = raw._write_timeout = timeout
    try:
        raw.ping(reconnect=False)
    finally:
        raw._read_timeout, raw._write_timeout = saved


#: Server errors that end the session: shutdown, killed, disconnected for inactivity (MySQL 8.0.24+).
_SESSION_ENDED = (1053, 1927, 4031)


def session_lost(exc: BaseException) -> bool:
    """True if `exc` says the connection is gone (the client's CR_* errors are 2000-2999)."""
    import pymysql

    if isinstance(exc, (OSError, pymysql.err.InterfaceError)):
        return True
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
    return 2000 <= code < 3000 or code in _SESSION_ENDED


def version(cursor: Any) -> str:
    cursor.execute("SELECT VERSION()")
    return str(cursor.fetchone()[0])


def skip_locked(version_text: str) -> bool:
    """SELECT ... FOR UPDATE SKIP LOCKED: MariaDB 10.6 and later, MySQL 8.0 and later."""
    numbers = tuple(int(part) for part in re.findall(r"\d+", version_text)[:2])
    return numbers >= ((10, 6) if "mariadb" in version_text.lower() else (8, 0))


def now_sql() -> str:
    return "SELECT UNIX_TIMESTAMP(NOW(6))"


def map_error(exc: BaseException) -> BaseException:
    """The sqlite3 exception class the callers already handle for a driver error."""
    import pymysql

    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
    text = exc.args[1] if len(exc.args) > 1 else str(exc)
    if code == 1146:  # no such table: created but no schema yet, as SQLite says it
        return sqlite3.OperationalError(f"no such table: {text}")
    if isinstance(exc, pymysql.err.IntegrityError):
        return sqlite3.IntegrityError(text)
    return sqlite3.OperationalError(text)


def driver_errors() -> tuple[type[BaseException], ...]:
    import pymysql

    return (pymysql.err.Error, OSError)


#: Errors a repeated DDL statement gives (duplicate column, duplicate index): already done.
DDL_DONE = (1060, 1061)

#: Engine-specific DDL beside the tables the models create. No partial indexes here: the one live
#: message per key is a unique index on a generated column that is NULL once a message is finished.
INDEXES = (
    "CREATE INDEX message_claim ON message (kind, status, priority DESC, id)",
    "CREATE INDEX message_due ON message (status, run_at)",
    "CREATE INDEX message_running ON message (status, runner)",
    "CREATE INDEX message_owner ON message (owner, status)",
    "CREATE INDEX message_finished ON message (finished_at)",
    "ALTER TABLE message ADD COLUMN live_key VARCHAR(255) AS "
    "(CASE WHEN status IN ('new', 'pending') THEN `key` END) PERSISTENT",
    "CREATE UNIQUE INDEX message_live_key ON message (live_key)",
    "CREATE INDEX attempt_started ON attempt (started_at)",
    "CREATE INDEX chunk_attachment ON attachment_chunk (attachment_id, seq)",
)


def peewee_database() -> Any:
    """A peewee database that never connects: it only renders the models' DDL for this engine."""
    import peewee as pw

    # 1 MiB attachment chunks and long payloads: BLOB and TEXT stop at 64 KiB here.
    return pw.MySQLDatabase(None, field_types={"BLOB": "LONGBLOB", "TEXT": "LONGTEXT"})
