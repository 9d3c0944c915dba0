"""`database =` as a URL: `postgresql://user:pass@host:5432/name`, `mysql://...` or `mariadb://...`.

PostgreSQL also takes `?schema=NAME` to keep the tables in a schema of their own.

Standard library only, no driver: the configuration and every tick read it, idle ones included.
A value without `://` is an SQLite file path.
"""

from __future__ import annotations

import re
from typing import Optional
from urllib.parse import parse_qs, unquote, urlsplit

#: URL scheme -> engine module name.
SCHEMES = {"postgresql": "postgresql", "postgres": "postgresql", "mysql": "mysql", "mariadb": "mysql"}
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}
#: The pip extra that brings each engine's driver.
EXTRAS = {"postgresql": "postgresql", "mysql": "mysql"}


def is_url(database: str) -> bool:
    """True for a server engine's URL, False for an SQLite path."""
    return "://" in database


class Target:
    """Where a server database is: engine, host, port, user, password and database name."""

    def __init__(self, engine: str, host: str, port: int, user: Optional[str], password: Optional[str],
                 name: str, url: str, schema: Optional[str] = None) -> None:
        self.schema = schema  # PostgreSQL: the tables live in this schema (search_path), not in public
        self.engine = engine
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.name = name
        self.url = url

    @property
    def label(self) -> str:
        """The URL without its password, for messages and logs."""
        return redact(self.url)


def parse(database: str) -> Target:
    """Parse a server URL; ValueError says what is wrong (never echoing the password)."""
    scheme, _, _ = database.partition("://")
    engine = SCHEMES.get(scheme.lower())
    if engine is None:
        raise ValueError(f"unknown database URL scheme {scheme!r} (expected postgresql://, mysql:// or mariadb://)")
    try:
        parts = urlsplit(database)
        port = parts.port or DEFAULT_PORTS[engine]
    except ValueError as exc:
        raise ValueError(f"{redact(database)}: {exc}") from None
    name = unquote(parts.path.lstrip("/"))
    if not parts.hostname:
        raise ValueError(f"{redact(database)}: no host (expected {scheme}://user:password@host:port/database)")
    if not name or "/" in name:
        raise ValueError(f"{redact(database)}: no database name (expected {scheme}://user:password@host:port/database)")
    schema = None
    if parts.query:
        options = parse_qs(parts.query, keep_blank_values=True)
        schema = options.pop("schema", [None])[-1] if engine == "postgresql" else None
        if options or (schema is not None and not _SCHEMA.match(schema)):
            raise ValueError(f"{redact(database)}: the only option is ?schema=NAME (PostgreSQL; letters, digits, _)")
    if parts.fragment:
        raise ValueError(f"{redact(database)}: no # part expected")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return Target(engine, parts.hostname, port, user, password, name, database, schema)


_SCHEMA = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


def redact(database: str) -> str:
    """`database` with the password of a URL replaced by ***."""
    return _PASSWORD.sub(r"\1***@", database) if is_url(database) else database
