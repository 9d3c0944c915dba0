"""`run-cron doctor`: what is wrong with the store and the host, and what to do about it.

Each check returns a Finding with a Nagios level (as `status` uses them) and, when it is not OK, the
fix in one sentence. The core never prints; the CLI renders the findings and exits with the worst level.
"""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any, Callable, Optional

from ..errors import StoreError
from ..host.config import Config
from ..host.files import loose_files, store_files
from .status import CRITICAL, LABELS, OK, UNKNOWN, WARNING

#: Clock skew between this host and the database server worth a warning (seconds): schedules and
#: backoff are computed on each host's clock, so hosts that disagree run a job early or late.
SKEW_WARNING = 2.0
#: Filesystems on which SQLite's locks and WAL shared memory are not safe.
NETWORK_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "9p", "afs", "lustre", "glusterfs",
                       "fuse.glusterfs", "ceph", "fuse.ceph")


class Finding:
    def __init__(self, level: int, check: str, text: str, fix: Optional[str] = None) -> None:
        self.level = level
        self.check = check
        self.text = text
        self.fix = fix

    def to_json(self) -> dict[str, Any]:
        return {"level": LABELS[self.level], "check": self.check, "text": self.text, "fix": self.fix}

    def __repr__(self) -> str:
        return f"Finding({LABELS[self.level]}, {self.check!r}, {self.text!r})"


def filesystem_type(path: str, mounts: str = "/proc/mounts") -> Optional[str]:
    """The type of the filesystem holding `path` (the longest mount point above it), None if unknown."""
    path = os.path.realpath(path)
    best, kind = "", None
    try:
        with open(mounts, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) < 3:
                    continue
                point = fields[1].replace("\\040", " ")
                inside = path == point or path.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best):
                    best, kind = point, fields[2]
    except OSError:
        return None
    return kind


def check_sqlite(config: Config, mounts: str = "/proc/mounts") -> list[Finding]:
    from ..store import SCHEMA_VERSION

    findings = [Finding(OK, "engine", f"SQLite {sqlite3.sqlite_version} (Python's sqlite3), file {config.database}")]
    directory = os.path.dirname(os.path.abspath(config.database))
    kind = filesystem_type(directory, mounts)
    if kind is not None and kind.lower() in NETWORK_FILESYSTEMS:
        findings.append(Finding(
            CRITICAL, "filesystem", f"the database is on a network filesystem ({kind}): SQLite's locks and WAL "
            "are not safe there and the store can be corrupted",
            "move the file to a local disk (database = /local/path), or use a server engine "
            "(database = postgresql://... or mysql://...; see the README's 'Several hosts')"))
    else:
        findings.append(Finding(OK, "filesystem", f"local filesystem ({kind or 'unknown type'})"))
    findings.append(Finding(OK, "skip locked", "not needed: SQLite has one writer at a time"))
    if os.path.exists(config.database):
        try:
            connection = sqlite3.connect(f"file:{config.database}?mode=ro", uri=True, timeout=config.busy_timeout)
            try:
                version = connection.execute("PRAGMA user_version").fetchone()[0]
                journal = connection.execute("PRAGMA journal_mode").fetchone()[0]
            finally:
                connection.close()
        except sqlite3.Error as exc:
            findings.append(Finding(CRITICAL, "schema", f"cannot read the database: {exc}",
                                    "check the file (owner, mode, disk space) or restore it from a backup"))
            return findings
        findings.append(_schema_finding(version, SCHEMA_VERSION))
        if journal != "wal" and version:
            findings.append(Finding(WARNING, "journal", f"journal_mode is {journal}, not wal",
                                    "run a tick: it opens the file in WAL mode"))
    else:
        findings.append(Finding(OK, "schema", "no database yet: the first tick creates it"))
    return findings


def _schema_finding(version: int, expected: int) -> Finding:
    if version == expected:
        return Finding(OK, "schema", f"schema version {version}")
    if version == 0:
        return Finding(OK, "schema", "no schema yet: the first tick (or run-cron migrate) creates it")
    if version < expected:
        return Finding(CRITICAL, "schema", f"schema version {version} is older than this run-cron's ({expected})",
                       "run `run-cron migrate`")
    return Finding(CRITICAL, "schema", f"schema version {version} is newer than this run-cron's ({expected})",
                   "upgrade run-cron on this host to the version the other hosts run")


def check_server(config: Config, clock: Callable[[], float] = time.time) -> list[Finding]:
    from ..store import SCHEMA_VERSION
    from ..store.server import open_fast, schema_version_of
    from ..store.url import parse

    target = parse(config.database)
    try:
        connection = open_fast(config.database, config.busy_timeout)
    except StoreError as exc:
        fix = exc.reason.split(": ", 1)[-1] if "pip install" in exc.reason else (
            "check the host, port, user, password and database name, and that the server runs")
        return [Finding(CRITICAL, "engine", str(exc), fix)]
    try:
        engine = connection.engine
        cursor = connection.raw.cursor()
        version = engine.version(cursor)
        findings = [Finding(OK, "engine", f"{target.engine} {version} at {target.host}:{target.port}, "
                                          f"database {target.name} (driver {engine.DRIVER})")]
        if engine.skip_locked(version):
            findings.append(Finding(OK, "skip locked", "SELECT ... FOR UPDATE SKIP LOCKED is supported"))
        else:
            findings.append(Finding(CRITICAL, "skip locked", f"{version} has no FOR UPDATE SKIP LOCKED",
                                    "upgrade to PostgreSQL >= 9.5, MariaDB >= 10.6 or MySQL >= 8.0"))
        before = clock()
        cursor.execute(engine.now_sql())
        server_now = float(cursor.fetchone()[0])
        after = clock()
        skew = server_now - (before + after) / 2
        text = f"this host's clock is {abs(skew):.3f} s {'behind' if skew > 0 else 'ahead of'} the database's"
        if abs(skew) > SKEW_WARNING:
            findings.append(Finding(WARNING, "clock", text, "synchronise the clocks of the hosts (NTP)"))
        else:
            findings.append(Finding(OK, "clock", text))
        findings.append(_schema_finding(schema_version_of(connection), SCHEMA_VERSION))
        return findings
    finally:
        connection.close()


def check_host(config: Config) -> list[Finding]:
    findings = []
    directory = os.path.dirname(os.path.abspath(config.lock_file))
    if not os.path.isdir(directory):
        findings.append(Finding(CRITICAL, "lock directory", f"{directory} does not exist",
                                "create it, or point lock_file elsewhere"))
    elif not os.access(directory, os.W_OK | os.X_OK):
        findings.append(Finding(CRITICAL, "lock directory", f"{directory} is not writable by uid {os.geteuid()}",
                                "run run-cron as the directory's owner, or point lock_file elsewhere"))
    else:
        findings.append(Finding(OK, "lock directory", f"{directory} is writable"))
    loose = loose_files(store_files(config.database, config.lock_file, config.log.file))
    for path, mode in loose:
        findings.append(Finding(WARNING, "file modes", f"{path} is mode {mode:04o}: others may read it",
                                f"chmod 600 {path}"))
    if not loose:
        findings.append(Finding(OK, "file modes", "run-cron's files are private (0600)"))
    return findings


def diagnose(config: Config, clock: Callable[[], float] = time.time, mounts: str = "/proc/mounts") -> list[Finding]:
    """Every check for the store `config` names and this host."""
    store = check_server(config, clock) if "://" in config.database else check_sqlite(config, mounts)
    return store + check_host(config)


def worst(findings: list[Finding]) -> int:
    """The exit code, as `status` has them: 0 OK, 1 WARNING, 2 CRITICAL (3 UNKNOWN: nothing checked)."""
    return max((finding.level for finding in findings), default=UNKNOWN)
