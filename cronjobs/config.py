"""Reading and validating the INI configuration into one `Config` object.

Relative paths in the file resolve against the directory that holds the file, so a crontab line that
runs from `$HOME` and a test that runs from a temporary directory read the same files.
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, field
from typing import Callable, Optional

from .errors import ConfigError

DEFAULT_PATH = os.path.join("config", "run-cron.ini")
ENV_VAR = "RUN_CRON_CONFIG"
SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass
class HttpConfig:
    token: Optional[str] = None
    prefix: str = ""
    time_limit: float = 20.0
    min_interval: float = 60.0
    max_body: int = 65536


@dataclass
class LogConfig:
    file: Optional[str] = None
    level: str = "INFO"
    max_bytes: int = 1_000_000
    backups: int = 5


@dataclass
class Config:
    """Everything a tick needs, validated. Build it with `load_config` or directly in tests."""

    database: str
    lock_file: str
    path: str = "<defaults>"
    jobs: list[str] = field(default_factory=list)
    python_path: list[str] = field(default_factory=list)
    timezone: Optional[str] = None
    time_limit: float = 50.0
    stale_after: float = 300.0
    retention_days: float = 30.0
    retry_backoff: float = 60.0
    busy_timeout: float = 10.0
    synchronous: str = "NORMAL"
    ping_url: Optional[str] = None
    http: HttpConfig = field(default_factory=HttpConfig)
    log: LogConfig = field(default_factory=LogConfig)

    @property
    def tz(self):  # -> datetime.tzinfo
        from .schedule import get_timezone

        return get_timezone(self.timezone)

    @property
    def tz_key(self) -> str:
        """`str(self.tz)`, as schedule keys use it, without loading a zone named here (idle ticks)."""
        return self.timezone or str(self.tz)


def find_config_path(explicit: Optional[str] = None) -> str:
    """`--config`, else `$RUN_CRON_CONFIG`, else `./config/run-cron.ini`."""
    return explicit or os.environ.get(ENV_VAR) or DEFAULT_PATH


def _number(minimum: float, integer: bool = False) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = int(text) if integer else float(text)
        if value != value or value < minimum:  # NaN or too small
            raise ValueError
        return value

    parse.expected = f"a{'n integer' if integer else ' number'} >= {minimum:g}"  # type: ignore[attr-defined]
    return parse


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text.upper() not in options:
            raise ValueError
        return text.upper()

    parse.expected = "one of " + ", ".join(options)  # type: ignore[attr-defined]
    return parse


def _text(text: str) -> str:
    return text


def _optional_text(text: str) -> Optional[str]:
    return text or None


def _list(text: str) -> list[str]:
    return [item.strip() for item in text.replace("\n", ",").split(",") if item.strip()]


def _url(text: str) -> Optional[str]:
    if text and not text.startswith(("http://", "https://")):
        raise ValueError
    return text or None


_url.expected = "an http:// or https:// URL"  # type: ignore[attr-defined]


def _timezone(text: str) -> Optional[str]:
    if not text:
        return None
    import zoneinfo  # not via schedule.get_timezone: idle ticks do not import schedule

    try:
        zoneinfo.ZoneInfo(text)  # cached: schedule.get_timezone(text) gets this same object
    except zoneinfo.ZoneInfoNotFoundError as exc:
        raise ValueError(text) from exc
    return text


_timezone.expected = "an IANA time zone name such as Europe/Berlin"  # type: ignore[attr-defined]

# section -> key -> (parser, attribute); each parser raises ValueError for a bad value.
_SCHEMA: dict[str, dict[str, Callable[[str], object]]] = {
    "run-cron": {
        "database": _text,
        "lock_file": _text,
        "jobs": _list,
        "python_path": _list,
        "timezone": _timezone,
        "time_limit": _number(0),
        "stale_after": _number(1),
        "retention_days": _number(0),
        "retry_backoff": _number(0),
        "busy_timeout": _number(0),
        "synchronous": _choice(SYNCHRONOUS_LEVELS),
        "ping_url": _url,
    },
    "http": {
        "token": _optional_text,
        "prefix": _text,
        "time_limit": _number(1),
        "min_interval": _number(0),
        "max_body": _number(0, integer=True),
    },
    "log": {
        "file": _optional_text,
        "level": _choice(LOG_LEVELS),
        "max_bytes": _number(1024, integer=True),
        "backups": _number(0, integer=True),
    },
}
_PATH_KEYS = {("run-cron", "database"), ("run-cron", "lock_file"), ("log", "file")}


def load_config(path: str) -> Config:
    """Read and validate `path`; raises ConfigError naming the file and the key at fault."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except FileNotFoundError:
        raise ConfigError(path, None, "file not found (use --config or $RUN_CRON_CONFIG)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, None, f"cannot read: {exc}") from None
    except configparser.Error as exc:
        first_line = str(exc).splitlines()[0]
        raise ConfigError(path, None, f"not a valid INI file: {first_line}") from None

    base = os.path.dirname(os.path.abspath(path))
    values: dict[str, dict[str, object]] = {}
    for section in parser.sections():
        schema = _SCHEMA.get(section)
        if schema is None:
            raise ConfigError(path, f"[{section}]", "unknown section (expected [run-cron], [http] or [log])")
        for key, raw in parser.items(section):
            parse = schema.get(key)
            if parse is None:
                raise ConfigError(path, f"[{section}] {key}", "unknown key")
            raw = raw.strip()
            try:
                value = parse(raw)
            except (ValueError, TypeError):
                expected = getattr(parse, "expected", "a valid value")
                raise ConfigError(path, f"[{section}] {key}", f"expected {expected}, got {raw!r}") from None
            if (section, key) in _PATH_KEYS and value:
                value = os.path.normpath(os.path.join(base, os.path.expanduser(str(value))))
            if (section, key) == ("run-cron", "python_path"):
                value = [
                    os.path.normpath(os.path.join(base, os.path.expanduser(item)))
                    for item in value  # type: ignore[attr-defined]
                ]
            values.setdefault(section, {})[key] = value

    main = values.get("run-cron", {})
    for required in ("database", "lock_file"):
        if not main.get(required):
            raise ConfigError(path, f"[run-cron] {required}", "missing (a file path is required)")
    config = Config(path=path, **main)  # type: ignore[arg-type]
    config.http = HttpConfig(**values.get("http", {}))  # type: ignore[arg-type]
    config.log = LogConfig(**values.get("log", {}))  # type: ignore[arg-type]
    if config.http.prefix:
        config.http.prefix = "/" + config.http.prefix.strip("/")
    return config
