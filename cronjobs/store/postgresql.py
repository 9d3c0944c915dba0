"""PostgreSQL through pg8000: the driver, the SQL rewrites, advisory locks and error mapping.

pg8000 is pure Python (its one dependency, scramp, too), so `pip install run-cron[postgresql]`
works on a shared host without a compiler or libpq, which psycopg2 needs.
"""

from __future__ import annotations

import hashlib
import math
import re
import sqlite3
from typing import Any, Optional

from . import dialect
from .url import Target

ENGINE = "postgresql"
DRIVER = "pg8000"
DOUBLE = "DOUBLE PRECISION"  # the type of the times, for a CAST
BEGIN = "BEGIN"


def connect(target: Target, timeout: float) -> Any:
    """A new autocommit connection (explicit BEGIN/COMMIT, as on SQLite)."""
    import pg8000.dbapi  # MissingDriver is raised by the caller on ImportError

    connection = pg8000.dbapi.connect(
        user=target.user or "postgres", password=target.password, host=target.host, port=target.port,
        database=target.name, timeout=max(timeout, 1.0), application_name="run-cron",
        startup_params={"search_path": target.schema} if target.schema else None,
    )
    connection.autocommit = True
    if target.schema:
        _ensure_schema(connection, target.schema)
    connection.scope = target.schema or ""  # advisory locks are per database: a schema names its own
    return connection


def _ensure_schema(connection: Any, schema: str) -> None:
    """Create the URL's schema if it is missing, and only then: CREATE SCHEMA needs the CREATE privilege
    on the database even with IF NOT EXISTS (a host's role may own its schema and no more), and two
    sessions creating it at once collide on pg_namespace's unique index, which IF NOT EXISTS does not
    cover: the loser finds the schema there."""
    import pg8000.dbapi

    cursor = connection.cursor()
    cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
    if cursor.fetchall():
        return
    try:
        cursor.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')  # the name is checked by url.parse
    except pg8000.dbapi.DatabaseError:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        if not cursor.fetchall():
            raise


def socket_fd(raw: Any) -> Optional[int]:
    sock = getattr(raw, "_usock", None)
    return sock.fileno() if sock is not None else None


def create_table(sql: str) -> str:
    """Text compares exactly here by default: no table options needed."""
    return sql


def translate(sql: str) -> str:
    return dialect.placeholders(dialect.scalar_min_max(dialect.strip_indexed_by(sql), null_strict=True))


def lock_key(name: str) -> int:
    """A signed 64-bit advisory lock key for `name` (advisory locks are per database already)."""
    return int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], "big", signed=True)


def try_lock(raw: Any, cursor: Any, name: str) -> bool:
    cursor.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(raw.scope + "\0" + name),))
    return bool(cursor.fetchone()[0])


def unlock(raw: Any, cursor: Any, name: str) -> None:
    cursor.execute("SELECT pg_advisory_unlock(%s)", (lock_key(raw.scope + "\0" + name),))
    cursor.fetchall()


def keep_session(raw: Any, cursor: Any, timeout: float) -> None:
    """A session that holds a lock for long (session.py): the server ends it after `timeout` seconds of
    silence, and not sooner. PostgreSQL 14+: the idle timeouts, whatever the network does; older: TCP
    keepalives (and, from 12, tcp_user_timeout), which catch a host gone from the network. One statement;
    the version is the one the server reported at startup."""
    server = _version(dict(getattr(raw, "parameter_statuses", None) or {}).get("server_version", ""))
    milliseconds = str(int(timeout * 1000))
    settings = [("tcp_keepalives_idle", str(math.ceil(timeout / 2))),
                ("tcp_keepalives_interval", str(math.ceil(timeout / 6))), ("tcp_keepalives_count", "3")]
    if server >= (9, 6):
        settings.append(("idle_in_transaction_session_timeout", milliseconds))
    if server >= (12,):
        settings.append(("tcp_user_timeout", milliseconds))
    if server >= (14,):
        settings.append(("idle_session_timeout", milliseconds))
    # Literals, not parameters: our own names and numbers, and pg8000 sends a statement without
    # parameters in one round trip (with them, in three).
    cursor.execute("SELECT " + ", ".join(f"set_config('{name}', '{value}', false)" for name, value in settings))
    cursor.fetchall()


def _version(version_text: str) -> tuple[int, ...]:
    """(major, minor) of "15.4 (Debian ...)" or "9.6.24"; () if unknown (then only what every version has)."""
    parts = re.findall(r"\d+", version_text.split(" ")[0])[:2]
    return tuple(int(part) for part in parts)


def ping(raw: Any, timeout: float) -> None:
    """One round trip that fails if unanswered within `timeout` seconds."""
    sock = raw._usock
    saved = sock.gettimeout()
    sock.settimeout(timeout)
    try:
        cursor = raw.cursor()
        cursor.execute("SELECT 1")
        cursor.fetchall()
    finally:
        sock.settimeout(saved)


def session_lost(exc: BaseException) -> bool:
    """True if `exc` says the connection is gone: a network error, or the server ended the session
    (class 08 connection exceptions, 57P operator intervention, 25P03 idle in transaction timeout).
    Not 08P01, a protocol violation: the server answers a statement with the wrong number of
    parameters so and keeps the session (were it gone, the next round trip would say so)."""
    import pg8000.dbapi

    if isinstance(exc, (OSError, pg8000.exceptions.InterfaceError)):  # type: ignore[attr-defined]
        return True
    fields = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    code = str(fields.get("C", ""))
    return (code.startswith(("08", "57P")) and code != "08P01") or code == "25P03"


def version(cursor: Any) -> str:
    cursor.execute("SHOW server_version")
    return str(cursor.fetchone()[0])


def skip_locked(version_text: str) -> bool:
    """SELECT ... FOR UPDATE SKIP LOCKED: PostgreSQL 9.5 and later."""
    major, _, minor = version_text.split()[0].partition(".")
    return (int(major), int(minor.split(".")[0] or 0)) >= (9, 5)


def now_sql() -> str:
    return "SELECT EXTRACT(EPOCH FROM clock_timestamp())"


def map_error(exc: BaseException) -> BaseException:
    """The sqlite3 exception class the callers already handle for a driver error."""
    import pg8000.dbapi

    text = str(exc)
    if isinstance(exc, pg8000.dbapi.DatabaseError) and exc.args and isinstance(exc.args[0], dict):
        fields = exc.args[0]
        code, text = fields.get("C", ""), fields.get("M", text)
        if code == "42P01":  # undefined_table: created but no schema yet, as SQLite's "no such table"
            return sqlite3.OperationalError(f"no such table: {text}")
        if code.startswith("23"):
            return sqlite3.IntegrityError(text)
    if isinstance(exc, pg8000.dbapi.IntegrityError):
        return sqlite3.IntegrityError(text)
    return sqlite3.OperationalError(text)


def driver_errors() -> tuple[type[BaseException], ...]:
    import pg8000.dbapi

    return (pg8000.dbapi.Error, pg8000.exceptions.InterfaceError, OSError)  # type: ignore[attr-defined]


#: Engine-specific DDL beside the tables the models create (partial indexes, as on SQLite).
INDEXES = (
    "CREATE INDEX IF NOT EXISTS message_claim ON message (kind, priority DESC, id) WHERE status = 'new'",
    "CREATE INDEX IF NOT EXISTS message_due ON message (run_at) WHERE status = 'new'",
    "CREATE INDEX IF NOT EXISTS message_running ON message (runner) WHERE status = 'pending'",
    "CREATE INDEX IF NOT EXISTS message_owner ON message (owner, status) WHERE owner IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS message_finished ON message (finished_at) WHERE finished_at IS NOT NULL",
    "CREATE UNIQUE INDEX IF NOT EXISTS message_live_key ON message (key) "
    "WHERE key IS NOT NULL AND status IN ('new', 'pending')",
    "CREATE INDEX IF NOT EXISTS attempt_message ON attempt (message_id)",
    "CREATE INDEX IF NOT EXISTS attempt_started ON attempt (started_at)",
    "CREATE INDEX IF NOT EXISTS warning_message ON warning (message_id)",
    "CREATE INDEX IF NOT EXISTS chunk_attachment ON attachment_chunk (attachment_id, seq)",
)


def peewee_database() -> Any:
    """A peewee database that never connects: it only renders the models' DDL for this engine."""
    import peewee as pw

    class Offline(pw.PostgresqlDatabase):  # type: ignore[misc]
        def get_binary_type(self) -> Any:  # peewee asks psycopg otherwise; pg8000 takes bytes
            return bytes

    database = Offline(None)
    database.server_version = (15, 0, 0)
    return database
