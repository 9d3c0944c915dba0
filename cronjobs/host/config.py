"""Reading and validating the INI configuration into one `Config` object.

Relative paths in the file resolve against the directory that holds the file, so a crontab line that
runs from `$HOME` and a test that runs from a temporary directory read the same files.
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable, Mapping, Optional

from ..errors import ConfigError

DEFAULT_PATH = os.path.join("config", "run-cron.ini")
ENV_VAR = "RUN_CRON_CONFIG"
SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


# Plain classes, not dataclasses: every tick (idle ones included) imports this module, and creating a
# dataclass costs 0.3-0.6 ms at import. They keep a dataclass's constructor, equality and repr.


class Record:
    """Equality and repr by attributes, like a dataclass, without a dataclass's import-time cost."""

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # mutable, like a dataclass with eq=True

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self.__dict__.items())
        return f"{type(self).__qualname__}({fields})"


class HttpConfig(Record):
    def __init__(self, token: Optional[str] = None, prefix: str = "", time_limit: float = 20.0,
                 min_interval: float = 60.0, max_body: int = 65536, public_metrics: bool = False) -> None:
        self.token = token
        self.public_metrics = public_metrics  # /metrics without the token
        self.prefix = prefix
        self.time_limit = time_limit
        self.min_interval = min_interval
        self.max_body = max_body


class LogConfig(Record):
    def __init__(self, file: Optional[str] = None, level: str = "INFO", max_bytes: int = 1_000_000,
                 backups: int = 5) -> None:
        self.file = file
        self.level = level
        self.max_bytes = max_bytes
        self.backups = backups


class Config(Record):
    """Everything a tick needs, validated. Build it with `load_config` or directly in tests."""

    def __init__(
        self,
        database: str,
        lock_file: str,
        path: str = "<defaults>",
        jobs: Optional[list[str]] = None,
        python_path: Optional[list[str]] = None,
        timezone: Optional[str] = None,
        time_limit: float = 50.0,
        stale_after: float = 300.0,
        retention_days: float = 30.0,
        retry_backoff: float = 60.0,
        busy_timeout: float = 10.0,
        synchronous: str = "NORMAL",
        session_timeout: float = 30.0,
        ping_url: Optional[str] = None,
        env_file: Optional[str] = None,
        http: Optional[HttpConfig] = None,
        log: Optional[LogConfig] = None,
    ) -> None:
        self.database = database
        self.lock_file = lock_file
        self.path = path
        self.jobs: list[str] = [] if jobs is None else jobs
        self.python_path: list[str] = [] if python_path is None else python_path
        self.timezone = timezone
        self.time_limit = time_limit
        self.stale_after = stale_after
        self.retention_days = retention_days
        self.retry_backoff = retry_backoff
        self.busy_timeout = busy_timeout
        self.synchronous = synchronous
        self.session_timeout = session_timeout  # server engines: see store/session.py
        self.ping_url = ping_url
        self.env_file = env_file
        self.http: HttpConfig = HttpConfig() if http is None else http
        self.log: LogConfig = LogConfig() if log is None else log

    @property
    def tz(self):  # -> datetime.tzinfo
        from ..scheduling.schedule import get_timezone

        try:
            return get_timezone(self.timezone)
        except ValueError:
            # load_config accepted the name because a zone file of that name is in the default TZPATH
            # (see _zone_file_exists); zoneinfo, searching its own TZPATH and tzdata, has the last word.
            expected = _timezone.expected  # type: ignore[attr-defined]
            raise ConfigError(self.path, "[run-cron] timezone", f"expected {expected}, got {self.timezone!r}") from None

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
        if not math.isfinite(value) or value < minimum:  # NaN, infinite (0 is the way to say "none") or too small
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


def _flag(text: str) -> bool:
    value = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False,
             "0": False}.get(text.strip().lower())
    if value is None:
        raise ValueError
    return value


_flag.expected = "true or false"  # type: ignore[attr-defined]


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


#: CPython's default TZPATH: `zoneinfo.TZPATH` unless the build or $PYTHONTZPATH changed it.
_DEFAULT_TZPATH = ("/usr/share/zoneinfo", "/usr/lib/zoneinfo", "/usr/share/lib/zoneinfo", "/etc/zoneinfo")


def _zone_file_exists(name: str) -> bool:
    """True if `name` is a TZif file in the system's zone database, found without importing zoneinfo.

    `import zoneinfo` costs 2 ms on every tick (it imports sysconfig for TZPATH). Only a positive answer
    is trusted here; for anything else zoneinfo decides.
    """
    if name.startswith("/") or any(part in ("", ".", "..") for part in name.split("/")):
        return False  # zoneinfo rejects or normalises such keys
    env = os.environ.get("PYTHONTZPATH")
    directories = _DEFAULT_TZPATH if env is None else [item for item in env.split(os.pathsep) if item]
    for directory in directories:
        try:
            with open(os.path.join(directory, name), "rb") as handle:
                return handle.read(4) == b"TZif"
        except OSError:  # absent, or a directory such as "Europe"
            continue
    return False


def _timezone(text: str) -> Optional[str]:
    if not text:
        return None
    if _zone_file_exists(text):
        return text  # Config.tz loads it when needed (a ConfigError there if zoneinfo disagrees)
    import zoneinfo  # not via schedule.get_timezone: idle ticks do not import schedule

    try:
        zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, OSError) as exc:  # OSError: "Europe" is a directory in tzdata
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
        "session_timeout": _number(2),
        "ping_url": _url,
        "env_file": _optional_text,
    },
    "http": {
        "token": _optional_text,
        "prefix": _text,
        "time_limit": _number(1),
        "min_interval": _number(0),
        "max_body": _number(0, integer=True),
        "public_metrics": _flag,
    },
    "log": {
        "file": _optional_text,
        "level": _choice(LOG_LEVELS),
        "max_bytes": _number(1024, integer=True),
        "backups": _number(0, integer=True),
    },
}
_PATH_KEYS = {("run-cron", "database"), ("run-cron", "lock_file"), ("run-cron", "env_file"), ("log", "file")}


def _parse_ini(text: str) -> Optional[list[tuple[str, list[tuple[str, str]]]]]:
    """The sections of a plain INI file as `configparser.ConfigParser(interpolation=None)` reads them,
    or None for anything beyond the plain subset (then configparser itself reads the file).

    `import configparser` costs 1.4 ms (it compiles its regular expressions) on every tick, idle ones
    included. The subset: `[section]` headers, `key = value` or `key: value` lines, indented
    continuation lines, blank lines and whole-line `#`/`;` comments, no [DEFAULT] section and no
    duplicate section or key. Values are joined and stripped the way configparser does it.
    """
    lines = text.split("\n")
    if lines and not lines[-1]:
        lines.pop()  # what follows the last newline, which iterating over the file does not yield
    sections: dict[str, dict[str, list[str]]] = {}
    current: Optional[dict[str, list[str]]] = None
    option: Optional[str] = None
    indent_level = 0
    for line in lines:
        value = line.strip()
        if value.startswith(("#", ";")):
            continue  # a comment, even amid a multi-line value
        if not value:
            if current is not None and option is not None:
                current[option].append("")  # an empty line inside a value, trimmed at the end if trailing
            continue
        indent = len(line) - len(line.lstrip())
        if line[:indent].strip(" \t"):
            return None  # unusual leading whitespace
        if current is not None and option is not None and indent > indent_level:
            current[option].append(value)
            continue
        indent_level = indent
        if value.startswith("["):
            name = value[1:-1]
            if not value.endswith("]") or not name or name == "DEFAULT" or name in sections:
                return None
            current = sections[name] = {}
            option = None
            continue
        if current is None:
            return None  # no section header: configparser's error message
        cut = min((index for index in (value.find("="), value.find(":")) if index >= 0), default=-1)
        key = value[:cut].rstrip().lower()
        if cut < 0 or not key or key in current:
            return None
        option = key
        current[option] = [value[cut + 1:].strip()]
    return [(name, [(key, "\n".join(parts).rstrip()) for key, parts in options.items()])
            for name, options in sections.items()]


def _read_ini(path: str, text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    sections = _parse_ini(text)
    if sections is not None:
        return sections
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=path)
    except configparser.Error as exc:
        first_line = str(exc).splitlines()[0]
        raise ConfigError(path, None, f"not a valid INI file: {first_line}") from None
    return [(section, parser.items(section)) for section in parser.sections()]


def _database_url(path: str, value: str) -> str:
    """A server engine's URL, checked (the driver is loaded only when the store opens)."""
    from ..store.url import parse

    try:
        parse(value)
    except ValueError as exc:
        raise ConfigError(path, "[run-cron] database", str(exc)) from None
    return value


def load_config(path: str) -> Config:
    """Read and validate `path`; raises ConfigError naming the file and the key at fault."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise ConfigError(path, None, "file not found (use --config or $RUN_CRON_CONFIG)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, None, f"cannot read: {exc}") from None

    return _build(path, os.path.dirname(os.path.abspath(path)), _read_ini(path, text))


def _build(path: str, base: str, sections: list[tuple[str, list[tuple[str, str]]]]) -> Config:
    """Validate the text values of each section into a Config; relative paths resolve against `base`."""
    values: dict[str, dict[str, object]] = {}
    for section, items in sections:
        schema = _SCHEMA.get(section)
        if schema is None:
            raise ConfigError(path, f"[{section}]", "unknown section (expected [run-cron], [http] or [log])")
        for key, raw in items:
            parse = schema.get(key)
            if parse is None:
                raise ConfigError(path, f"[{section}] {key}", "unknown key")
            raw = raw.strip()
            try:
                value = parse(raw)
            except (ValueError, TypeError):
                expected = getattr(parse, "expected", "a valid value")
                raise ConfigError(path, f"[{section}] {key}", f"expected {expected}, got {raw!r}") from None
            if (section, key) == ("run-cron", "database") and "://" in str(value):
                value = _database_url(path, str(value))
            elif (section, key) in _PATH_KEYS and value:
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


def config_from_mapping(values: Mapping[str, Any], origin: str, base: str,
                        defaults: Optional[Mapping[str, Any]] = None) -> Config:
    """A Config from a dict holding what the INI file holds, for frameworks that configure in code.

    The keys of [run-cron] at the top level, [http] and [log] as nested dicts; keys in any case
    (`"TIME_LIMIT"` or `"time_limit"`). Lists may be lists, numbers numbers. `defaults` fills keys the
    dict leaves out. Relative paths resolve against `base`. Errors are ConfigErrors naming `origin`.
    """
    sections: dict[str, dict[str, Any]] = {"run-cron": {}, "http": {}, "log": {}}
    for source in (defaults or {}, values):
        for key, value in source.items():
            name = str(key).lower()
            if name in ("http", "log"):
                if not isinstance(value, Mapping):
                    raise ConfigError(origin, name, f"expected a dict of [{name}] keys, got {value!r}")
                sections[name].update((str(inner).lower(), item) for inner, item in value.items())
            else:
                sections["run-cron"][name] = value
    return _build(origin, base, [(section, [(key, _as_text(value)) for key, value in items.items()])
                                 for section, items in sections.items()])


def _as_text(value: Any) -> str:
    """A Python value as the INI file would spell it, for the same parsers."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ",".join(os.fspath(item) if isinstance(item, os.PathLike) else str(item) for item in value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)  # type: ignore[return-value]
    return str(value)
