"""The SQLite engine: WAL, busy timeout, BEGIN IMMEDIATE, partial indexes and PRAGMA user_version.

The few SQLite-only statements (PRAGMA, BEGIN IMMEDIATE) are confined to this module.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import contextmanager
from typing import Iterator

import peewee as pw

from ..errors import SchemaOutdated, StoreError, StoreFailed
from ..host.files import create_private
from .models import SCHEMA_VERSION, Models, make_models

_INDEXES_V1 = (
    # Partial indexes hold only the rows a query looks for, so a status change touches few pages.
    # The claim walks this one in order: no temporary B-tree however long the queue grows.
    "CREATE INDEX IF NOT EXISTS message_claim ON message (kind, priority DESC, id) WHERE status = 'new'",
    "CREATE INDEX IF NOT EXISTS message_due ON message (run_at) WHERE status = 'new'",
    "CREATE INDEX IF NOT EXISTS message_running ON message (status) WHERE status = 'pending'",
    "CREATE INDEX IF NOT EXISTS message_owner ON message (owner, status) WHERE owner IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS message_finished ON message (finished_at) WHERE finished_at IS NOT NULL",
    # Only one live message per key; finished ones may share it.
    "CREATE UNIQUE INDEX IF NOT EXISTS message_live_key ON message (key) "
    "WHERE key IS NOT NULL AND status IN ('new', 'pending')",
    "CREATE INDEX IF NOT EXISTS attempt_message ON attempt (message_id)",
    "CREATE INDEX IF NOT EXISTS attempt_started ON attempt (started_at)",
    "CREATE INDEX IF NOT EXISTS warning_message ON warning (message_id)",
    "CREATE INDEX IF NOT EXISTS chunk_attachment ON attachment_chunk (attachment_id, seq)",
)


def _migrate_to_1(database: pw.Database, models: Models) -> None:
    database.create_tables(models.all(), safe=True)
    for statement in _INDEXES_V1:
        database.execute_sql(statement)


def _migrate_to_2(database: pw.Database, models: Models) -> None:
    columns = {row[1] for row in database.execute_sql("PRAGMA table_info(message)")}
    if "runner" not in columns:  # a file created at version 2 has it from the models
        database.execute_sql("ALTER TABLE message ADD COLUMN runner VARCHAR(64)")


_MIGRATIONS = {1: _migrate_to_1, 2: _migrate_to_2}


def open_database(path: str, busy_timeout: float = 10.0, synchronous: str = "NORMAL") -> pw.SqliteDatabase:
    """An SQLite database in WAL mode with a busy timeout, so a web app can write while a tick runs."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise StoreError(path, "its directory does not exist")
    try:
        create_private(path)  # SQLite gives -wal and -shm the database file's mode: 0600 from the start
    except OSError as exc:
        raise StoreError(path, exc.strerror or exc) from exc
    database = pw.SqliteDatabase(
        path,
        timeout=busy_timeout,
        pragmas={
            "journal_mode": "wal",
            "synchronous": synchronous,
            "busy_timeout": int(busy_timeout * 1000),
            "foreign_keys": 1,
        },
    )
    return database


def connect_store(
    path: str, busy_timeout: float = 10.0, synchronous: str = "NORMAL", upgrade: bool = False
) -> tuple[pw.SqliteDatabase, Models]:
    """Open `path` and return it with its bound models; a new file gets the schema.

    An older schema raises SchemaOutdated unless `upgrade` (`run-cron migrate`): upgrading is an
    explicit step, so no tick changes the tables under a version of run-cron still running elsewhere.
    """
    database = open_database(path, busy_timeout, synchronous)
    models = make_models(database)
    with translate_errors(path):
        database.connect(reuse_if_open=True)
        version = schema_version(database)
        if 0 < version < SCHEMA_VERSION and not upgrade:
            database.close()
            raise SchemaOutdated(path, version, SCHEMA_VERSION)
        migrate(database, models)
    return database, models


def schema_version(database: pw.Database) -> int:
    return int(database.execute_sql("PRAGMA user_version").fetchone()[0])


def migrate(database: pw.Database, models: Models) -> int:
    """Apply the migrations the file lacks, each in its own transaction; returns the version."""
    version = schema_version(database)
    if version > SCHEMA_VERSION:
        raise StoreError(
            database.database,
            f"schema version {version} is newer than this run-cron understands ({SCHEMA_VERSION})",
        )
    while version < SCHEMA_VERSION:
        target = version + 1
        with transaction(database):
            if schema_version(database) < target:  # another process may have migrated meanwhile
                _MIGRATIONS[target](database, models)
                database.execute_sql(f"PRAGMA user_version = {target}")
        version = schema_version(database)
    return version


@contextmanager
def transaction(database: pw.Database) -> Iterator[None]:
    """A write transaction that takes the write lock up front (BEGIN IMMEDIATE).

    A deferred transaction that reads and then writes can fail with "database is locked" without
    waiting for the busy timeout; taking the lock first makes it wait instead.
    """
    connection = database.connection()
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


@contextmanager
def translate_errors(path: str) -> Iterator[None]:
    """Turn driver errors (locked, unwritable, corrupt) into one StoreError naming the file."""
    try:
        yield
    except StoreFailed as exc:  # from a handler's ctx call: the store's failure, not the handler's
        raise StoreError(path, exc.cause) from exc.cause
    except (pw.DatabaseError, sqlite3.DatabaseError) as exc:
        raise StoreError(path, exc) from exc
    except (pw.InterfaceError, sqlite3.Error) as exc:
        raise StoreError(path, exc) from exc
