"""run-cron: reliable background jobs for Python applications on shared hosting.

Importing this package stays cheap (no peewee, no python-crontab): every idle tick imports it.
"""

from __future__ import annotations

from .errors import (
    AttachmentNotFound,
    Cancelled,
    ConfigError,
    CronjobsError,
    InvalidPayload,
    InvalidState,
    JobDefinitionError,
    JobLoadError,
    MessageNotFound,
    PermanentError,
    ResumeLater,
    Retry,
    StoreError,
    StoreFailed,
    UnknownJobError,
    UnknownMessageType,
)
from .registry import cron, daily, handler, hourly, manual, minutely, monthly, registry, weekly, yearly

__version__ = "0.1.0"


def connect(config: str | None = None, *, database: str | None = None):  # type: ignore[no-untyped-def]
    """A `Queue` on the configured store: `connect("config/run-cron.ini")` or `connect(database=...)`."""
    from .messages.queue import connect as _connect

    return _connect(config, database=database)


__all__ = [
    "AttachmentNotFound",
    "Cancelled",
    "ConfigError",
    "CronjobsError",
    "InvalidPayload",
    "InvalidState",
    "JobDefinitionError",
    "JobLoadError",
    "MessageNotFound",
    "PermanentError",
    "ResumeLater",
    "Retry",
    "StoreError",
    "StoreFailed",
    "UnknownJobError",
    "UnknownMessageType",
    "__version__",
    "connect",
    "cron",
    "daily",
    "handler",
    "hourly",
    "manual",
    "minutely",
    "monthly",
    "registry",
    "weekly",
    "yearly",
]
