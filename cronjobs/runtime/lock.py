"""The supervisor lock: one tick at a time, across cron, the HTTP trigger and the worker mode.

An flock (through filelock) belongs to an open file description, so the kernel drops it when the
holding process dies, kill -9 included: no stale lock to clean up, no pid file to trust.
"""

from __future__ import annotations

import fcntl
import os
import time
from typing import Optional

import filelock

from ..errors import CronjobsError


class LockError(CronjobsError):
    """The lock file cannot be created or locked at all (not: someone else holds it)."""

    def __init__(self, path: str, cause: object) -> None:
        self.path = path
        #: The problem without the file's path, for answers to unauthenticated clients.
        self.reason = str(cause)
        super().__init__(f"lock file {path}: {cause}")


class SupervisorLock:
    """A non-blocking exclusive lock on `path`."""

    def __init__(self, path: str) -> None:
        self.path = path
        # No soft-lock fallback: a lock file that outlives a killed process is exactly the stale lock
        # this exists to avoid. Where flock is unsupported we fail loudly instead.
        # 0600: anyone who can open the file can flock it, and so stop every tick.
        self._lock = filelock.FileLock(path, mode=0o600, thread_local=False, fallback_to_soft=False)

    def acquire(self) -> bool:
        """Take the lock now, or return False at once if another process holds it."""
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise LockError(self.path, "its directory does not exist")
        # A probe (held_elsewhere, in status, /health or a /run thread) holds a shared lock for
        # microseconds; short retries keep a flood of probes from turning a tick away, while a
        # second tick still leaves within ~40 ms.
        for pause in (0.002, 0.005, 0.01, 0.02, None):
            try:
                self._lock.acquire(blocking=False)
            except filelock.Timeout:
                if pause is None:
                    return False
                time.sleep(pause)
            except OSError as exc:
                raise LockError(self.path, exc) from exc
            else:
                return True
        return False  # pragma: no cover - the loop returns

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release(force=True)

    @property
    def fileno(self) -> Optional[int]:
        """The descriptor holding the flock (a forked worker closes its copy)."""
        return getattr(self._lock._context, "lock_file_fd", None)  # noqa: SLF001

    def held_elsewhere(self) -> bool:
        """True while another process holds the lock (a tick is running).

        Probes through a read-only descriptor of its own (flock ignores the open mode), so a reader
        such as `status` never creates the file and needs no write permission. A missing file means
        no tick ever ran here; a file that exists but cannot be opened raises LockError.

        The probe takes a *shared* lock: a tick's exclusive lock refuses it, while any number of
        probes at once (a flood of /run requests in threads) do not mistake each other for a tick.
        """
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as exc:
            raise LockError(self.path, exc.strerror or exc) from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)

    def __enter__(self) -> SupervisorLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
