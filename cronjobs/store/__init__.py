"""The store: one schema (models.py) and one module per database engine behind a small interface.

Callers use `connect_store`, `migrate`, `schema_version`, `transaction` and `translate_errors`;
the engine module a database name selects does the rest.
"""

from __future__ import annotations

from .models import SCHEMA_VERSION, Models, make_models
from .sqlite import connect_store, migrate, open_database, schema_version, transaction, translate_errors

__all__ = [
    "SCHEMA_VERSION",
    "Models",
    "connect_store",
    "make_models",
    "migrate",
    "open_database",
    "schema_version",
    "transaction",
    "translate_errors",
]
