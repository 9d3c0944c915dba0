"""The SQLite store: WAL, busy timeout, versioned schema, clean errors."""

from __future__ import annotations

import sqlite3

import pytest

from cronjobs.errors import StoreError
from cronjobs.runtime import tick
from cronjobs.runtime.runs import claim_sql
from cronjobs.store import SCHEMA_VERSION, connect_store, migrate, schema_version


def test_schema_is_created_in_wal_mode_and_versioned(tmp_path):
    path = tmp_path / "db.sqlite3"
    database, models = connect_store(str(path))
    assert database.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert database.execute_sql("PRAGMA busy_timeout").fetchone()[0] == 10000
    assert schema_version(database) == SCHEMA_VERSION
    assert migrate(database, models) == SCHEMA_VERSION  # idempotent
    database.close()
    tables = {row[0] for row in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"job_state", "message", "attempt", "warning", "attachment", "attachment_chunk"} <= tables


def test_the_idle_path_knows_the_schema_version_without_importing_peewee():
    assert tick.SCHEMA_VERSION == SCHEMA_VERSION


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "db.sqlite3"
    sqlite3.connect(path).execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="is newer than this run-cron understands"):
        connect_store(str(path))


def test_corrupt_file_is_a_store_error(tmp_path):
    path = tmp_path / "db.sqlite3"
    path.write_bytes(b"garbage" * 1000)
    with pytest.raises(StoreError, match="file is not a database"):
        connect_store(str(path))
    assert path.read_bytes() == b"garbage" * 1000


@pytest.mark.parametrize("excluded", [0, 2])
def test_claim_query_walks_an_index_without_sorting(db, excluded):
    plan = db.execute_sql("EXPLAIN QUERY PLAN " + claim_sql(excluded), (0,) + ("a",) * excluded).fetchall()
    text = " ".join(row[-1] for row in plan)
    assert "message_claim" in text and "TEMP B-TREE" not in text
