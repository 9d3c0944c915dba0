"""The store: one schema (models.py) and one module per database engine behind a small interface.

`connect_store(database)` opens an SQLite file (sqlite.py) or a server URL (server.py with
postgresql.py or mysql.py) and returns (database, models); `open_fast` (in cronjobs.runtime.idle) returns
a plain DB-API connection for the hot path and the read paths. The names are loaded on first use,
so that importing `cronjobs.store.url` on an idle tick costs no peewee import.
"""

from __future__ import annotations

from typing import Any

_NAMES = {
    "SCHEMA_VERSION": "models",
    "Models": "models",
    "make_models": "models",
    "open_database": "sqlite",
    "transaction": "sqlite",
}

__all__ = [
    "SCHEMA_VERSION",
    "has_schema",
    "Models",
    "connect_store",
    "make_models",
    "migrate",
    "open_database",
    "schema_version",
    "transaction",
    "translate_errors",
    "upgrade",
]


def connect_store(database: str, busy_timeout: float = 10.0, synchronous: str = "NORMAL",
                  upgrade: bool = False) -> tuple[Any, Any]:
    """Open `database` (an SQLite path or a server URL) with its bound models.

    A new database gets the current schema; an older one raises SchemaOutdated unless `upgrade`
    (what `run-cron migrate` passes).
    """
    if "://" in database:
        from . import server

        return server.connect_store(database, busy_timeout, synchronous, upgrade=upgrade)
    from . import sqlite

    return sqlite.connect_store(database, busy_timeout, synchronous, upgrade=upgrade)


def has_schema(database: str, connection: Any = None) -> bool:
    """Whether `database` has its tables yet: the SQLite file exists, or the server store has a schema
    version (read through `connection`, an open_fast one, if given)."""
    if "://" not in database:
        import os

        return os.path.exists(database)
    from .server import open_fast, schema_version_of

    own = connection is None
    connection = open_fast(database) if own else connection
    try:
        return schema_version_of(connection) > 0
    finally:
        if own:
            connection.close()


def upgrade(database: str, busy_timeout: float = 10.0, synchronous: str = "NORMAL") -> tuple[int, int]:
    """`run-cron migrate`: create or upgrade the schema; returns (version before, version after)."""
    from ..runtime.idle import open_fast

    connection = open_fast(database, busy_timeout, synchronous)
    before = 0
    if connection is not None:
        try:
            before = int(connection.execute("PRAGMA user_version").fetchone()[0])
        finally:
            connection.close()
    with translate_errors(database):
        store, models = connect_store(database, busy_timeout, synchronous, upgrade=True)
        try:
            after = schema_version(store)
        finally:
            store.close()
    return before, after


def translate_errors(database: str) -> Any:
    """Driver errors (locked, unwritable, corrupt, unreachable) become one StoreError naming the store."""
    from .sqlite import translate_errors as translate

    return translate(database)


def migrate(database: Any, models: Any) -> int:
    """Bring `database` (as connect_store returned it) to the current schema; returns the version."""
    from . import server, sqlite

    engine = server if getattr(database, "is_server", False) else sqlite
    return engine.migrate(database, models)  # type: ignore[attr-defined, no-any-return]


def schema_version(database: Any) -> int:
    from . import server, sqlite

    engine = server if getattr(database, "is_server", False) else sqlite
    return engine.schema_version(database)  # type: ignore[attr-defined, no-any-return]


def __getattr__(name: str) -> Any:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{module}"), name)
