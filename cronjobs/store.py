"""The SQLite store: peewee models bound to a database that is passed in, and schema migrations.

The tables are plain enough for PostgreSQL or MariaDB later; the few SQLite-only statements (PRAGMA,
BEGIN IMMEDIATE) are confined to `open_database` and `transaction`. Timestamps are UTC epoch seconds.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import peewee as pw

from .errors import StoreError
from .files import create_private

#: Bumped by every release that changes the tables; `migrate` brings older files up to date.
SCHEMA_VERSION = 1


@dataclass
class Models:
    """The model classes bound to one database."""

    JobState: Any
    Message: Any
    Attempt: Any
    Warning: Any
    Attachment: Any
    AttachmentChunk: Any

    def all(self) -> list[Any]:
        return [
            self.JobState,
            self.Message,
            self.Attempt,
            self.Warning,
            self.Attachment,
            self.AttachmentChunk,
        ]


def make_models(database: pw.Database) -> Models:
    """Model classes bound to `database` (no module-global database, as in huey's SqlHuey)."""

    class Base(pw.Model):
        class Meta:
            legacy_table_names = False

    class JobState(Base):
        name = pw.TextField(primary_key=True)
        schedule = pw.TextField()  # schedule and time zone the cached next_due was computed for
        first_seen = pw.FloatField()
        last_run = pw.FloatField(null=True)  # start of the most recent finished run
        last_finished = pw.FloatField(null=True)
        last_outcome = pw.TextField(null=True)
        last_error = pw.TextField(null=True)
        failures = pw.IntegerField(default=0)
        next_due = pw.FloatField(null=True)  # read by the idle check, which never parses a schedule
        current = pw.TextField(null=True)  # uuid of a run that has not finished (resumed first)

    class Message(Base):
        uuid = pw.TextField(unique=True)
        kind = pw.TextField(default="message")  # "message", or "job" for a periodic job's run
        type = pw.TextField()
        payload = pw.TextField(null=True)  # JSON
        status = pw.TextField(default="new")
        priority = pw.IntegerField(default=0)
        run_at = pw.FloatField()
        key = pw.TextField(null=True)
        owner = pw.TextField(null=True)
        attempts = pw.IntegerField(default=0)  # attempts used up; a continuation uses none
        max_attempts = pw.IntegerField(default=3)
        offset_json = pw.TextField(null=True)
        state_json = pw.TextField(null=True)
        seq = pw.IntegerField(default=0)  # checkpoint counter: did a cut run make progress?
        done = pw.FloatField(null=True)
        total = pw.FloatField(null=True)
        progress = pw.FloatField(default=0)
        error = pw.TextField(null=True)  # the last error, one line
        created_at = pw.FloatField()
        started_at = pw.FloatField(null=True)
        finished_at = pw.FloatField(null=True)
        # The attempt under way (its `attempt` row is written when it ends): when it began and the
        # checkpoint counter then, so recovery can tell a cut run that progressed from one that did not.
        attempt_started_at = pw.FloatField(null=True)
        attempt_seq = pw.IntegerField(null=True)

    class Attempt(Base):
        message = pw.ForeignKeyField(Message, on_delete="CASCADE", backref="attempt_rows")
        number = pw.IntegerField()
        started_at = pw.FloatField()
        finished_at = pw.FloatField(null=True)
        outcome = pw.TextField(null=True)  # completed, failed, timeout, continued, crashed, retry, ...
        error = pw.TextField(null=True)
        traceback = pw.TextField(null=True)
        seq_start = pw.IntegerField(default=0)

    class Warning(Base):
        message = pw.ForeignKeyField(Message, on_delete="CASCADE", backref="warning_rows")
        at = pw.FloatField()
        text = pw.TextField()

    class Attachment(Base):
        message = pw.ForeignKeyField(Message, on_delete="CASCADE", backref="attachment_rows")
        name = pw.TextField()
        size = pw.IntegerField(default=0)
        created_at = pw.FloatField()

        class Meta:
            indexes = ((("message", "name"), True),)

    class AttachmentChunk(Base):
        # Large files live here, in chunks, so neither the queue table nor memory grows with them.
        attachment = pw.ForeignKeyField(Attachment, on_delete="CASCADE")
        seq = pw.IntegerField()
        data = pw.BlobField()

    models = Models(JobState, Message, Attempt, Warning, Attachment, AttachmentChunk)
    database.bind(models.all(), bind_refs=False, bind_backrefs=False)
    return models


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


_MIGRATIONS = {1: _migrate_to_1}


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
    path: str, busy_timeout: float = 10.0, synchronous: str = "NORMAL"
) -> tuple[pw.SqliteDatabase, Models]:
    """Open `path`, create or migrate its schema, and return it with its bound models."""
    database = open_database(path, busy_timeout, synchronous)
    models = make_models(database)
    with translate_errors(path):
        database.connect(reuse_if_open=True)
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
    except (pw.DatabaseError, sqlite3.DatabaseError) as exc:
        raise StoreError(path, exc) from exc
    except (pw.InterfaceError, sqlite3.Error) as exc:
        raise StoreError(path, exc) from exc
