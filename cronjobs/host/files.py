"""Files only their owner can read: every file run-cron creates is 0600, whatever the umask.

Cron's usual umask 022 would leave the database (payloads, errors, checkpoints), its -wal and -shm
files, the tick file and the log readable by every user of a shared host, and a lock file that any of
them could open and flock, stopping every tick. SQLite creates -wal and -shm with the database file's
mode, so the database file is created 0600 before SQLite opens it.

Files that already exist keep their mode (an administrator may have shared one with a web server's
group on purpose); `status` warns about those that other users can reach (`loose_files`).
"""

from __future__ import annotations

import os
import stat
from typing import Iterable

PRIVATE_FILE = 0o600


def create_private(path: str) -> None:
    """Create `path` empty with mode 0600 unless it exists (the umask only ever removes bits)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), PRIVATE_FILE))
    except FileExistsError:
        pass


def open_private(path: str, flags: int) -> int:
    """os.open with O_CREAT and mode 0600 for a new file; an existing file keeps its mode."""
    return os.open(path, flags | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), PRIVATE_FILE)


def loose_files(paths: Iterable[str]) -> list[tuple[str, int]]:
    """(path, mode) of each existing file in `paths` that its group or other users may read or write."""
    loose = []
    for path in paths:
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError:
            continue
        if mode & 0o077:
            loose.append((path, mode))
    return loose


def store_files(database: str, lock_file: str, log_file: str | None) -> list[str]:
    """Every file run-cron writes for a configuration: database, -wal, -shm, tick file, locks, log."""
    paths = [database, database + "-wal", database + "-shm", database + "-tick", lock_file, lock_file + ".http"]
    if log_file:
        paths += [log_file, log_file + ".lock"]
    return paths
