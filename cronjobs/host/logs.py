"""Logging to a file that several processes (cron ticks, the web trigger, the worker) append to.

Imported only when `[log] file` is set: logging.handlers costs an idle tick several milliseconds.
"""

from __future__ import annotations

import fcntl
import logging
import logging.handlers
import os
from typing import Any, Optional

from .files import open_private


class SharedRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Size-based rotation that several processes can share.

    Each record is written under an exclusive flock on `<file>.lock`, so two processes never rotate
    at once and never write half a line into each other's. The file is opened in append mode; before
    writing, a process reopens it if another one rotated it away meanwhile, and it decides about
    rotation from the file's real size, not from its own idea of it. With `backupCount` 0 the file is
    truncated when full instead of growing without bound.
    """

    def __init__(self, filename: str, maxBytes: int = 0, backupCount: int = 0,  # noqa: N803 (stdlib names)
                 encoding: Optional[str] = "utf-8") -> None:
        super().__init__(filename, mode="a", maxBytes=maxBytes, backupCount=backupCount, encoding=encoding,
                         delay=True)
        self._pid = os.getpid()
        self._lock_fd: Optional[int] = None

    def _lock(self) -> int:
        if self._pid != os.getpid():
            # A forked child shares the parent's open file descriptions, and with them the flock:
            # it needs its own to exclude its parent.
            try:
                if self.stream is not None:
                    self.stream.close()
                if self._lock_fd is not None:
                    os.close(self._lock_fd)
            except OSError:
                pass
            self.stream = None  # type: ignore[assignment]
            self._lock_fd = None
            self._pid = os.getpid()
        if self._lock_fd is None:
            self._lock_fd = open_private(self.baseFilename + ".lock", os.O_RDWR)
        return self._lock_fd

    def _open(self) -> Any:
        """The log file in append mode, created 0600 (rotation opens a new one through here too)."""
        return open(open_private(self.baseFilename, os.O_WRONLY | os.O_APPEND), "a", encoding=self.encoding,
                    errors=self.errors)

    def _size(self) -> int:
        """Size of the file at the path, reopening first if the stream names another (rotated) file."""
        try:
            at_path = os.stat(self.baseFilename)
        except FileNotFoundError:
            at_path = None
        if self.stream is not None:
            current = os.fstat(self.stream.fileno())
            if at_path is not None and os.path.samestat(at_path, current):
                return current.st_size
            self.stream.close()
            self.stream = None  # type: ignore[assignment]
        return at_path.st_size if at_path is not None else 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
            fd = self._lock()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                size = self._size()
                if self.maxBytes > 0 and size > 0 and size + len(line.encode(self.encoding or "utf-8")) > self.maxBytes:
                    if self.backupCount > 0:
                        self.doRollover()
                    else:
                        os.close(open_private(self.baseFilename, os.O_WRONLY | os.O_TRUNC))
                if self.stream is None:
                    self.stream = self._open()
                self.stream.write(line)
                self.stream.flush()
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        super().close()
        if self._lock_fd is not None and self._pid == os.getpid():
            os.close(self._lock_fd)
        self._lock_fd = None


def add_file_handler(logger: logging.Logger, config: Any) -> None:
    handler = SharedRotatingFileHandler(
        config.log.file, maxBytes=config.log.max_bytes, backupCount=config.log.backups, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(getattr(logging, config.log.level))
    logger.addHandler(handler)
    logger.setLevel(min(logger.level or logging.WARNING, handler.level))
